//! `fault-injection` over real sockets: its shares hold within two points over 10,000 requests, an
//! abort is answered with its status and body, a delay holds the request, and only requests with the
//! matching fields are touched.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use floodgate_testkit::{send, MockUpstream, OneRoute, Proto, TestGateway, TestResponse};
use http::Request;
use http_body_util::Full;
use tokio::task::JoinSet;

fn get(headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut req = Request::get("/x");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.body(Full::new(Bytes::new())).unwrap()
}

async fn fetch(addr: SocketAddr, headers: &[(&str, &str)]) -> TestResponse {
    send(addr, Proto::H1, get(headers)).await.unwrap()
}

fn metric(gw: &TestGateway, line_prefix: &str) -> f64 {
    gw.metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(line_prefix)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn the_shares_hold_within_two_points_over_ten_thousand_requests() {
    let upstream = MockUpstream::http("u").await;
    let gw = OneRoute::to(upstream.address())
        .route(r#"plugins: { fault-injection: { abort: { status: 503, percentage: 30 }, delay: { duration: 1ms, percentage: 20 } } }"#)
        .start();
    let addr = gw.addr("main");
    let mut clients = JoinSet::new();
    for _ in 0..8 {
        clients.spawn(async move {
            let mut aborted = 0;
            for _ in 0..1250 {
                let res = fetch(addr, &[]).await;
                match res.status.as_u16() {
                    503 => {
                        assert_eq!(res.json()["error"], "fault injected");
                        aborted += 1;
                    }
                    200 => {}
                    other => panic!("status {other}"),
                }
            }
            aborted
        });
    }
    let mut aborted = 0;
    while let Some(n) = clients.join_next().await {
        aborted += n.unwrap();
    }
    assert!(
        (2_800..=3_200).contains(&aborted),
        "{aborted} of 10000 aborted"
    );
    let delayed = metric(&gw, "floodgate_fault_injection_delays_total");
    assert!(
        (1_800.0..=2_200.0).contains(&delayed),
        "{delayed} of 10000 delayed"
    );
    assert_eq!(upstream.requests(), 10_000 - aborted);
    assert_eq!(
        metric(&gw, "floodgate_plugin_rejections_total{route=\"all\",plugin=\"fault-injection\",reason=\"fault_abort\"}") as usize,
        aborted
    );
}

#[tokio::test]
async fn only_matching_requests_are_aborted_or_held() {
    let upstream = MockUpstream::http("u").await;
    let gw = OneRoute::to(upstream.address())
        .route(r#"plugins: { fault-injection: { abort: { status: 418, body: "chaos", percentage: 100 }, delay: { duration: 300ms, percentage: 100 }, match_headers: { x-chaos: "on" } } }"#)
        .start();
    let addr = gw.addr("main");
    assert_eq!(fetch(addr, &[]).await.status, 200);
    assert_eq!(fetch(addr, &[("x-chaos", "off")]).await.status, 200);
    let started = Instant::now();
    let res = fetch(addr, &[("x-chaos", "on")]).await;
    assert_eq!(res.status.as_u16(), 418);
    assert_eq!(res.text(), "chaos");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(upstream.requests(), 2);
    assert_eq!(fetch(addr, &[]).await.status, 200);
}

#[tokio::test]
async fn bad_settings_are_refused_with_their_field_paths() {
    let err = TestGateway::try_start(
        &OneRoute::to("127.0.0.1:1")
            .route(r#"plugins: { fault-injection: { abort: { status: 700, percentage: 50 } } }"#)
            .yaml(),
    )
    .err()
    .expect("refused");
    assert!(
        err.contains(
            "routes[0].plugins.fault-injection.abort.status: must be a status code, 200 to 599"
        ),
        "{err}"
    );
}
