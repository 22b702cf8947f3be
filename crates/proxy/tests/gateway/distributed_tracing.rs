//! Distributed tracing against a real OTLP collector (the test kit's, decoding the protobuf): the
//! client's trace continued and handed to the upstream, a span per attempt, the error-aware rule, and
//! a collector that stalls without delaying anyone.

use bytes::Bytes;
use floodgate_testkit::{
    eventually, free_port, json_lines, send, MockUpstream, OtlpReceiver, Proto, ReceivedSpan,
    TestGateway,
};
use http::Request;
use http_body_util::Full;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER: &str = "00f067aa0ba902b7";

fn request(path: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut req = Request::get(path);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.body(Full::new(Bytes::new())).unwrap()
}

/// Routes `api` to a working upstream, `down` to a refused port, `saved` to both with a retry on
/// connect failures; `tracing` is the section's body and `extra` more top-level YAML.
fn config(backend: &MockUpstream, tracing: &str, extra: &str) -> String {
    let refused = free_port();
    format!(
        r#"
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
upstreams:
  - {{ id: backend, targets: [{{ address: "{backend}" }}] }}
  - {{ id: refused, targets: [{{ address: "127.0.0.1:{refused}" }}] }}
  - id: both
    balancer: round_robin
    targets: [{{ address: "127.0.0.1:{refused}" }}, {{ address: "{backend}" }}]
routes:
  - {{ id: api, paths: ["/api/*"], upstream: backend }}
  - {{ id: down, paths: ["/down/*"], upstream: refused }}
  - {{ id: saved, paths: ["/saved/*"], upstream: both, retries: {{ attempts: 2, retry_on: [connect_failure] }} }}
  - {{ id: quiet, paths: ["/quiet/*"], upstream: backend, tracing: false }}
tracing: {tracing}
{extra}
"#,
        backend = backend.address()
    )
}

fn server_spans(spans: &[ReceivedSpan]) -> Vec<&ReceivedSpan> {
    spans.iter().filter(|s| s.kind == 2).collect()
}

fn children<'a>(spans: &'a [ReceivedSpan], parent: &ReceivedSpan) -> Vec<&'a ReceivedSpan> {
    let mut found: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.kind == 3 && s.parent_span_id == parent.span_id)
        .collect();
    found.sort_by_key(|s| s.attributes.get("http.request.resend_count").cloned());
    found
}

#[tokio::test]
async fn the_clients_trace_is_continued_and_the_upstream_gets_the_attempt_as_parent() {
    let collector = OtlpReceiver::grpc().await;
    let backend = MockUpstream::http("one").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let gw = TestGateway::start(&config(
        &backend,
        &format!(
            "{{ endpoint: \"{}\", sample_ratio: 1 }}",
            collector.endpoint()
        ),
        &format!("access_log: {{ path: {:?} }}", log.display().to_string()),
    ));
    let addr = gw.addr("main");

    let parent = format!("00-{TRACE}-{CALLER}-01");
    for proto in [Proto::H1, Proto::H2c] {
        let response = send(
            addr,
            proto,
            request(
                "/api/users?id=7",
                &[("traceparent", &parent), ("tracestate", "vendor=abc")],
            ),
        )
        .await
        .unwrap();
        assert_eq!(response.status, 200);
        // The upstream continues the trace under the attempt's span, with the client's tracestate.
        let seen = &response.json()["headers"];
        let sent = seen["traceparent"].as_str().unwrap();
        assert!(sent.starts_with(&format!("00-{TRACE}-")), "{sent}");
        assert!(sent.ends_with("-01"), "{sent}");
        assert_ne!(
            &sent[36..52],
            CALLER,
            "the upstream's parent is the attempt"
        );
        assert_eq!(seen["tracestate"], "vendor=abc");
    }

    let spans = collector.wait_for_spans(4).await;
    assert_eq!(spans.len(), 4, "{spans:#?}");
    let servers = server_spans(&spans);
    assert_eq!(servers.len(), 2);
    for server in servers {
        assert_eq!(server.service, "floodgate");
        assert_eq!(server.trace_id, TRACE);
        assert_eq!(server.parent_span_id, CALLER);
        assert_eq!(server.name, "GET api");
        assert_eq!(server.attributes["http.request.method"], "GET");
        assert_eq!(server.attributes["http.route"], "api");
        assert_eq!(server.attributes["url.path"], "/api/users");
        assert_eq!(server.attributes["url.query"], "id=7");
        assert_eq!(server.attributes["http.response.status_code"], "200");
        assert_eq!(server.attributes["client.address"], "127.0.0.1");
        assert_eq!(server.status, 0);
        let attempts = children(&spans, server);
        assert_eq!(attempts.len(), 1, "{spans:#?}");
        assert_eq!(attempts[0].trace_id, TRACE);
        assert_eq!(
            format!(
                "{}:{}",
                attempts[0].attributes["server.address"], attempts[0].attributes["server.port"]
            ),
            backend.address()
        );
        assert_eq!(attempts[0].attributes["http.request.resend_count"], "0");
        assert_eq!(attempts[0].attributes["http.response.status_code"], "200");
        assert!(attempts[0].times.0 >= server.times.0 && attempts[0].times.1 <= server.times.1);
    }
    let versions: Vec<&str> = server_spans(&spans)
        .iter()
        .map(|s| s.attributes["network.protocol.version"].as_str())
        .collect();
    assert!(
        versions.contains(&"1.1") && versions.contains(&"2"),
        "{versions:?}"
    );

    // The access log names the trace.
    eventually("two access log lines", || json_lines(&log).len() == 2).await;
    for line in json_lines(&log) {
        assert_eq!(line["trace_id"], TRACE);
    }
}

