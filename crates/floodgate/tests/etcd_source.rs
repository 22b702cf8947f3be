//! `config_source: etcd` with the real binary and a real etcd: resources written to etcd are served and
//! their changes applied as they are watched; a bad value is left out and the rest served; an outage
//! loses no request, and what changed is applied once etcd is back; a restart while etcd is down serves
//! the copy on disk. The admin API only reads.

use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use floodgate_testkit::{get, send, Floodgate, MockUpstream, Proto, TestEtcd};
use http::Request;
use http_body_util::Full;

const PREFIX: &str = "/fg";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_floodgate")
}

/// The file's own settings, with etcd as the source and the copy at `copy`.
fn bootstrap(listener: SocketAddr, admin: SocketAddr, etcd: &TestEtcd, copy: &Path) -> String {
    format!(
        r#"
workers: 1
listeners: [{{ name: main, address: "{listener}" }}]
admin: {{ address: "{admin}" }}
config_source:
  type: etcd
  etcd: {{ endpoints: ["{}"], prefix: "{PREFIX}", timeout: 2s, copy_file: "{}" }}
"#,
        etcd.endpoint(),
        copy.display()
    )
}

async fn seed(etcd: &TestEtcd, upstream: &MockUpstream) {
    etcd.put(
        &format!("{PREFIX}/upstreams/backend"),
        &format!(
            r#"{{"targets": [{{"address": "{}"}}]}}"#,
            upstream.address()
        ),
    )
    .await;
    etcd.put(
        &format!("{PREFIX}/routes/api"),
        r#"{"paths": ["/api/*"], "upstream": "backend"}"#,
    )
    .await;
}

async fn status(gw: &Floodgate, path: &str) -> Option<u16> {
    get(gw.listener, path).await.ok().map(|r| r.status.as_u16())
}

async fn wait_status(gw: &Floodgate, path: &str, want: u16) {
    gw.poll(&format!("{path} never answered {want}"), || async {
        status(gw, path).await == Some(want)
    })
    .await;
}

async fn metric(gw: &Floodgate, name: &str) -> Option<String> {
    gw.metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")).map(str::to_string))
}

/// etcd seeded with the `backend` upstream and the `/api/*` route, and a gateway on it.
async fn seeded() -> (TestEtcd, MockUpstream, tempfile::TempDir, Floodgate) {
    let etcd = TestEtcd::start().await;
    let upstream = MockUpstream::http("backend").await;
    seed(&etcd, &upstream).await;
    let dir = tempfile::tempdir().expect("dir");
    let copy = dir.path().join("copy.json");
    let gw = Floodgate::start(bin(), |l, a| bootstrap(l, a, &etcd, &copy)).await;
    (etcd, upstream, dir, gw)
}

#[tokio::test]
async fn resources_in_etcd_are_served_and_their_changes_applied_as_watched() {
    let (etcd, _upstream, _dir, gw) = seeded().await;
    assert_eq!(status(&gw, "/api/x").await, Some(200));
    assert_eq!(
        metric(&gw, "floodgate_config_source_connected")
            .await
            .as_deref(),
        Some("1")
    );

    let revision = etcd
        .put(
            &format!("{PREFIX}/routes/v2"),
            r#"{"paths": ["/v2/*"], "upstream": "backend"}"#,
        )
        .await;
    wait_status(&gw, "/v2/x", 200).await;
    gw.poll("the revision metric never caught up", || async {
        metric(&gw, "floodgate_config_revision").await == Some(revision.to_string())
    })
    .await;
    etcd.delete(&format!("{PREFIX}/routes/api")).await;
    wait_status(&gw, "/api/x", 404).await;
    assert_eq!(status(&gw, "/v2/x").await, Some(200));

    // The admin API shows what etcd holds, and leaves changes to etcd.
    let routes = get(gw.admin, "/floodgate/admin/routes")
        .await
        .expect("admin");
    assert_eq!(routes.json()["total"], 1);
    assert_eq!(routes.json()["items"][0]["id"], "v2");
    let history = get(gw.admin, "/floodgate/admin/history")
        .await
        .expect("admin");
    assert_eq!(history.json()["items"][0]["source"], "etcd");
    let req = Request::post("/floodgate/admin/config")
        .body(Full::new(Bytes::from_static(b"{}")))
        .expect("request");
    let res = send(gw.admin, Proto::H1, req).await.expect("admin");
    assert_eq!(res.status, 405);
    assert!(res.text().contains("comes from etcd"), "{}", res.text());
    // A SIGHUP does not swap etcd's resources for the file's (which has none).
    gw.signal("HUP");
    gw.poll("SIGHUP was not logged as ignored", || async {
        gw.log().contains("SIGHUP ignored")
    })
    .await;
    assert_eq!(status(&gw, "/v2/x").await, Some(200));
}

