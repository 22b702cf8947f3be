//! `rate-limit` and `limit-conn` through the gateway: counts exact across two workers (bounded by what
//! the configuration allows in the time the requests took, never by how long that was), the 429's
//! fields and body, the limiter's state kept across an unrelated reload and reset by a change of its
//! own configuration, and concurrency slots held by slow requests and given back when they end. Each
//! refusal is followed by a request the gateway serves.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use floodgate_testkit::{eventually, send, MockUpstream, Proto, TestResponse};
use http::Request;
use http_body_util::Full;

fn config(backend: &MockUpstream, routes: &str) -> String {
    format!(
        r#"workers: 2
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
upstreams:
  - id: backend
    targets: [{{ address: "{backend}" }}]
routes:
  - {{ id: open, paths: ["/open/*"], upstream: backend }}
{routes}
"#,
        backend = backend.address()
    )
}

async fn get(addr: SocketAddr, path: &str) -> TestResponse {
    let req = Request::get(path).body(Full::new(Bytes::new())).unwrap();
    send(addr, Proto::H1, req).await.expect("response")
}

/// Sends `total` requests to `path` from `connections` clients at once, each request on a connection
/// of its own; returns how many were served (200) and how long it all took. Any other status fails.
async fn flood(
    addr: SocketAddr,
    path: &'static str,
    total: usize,
    connections: usize,
) -> (u64, f64) {
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..connections {
        let share = total / connections + usize::from(c < total % connections);
        clients.spawn(async move {
            let mut served = 0u64;
            for _ in 0..share {
                let response = get(addr, path).await;
                match response.status.as_u16() {
                    200 => served += 1,
                    429 => {}
                    other => panic!("unexpected status {other}"),
                }
            }
            served
        });
    }
    let mut served = 0;
    while let Some(result) = clients.join_next().await {
        served += result.expect("client task");
    }
    (served, started.elapsed().as_secs_f64())
}

#[tokio::test]
async fn a_token_bucket_admits_its_rate_and_burst_across_two_workers() {
    let backend = MockUpstream::http("b").await;
    let routes = r#"  - id: api
    paths: ["/api/*"]
    upstream: backend
    plugins: { rate-limit: { rate: 100, burst: 10 } }"#;
    let gw = floodgate_testkit::TestGateway::start(&config(&backend, routes));
    let addr = gw.addr("main");

    let (served, elapsed) = flood(addr, "/api/x", 1000, 50).await;
    // Every admission happened within `elapsed`: at most the bucket plus what refilled meanwhile.
    let most = (100.0 * elapsed).floor() as u64 + 10;
    assert!(
        served <= most,
        "{served} served in {elapsed:.3}s, at most {most}"
    );
    // A refusal means the bucket had been emptied: at least `burst` were served.
    assert!(served < 1000, "nothing refused in {elapsed:.3}s");
    assert!(served >= 10, "{served} served");
    assert_eq!(backend.requests() as u64, served);
    assert_eq!(get(addr, "/open/x").await.status, 200);
}

#[tokio::test]
async fn a_sliding_window_admits_its_limit_across_two_workers() {
    let backend = MockUpstream::http("b").await;
    let routes = r#"  - id: api
    paths: ["/api/*"]
    upstream: backend
    plugins: { rate-limit: { algorithm: sliding_window, limit: 100, window: 1s } }"#;
    let gw = floodgate_testkit::TestGateway::start(&config(&backend, routes));
    let addr = gw.addr("main");

    let (served, elapsed) = flood(addr, "/api/x", 1000, 50).await;
    // Each fixed window admits at most `limit`, and the run touched at most ceil(elapsed) + 1 of them.
    let most = 100 * (elapsed.ceil() as u64 + 1);
    assert!(
        served <= most,
        "{served} served in {elapsed:.3}s, at most {most}"
    );
    // A refusal means the weighted count had reached the limit, all of it admitted in this run.
    assert!(served < 1000, "nothing refused in {elapsed:.3}s");
    assert!(served >= 99, "{served} served");
    assert_eq!(backend.requests() as u64, served);
}