/// The server spans whose request took two attempts, the second one answered.
fn saved_requests(spans: &[ReceivedSpan]) -> usize {
    server_spans(spans)
        .iter()
        .filter(|s| {
            let attempts = children(spans, s);
            attempts.len() == 2
                && attempts[1]
                    .attributes
                    .get("http.response.status_code")
                    .is_some_and(|c| c == "200")
        })
        .count()
}

#[tokio::test]
async fn each_retry_is_an_attempt_span_of_its_own() {
    let collector = OtlpReceiver::grpc().await;
    let backend = MockUpstream::http("one").await;
    let gw = TestGateway::start(&config(
        &backend,
        &format!(
            "{{ endpoint: \"{}\", sample_ratio: 0 }}",
            collector.endpoint()
        ),
        "",
    ));
    let addr = gw.addr("main");
    // Round robin starts some requests at the refused target; the retry then reaches the other.
    // At ratio 0 only those are kept: a failed attempt is an upstream error.
    let mut saved = 0;
    for _ in 0..20 {
        let response = send(addr, Proto::H1, request("/saved/x", &[]))
            .await
            .unwrap();
        assert_eq!(response.status, 200);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        saved = saved_requests(&collector.spans().await);
        if saved > 0 {
            break;
        }
    }
    assert!(
        saved > 0,
        "no request was retried: {:#?}",
        collector.spans().await
    );
    let spans = collector.spans().await;
    for server in server_spans(&spans) {
        let attempts = children(&spans, server);
        assert_eq!(
            attempts.len(),
            2,
            "only retried requests are kept: {spans:#?}"
        );
        assert_eq!(attempts[0].attributes["error.type"], "connect");
        assert_eq!(attempts[0].attributes["http.request.resend_count"], "0");
        assert_eq!(attempts[0].status, 2);
        assert_eq!(attempts[1].attributes["http.request.resend_count"], "1");
        assert_eq!(attempts[1].attributes["http.response.status_code"], "200");
        assert_eq!(
            format!(
                "{}:{}",
                attempts[1].attributes["server.address"], attempts[1].attributes["server.port"]
            ),
            backend.address()
        );
        assert_eq!(server.attributes["http.response.status_code"], "200");
        assert_eq!(server.status, 0);
    }
}

#[tokio::test]
async fn every_5xx_is_kept_at_a_one_percent_ratio() {
    let collector = OtlpReceiver::http().await;
    let backend = MockUpstream::http("one").await;
    let gw = TestGateway::start(&config(
        &backend,
        &format!(
            "{{ endpoint: \"{}\", protocol: http, sample_ratio: 0.01 }}",
            collector.endpoint()
        ),
        "",
    ));
    let addr = gw.addr("main");
    for _ in 0..100 {
        let failed = send(addr, Proto::H1, request("/down/x", &[]))
            .await
            .unwrap();
        assert_eq!(failed.status, 502);
        let ok = send(addr, Proto::H1, request("/api/x", &[])).await.unwrap();
        assert_eq!(ok.status, 200);
    }
    let spans = collector.wait_for_spans(200).await;
    let servers = server_spans(&spans);
    let failed: Vec<_> = servers
        .iter()
        .filter(|s| s.attributes["http.route"] == "down")
        .collect();
    assert_eq!(failed.len(), 100, "every 502 is kept");
    for server in &failed {
        assert_eq!(server.status, 2);
        assert_eq!(server.attributes["http.response.status_code"], "502");
        let attempts = children(&spans, server);
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].attributes["error.type"], "connect");
    }
    let ok = servers.len() - failed.len();
    assert!(ok < 100, "the ratio kept all {ok} successes");
}

