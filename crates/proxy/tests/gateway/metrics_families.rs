//! The metrics an operator's dashboard needs, after real traffic: TLS handshakes by result, upstream
//! connect and first-byte times, pooled connections, response bytes; that nothing a client sends adds a
//! series; and that the Grafana dashboard in `examples/` queries only metrics the gateway exports.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use floodgate_observe::Metrics;
use floodgate_testkit::{raw_exchange, send, MockUpstream, Proto, TestCerts, TestGateway};
use http::{Method, Request};
use http_body_util::Full;
use tokio::net::TcpStream;

fn request(method: Method, path: &str, host: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn get(path: &str) -> Request<Full<Bytes>> {
    request(Method::GET, path, "gateway.test")
}

/// One sample's value, by its whole series name with labels.
fn value(metrics: &Metrics, series: &str) -> Option<f64> {
    metrics.render().lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

/// Requests counted so far, over every route, method and status class.
fn requests_counted(metrics: &Metrics) -> f64 {
    metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("floodgate_requests_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// Waits until `count` requests have been counted (a request is counted when its response ends).
async fn wait_for_requests(metrics: &Metrics, count: f64) {
    for _ in 0..500 {
        if requests_counted(metrics) == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(requests_counted(metrics), count);
}

/// Waits until `series` has `expected` (metrics are recorded when a response or connection ends).
async fn wait_for(metrics: &Metrics, series: &str, expected: f64) {
    for _ in 0..500 {
        if value(metrics, series) == Some(expected) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(value(metrics, series), Some(expected), "{series}");
}

#[tokio::test]
async fn tls_handshakes_are_counted_as_completed_or_by_reason() {
    let certs = TestCerts::new(&["a.test"]);
    let upstream = MockUpstream::http("one").await;
    let gw = TestGateway::start(&format!(
        r#"
listeners:
  - name: secure
    address: "127.0.0.1:0"
    tls: {{ certificates: [{{ cert: "{}", key: "{}" }}] }}
upstreams: [{{ id: backend, targets: [{{ address: "{}" }}] }}]
routes: [{{ id: api, paths: ["/api/*"], upstream: backend }}]
"#,
        certs.cert(),
        certs.key(),
        upstream.address()
    ));
    let addr = gw.addr("secure");
    for h2 in [false, true] {
        let proto = Proto::Tls {
            h2,
            server_name: "a.test".to_owned(),
            root: certs.cert_der.clone(),
        };
        assert_eq!(send(addr, proto, get("/api/x")).await.unwrap().status, 200);
    }
    // Plain HTTP on the TLS port; a client that closes mid-handshake; one that does not trust the
    // gateway's certificate and says so with an alert.
    raw_exchange(addr, b"GET /api/x HTTP/1.1\r\nHost: a.test\r\n\r\n").await;
    drop(TcpStream::connect(addr).await.unwrap());
    let stranger = TestCerts::new(&["a.test"]);
    let distrustful = Proto::Tls {
        h2: true,
        server_name: "a.test".to_owned(),
        root: stranger.cert_der.clone(),
    };
    assert!(send(addr, distrustful, get("/api/x")).await.is_err());

    let errors = |reason: &str| {
        format!(r#"floodgate_tls_handshake_errors_total{{listener="secure",reason="{reason}"}}"#)
    };
    wait_for(&gw.metrics, &errors("protocol"), 1.0).await;
    wait_for(&gw.metrics, &errors("closed"), 1.0).await;
    wait_for(&gw.metrics, &errors("alert_received"), 1.0).await;
    wait_for(
        &gw.metrics,
        r#"floodgate_tls_handshakes_total{listener="secure"}"#,
        2.0,
    )
    .await;
    for reason in [
        "timeout",
        "incompatible",
        "unknown_server_name",
        "client_certificate",
        "other",
    ] {
        assert_eq!(value(&gw.metrics, &errors(reason)), Some(0.0), "{reason}");
    }
}

#[tokio::test]
async fn upstream_times_pooled_connections_and_response_bytes_are_measured() {
    let upstream = MockUpstream::http("one").await;
    let gw = TestGateway::start(&format!(
        r#"
workers: 1
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
upstreams:
  - {{ id: backend, targets: [{{ address: "{}" }}], keepalive: {{ idle_timeout: 300ms }} }}
routes: [{{ id: api, paths: ["/api/*"], upstream: backend }}]
"#,
        upstream.address()
    ));
    let addr = gw.addr("main");
    let mut body_bytes = 0;
    for n in 0..3 {
        let response = send(addr, Proto::H1, get(&format!("/api/{n}")))
            .await
            .unwrap();
        assert_eq!(response.status, 200);
        body_bytes += response.body.len();
    }
    let m = &gw.metrics;
    wait_for(
        m,
        r#"floodgate_response_body_bytes_total{route="api"}"#,
        body_bytes as f64,
    )
    .await;
    // One connection made, then reused from the pool: three first bytes timed, one connect.
    wait_for(
        m,
        r#"floodgate_upstream_header_duration_seconds_count{upstream="backend"}"#,
        3.0,
    )
    .await;
    wait_for(
        m,
        r#"floodgate_upstream_connect_duration_seconds_count{upstream="backend"}"#,
        1.0,
    )
    .await;
    wait_for(
        m,
        r#"floodgate_upstream_connections_open{upstream="backend"}"#,
        1.0,
    )
    .await;
    wait_for(
        m,
        r#"floodgate_upstream_connections_idle{upstream="backend"}"#,
        1.0,
    )
    .await;
    let responses = r#"floodgate_upstream_responses_total{upstream="backend",status_class="2xx"}"#;
    assert_eq!(value(m, responses), Some(3.0));
    let under_10s =
        r#"floodgate_upstream_header_duration_seconds_bucket{upstream="backend",le="10"}"#;
    assert_eq!(value(m, under_10s), Some(3.0));

    // Past its idle timeout the pooled connection is closed by the worker's sweep, and leaves both
    // gauges.
    wait_for(
        m,
        r#"floodgate_upstream_connections_idle{upstream="backend"}"#,
        0.0,
    )
    .await;
    wait_for(
        m,
        r#"floodgate_upstream_connections_open{upstream="backend"}"#,
        0.0,
    )
    .await;
}

/// The series of a scrape: each sample's name and labels, without its value.
fn series(metrics: &Metrics) -> BTreeSet<String> {
    metrics
        .render()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' ').map(|(series, _)| series.to_owned()))
        .collect()
}

#[tokio::test]
async fn nothing_a_client_sends_adds_a_series() {
    let upstream = MockUpstream::http("one").await;
    let gw = TestGateway::start(&format!(
        r#"
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
upstreams: [{{ id: backend, targets: [{{ address: "{}" }}] }}]
routes: [{{ id: api, paths: ["/api/*"], hosts: ["api.test"], upstream: backend }}]
"#,
        upstream.address()
    ));
    let addr = gw.addr("main");
    let purge = Method::from_bytes(b"PURGE").unwrap();
    // One request of each kind first: the routes' and the unmatched bucket's series appear once.
    let warm_up = [
        request(Method::GET, "/api/a", "api.test"),
        request(Method::POST, "/api/a", "api.test"),
        request(purge.clone(), "/api/a", "api.test"),
        request(Method::GET, "/elsewhere", "api.test"),
        request(purge, "/elsewhere", "other.test"),
    ];
    for req in warm_up {
        send(addr, Proto::H1, req).await.unwrap();
    }
    wait_for_requests(&gw.metrics, 5.0).await;
    let before = series(&gw.metrics);

    for n in 0..40u32 {
        let method = Method::from_bytes(format!("X{n}Y").as_bytes()).unwrap();
        let path = format!("/{n}/{:x}?q={n}&r={}", n * 7919, "z".repeat(n as usize));
        let host = format!("h{n}.random.test");
        for req in [
            request(method.clone(), &path, "api.test"),
            request(Method::GET, &format!("/api/{path}"), "api.test"),
            request(Method::GET, &path, &host),
            request(method, &format!("/api{path}"), &host),
        ] {
            send(addr, Proto::H1, req).await.unwrap();
        }
    }
    wait_for_requests(&gw.metrics, 165.0).await;
    let after = series(&gw.metrics);
    let added: Vec<_> = after.difference(&before).collect();
    assert!(added.is_empty(), "client input added series: {added:#?}");
}

/// Metric names in a PromQL expression (`floodgate_*` and `process_*`).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = expr.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &expr[at..];
        let starts = rest.starts_with("floodgate_") || rest.starts_with("process_");
        let boundary = at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_');
        if starts && boundary {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            names.push(rest[..end].to_owned());
            at += end;
        } else {
            at += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    names
}

fn exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr" | "query", serde_json::Value::String(expr)) => out.push(expr.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_grafana_dashboard_queries_only_metrics_that_exist() {
    let upstream = MockUpstream::http("one").await;
    let gw = TestGateway::start(&format!(
        r#"
listeners:
  - {{ name: main, address: "127.0.0.1:0" }}
upstreams: [{{ id: backend, targets: [{{ address: "{}" }}], circuit_breaker: {{ max_connections: 100 }} }}]
routes: [{{ id: api, paths: ["/api/*"], upstream: backend }}]
"#,
        upstream.address()
    ));
    // Families that carry samples only in some set-ups: the etcd source's, a TLS listener's.
    gw.metrics.config_source.set_connected(true);
    gw.metrics.tls_listener("secure");
    let scrape = gw.metrics.render();
    let families: BTreeSet<&str> = scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let histograms: BTreeSet<&str> = scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" histogram"))
        .collect();

    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/grafana/floodgate.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut found = Vec::new();
    exprs(&dashboard, &mut found);
    assert!(found.len() >= 20, "only {} queries", found.len());
    let mut named = BTreeSet::new();
    for expr in &found {
        for name in metric_names(expr) {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    name.strip_suffix(suffix)
                        .filter(|base| histograms.contains(base))
                })
                .unwrap_or(&name)
                .to_owned();
            assert!(
                families.contains(family.as_str()),
                "{name} (in {expr:?}) is not a metric the gateway exports"
            );
            named.insert(family);
        }
    }
    // The dashboard covers the request path end to end.
    for family in [
        "floodgate_requests_total",
        "floodgate_request_duration_seconds",
        "floodgate_upstream_header_duration_seconds",
        "floodgate_upstream_responses_total",
        "floodgate_tls_handshake_errors_total",
        "floodgate_config_apply_duration_seconds",
        "process_cpu_seconds_total",
    ] {
        assert!(named.contains(family), "the dashboard never shows {family}");
    }
}

#[test]
fn metric_names_are_found_in_promql() {
    assert_eq!(
        metric_names(
            r#"sum by (le) (rate(floodgate_request_duration_seconds_bucket{route=~"$route"}[$__rate_interval])) and on (job) process_open_fds"#
        ),
        [
            "floodgate_request_duration_seconds_bucket",
            "process_open_fds"
        ]
    );
    assert!(metric_names("label_values(my_floodgate_x, route)").is_empty());
}