#[tokio::test]
async fn a_429_names_when_to_retry_and_the_next_period_is_served() {
    let backend = MockUpstream::http("b").await;
    let routes = r#"  - id: api
    paths: ["/api/*"]
    upstream: backend
    plugins: { rate-limit: { rate: 1, period: 2s, burst: 1 } }"#;
    let gw = floodgate_testkit::TestGateway::start(&config(&backend, routes));
    let addr = gw.addr("main");

    let first = get(addr, "/api/x").await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first.header("ratelimit-policy"),
        Some("\"default\";q=1;w=2")
    );
    assert_eq!(first.header("ratelimit"), Some("\"default\";r=0;t=2"));

    // The token comes back 2 s after the first request: the wait is rounded up to whole seconds,
    // 2 unless this request came more than a second later.
    let refused = get(addr, "/api/x").await;
    assert_eq!(refused.status, 429);
    let retry: u64 = refused
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=2).contains(&retry), "Retry-After: {retry}");
    assert_eq!(
        refused.header("ratelimit-policy"),
        Some("\"default\";q=1;w=2")
    );
    assert_eq!(
        refused.header("ratelimit"),
        Some(format!("\"default\";r=0;t={retry}").as_str())
    );
    assert_eq!(refused.header("content-type"), Some("application/json"));
    let body = refused.json();
    assert_eq!(body["error"], "rate limit exceeded");
    assert_eq!(body["request_id"].as_str(), refused.header("x-request-id"));
    assert_eq!(
        backend.requests(),
        1,
        "the refused request was not forwarded"
    );
    assert_eq!(
        get(addr, "/open/x").await.status,
        200,
        "other routes are served"
    );
    let metrics = gw.metrics.render();
    for line in [
        r#"floodgate_plugin_rejections_total{route="api",plugin="rate-limit",reason="rate_limited"} 1"#,
        "floodgate_rate_limit_keys 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }

    // After the time Retry-After names, the bucket has a token again.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    let again = get(addr, "/api/x").await;
    assert_eq!(again.status, 200);
    assert_eq!(again.header("ratelimit"), Some("\"default\";r=0;t=2"));
}

#[tokio::test]
async fn the_count_survives_an_unrelated_reload_and_restarts_when_its_config_changes() {
    let backend = MockUpstream::http("b").await;
    let limited = |burst: u32| {
        format!(
            r#"  - id: api
    paths: ["/api/*"]
    upstream: backend
    plugins: {{ rate-limit: {{ rate: 1, period: 1h, burst: {burst} }} }}"#
        )
    };
    let mut gw = floodgate_testkit::TestGateway::start(&config(&backend, &limited(3)));
    let addr = gw.addr("main");
    for _ in 0..3 {
        assert_eq!(get(addr, "/api/x").await.status, 200);
    }
    assert_eq!(get(addr, "/api/x").await.status, 429);

    // Another route is added: the limiter keeps its count.
    let extra = "\n  - { id: extra, paths: [\"/extra/*\"], upstream: backend }";
    gw.reload(&config(&backend, &(limited(3) + extra)))
        .expect("reload");
    assert_eq!(
        get(addr, "/extra/x").await.status,
        200,
        "the reload applied"
    );
    assert_eq!(get(addr, "/api/x").await.status, 429, "the count was kept");

    // The limiter's own configuration changes: a fresh count.
    gw.reload(&config(&backend, &(limited(4) + extra)))
        .expect("reload");
    for _ in 0..4 {
        assert_eq!(get(addr, "/api/x").await.status, 200);
    }
    assert_eq!(get(addr, "/api/x").await.status, 429);
}

