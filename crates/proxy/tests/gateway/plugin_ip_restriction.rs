//! ip-restriction with real clients on 127.0.0.1: allowed clients are forwarded, denied ones get the
//! gateway's 403, and the next request is served. Other client addresses are simulated the way they
//! reach a gateway in production, through a trusted proxy's `X-Forwarded-For`; without trusted proxies
//! that header is the client's own claim and changes nothing.
//!
//! Routes are told apart by host: `local.test` allows only loopback, `no-local.test` denies it,
//! `partners.test` allows only 198.51.100.0/24, and `blocklist.test` denies 203.0.113.0/24;
//! `mapped-deny.test` and `mapped-allow.test` list loopback as IPv4-mapped IPv6 entries.

use std::time::Duration;

use bytes::Bytes;
use floodgate_testkit::{send, MockUpstream, Proto, TestGateway, TestResponse};
use http::Request;
use http_body_util::Full;

/// Safety net for anything that waits on the network; no test relies on it for its outcome.
const SAFETY: Duration = Duration::from_secs(20);

fn config(backend: &MockUpstream, real_ip: &str) -> String {
    format!(
        r#"
workers: 1
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
{real_ip}
upstreams:
  - id: backend
    targets: [{{ address: "{backend}" }}]
routes:
  - {{ id: open, paths: ["/*"], upstream: backend }}
  - id: local
    hosts: ["local.test"]
    paths: ["/*"]
    upstream: backend
    plugins: {{ ip-restriction: {{ allow: ["127.0.0.1", "::1"] }} }}
  - id: no-local
    hosts: ["no-local.test"]
    paths: ["/*"]
    upstream: backend
    plugins: {{ ip-restriction: {{ deny: ["127.0.0.0/8"] }} }}
  - id: partners
    hosts: ["partners.test"]
    paths: ["/*"]
    upstream: backend
    plugins: {{ ip-restriction: {{ allow: ["198.51.100.0/24"], deny: ["198.51.100.66"] }} }}
  - id: blocklist
    hosts: ["blocklist.test"]
    paths: ["/*"]
    upstream: backend
    plugins: {{ ip-restriction: {{ deny: ["203.0.113.0/24"] }} }}
  - id: mapped-deny
    hosts: ["mapped-deny.test"]
    paths: ["/*"]
    upstream: backend
    plugins: {{ ip-restriction: {{ deny: ["::ffff:127.0.0.1"] }} }}
  - id: mapped-allow
    hosts: ["mapped-allow.test"]
    paths: ["/*"]
    upstream: backend
    plugins: {{ ip-restriction: {{ allow: ["::ffff:0:0/96"] }} }}
"#,
        backend = backend.address(),
    )
}

/// A gateway that believes the peer; and one that trusts 127.0.0.1 to report clients.
async fn start(trust_loopback: bool) -> (MockUpstream, TestGateway) {
    let backend = MockUpstream::http("backend").await;
    let real_ip = if trust_loopback {
        "real_ip: { trusted_proxies: [\"127.0.0.1\"] }"
    } else {
        ""
    };
    let gw = TestGateway::start(&config(&backend, real_ip));
    (backend, gw)
}

async fn get(gw: &TestGateway, host: &str, forwarded_for: Option<&str>) -> TestResponse {
    get_over(gw, Proto::H1, host, forwarded_for).await
}

async fn get_over(
    gw: &TestGateway,
    proto: Proto,
    host: &str,
    forwarded_for: Option<&str>,
) -> TestResponse {
    let mut req = match proto {
        // HTTP/2 names the host in `:authority`.
        Proto::H2c => Request::get(format!("http://{host}/p")),
        _ => Request::get("/p").header("host", host),
    };
    if let Some(list) = forwarded_for {
        req = req.header("x-forwarded-for", list);
    }
    let req = req.body(Full::new(Bytes::new())).unwrap();
    tokio::time::timeout(SAFETY, send(gw.addr("main"), proto, req))
        .await
        .expect("request did not finish")
        .expect("request failed")
}

fn assert_forwarded(res: &TestResponse) {
    assert_eq!(res.status, 200, "body: {}", res.text());
    assert_eq!(res.json()["uri"], "/p");
}