#[tokio::test]
async fn a_bad_value_in_etcd_is_left_out_and_the_rest_is_served() {
    let etcd = TestEtcd::start().await;
    let upstream = MockUpstream::http("backend").await;
    seed(&etcd, &upstream).await;
    etcd.put(&format!("{PREFIX}/routes/garbled"), "{not json")
        .await;
    etcd.put(
        &format!("{PREFIX}/routes/dangling"),
        r#"{"paths": ["/dangling/*"], "upstream": "nowhere"}"#,
    )
    .await;
    etcd.put(
        &format!("{PREFIX}/routes/bad-plugin"),
        r#"{"paths": ["/bad/*"], "upstream": "backend", "plugins": {"rate-limit": {"rate": "lots"}}}"#,
    )
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let copy = dir.path().join("copy.json");
    let gw = Floodgate::start(bin(), |l, a| bootstrap(l, a, &etcd, &copy)).await;
    assert_eq!(status(&gw, "/api/x").await, Some(200));
    assert_eq!(status(&gw, "/dangling/x").await, Some(404));
    assert_eq!(status(&gw, "/bad/x").await, Some(404));
    let skipped: u64 = metric(&gw, "floodgate_config_resources_skipped_total")
        .await
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    assert!(skipped >= 3, "{skipped}");
    let log = gw.log();
    for key in ["routes/garbled", "routes/dangling", "routes/bad-plugin"] {
        assert!(
            log.contains(&format!("{PREFIX}/{key}")),
            "{key} not logged:\n{log}"
        );
    }

    // A bad change later leaves the running routes alone; fixing it brings the route in.
    etcd.put(&format!("{PREFIX}/routes/api"), "[]").await;
    etcd.put(
        &format!("{PREFIX}/routes/dangling"),
        r#"{"paths": ["/dangling/*"], "upstream": "backend"}"#,
    )
    .await;
    wait_status(&gw, "/dangling/x", 200).await;
    assert_eq!(status(&gw, "/api/x").await, Some(404));
}

#[tokio::test]
async fn an_etcd_outage_loses_no_request_and_changes_apply_once_it_is_back() {
    let (mut etcd, _upstream, _dir, gw) = seeded().await;
    assert_eq!(status(&gw, "/api/x").await, Some(200));

    etcd.kill();
    gw.poll("the gateway never noticed etcd was gone", || async {
        metric(&gw, "floodgate_config_source_connected")
            .await
            .as_deref()
            == Some("0")
    })
    .await;
    for i in 0..200 {
        assert_eq!(
            status(&gw, &format!("/api/{i}")).await,
            Some(200),
            "request {i}"
        );
    }
    let readyz = get(gw.admin, "/readyz").await.expect("readyz");
    assert_eq!(readyz.status, 200);

    etcd.resume().await;
    etcd.put(
        &format!("{PREFIX}/routes/v2"),
        r#"{"paths": ["/v2/*"], "upstream": "backend"}"#,
    )
    .await;
    wait_status(&gw, "/v2/x", 200).await;
    assert_eq!(
        metric(&gw, "floodgate_config_source_connected")
            .await
            .as_deref(),
        Some("1")
    );
    assert_eq!(status(&gw, "/api/x").await, Some(200));
}

