//! The real binary under signals: SIGHUP re-reads the file (routes, listeners, a bad file kept out) without
//! breaking open connections, and SIGTERM drains in-flight requests, refuses new connections and exits 0.

use std::net::SocketAddr;
use std::time::Duration;

use floodgate_testkit::{
    free_port, get, get_request, read_body, send, send_on, Floodgate, MockUpstream, Proto,
};
use tokio::net::TcpStream;

async fn status_of(addr: SocketAddr, path: &str) -> Option<u16> {
    get(addr, path).await.ok().map(|r| r.status.as_u16())
}

fn refuses(result: std::io::Result<TcpStream>) -> bool {
    matches!(result, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
}

/// One listener, one upstream, and a route per `(id, path)`; `extra` is appended to the listeners list.
fn config(
    listener: SocketAddr,
    admin: SocketAddr,
    upstream: &MockUpstream,
    routes: &[(&str, &str)],
    extra: &str,
) -> String {
    let routes: String = routes
        .iter()
        .map(|(id, path)| format!("  - {{ id: {id}, paths: [\"{path}\"], upstream: backend }}\n"))
        .collect();
    format!(
        "workers: 2\nshutdown_timeout: 10s\nlisteners:\n  - {{ name: main, address: \"{listener}\" }}\n{extra}\
         admin: {{ address: \"{admin}\" }}\n\
         upstreams:\n  - {{ id: backend, targets: [{{ address: \"{}\" }}] }}\n\
         routes:\n{routes}",
        upstream.address()
    )
}

#[tokio::test]
async fn sighup_with_a_changed_file_changes_routing() {
    let upstream = MockUpstream::http("one").await;
    let mut gw = Floodgate::start(env!("CARGO_BIN_EXE_floodgate"), |l, a| {
        config(l, a, &upstream, &[("old", "/old/*")], "")
    })
    .await;
    assert_eq!(status_of(gw.listener, "/old/x").await, Some(200));
    assert_eq!(status_of(gw.listener, "/new/x").await, Some(404));

    gw.write_config(&config(
        gw.listener,
        gw.admin,
        &upstream,
        &[("new", "/new/*")],
        "",
    ));
    gw.signal("HUP");
    gw.poll("the new route never answered", || async {
        status_of(gw.listener, "/new/x").await == Some(200)
    })
    .await;
    assert_eq!(status_of(gw.listener, "/old/x").await, Some(404));
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"floodgate_config_reloads_total{result="success"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("\nfloodgate_config_apply_duration_seconds_count 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\nfloodgate_config_apply_duration_seconds_bucket{le=\"+Inf\"} 1\n"),
        "{metrics}"
    );

    gw.signal("TERM");
    assert_eq!(gw.wait_exit().await.code(), Some(0), "{}", gw.log());
}

