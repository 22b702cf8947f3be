//! The circuit breaker against real upstreams: each of Envoy's thresholds answers 503 at once and is
//! counted, the failure-ratio breaker opens, half-opens and closes, and a reload keeps its state.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use floodgate_testkit::{
    eventually, free_port, send, FnUpstream, MockUpstream, Proto, TestGateway, TestResponse,
};
use http::Request;
use http_body_util::Full;

fn config(target: &str, breaker: &str, route: &str) -> String {
    format!(
        "workers: 1\nlisteners: [{{ name: main, address: \"127.0.0.1:0\" }}]\n\
         admin: {{ address: \"127.0.0.1:0\" }}\n\
         upstreams:\n  - id: pool\n    targets: [{{ address: \"{target}\" }}]\n    circuit_breaker: {breaker}\n\
         routes:\n  - {{ id: r, paths: [\"/*\"], upstream: pool{route} }}\n"
    )
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path).body(Full::new(Bytes::new())).unwrap()
}

async fn fetch(addr: SocketAddr, path: &str) -> TestResponse {
    send(addr, Proto::H1, get(path)).await.unwrap()
}

fn metric(gw: &TestGateway, line_prefix: &str) -> Option<f64> {
    gw.metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(line_prefix)?.trim().parse().ok())
}

/// A target answering every request with the status it is set to, counting requests.
async fn switchable() -> (FnUpstream, Arc<AtomicU16>, Arc<AtomicUsize>) {
    let status = Arc::new(AtomicU16::new(200));
    let count = Arc::new(AtomicUsize::new(0));
    let (s, c) = (status.clone(), count.clone());
    let target = FnUpstream::start(move |_req| {
        c.fetch_add(1, Ordering::SeqCst);
        let mut res = http::Response::new(Full::new(Bytes::new()));
        *res.status_mut() = http::StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap();
        std::future::ready(res)
    })
    .await;
    (target, status, count)
}

#[tokio::test]
async fn past_max_requests_the_answer_is_503_naming_the_limit() {
    let slow = MockUpstream::http("slow").await;
    let gw = TestGateway::start(&config(&slow.address(), "{ max_requests: 2 }", ""));
    let addr = gw.addr("main");
    let answers = futures_util::future::join_all((0..5).map(|_| fetch(addr, "/slow/500"))).await;
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status.as_u16()).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 200, 503, 503, 503]);
    let refused = answers.iter().find(|r| r.status == 503).unwrap();
    assert_eq!(refused.json()["error"], "circuit breaker: max_requests");
    assert_eq!(
        metric(&gw, "floodgate_upstream_breaker_rejections_total{upstream=\"pool\",reason=\"max_requests\"}"),
        Some(3.0)
    );
    assert_eq!(fetch(addr, "/x").await.status, 200);
}

#[tokio::test]
async fn past_max_connections_a_request_needing_a_new_connection_gets_503() {
    let slow = MockUpstream::http("slow").await;
    let gw = TestGateway::start(&config(&slow.address(), "{ max_connections: 1 }", ""));
    let addr = gw.addr("main");
    let first = tokio::spawn(fetch(addr, "/slow/500"));
    eventually("the first request's connection", || slow.requests() >= 1).await;
    let second = fetch(addr, "/x").await;
    assert_eq!(second.status, 503);
    assert_eq!(second.json()["error"], "circuit breaker: max_connections");
    assert_eq!(first.await.unwrap().status, 200);
    // The one connection is pooled again: the next request reuses it.
    assert_eq!(fetch(addr, "/x").await.status, 200);
}