#[tokio::test]
async fn limit_conn_refuses_past_max_while_slow_requests_hold_their_slots() {
    let backend = MockUpstream::http("b").await;
    let routes = r#"  - id: default-status
    paths: ["/slow/*"]
    upstream: backend
    plugins: { limit-conn: { max: 2 } }
  - id: too-many
    paths: ["/status/*"]
    upstream: backend
    plugins: { limit-conn: { max: 1, status: 429 } }"#;
    let gw = floodgate_testkit::TestGateway::start(&config(&backend, routes));
    let addr = gw.addr("main");

    let slow: Vec<_> = (0..2)
        .map(|_| tokio::spawn(async move { get(addr, "/slow/1500").await.status }))
        .collect();
    eventually("both slow requests at the upstream", || {
        backend.requests() == 2
    })
    .await;
    let refused = get(addr, "/slow/1").await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.header("content-type"), Some("application/json"));
    assert_eq!(refused.json()["error"], "too many concurrent requests");
    assert_eq!(
        backend.requests(),
        2,
        "the refused request was not forwarded"
    );
    let rejected = r#"floodgate_plugin_rejections_total{route="default-status",plugin="limit-conn",reason="too_many_connections"} 1"#;
    assert!(gw.metrics.render().lines().any(|l| l == rejected));
    // The other route counts its own requests.
    assert_eq!(get(addr, "/status/204").await.status, 204);

    for request in slow {
        assert_eq!(request.await.expect("slow request"), 200);
    }
    // Both slow responses have ended: their slots are free.
    assert_eq!(get(addr, "/slow/1").await.status, 200);
    assert_eq!(get(addr, "/slow/1").await.status, 200);
}

#[tokio::test]
async fn limit_conn_may_answer_429() {
    let backend = MockUpstream::http("b").await;
    let routes = r#"  - id: slow
    paths: ["/slow/*"]
    upstream: backend
    plugins: { limit-conn: { max: 1, status: 429 } }"#;
    let gw = floodgate_testkit::TestGateway::start(&config(&backend, routes));
    let addr = gw.addr("main");

    let held = tokio::spawn(async move { get(addr, "/slow/1500").await.status });
    eventually("the slow request at the upstream", || {
        backend.requests() == 1
    })
    .await;
    let refused = get(addr, "/slow/1").await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.json()["error"], "too many concurrent requests");
    assert_eq!(held.await.expect("slow request"), 200);
    assert_eq!(get(addr, "/slow/1").await.status, 200);
}

#[tokio::test]
async fn a_consumer_keyed_limit_counts_each_consumer_and_one_may_carry_its_own() {
    let backend = MockUpstream::http("b").await;
    let routes = r#"  - id: api
    paths: ["/api/*"]
    upstream: backend
    plugins:
      key-auth: {}
      rate-limit: { rate: 1, period: 1h, burst: 1, key: consumer }
consumers:
  - id: basic
    credentials: { key-auth: { key: "basic-key-123" } }
  - id: gold
    credentials: { key-auth: { key: "gold-key-1234" } }
    plugins:
      rate-limit: { rate: 1, period: 1h, burst: 3, key: consumer }"#;
    let gw = floodgate_testkit::TestGateway::start(&config(&backend, routes));
    let addr = gw.addr("main");
    let with_key = |key: &'static str| async move {
        let req = Request::get("/api/x")
            .header("apikey", key)
            .body(Full::new(Bytes::new()))
            .unwrap();
        send(addr, Proto::H1, req).await.expect("response")
    };

    assert_eq!(with_key("basic-key-123").await.status, 200);
    let refused = with_key("basic-key-123").await;
    assert_eq!(refused.status, 429);
    assert_eq!(
        refused.header("ratelimit-policy"),
        Some("\"default\";q=1;w=3600")
    );
    // The consumer's own limit: three, counted apart from everyone else's.
    for _ in 0..3 {
        let served = with_key("gold-key-1234").await;
        assert_eq!(served.status, 200);
        assert_eq!(
            served.header("ratelimit-policy"),
            Some("\"default\";q=1;w=3600")
        );
    }
    assert_eq!(with_key("gold-key-1234").await.status, 429);
    assert_eq!(get(addr, "/open/x").await.status, 200);
}