#[tokio::test]
async fn a_restart_while_etcd_is_down_serves_the_copy_on_disk() {
    let mut etcd = TestEtcd::start().await;
    let upstream = MockUpstream::http("backend").await;
    seed(&etcd, &upstream).await;
    etcd.put(
        &format!("{PREFIX}/routes/v2"),
        r#"{"paths": ["/v2/*"], "upstream": "backend"}"#,
    )
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let copy = dir.path().join("copy.json");
    let first = Floodgate::start(bin(), |l, a| bootstrap(l, a, &etcd, &copy)).await;
    assert_eq!(status(&first, "/v2/x").await, Some(200));
    // Changes in a burst: the copy is written at most twice a second, so the last of these is in
    // it a moment after it is in service, not at once.
    for path in ["/v3a/*", "/v3/*"] {
        etcd.put(
            &format!("{PREFIX}/routes/v3"),
            &format!(r#"{{"paths": ["{path}"], "upstream": "backend"}}"#),
        )
        .await;
    }
    wait_status(&first, "/v3/x", 200).await;
    first
        .poll("the copy on disk never held the last change", || async {
            std::fs::read_to_string(&copy).is_ok_and(|text| text.contains("/v3/*"))
        })
        .await;
    drop(first);

    etcd.kill();
    let second = Floodgate::start(bin(), |l, a| bootstrap(l, a, &etcd, &copy)).await;
    assert_eq!(status(&second, "/api/x").await, Some(200));
    assert_eq!(status(&second, "/v2/x").await, Some(200));
    assert_eq!(status(&second, "/v3/x").await, Some(200));
    assert_eq!(status(&second, "/v3a/x").await, Some(404));
    assert_eq!(
        metric(&second, "floodgate_config_source_connected")
            .await
            .as_deref(),
        Some("0")
    );
    assert!(
        second.log().contains("starting from the copy on disk"),
        "{}",
        second.log()
    );

    // Once etcd answers, the gateway follows it again.
    etcd.resume().await;
    etcd.delete(&format!("{PREFIX}/routes/v2")).await;
    wait_status(&second, "/v2/x", 404).await;
}

#[tokio::test]
async fn a_file_naming_etcd_must_not_list_resources_of_its_own() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("floodgate.yaml");
    std::fs::write(
        &file,
        "listeners: [{ name: a, address: \"127.0.0.1:0\" }]\nadmin: { address: \"127.0.0.1:0\" }\nconfig_source: { type: etcd, etcd: { endpoints: [\"127.0.0.1:1\"] } }\nroutes: [{ id: r, paths: [\"/\"], respond: { status: 200 } }]\n",
    )
    .expect("write");
    let out = std::process::Command::new(bin())
        .args(["run", "-c", &file.display().to_string()])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("routes: must be empty with config_source etcd: routes live in etcd under /floodgate/routes/"),
        "{stderr}"
    );
}

