//! What the gateway tells its operators: Prometheus metrics after real traffic (successes, a 404, a 502,
//! a 504), the open-connection gauge, reload counters and config age, and the JSON access log.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use floodgate_observe::Metrics;
use floodgate_testkit::{eventually, free_port, send, MockUpstream, Proto, TestGateway};
use http::Request;
use http_body_util::Full;
use serde_json::Value;

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path).body(Full::new(Bytes::new())).unwrap()
}

/// Routes: `api` to a working upstream, `down` to a port nothing listens on, `slow` with a 100 ms timeout
/// (the mock's `/slow/{ms}` answers later). `extra` is appended to the top level (e.g. `access_log`).
fn config(backend: &MockUpstream, refused_port: u16, extra: &str) -> String {
    format!(
        r#"
workers: 2
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
upstreams:
  - id: backend
    targets: [{{ address: "{backend}" }}]
  - id: refused
    targets: [{{ address: "127.0.0.1:{refused_port}" }}]
  - id: slowpoke
    targets: [{{ address: "{backend}" }}]
routes:
  - {{ id: api, paths: ["/api/*"], upstream: backend }}
  - {{ id: down, paths: ["/down/*"], upstream: refused }}
  - {{ id: slow, paths: ["/slow/*"], upstream: slowpoke, timeout: 100ms }}
{extra}
"#,
        backend = backend.address()
    )
}