#[tokio::test]
async fn max_retries_caps_retries_and_says_so() {
    let dead = format!("127.0.0.1:{}", free_port());
    let gw = TestGateway::start(&config(
        &dead,
        "{ max_retries: 0 }",
        ", retries: { attempts: 3, retry_on: [connect_failure] }",
    ));
    let res = fetch(gw.addr("main"), "/x").await;
    assert_eq!(res.status, 502);
    assert_eq!(
        metric(
            &gw,
            "floodgate_upstream_breaker_rejections_total{upstream=\"pool\",reason=\"max_retries\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&gw, "floodgate_upstream_retries_total{upstream=\"pool\"}"),
        Some(0.0)
    );
}

const RATIO: &str = "{ failure_ratio: { threshold: 0.5, minimum_requests: 4, window: 10s, open_time: 500ms, half_open_requests: 2 } }";

#[tokio::test]
async fn the_failure_ratio_breaker_opens_half_opens_and_closes() {
    let (target, status, count) = switchable().await;
    let addr_t = target.addr;
    let gw = TestGateway::start(&config(&addr_t.to_string(), RATIO, ""));
    let addr = gw.addr("main");
    status.store(500, Ordering::SeqCst);
    for _ in 0..4 {
        assert_eq!(fetch(addr, "/x").await.status, 500);
    }
    // Open: answered at once, the target not asked.
    let open = fetch(addr, "/x").await;
    assert_eq!(open.status, 503);
    assert_eq!(open.json()["error"], "circuit breaker: open");
    assert_eq!(count.load(Ordering::SeqCst), 4);
    assert_eq!(
        metric(&gw, "floodgate_upstream_breaker_state{upstream=\"pool\"}"),
        Some(1.0)
    );
    // The target recovers; after open_time two probes pass and the circuit closes.
    status.store(200, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(fetch(addr, "/x").await.status, 200);
    assert_eq!(fetch(addr, "/x").await.status, 200);
    for _ in 0..5 {
        assert_eq!(fetch(addr, "/x").await.status, 200);
    }
    assert_eq!(
        metric(&gw, "floodgate_upstream_breaker_state{upstream=\"pool\"}"),
        Some(0.0)
    );
    for (to, n) in [("open", 1.0), ("half_open", 1.0), ("closed", 1.0)] {
        assert_eq!(
            metric(
                &gw,
                &format!(
                    "floodgate_upstream_breaker_transitions_total{{upstream=\"pool\",to=\"{to}\"}}"
                )
            ),
            Some(n),
            "{to}"
        );
    }
    assert_eq!(
        metric(
            &gw,
            "floodgate_upstream_breaker_rejections_total{upstream=\"pool\",reason=\"open\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_reload_that_keeps_the_breaker_keeps_it_open() {
    let (target, status, count) = switchable().await;
    let addr_t = target.addr;
    let slow_open = RATIO.replace("open_time: 500ms", "open_time: 60s");
    let mut gw = TestGateway::start(&config(&addr_t.to_string(), &slow_open, ""));
    let addr = gw.addr("main");
    status.store(503, Ordering::SeqCst);
    for _ in 0..4 {
        fetch(addr, "/x").await;
    }
    status.store(200, Ordering::SeqCst);
    gw.reload(&config(&addr_t.to_string(), &slow_open, ", timeout: 20s"))
        .unwrap();
    assert_eq!(fetch(addr, "/x").await.status, 503);
    assert_eq!(count.load(Ordering::SeqCst), 4);
    // New breaker settings start a closed breaker.
    gw.reload(&config(&addr_t.to_string(), "{ max_requests: 100 }", ""))
        .unwrap();
    assert_eq!(fetch(addr, "/x").await.status, 200);
}

#[tokio::test]
async fn bad_breaker_settings_are_refused_with_their_field_paths() {
    let err = TestGateway::try_start(&config(
        "127.0.0.1:1",
        "{ max_connections: 0, failure_ratio: { threshold: 2 } }",
        "",
    ))
    .err()
    .expect("refused");
    assert!(
        err.contains("upstreams[0].circuit_breaker.max_connections: must be at least 1"),
        "{err}"
    );
    assert!(
        err.contains(
            "upstreams[0].circuit_breaker.failure_ratio.threshold: must be above 0 and at most 1"
        ),
        "{err}"
    );
}