/// Three gateways on one etcd: each of 100 changes is served by all three. The time each change took to
/// reach all three is printed (its p99 goes in the benchmark notes), not asserted: tests assert
/// behaviour.
#[tokio::test]
async fn three_gateways_on_one_etcd_converge_on_every_change() {
    let etcd = TestEtcd::start().await;
    let upstream = MockUpstream::http("backend").await;
    seed(&etcd, &upstream).await;
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let mut gateways = Vec::new();
    for dir in &dirs {
        let copy = dir.path().join("copy.json");
        gateways.push(Floodgate::start(bin(), |l, a| bootstrap(l, a, &etcd, &copy)).await);
    }
    let mut waits = Vec::new();
    for i in 0..100 {
        let started = std::time::Instant::now();
        etcd.put(
            &format!("{PREFIX}/routes/r{i}"),
            &format!(r#"{{"paths": ["/r{i}/*"], "upstream": "backend"}}"#),
        )
        .await;
        for gw in &gateways {
            wait_status(gw, &format!("/r{i}/x"), 200).await;
        }
        waits.push(started.elapsed());
    }
    for gw in &gateways {
        assert_eq!(status(gw, "/r0/x").await, Some(200));
        assert_eq!(status(gw, "/r99/x").await, Some(200));
    }
    waits.sort();
    println!(
        "convergence of 3 gateways over 100 changes: p50 {:?}, p99 {:?}, max {:?}",
        waits[49], waits[98], waits[99]
    );
}

/// etcd over TLS: a gateway that trusts its certificate follows it; one given another CA never
/// connects, and serves no route from it.
#[tokio::test]
async fn a_cluster_over_tls_is_followed_only_with_its_certificate_authority() {
    let etcd = TestEtcd::start_tls().await;
    let upstream = MockUpstream::http("backend").await;
    seed(&etcd, &upstream).await;
    let certs = etcd.certs().expect("tls");
    let dir = tempfile::tempdir().expect("dir");
    let tls_bootstrap = |l, a, ca: &str, copy: &std::path::Path| {
        bootstrap(l, a, &etcd, copy).replace(
            "timeout: 2s,",
            &format!("timeout: 2s, tls: {{ ca: \"{ca}\", server_name: localhost }},"),
        )
    };
    let copy = dir.path().join("copy.json");
    let gw = Floodgate::start(bin(), |l, a| tls_bootstrap(l, a, &certs.cert(), &copy)).await;
    assert_eq!(status(&gw, "/api/x").await, Some(200));
    etcd.put(
        &format!("{PREFIX}/routes/v2"),
        r#"{"paths": ["/v2/*"], "upstream": "backend"}"#,
    )
    .await;
    wait_status(&gw, "/v2/x", 200).await;

    let stranger = floodgate_testkit::TestCerts::new(&["localhost"]);
    let other_copy = dir.path().join("other.json");
    let dir2 = tempfile::tempdir().expect("dir");
    let file = dir2.path().join("floodgate.yaml");
    let (listener, admin) = (
        format!("127.0.0.1:{}", floodgate_testkit::free_port()),
        format!("127.0.0.1:{}", floodgate_testkit::free_port()),
    );
    std::fs::write(
        &file,
        tls_bootstrap(
            listener.parse().unwrap(),
            admin.parse().unwrap(),
            &stranger.cert(),
            &other_copy,
        ),
    )
    .expect("write");
    let mut child = std::process::Command::new(bin())
        .args(["run", "-c", &file.display().to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    // It starts without etcd's routes (and says why), and is not ready.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let answered = loop {
        if let Ok(res) = get(admin.parse().unwrap(), "/readyz").await {
            break res.status.as_u16();
        }
        assert!(std::time::Instant::now() < deadline, "never answered");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(answered, 503);
    assert_eq!(
        get(listener.parse().unwrap(), "/api/x")
            .await
            .map(|r| r.status.as_u16())
            .ok(),
        Some(404)
    );
    let _ = child.kill();
    let output = child.wait_with_output().expect("output");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("etcd cannot be reached"), "{log}");
}

#[tokio::test]
async fn a_watch_outrun_by_a_compaction_lists_again_and_applies_what_changed() {
    let (etcd, _upstream, _dir, gw) = seeded().await;
    assert_eq!(status(&gw, "/api/x").await, Some(200));
    // A stopped gateway reads nothing: etcd's stream to it fills (25 MiB of values under the prefix
    // that name no resource: more than the HTTP/2 windows and etcd's watch buffers hold), its
    // watcher falls behind, and a compaction past it ends the watch. The listing that follows is
    // larger than gRPC's default 4 MiB message: it is read in pages.
    gw.signal("STOP");
    let filler = "x".repeat(64 * 1024);
    let client = etcd.client().await.expect("an etcd client");
    // Written 16 at a time: etcd commits concurrent writes with one fsync.
    for batch in 0..25 {
        let mut writes = tokio::task::JoinSet::new();
        for i in 0..16 {
            let (mut client, filler) = (client.clone(), filler.clone());
            let key = format!("{PREFIX}/filler/{batch}-{i}");
            writes.spawn(async move { client.put(key, filler, None).await });
        }
        while let Some(written) = writes.join_next().await {
            written.expect("a write task").expect("a write");
        }
    }
    etcd.put(
        &format!("{PREFIX}/routes/v3"),
        r#"{"paths": ["/v3/*"], "upstream": "backend"}"#,
    )
    .await;
    let last = etcd.put(&format!("{PREFIX}/filler/last"), "x").await;
    etcd.compact(last).await;
    gw.signal("CONT");
    wait_status(&gw, "/v3/x", 200).await;
    gw.poll("the watch never ended on the compaction", || async {
        gw.log().contains("etcd watch ended: listing again")
    })
    .await;
    assert!(
        gw.log().contains(&format!("compacted_to={last}")),
        "{}",
        gw.log()
    );
    gw.poll("the revision metric never caught up", || async {
        metric(&gw, "floodgate_config_revision").await == Some(last.to_string())
    })
    .await;
    assert_eq!(status(&gw, "/api/x").await, Some(200));
}
