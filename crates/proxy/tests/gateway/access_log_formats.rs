//! The access log's text formats and sampling, over real connections: what a line says for HTTP/1.1 and
//! HTTP/2, which request fields a template copies, and that sampling drops successes only.

use std::path::Path;

use bytes::Bytes;
use floodgate_testkit::{eventually, free_port, send, MockUpstream, Proto, TestGateway};
use http::Request;
use http_body_util::Full;

/// Routes `api` to a working upstream and `down` to a port nothing listens on, with `access_log`.
fn config(backend: &MockUpstream, access_log: &str) -> String {
    format!(
        r#"
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
upstreams:
  - {{ id: backend, targets: [{{ address: "{backend}" }}] }}
  - {{ id: refused, targets: [{{ address: "127.0.0.1:{refused}" }}] }}
routes:
  - {{ id: api, paths: ["/api/*"], upstream: backend }}
  - {{ id: down, paths: ["/down/*"], upstream: refused }}
access_log: {access_log}
"#,
        backend = backend.address(),
        refused = free_port(),
    )
}

fn request(path: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut req = Request::get(path);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.body(Full::new(Bytes::new())).unwrap()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn wait_for_lines(path: &Path, count: usize) -> Vec<String> {
    eventually(&format!("{count} access log lines"), || {
        lines(path).len() >= count
    })
    .await;
    lines(path)
}

#[tokio::test]
async fn a_template_names_request_fields_and_writes_both_protocols() {
    let backend = MockUpstream::http("one").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let format = r#"$request_id|$remote_addr|$request|$status|$route|$upstream_addr|$upstream_attempts|$http_user_agent|$http_x_tenant|$args"#;
    let gw = TestGateway::start(&config(
        &backend,
        &format!(
            "{{ path: {:?}, format: {format:?} }}",
            log.display().to_string()
        ),
    ));
    let addr = gw.addr("main");

    for (proto, id) in [(Proto::H1, "one"), (Proto::H2c, "two")] {
        let headers = [
            ("user-agent", "probe \"1\""),
            ("x-tenant", "acme"),
            ("x-request-id", id),
        ];
        let response = send(addr, proto, request("/api/x?a=1", &headers))
            .await
            .unwrap();
        assert_eq!(response.status, 200);
    }
    let response = send(
        addr,
        Proto::H1,
        request("/down/y", &[("x-request-id", "three")]),
    )
    .await
    .unwrap();
    assert_eq!(response.status, 502);

    let mut written = wait_for_lines(&log, 3).await;
    written.sort();
    let backend = backend.address();
    assert_eq!(
        written[0],
        format!(
            "one|127.0.0.1|GET /api/x?a=1 HTTP/1.1|200|api|{backend}|1|probe \\x221\\x22|acme|a=1"
        )
    );
    assert_eq!(
        written[2],
        format!(
            "two|127.0.0.1|GET /api/x?a=1 HTTP/2.0|200|api|{backend}|1|probe \\x221\\x22|acme|a=1"
        )
    );
    // Fields the request did not carry, and the query it did not have, are `-`.
    assert!(
        written[1].starts_with("three|127.0.0.1|GET /down/y HTTP/1.1|502|down|127.0.0.1:"),
        "{}",
        written[1]
    );
    assert!(written[1].ends_with("|-|-|-"), "{}", written[1]);
}

#[tokio::test]
async fn sampling_at_zero_keeps_only_the_failures() {
    let backend = MockUpstream::http("one").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let gw = TestGateway::start(&config(
        &backend,
        &format!(
            "{{ path: {:?}, format: \"$status $request_uri\", success_sample_ratio: 0 }}",
            log.display().to_string()
        ),
    ));
    let addr = gw.addr("main");
    for n in 0..20 {
        let ok = send(addr, Proto::H1, request(&format!("/api/{n}"), &[])).await;
        assert_eq!(ok.unwrap().status, 200);
    }
    for (path, status) in [("/nowhere", 404), ("/down/z", 502)] {
        let response = send(addr, Proto::H1, request(path, &[])).await.unwrap();
        assert_eq!(response.status, status);
    }
    let mut written = wait_for_lines(&log, 2).await;
    written.sort();
    // The successes before the failures were not logged: only the failures are in the file.
    assert_eq!(written, ["404 /nowhere", "502 /down/z"]);
}