/// The lines of a scrape that start with `prefix`.
fn series(text: &str, prefix: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// Waits until the series starting with `prefix` are exactly `expected`, then asserts it (so a timeout
/// shows the difference).
async fn wait_for_series(metrics: &Metrics, prefix: &str, expected: &[&str]) {
    let matches = || series(&metrics.render(), prefix) == expected;
    for _ in 0..1000 {
        if matches() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(series(&metrics.render(), prefix), expected);
}

/// A single unlabelled sample's value.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

async fn status_of(addr: SocketAddr, proto: Proto, req: Request<Full<Bytes>>) -> u16 {
    send(addr, proto, req).await.unwrap().status.as_u16()
}

#[tokio::test]
async fn metrics_count_requests_by_route_method_and_status_class() {
    let backend = MockUpstream::http("one").await;
    let gw = TestGateway::start(&config(&backend, free_port(), ""));
    let addr = gw.addr("main");

    for path in ["/api/a", "/api/b?q=1"] {
        assert_eq!(status_of(addr, Proto::H1, get(path)).await, 200);
    }
    assert_eq!(status_of(addr, Proto::H2c, get("/api/c")).await, 200);
    let post = Request::post("/api/d")
        .body(Full::new(Bytes::from_static(b"x")))
        .unwrap();
    assert_eq!(status_of(addr, Proto::H1, post).await, 200);
    assert_eq!(status_of(addr, Proto::H1, get("/nowhere")).await, 404);
    assert_eq!(status_of(addr, Proto::H1, get("/down/x")).await, 502);
    assert_eq!(status_of(addr, Proto::H1, get("/slow/2000")).await, 504);

    // Series are sorted by route id; the unmatched request has the empty route.
    wait_for_series(
        &gw.metrics,
        "floodgate_requests_total{",
        &[
            r#"floodgate_requests_total{route="",method="GET",status_class="4xx"} 1"#,
            r#"floodgate_requests_total{route="api",method="GET",status_class="2xx"} 3"#,
            r#"floodgate_requests_total{route="api",method="POST",status_class="2xx"} 1"#,
            r#"floodgate_requests_total{route="down",method="GET",status_class="5xx"} 1"#,
            r#"floodgate_requests_total{route="slow",method="GET",status_class="5xx"} 1"#,
        ],
    )
    .await;
    let text = gw.metrics.render();
    assert_eq!(
        series(&text, "floodgate_request_duration_seconds_count"),
        [
            r#"floodgate_request_duration_seconds_count{route=""} 1"#,
            r#"floodgate_request_duration_seconds_count{route="api"} 4"#,
            r#"floodgate_request_duration_seconds_count{route="down"} 1"#,
            r#"floodgate_request_duration_seconds_count{route="slow"} 1"#,
        ]
    );
    // Every observation is in the +Inf bucket, which equals the count.
    assert_eq!(
        series(
            &text,
            r#"floodgate_request_duration_seconds_bucket{route="api",le="+Inf"}"#
        ),
        [r#"floodgate_request_duration_seconds_bucket{route="api",le="+Inf"} 4"#]
    );
    assert_eq!(
        series(&text, "floodgate_upstream_connect_errors_total{"),
        [
            r#"floodgate_upstream_connect_errors_total{upstream="backend"} 0"#,
            r#"floodgate_upstream_connect_errors_total{upstream="refused"} 1"#,
            r#"floodgate_upstream_connect_errors_total{upstream="slowpoke"} 0"#,
        ]
    );
    assert_eq!(
        series(&text, "floodgate_upstream_timeouts_total{"),
        [
            r#"floodgate_upstream_timeouts_total{upstream="backend"} 0"#,
            r#"floodgate_upstream_timeouts_total{upstream="refused"} 0"#,
            r#"floodgate_upstream_timeouts_total{upstream="slowpoke"} 1"#,
        ]
    );
    for family in [
        "# TYPE floodgate_requests_total counter",
        "# TYPE floodgate_request_duration_seconds histogram",
        "# TYPE floodgate_downstream_connections_open gauge",
    ] {
        assert!(text.lines().any(|l| l == family), "{family} in:\n{text}");
    }
}

#[tokio::test]
async fn open_connection_gauge_returns_to_zero_when_clients_close() {
    let backend = MockUpstream::http("one").await;
    let gw = TestGateway::start(&config(&backend, free_port(), ""));
    let addr = gw.addr("main");
    let open =
        |metrics: &Metrics| sample(&metrics.render(), "floodgate_downstream_connections_open");

    for proto in [Proto::H1, Proto::H2c, Proto::H1] {
        assert_eq!(status_of(addr, proto, get("/api/x")).await, 200);
    }
    eventually("closed client connections to be counted", || {
        open(&gw.metrics) == Some(0.0)
    })
    .await;

    // Connections held open are counted, whether or not they sent anything yet.
    let idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(
        tokio::net::TcpStream::connect(addr).await.unwrap(),
    ))
    .await
    .unwrap();
    let driver = tokio::spawn(conn);
    let req = Request::get("/api/kept")
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    drop(res);
    eventually("two open connections", || open(&gw.metrics) == Some(2.0)).await;

    drop(idle);
    drop(sender);
    let _ = driver.await;
    eventually("the gauge back at zero", || open(&gw.metrics) == Some(0.0)).await;
}

const GOOD_RELOAD_ROUTE: &str = r#"routes:
  - { id: api, paths: ["/api/*"], upstream: backend }
  - { id: added, paths: ["/added/*"], upstream: backend }"#;

/// `config` with its routes replaced by `routes`.
fn with_routes(base: &str, routes: &str) -> String {
    let start = base.find("routes:").unwrap();
    format!("{}{routes}\n", &base[..start])
}

#[tokio::test]
async fn reloads_are_counted_by_result() {
    let backend = MockUpstream::http("one").await;
    let base = config(&backend, free_port(), "");
    let mut gw = TestGateway::start(&base);
    let addr = gw.addr("main");
    let reloads =
        |gw: &TestGateway| series(&gw.metrics.render(), "floodgate_config_reloads_total{");
    assert_eq!(
        reloads(&gw),
        [
            r#"floodgate_config_reloads_total{result="failure"} 0"#,
            r#"floodgate_config_reloads_total{result="success"} 0"#,
        ]
    );

    gw.reload(&with_routes(&base, GOOD_RELOAD_ROUTE)).unwrap();
    assert_eq!(
        reloads(&gw),
        [
            r#"floodgate_config_reloads_total{result="failure"} 0"#,
            r#"floodgate_config_reloads_total{result="success"} 1"#,
        ]
    );
    assert_eq!(status_of(addr, Proto::H1, get("/added/x")).await, 200);

    // Valid YAML the gateway cannot apply: the access log's directory does not exist.
    let missing = std::env::temp_dir().join(format!("floodgate-missing-{}", std::process::id()));
    let bad = format!(
        "{}access_log: {{ path: {:?} }}\n",
        with_routes(&base, GOOD_RELOAD_ROUTE),
        missing
            .join("nested")
            .join("access.log")
            .display()
            .to_string()
    );
    let error = gw.reload(&bad).unwrap_err();
    assert!(error.contains("access_log.path"), "{error}");
    assert_eq!(
        reloads(&gw),
        [
            r#"floodgate_config_reloads_total{result="failure"} 1"#,
            r#"floodgate_config_reloads_total{result="success"} 1"#,
        ]
    );
    // The running configuration stays in service.
    assert_eq!(status_of(addr, Proto::H1, get("/added/x")).await, 200);
}

#[tokio::test]
async fn reload_rejected_by_validation_counts_as_failure() {
    let backend = MockUpstream::http("one").await;
    let base = config(&backend, free_port(), "");
    let mut gw = TestGateway::start(&base);
    let addr = gw.addr("main");
    let bad = with_routes(
        &base,
        r#"routes: [{ id: broken, paths: ["/b/*"], upstream: nosuch }]"#,
    );
    let error = gw.reload(&bad).unwrap_err();
    assert!(error.contains("nosuch"), "{error}");
    // A file that fails validation is a failed reload, as SIGHUP counts it in the binary.
    let text = gw.metrics.render();
    assert_eq!(
        series(&text, "floodgate_config_reloads_total{"),
        [
            r#"floodgate_config_reloads_total{result="failure"} 1"#,
            r#"floodgate_config_reloads_total{result="success"} 0"#,
        ],
        "in:\n{text}"
    );
    assert_eq!(status_of(addr, Proto::H1, get("/api/x")).await, 200);
}

#[tokio::test]
async fn config_age_restarts_on_successful_reload_only() {
    let backend = MockUpstream::http("one").await;
    let base = config(&backend, free_port(), "");
    let mut gw = TestGateway::start(&base);
    let age = |gw: &TestGateway| sample(&gw.metrics.render(), "floodgate_config_age_seconds");
    let stamp = |gw: &TestGateway| {
        sample(
            &gw.metrics.render(),
            "floodgate_config_last_reload_success_timestamp_seconds",
        )
    };
    let loaded_at = stamp(&gw).expect("timestamp once started");
    // Let the age grow past what a fresh load could show.
    eventually("the config to age", || age(&gw).is_some_and(|a| a >= 0.05)).await;
    let before = age(&gw).unwrap();

    gw.reload(&with_routes(&base, GOOD_RELOAD_ROUTE)).unwrap();
    let after = age(&gw).expect("age after reload");
    assert!(after < before, "age did not restart: {after} vs {before}");
    let reloaded_at = stamp(&gw).unwrap();
    assert!(
        reloaded_at > loaded_at,
        "timestamp {reloaded_at} vs {loaded_at}"
    );

    let bad = format!(
        "{}access_log: {{ path: \"/nonexistent-floodgate-dir/x/access.log\" }}\n",
        base
    );
    assert!(gw.reload(&bad).is_err());
    assert_eq!(stamp(&gw), Some(reloaded_at), "a failed reload moved it");
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("floodgate-{test}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn access_log_yaml(path: &Path) -> String {
    format!("access_log: {{ path: {:?} }}", path.display().to_string())
}

/// The access log's JSON lines, once there are at least `count` of them.
async fn log_lines(path: &Path, count: usize) -> Vec<Value> {
    let read = || {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
            .collect::<Vec<Value>>()
    };
    eventually(&format!("{count} access log lines"), || {
        read().len() >= count
    })
    .await;
    read()
}

fn line_for<'a>(lines: &'a [Value], request_id: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["request_id"] == request_id)
        .unwrap_or_else(|| panic!("no line for {request_id} in {lines:#?}"))
}

#[tokio::test]
async fn access_log_writes_one_json_line_per_request() {
    let dir = TempDir::new("access-log");
    let log = dir.path().join("access.log");
    let backend = MockUpstream::http("one").await;
    let gw = TestGateway::start(&config(&backend, free_port(), &access_log_yaml(&log)));
    let addr = gw.addr("main");

    let ok = send(addr, Proto::H1, get("/api/users?id=7")).await.unwrap();
    assert_eq!(ok.status, 200);
    let h2 = send(addr, Proto::H2c, get("/api/h2")).await.unwrap();
    assert_eq!(h2.status, 200);
    let req = Request::get("/nowhere")
        .header("x-request-id", "client-chosen-id")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let missing = send(addr, Proto::H1, req).await.unwrap();
    assert_eq!(missing.status, 404);
    let failed = send(addr, Proto::H1, get("/down/x")).await.unwrap();
    assert_eq!(failed.status, 502);

    let lines = log_lines(&log, 4).await;
    assert_eq!(lines.len(), 4, "{lines:#?}");

    let line = line_for(&lines, ok.header("x-request-id").unwrap());
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/api/users?id=7");
    assert_eq!(line["status"], 200);
    assert_eq!(line["route"], "api");
    assert_eq!(line["upstream_addr"], backend.address());
    assert_eq!(line["protocol"], "HTTP/1.1");
    assert_eq!(line["client_ip"], "127.0.0.1");
    assert_eq!(line["bytes_sent"], ok.body.len());
    assert!(line["duration_ms"].is_number(), "{line}");
    assert!(line["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));

    let line = line_for(&lines, h2.header("x-request-id").unwrap());
    assert_eq!(line["path"], "/api/h2");
    assert_eq!(line["protocol"], "HTTP/2");
    assert_eq!(line["route"], "api");

    assert_eq!(missing.header("x-request-id"), Some("client-chosen-id"));
    let line = line_for(&lines, "client-chosen-id");
    assert_eq!(line["status"], 404);
    assert_eq!(line["path"], "/nowhere");
    assert!(line["route"].is_null(), "{line}");
    assert!(line["upstream_addr"].is_null(), "{line}");

    let line = line_for(&lines, failed.header("x-request-id").unwrap());
    assert_eq!(line["status"], 502);
    assert_eq!(line["route"], "down");
    // The target that refused is named, as nginx's $upstream_addr does.
    assert!(
        line["upstream_addr"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:")),
        "{line}"
    );
}

#[tokio::test]
async fn no_access_log_configured_creates_no_file() {
    let cwd = std::env::current_dir().unwrap();
    let listing = || {
        let mut names: Vec<String> = std::fs::read_dir(&cwd)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        names
    };
    let before = listing();
    let backend = MockUpstream::http("one").await;
    let gw = TestGateway::start(&config(&backend, free_port(), ""));
    let addr = gw.addr("main");
    assert_eq!(status_of(addr, Proto::H1, get("/api/x")).await, 200);
    assert_eq!(status_of(addr, Proto::H1, get("/nowhere")).await, 404);
    drop(gw);
    assert_eq!(listing(), before, "files appeared in {}", cwd.display());
}

#[tokio::test]
async fn reload_turns_the_access_log_off_and_on() {
    let dir = TempDir::new("access-log-reload");
    let log = dir.path().join("access.log");
    let backend = MockUpstream::http("one").await;
    let with_log = config(&backend, free_port(), &access_log_yaml(&log));
    let mut gw = TestGateway::start(&with_log);
    let addr = gw.addr("main");
    let first = send(addr, Proto::H1, get("/api/1")).await.unwrap();
    log_lines(&log, 1).await;

    gw.reload(&with_log.replace(&access_log_yaml(&log), ""))
        .unwrap();
    let unlogged = send(addr, Proto::H1, get("/api/2")).await.unwrap();
    assert_eq!(unlogged.status, 200);

    // Turn it back on and log a marker request: once the marker is there, the request in between would be
    // too if it had been logged.
    gw.reload(&with_log).unwrap();
    let marker = send(addr, Proto::H1, get("/api/3")).await.unwrap();
    let lines = log_lines(&log, 2).await;
    let ids: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["request_id"].as_str())
        .collect();
    assert_eq!(
        ids,
        [
            first.header("x-request-id").unwrap(),
            marker.header("x-request-id").unwrap()
        ]
    );
}