#[tokio::test]
async fn sighup_with_an_invalid_file_keeps_the_running_config() {
    let upstream = MockUpstream::http("one").await;
    let gw = Floodgate::start(env!("CARGO_BIN_EXE_floodgate"), |l, a| {
        config(l, a, &upstream, &[("old", "/old/*")], "")
    })
    .await;

    // A new route pointing at an upstream that does not exist: the whole file must be refused.
    let mut bad = config(gw.listener, gw.admin, &upstream, &[("old", "/old/*")], "");
    bad.push_str("  - { id: new, paths: [\"/new/*\"], upstream: usr }\n");
    gw.write_config(&bad);
    gw.signal("HUP");
    gw.poll("the failed reload was never counted", || async {
        gw.metrics()
            .await
            .contains(r#"floodgate_config_reloads_total{result="failure"} 1"#)
    })
    .await;
    assert_eq!(status_of(gw.listener, "/old/x").await, Some(200));
    assert_eq!(status_of(gw.listener, "/new/x").await, Some(404));
    assert_eq!(status_of(gw.admin, "/readyz").await, Some(200));
    let log = gw.log();
    assert!(
        log.contains("routes[1].upstream"),
        "the log does not say what is wrong:\n{log}"
    );
}

#[tokio::test]
async fn sighup_adds_and_removes_a_listener() {
    let upstream = MockUpstream::http("one").await;
    let gw = Floodgate::start(env!("CARGO_BIN_EXE_floodgate"), |l, a| {
        config(l, a, &upstream, &[("api", "/api/*")], "")
    })
    .await;
    let second: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    assert!(refuses(TcpStream::connect(second).await));

    let extra = format!("  - {{ name: second, address: \"{second}\" }}\n");
    gw.write_config(&config(
        gw.listener,
        gw.admin,
        &upstream,
        &[("api", "/api/*")],
        &extra,
    ));
    gw.signal("HUP");
    gw.poll("the added listener never answered", || async {
        status_of(second, "/api/x").await == Some(200)
    })
    .await;
    assert_eq!(status_of(gw.listener, "/api/x").await, Some(200));

    gw.write_config(&config(
        gw.listener,
        gw.admin,
        &upstream,
        &[("api", "/api/*")],
        "",
    ));
    gw.signal("HUP");
    gw.poll("the removed listener kept accepting", || async {
        refuses(TcpStream::connect(second).await)
    })
    .await;
    assert_eq!(status_of(gw.listener, "/api/x").await, Some(200));
}

#[tokio::test]
async fn sighup_keeps_an_inflight_download() {
    const TOTAL: usize = 20_000_000;
    let upstream = MockUpstream::http("one").await;
    let gw = Floodgate::start(env!("CARGO_BIN_EXE_floodgate"), |l, a| {
        config(l, a, &upstream, &[("old", "/*")], "")
    })
    .await;
    let response = send_on(
        gw.listener,
        Proto::H1,
        get_request(&format!("/stream/{TOTAL}")),
    )
    .await
    .expect("download starts");
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    // Part of the body, so the download is under way (held back by this slow reader) during the reload.
    let received = read_body(&mut body, 1_000_000)
        .await
        .expect("download under way");
    assert!(received >= 1_000_000);

    // The reload removes the route the download came through.
    gw.write_config(&config(
        gw.listener,
        gw.admin,
        &upstream,
        &[("new", "/new/*")],
        "",
    ));
    gw.signal("HUP");
    gw.poll("the reload never took effect", || async {
        status_of(gw.listener, "/new/x").await == Some(200)
    })
    .await;

    let rest = read_body(&mut body, usize::MAX)
        .await
        .expect("download completes");
    assert_eq!(received + rest, TOTAL);
}

#[tokio::test]
async fn sigterm_drains_inflight_requests_refuses_new_connections_and_exits_zero() {
    let upstream = MockUpstream::http("one").await;
    let mut gw = Floodgate::start(env!("CARGO_BIN_EXE_floodgate"), |l, a| {
        config(l, a, &upstream, &[("api", "/*")], "")
    })
    .await;
    let listener = gw.listener;
    let inflight = tokio::spawn(async move { get(listener, "/slow/1500").await });
    gw.poll("the slow request never reached the upstream", || async {
        upstream.requests() >= 1
    })
    .await;

    gw.signal("TERM");
    // While the slow request is still open, the gateway must stop accepting, and the admin listener
    // tells load balancers it is not ready any more.
    let mut refused_while_draining = false;
    while !inflight.is_finished() {
        if refuses(TcpStream::connect(listener).await) {
            refused_while_draining = !inflight.is_finished();
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut unready_while_draining = false;
    while !inflight.is_finished() {
        if status_of(gw.admin, "/readyz").await == Some(503) {
            unready_while_draining = !inflight.is_finished();
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let response = inflight
        .await
        .expect("request task")
        .expect("in-flight request answered");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["uri"], "/slow/1500");
    assert!(
        refused_while_draining,
        "new connections were accepted while draining"
    );
    assert!(
        unready_while_draining,
        "/readyz did not answer 503 while draining"
    );

    let status = gw.wait_exit().await;
    assert_eq!(status.code(), Some(0), "log:\n{}", gw.log());
    assert!(refuses(TcpStream::connect(listener).await));
}

#[tokio::test]
async fn sigint_stops_the_gateway_with_exit_zero() {
    let upstream = MockUpstream::http("one").await;
    let mut gw = Floodgate::start(env!("CARGO_BIN_EXE_floodgate"), |l, a| {
        config(l, a, &upstream, &[("api", "/*")], "")
    })
    .await;
    assert_eq!(status_of(gw.listener, "/x").await, Some(200));
    gw.signal("INT");
    assert_eq!(gw.wait_exit().await.code(), Some(0), "log:\n{}", gw.log());
    assert!(refuses(TcpStream::connect(gw.listener).await));
}

#[tokio::test]
async fn sigterm_gives_up_on_a_stuck_request_after_shutdown_timeout() {
    let upstream = MockUpstream::http("one").await;
    let mut gw = Floodgate::start(env!("CARGO_BIN_EXE_floodgate"), |l, a| {
        config(l, a, &upstream, &[("api", "/*")], "")
            .replace("shutdown_timeout: 10s", "shutdown_timeout: 1s")
    })
    .await;
    let listener = gw.listener;
    // Far longer than any patience in this file: only the shutdown timeout can end it.
    let stuck = tokio::spawn(async move { get(listener, "/slow/600000").await });
    gw.poll("the slow request never reached the upstream", || async {
        upstream.requests() >= 1
    })
    .await;

    gw.signal("TERM");
    assert_eq!(gw.wait_exit().await.code(), Some(0), "log:\n{}", gw.log());
    let outcome = stuck.await.expect("request task");
    assert!(
        outcome.as_ref().map_or(true, |r| r.status != 200),
        "a request cut off by shutdown answered 200: {outcome:?}"
    );
}

/// A `GET` that names its client, as the combined format logs it.
async fn get_as_probe(addr: SocketAddr, path: &str) -> u16 {
    let mut req = get_request(path);
    req.headers_mut()
        .insert("user-agent", "probe/1 \"x\"".parse().unwrap());
    send(addr, Proto::H1, req)
        .await
        .expect("answer")
        .status
        .as_u16()
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn sigusr1_reopens_the_access_log_that_logrotate_moved_and_sighup_changes_its_format() {
    let upstream = MockUpstream::http("one").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let rotated = dir.path().join("access.log.1");
    let access_log = |format: &str| format!("access_log: {{ path: {path:?}, format: {format} }}\n");
    let mut gw = Floodgate::start(env!("CARGO_BIN_EXE_floodgate"), |l, a| {
        config(
            l,
            a,
            &upstream,
            &[("api", "/api/*")],
            &access_log("combined"),
        )
    })
    .await;

    assert_eq!(get_as_probe(gw.listener, "/api/first?x=1").await, 200);
    gw.poll("the first line was never written", || async {
        lines(&path).len() == 1
    })
    .await;
    let first = lines(&path).remove(0);
    assert!(first.starts_with("127.0.0.1 - - ["), "{first}");
    assert!(
        first.contains("] \"GET /api/first?x=1 HTTP/1.1\" 200 "),
        "{first}"
    );
    assert!(first.ends_with(" \"-\" \"probe/1 \\x22x\\x22\""), "{first}");

    // logrotate moves the file, then sends SIGUSR1 (until then lines still reach the moved file).
    std::fs::rename(&path, &rotated).unwrap();
    gw.signal("USR1");
    gw.poll("the access log was never reopened", || async {
        path.exists()
    })
    .await;
    assert_eq!(get_as_probe(gw.listener, "/api/second").await, 200);
    gw.poll(
        "the line after the reopen never reached the new file",
        || async { lines(&path).len() == 1 },
    )
    .await;
    assert!(lines(&path)[0].contains("\"GET /api/second HTTP/1.1\" 200 "));
    assert_eq!(lines(&rotated), [first]);
    assert_eq!(
        status_of(gw.admin, "/readyz").await,
        Some(200),
        "still running"
    );

    // A reload with another format on the same file: the next lines are JSON.
    gw.write_config(&config(
        gw.listener,
        gw.admin,
        &upstream,
        &[("api", "/api/*")],
        &access_log("json"),
    ));
    gw.signal("HUP");
    gw.poll("the reloaded format never took effect", || async {
        get_as_probe(gw.listener, "/api/third").await;
        lines(&path).last().is_some_and(|l| l.starts_with('{'))
    })
    .await;
    let last: serde_json::Value = serde_json::from_str(lines(&path).last().unwrap()).unwrap();
    assert_eq!(last["path"], "/api/third");
    assert_eq!(last["route"], "api");

    gw.signal("TERM");
    assert_eq!(gw.wait_exit().await.code(), Some(0), "{}", gw.log());
}