#[tokio::test]
async fn a_stalled_collector_delays_no_request_and_its_spans_are_counted_as_dropped() {
    let collector = OtlpReceiver::stalled_grpc().await;
    let backend = MockUpstream::http("one").await;
    let gw = TestGateway::start(&config(
        &backend,
        &format!(
            "{{ endpoint: \"{}\", sample_ratio: 1, queue_spans: 16, export_timeout: 30s }}",
            collector.endpoint()
        ),
        "",
    ));
    let addr = gw.addr("main");
    // Far more spans than the queue holds, while the exporter waits on the collector.
    for _ in 0..200 {
        let response = send(addr, Proto::H1, request("/api/x", &[])).await.unwrap();
        assert_eq!(response.status, 200);
    }
    let dropped = r#"floodgate_tracing_spans_total{result="dropped"} "#;
    eventually("spans counted as dropped", || {
        gw.metrics
            .render()
            .lines()
            .find_map(|l| l.strip_prefix(dropped)?.parse::<u64>().ok())
            .is_some_and(|n| n >= 200)
    })
    .await;
    assert_eq!(collector.exports().await, 0);
}

#[tokio::test]
async fn a_malformed_traceparent_starts_a_new_trace_and_b3_is_read_when_accepted() {
    let collector = OtlpReceiver::grpc().await;
    let backend = MockUpstream::http("one").await;
    let gw = TestGateway::start(&config(
        &backend,
        &format!(
            "{{ endpoint: \"{}\", sample_ratio: 1, accept: [b3] }}",
            collector.endpoint()
        ),
        "",
    ));
    let addr = gw.addr("main");
    let bad = format!("00-{}-{CALLER}-01", TRACE.to_uppercase());
    let response = send(
        addr,
        Proto::H1,
        request(
            "/api/a",
            &[("traceparent", &bad), ("tracestate", "vendor=forged")],
        ),
    )
    .await
    .unwrap();
    // One traceparent, the gateway's; the tracestate of a trace not continued stays behind.
    let seen = &response.json()["headers"];
    let sent = seen["traceparent"].as_str().unwrap().to_owned();
    assert_eq!(sent.len(), 55, "{seen}");
    assert!(seen["tracestate"].is_null(), "{seen}");
    assert!(
        !sent.contains(&TRACE.to_uppercase()) && !sent.contains(TRACE),
        "{sent}"
    );
    let b3 = [
        ("x-b3-traceid", TRACE),
        ("x-b3-spanid", CALLER),
        ("x-b3-sampled", "1"),
    ];
    let response = send(addr, Proto::H1, request("/api/b", &b3)).await.unwrap();
    let continued = response.json()["headers"]["traceparent"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        continued.starts_with(&format!("00-{TRACE}-")),
        "{continued}"
    );

    let spans = collector.wait_for_spans(4).await;
    let servers = server_spans(&spans);
    let fresh = servers
        .iter()
        .find(|s| s.attributes["url.path"] == "/api/a")
        .unwrap();
    assert_eq!(fresh.parent_span_id, "", "a new trace has no parent");
    assert_eq!(fresh.trace_id, &sent[3..35]);
    let joined = servers
        .iter()
        .find(|s| s.attributes["url.path"] == "/api/b")
        .unwrap();
    assert_eq!(joined.parent_span_id, CALLER);
}

#[tokio::test]
async fn without_tracing_the_clients_traceparent_passes_untouched() {
    let backend = MockUpstream::http("one").await;
    let yaml = config(&backend, "{ endpoint: \"http://127.0.0.1:9\" }", "")
        .replace("tracing: { endpoint: \"http://127.0.0.1:9\" }", "");
    let gw = TestGateway::start(&yaml);
    let parent = format!("00-{TRACE}-{CALLER}-01");
    let response = send(
        gw.addr("main"),
        Proto::H1,
        request("/api/x", &[("traceparent", &parent)]),
    )
    .await
    .unwrap();
    assert_eq!(response.json()["headers"]["traceparent"], parent.as_str());
}

#[tokio::test]
async fn a_route_left_out_of_tracing_has_no_spans_and_passes_the_clients_context_on() {
    let collector = OtlpReceiver::grpc().await;
    let backend = MockUpstream::http("one").await;
    let gw = TestGateway::start(&config(
        &backend,
        &format!(
            "{{ endpoint: \"{}\", sample_ratio: 1 }}",
            collector.endpoint()
        ),
        "",
    ));
    let addr = gw.addr("main");
    let parent = format!("00-{TRACE}-{CALLER}-01");
    let quiet = send(
        addr,
        Proto::H1,
        request("/quiet/x", &[("traceparent", &parent)]),
    )
    .await
    .unwrap();
    assert_eq!(quiet.json()["headers"]["traceparent"], parent.as_str());
    let traced = send(
        addr,
        Proto::H1,
        request("/api/x", &[("traceparent", &parent)]),
    )
    .await
    .unwrap();
    assert_ne!(traced.json()["headers"]["traceparent"], parent.as_str());
    // The traced request's spans arrive; the quiet one's never do (it ended first).
    let spans = collector.wait_for_spans(2).await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
    assert!(spans
        .iter()
        .all(|s| s.attributes.get("http.route").is_none_or(|r| r == "api")));
    assert_eq!(server_spans(&spans)[0].attributes["url.path"], "/api/x");
}