/// The gateway's own 403: JSON content type and exactly `{"error": "forbidden", "request_id": ...}`.
fn assert_403(res: &TestResponse) {
    assert_eq!(res.status, 403, "body: {}", res.text());
    assert_eq!(res.header("content-type"), Some("application/json"));
    let id = res.header("x-request-id").expect("x-request-id on error");
    assert_eq!(
        res.json(),
        serde_json::json!({"error": "forbidden", "request_id": id})
    );
}

async fn assert_still_serves(gw: &TestGateway) {
    let res = get(gw, "open.test", None).await;
    assert_forwarded(&res);
}

#[tokio::test]
async fn loopback_is_allowed_or_denied_as_listed() {
    let (backend, gw) = start(false).await;
    assert_forwarded(&get(&gw, "local.test", None).await);
    assert_eq!(backend.requests(), 1);
    assert_403(&get(&gw, "no-local.test", None).await);
    assert_403(&get(&gw, "partners.test", None).await);
    assert_forwarded(&get(&gw, "blocklist.test", None).await);
    assert_eq!(backend.requests(), 2, "refused requests were not forwarded");
    assert_still_serves(&gw).await;
    let text = gw.metrics.render();
    for route in ["no-local", "partners"] {
        let line = format!(
            "floodgate_plugin_rejections_total{{route=\"{route}\",plugin=\"ip-restriction\",reason=\"ip_denied\"}} 1"
        );
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
}

#[tokio::test]
async fn clients_behind_a_trusted_proxy_are_judged_by_their_own_address() {
    let (backend, gw) = start(true).await;
    assert_forwarded(&get(&gw, "partners.test", Some("198.51.100.7")).await);
    assert_403(&get(&gw, "partners.test", Some("203.0.113.9")).await);
    assert_403(&get(&gw, "partners.test", Some("198.51.100.66")).await);
    assert_403(&get(&gw, "blocklist.test", Some("203.0.113.9")).await);
    assert_forwarded(&get(&gw, "blocklist.test", Some("198.51.100.7")).await);
    // The proxy's own address is not the client's: loopback rules no longer apply to it.
    assert_403(&get(&gw, "local.test", Some("198.51.100.7")).await);
    assert_forwarded(&get(&gw, "no-local.test", Some("198.51.100.7")).await);
    assert_eq!(backend.requests(), 3);
    assert_still_serves(&gw).await;
}

#[tokio::test]
async fn a_forwarded_for_claim_without_a_trusted_proxy_changes_nothing() {
    let (backend, gw) = start(false).await;
    assert_403(&get(&gw, "partners.test", Some("198.51.100.7")).await);
    assert_403(&get(&gw, "no-local.test", Some("198.51.100.7")).await);
    assert_eq!(backend.requests(), 0);
    assert_still_serves(&gw).await;
}

#[tokio::test]
async fn an_address_a_client_prepends_behind_a_trusted_proxy_is_never_reached() {
    let (backend, gw) = start(true).await;
    // The client wrote 198.51.100.7; the proxy appended the 203.0.113.9 it saw.
    assert_403(&get(&gw, "partners.test", Some("198.51.100.7, 203.0.113.9")).await);
    assert_eq!(backend.requests(), 0);
    assert_still_serves(&gw).await;
}

#[tokio::test]
async fn ipv4_mapped_entries_match_an_ipv4_client_over_http1_and_h2c() {
    let (backend, gw) = start(false).await;
    for proto in [Proto::H1, Proto::H2c] {
        let denied = get_over(&gw, proto.clone(), "mapped-deny.test", None).await;
        assert_403(&denied);
        let allowed = get_over(&gw, proto.clone(), "mapped-allow.test", None).await;
        assert_forwarded(&allowed);
        assert_eq!(allowed.json()["headers"]["x-forwarded-for"], "127.0.0.1");
        let open = get_over(&gw, proto, "open.test", None).await;
        assert_forwarded(&open);
    }
    assert_eq!(
        backend.requests(),
        4,
        "the denied requests were not forwarded"
    );
}
