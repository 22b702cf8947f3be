//! Passive health checks and retries against real upstreams that the tests start, break and kill:
//! ejection and return, the panic threshold, state kept across a reload, retries to another target,
//! what is never retried, and the retry budget.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use floodgate_testkit::config::{head, target_list};
use floodgate_testkit::{
    free_port, send, FnUpstream, MockUpstream, Proto, TestGateway, TestResponse,
};
use http::Request;
use http_body_util::Full;

/// One worker, one upstream `pool` with `targets` and `upstream` extra lines (indented four spaces),
/// and one route `r` on `/*` with `route` extra fields.
fn config(targets: &[String], upstream: &str, route: &str) -> String {
    let targets = target_list(targets);
    head(1)
        + &format!(
            "upstreams:\n  - id: pool\n    targets: [{}]\n{upstream}\n\
         routes:\n  - {{ id: r, paths: [\"/*\"], upstream: pool{route} }}\n",
            targets
        )
}

/// A target that answers every request with `status` (and `x-upstream: bad`), counting them; it
/// serves until the test ends.
async fn answering(status: u16) -> (FnUpstream, Arc<AtomicUsize>) {
    answering_with(move |_| (status, None)).await
}

/// A target whose `n`-th request (from 0) gets `answer(n)`: a status and a `Retry-After`.
async fn answering_with(
    answer: impl Fn(usize) -> (u16, Option<&'static str>) + Send + Sync + 'static,
) -> (FnUpstream, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let answer = Arc::new(answer);
    let target = FnUpstream::start(move |_req| {
        let (status, retry_after) = answer(seen.fetch_add(1, Ordering::SeqCst));
        let body = if status == 200 { "ok" } else { "" };
        let mut res = http::Response::new(Full::new(Bytes::from(body)));
        *res.status_mut() = http::StatusCode::from_u16(status).unwrap();
        res.headers_mut()
            .insert("x-upstream", http::HeaderValue::from_static("bad"));
        if let Some(wait) = retry_after {
            res.headers_mut()
                .insert("retry-after", http::HeaderValue::from_static(wait));
        }
        std::future::ready(res)
    })
    .await;
    (target, count)
}

/// An address where nothing listens.
fn dead_address() -> String {
    format!("127.0.0.1:{}", free_port())
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path).body(Full::new(Bytes::new())).unwrap()
}

async fn fetch(addr: SocketAddr, req: Request<Full<Bytes>>) -> TestResponse {
    send(addr, Proto::H1, req).await.unwrap()
}

/// Status and answering upstream of `n` GETs.
async fn tally(addr: SocketAddr, n: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let res = fetch(addr, get("/x")).await;
        let who = format!(
            "{} {}",
            res.status.as_u16(),
            res.header("x-upstream").unwrap_or("-")
        );
        *counts.entry(who).or_insert(0) += 1;
    }
    counts
}

fn metric(gw: &TestGateway, line_prefix: &str) -> Option<f64> {
    gw.metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(line_prefix)?.trim().parse().ok())
}

const PASSIVE: &str = "    health_checks:\n      panic_threshold: 0\n      passive: { consecutive_5xx: 3, base_ejection_time: 2s, max_ejected_percent: 50 }";

#[tokio::test]
async fn a_target_answering_500s_is_ejected_and_comes_back_after_its_ejection() {
    let good = MockUpstream::http("good").await;
    let (bad, bad_count) = answering(500).await;
    let gw = TestGateway::start(&config(&[good.address(), bad.address()], PASSIVE, ""));
    let addr = gw.addr("main");
    // Round robin: every other request reaches the bad target until its third 500 in a row.
    let first = tally(addr, 20).await;
    assert_eq!(first.get("500 bad"), Some(&3), "{first:?}");
    assert_eq!(first.get("200 good"), Some(&17), "{first:?}");
    assert_eq!(bad_count.load(Ordering::SeqCst), 3);
    let healthy = format!(
        "floodgate_upstream_target_healthy{{upstream=\"pool\",target=\"{}\"}}",
        bad.address()
    );
    assert_eq!(metric(&gw, &healthy), Some(0.0));
    let ejections = format!(
        "floodgate_upstream_ejections_total{{upstream=\"pool\",target=\"{}\",reason=\"consecutive_5xx\"}}",
        bad.address()
    );
    assert_eq!(metric(&gw, &ejections), Some(1.0));
    // After the ejection the target is tried again (and, still failing, ejected again).
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let later = tally(addr, 10).await;
    assert!(later.get("500 bad").is_some_and(|n| *n >= 1), "{later:?}");
    assert!(bad_count.load(Ordering::SeqCst) > 3);
    // The gateway still serves.
    assert_eq!(fetch(addr, get("/x")).await.status, 200);
}

#[tokio::test]
async fn below_the_panic_threshold_traffic_spreads_over_every_target() {
    let good = MockUpstream::http("good").await;
    let mut bad = Vec::new();
    for _ in 0..3 {
        bad.push(answering(500).await);
    }
    let mut targets = vec![good.address()];
    targets.extend(bad.iter().map(|(u, _)| u.address()));
    let passive = "    health_checks:\n      panic_threshold: 50\n      passive: { consecutive_5xx: 1, base_ejection_time: 60s, max_ejected_percent: 100 }";
    let gw = TestGateway::start(&config(&targets, passive, ""));
    let addr = gw.addr("main");
    // The three failing targets are ejected one by one; at two of four out, the rest is below 50%.
    tally(addr, 12).await;
    let before: Vec<usize> = bad.iter().map(|(_, c)| c.load(Ordering::SeqCst)).collect();
    let spread = tally(addr, 40).await;
    let after: Vec<usize> = bad.iter().map(|(_, c)| c.load(Ordering::SeqCst)).collect();
    // In panic every target gets its round-robin share: 10 of 40 each.
    assert_eq!(spread.get("200 good"), Some(&10), "{spread:?}");
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(a - b, 10, "{before:?} -> {after:?}");
    }
}

#[tokio::test]
async fn a_reload_that_keeps_a_target_keeps_its_ejection() {
    let good = MockUpstream::http("good").await;
    let (bad, bad_count) = answering(503).await;
    let passive = "    health_checks:\n      panic_threshold: 0\n      passive: { consecutive_5xx: 2, base_ejection_time: 60s, max_ejected_percent: 50 }";
    let targets = [good.address(), bad.address()];
    let mut gw = TestGateway::start(&config(&targets, passive, ""));
    let addr = gw.addr("main");
    tally(addr, 6).await;
    assert_eq!(bad_count.load(Ordering::SeqCst), 2);
    // An unrelated change (the route's timeout) rebuilds the snapshot; the ejection stays.
    gw.reload(&config(&targets, passive, ", timeout: 30s"))
        .unwrap();
    let after = tally(addr, 10).await;
    assert_eq!(after.get("200 good"), Some(&10), "{after:?}");
    assert_eq!(bad_count.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_killed_target_costs_no_client_error_with_retry_on_connect_failure() {
    let a = MockUpstream::http("a").await;
    let b = MockUpstream::http("b").await;
    let dead = dead_address();
    let route = ", retries: { attempts: 3, retry_on: [connect_failure] }";
    let gw = TestGateway::start(&config(&[a.address(), b.address(), dead], "", route));
    let addr = gw.addr("main");
    let counts = tally(addr, 300).await;
    let served: usize = counts
        .iter()
        .filter(|(k, _)| k.starts_with("200 "))
        .map(|(_, v)| *v)
        .sum();
    assert_eq!(served, 300, "{counts:?}");
    // Some requests met the dead target first and were retried (round robin moves on with each
    // retry's pick too, so how many is not a fixed share).
    let retries = metric(&gw, "floodgate_upstream_retries_total{upstream=\"pool\"}").unwrap_or(0.0);
    assert!(retries >= 1.0, "{retries}");
    let attempts = a.requests() + b.requests();
    assert_eq!(attempts, 300);
}

#[tokio::test]
async fn without_retries_a_dead_target_is_a_502_and_the_next_request_is_served() {
    let a = MockUpstream::http("a").await;
    let gw = TestGateway::start(&config(&[dead_address(), a.address()], "", ""));
    let addr = gw.addr("main");
    let first = fetch(addr, get("/x")).await;
    assert_eq!(first.status, 502);
    assert_eq!(first.json()["error"], "upstream connection failed");
    assert_eq!(fetch(addr, get("/x")).await.status, 200);
}

#[tokio::test]
async fn a_post_is_not_retried_by_default_and_is_with_non_idempotent() {
    let a = MockUpstream::http("a").await;
    let route = ", retries: { attempts: 2, retry_on: [connect_failure] }";
    let targets = [dead_address(), a.address()];
    let gw = TestGateway::start(&config(&targets, "", route));
    let addr = gw.addr("main");
    let post = || {
        Request::post("/x")
            .body(Full::new(Bytes::from_static(b"payload")))
            .unwrap()
    };
    // Round robin starts at the dead target.
    assert_eq!(fetch(addr, post()).await.status, 502);
    assert_eq!(fetch(addr, post()).await.status, 200);
    drop(gw);
    let route = ", retries: { attempts: 2, retry_on: [connect_failure], non_idempotent: true }";
    let gw = TestGateway::start(&config(&targets, "", route));
    let addr = gw.addr("main");
    for _ in 0..4 {
        let res = fetch(addr, post()).await;
        assert_eq!(res.status, 200);
        // The body went once, whole, to the target that answered.
        assert_eq!(res.json()["body_len"], 7);
    }
}

#[tokio::test]
async fn an_unbuffered_body_that_reached_a_failing_target_is_never_sent_again() {
    let (failing, failing_count) = answering(503).await;
    let a = MockUpstream::http("a").await;
    // Buffered bodies go again (see `retry_bodies`); this one is not buffered.
    let route =
        ", retries: { attempts: 2, retry_on: [gateway_error], non_idempotent: true, buffer_body: 0 }";
    let gw = TestGateway::start(&config(&[failing.address(), a.address()], "", route));
    let addr = gw.addr("main");
    let put = Request::put("/x")
        .body(Full::new(Bytes::from_static(b"payload")))
        .unwrap();
    // The 503 came after the body was sent: it goes to the client as it is.
    let res = fetch(addr, put).await;
    assert_eq!(res.status, 503);
    assert_eq!(failing_count.load(Ordering::SeqCst), 1);
    // Without a body the same answer is retried on the other target.
    let first = fetch(addr, get("/x")).await;
    let second = fetch(addr, get("/x")).await;
    assert_eq!((first.status.as_u16(), second.status.as_u16()), (200, 200));
    assert_eq!(failing_count.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn retries_stay_within_the_budget_when_every_target_fails() {
    let mut failing = Vec::new();
    for _ in 0..2 {
        failing.push(answering(503).await);
    }
    let targets: Vec<String> = failing.iter().map(|(u, _)| u.address()).collect();
    // Budget: 0% of active requests, at least 1 retry in flight.
    let route = ", retries: { attempts: 5, retry_on: [gateway_error], backoff: { base: 200ms, max: 200ms }, budget: { percent: 0, min_retries: 1 } }";
    let gw = TestGateway::start(&config(&targets, "", route));
    let addr = gw.addr("main");
    let requests = 20;
    let answers =
        futures_util::future::join_all((0..requests).map(|_| fetch(addr, get("/x")))).await;
    assert!(answers.iter().all(|r| r.status == 503));
    let attempts: usize = failing.iter().map(|(_, c)| c.load(Ordering::SeqCst)).sum();
    let exhausted = metric(
        &gw,
        "floodgate_upstream_retry_budget_exhausted_total{upstream=\"pool\"}",
    )
    .unwrap_or(0.0) as usize;
    let retries =
        metric(&gw, "floodgate_upstream_retries_total{upstream=\"pool\"}").unwrap_or(0.0) as usize;
    // Every attempt beyond the first of each request was a retry the budget allowed.
    assert_eq!(attempts, requests + retries);
    assert!(exhausted > 0, "the budget never said no");
    // With unlimited retries this would be 20 x 5 = 100 attempts.
    assert!(attempts < 2 * requests, "{attempts} attempts");
}

#[tokio::test]
async fn a_503_asking_to_retry_after_a_second_is_retried_and_one_asking_longer_is_not() {
    // First answer 503 with Retry-After: 1, then 200.
    let (flaky, _) = answering_with(|n| {
        if n == 0 {
            (503, Some("1"))
        } else {
            (200, None)
        }
    })
    .await;
    let route = ", retries: { attempts: 2, retry_on: [gateway_error], retry_after_limit: 2s }";
    let gw = TestGateway::start(&config(&[flaky.address()], "", route));
    let addr = gw.addr("main");
    let res = fetch(addr, get("/x")).await;
    assert_eq!((res.status.as_u16(), res.text()), (200, "ok".to_string()));
    drop(gw);

    let (long, long_count) = answering_with(|_| (503, Some("30"))).await;
    let gw = TestGateway::start(&config(&[long.address()], "", route));
    let res = fetch(gw.addr("main"), get("/x")).await;
    assert_eq!(res.status, 503);
    assert_eq!(res.header("retry-after"), Some("30"));
    assert_eq!(long_count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn bad_health_and_retry_settings_are_refused_with_their_field_paths() {
    let a = MockUpstream::http("a").await;
    let bad_upstream = "    health_checks:\n      panic_threshold: 120\n      passive: { consecutive_5xx: 0, consecutive_gateway_errors: 0 }";
    let err = TestGateway::try_start(&config(&[a.address()], bad_upstream, ""))
        .err()
        .expect("refused");
    assert!(
        err.contains("upstreams[0].health_checks.panic_threshold: must be a percentage"),
        "{err}"
    );
    assert!(
        err.contains("upstreams[0].health_checks.passive: ejects nothing"),
        "{err}"
    );
    let err = TestGateway::try_start(&config(
        &[a.address()],
        "",
        ", retries: { attempts: 0, retry_on: [sometimes] }",
    ))
    .err()
    .expect("refused");
    assert!(
        err.contains("retry_on") && err.contains("sometimes"),
        "{err}"
    );
    // A reload with a bad setting changes nothing.
    let mut gw = TestGateway::start(&config(&[a.address()], "", ""));
    let bad = config(&[a.address()], "", ", retries: { attempts: 11 }");
    let err = gw.reload(&bad).unwrap_err();
    assert!(
        err.contains("routes[0].retries.attempts: must be between 1 and 10"),
        "{err}"
    );
    assert_eq!(fetch(gw.addr("main"), get("/x")).await.status, 200);
}

#[tokio::test]
async fn the_status_source_shows_each_targets_ejection_and_counts() {
    let good = MockUpstream::http("good").await;
    let (bad, _) = answering(500).await;
    let gw = TestGateway::start(&config(&[good.address(), bad.address()], PASSIVE, ""));
    tally(gw.addr("main"), 6).await;
    let status: serde_json::Value =
        serde_json::from_str(&gw.gateway().upstream_status_source()()).unwrap();
    let targets = &status["upstreams"][0]["targets"];
    assert_eq!(status["upstreams"][0]["id"], "pool");
    assert_eq!(targets[0]["address"], good.address());
    assert_eq!(targets[0]["healthy"], true);
    assert_eq!(targets[0]["effective_weight"], 1.0);
    assert_eq!(targets[0]["priority"], 0);
    assert_eq!(targets[1]["address"], bad.address());
    assert_eq!(targets[1]["healthy"], false);
    assert_eq!(targets[1]["ejected"], true);
    assert_eq!(targets[1]["ejections"], 1);
    assert!(targets[1]["ejected_for_ms"]
        .as_u64()
        .is_some_and(|ms| ms <= 2_000));
    assert_eq!(targets[1]["last_probe"], serde_json::Value::Null);
}

#[tokio::test]
async fn each_failure_class_gets_its_answer_and_the_next_request_is_served() {
    let garbage = floodgate_testkit::ScriptedUpstream::start(|_| {
        floodgate_testkit::Reply::new("HTTP/1.1 abc nonsense\r\n\r\n").close()
    })
    .await;
    let gw = TestGateway::start(&config(&[garbage.address()], "", ""));
    let res = fetch(gw.addr("main"), get("/x")).await;
    assert_eq!(res.status, 502);
    assert_eq!(res.json()["error"], "invalid upstream response");
    drop(gw);

    let mock = MockUpstream::http("mock").await;
    let gw = TestGateway::start(&config(&[mock.address()], "", ""));
    let reset = fetch(gw.addr("main"), get("/reset")).await;
    assert_eq!(reset.status, 502);
    assert_eq!(reset.json()["error"], "upstream connection failed");
    assert_eq!(fetch(gw.addr("main"), get("/x")).await.status, 200);
}

#[tokio::test]
async fn an_attempt_past_its_per_try_timeout_is_tried_again_elsewhere_or_answered_504() {
    let slow = MockUpstream::http("slow").await;
    let route = ", retries: { attempts: 2, retry_on: [gateway_error], per_try_timeout: 200ms }";
    // The only target is slow: both attempts time out, and the last one's error is the answer.
    let gw = TestGateway::start(&config(&[slow.address()], "", route));
    let res = fetch(gw.addr("main"), get("/slow/1000")).await;
    assert_eq!(res.status, 504);
    assert_eq!(res.json()["error"], "upstream timed out");
    assert_eq!(fetch(gw.addr("main"), get("/x")).await.status, 200);
}

/// An HTTP/2 target that refuses every stream (`RST_STREAM` with `REFUSED_STREAM`), counting them.
async fn refusing_streams() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(stream).await else {
                    return;
                };
                while let Some(Ok((_req, mut respond))) = conn.accept().await {
                    seen.fetch_add(1, Ordering::SeqCst);
                    respond.send_reset(h2::Reason::REFUSED_STREAM);
                }
            });
        }
    });
    (addr, count)
}

#[tokio::test]
async fn a_refused_stream_is_retried_on_another_target_or_answered_502() {
    let (refusing, refused) = refusing_streams().await;
    let good = MockUpstream::http("good").await;
    let targets = [refusing.to_string(), good.address()];
    let upstream = "    protocol: http2";
    let route = ", retries: { attempts: 2, retry_on: [refused_stream] }";
    let gw = TestGateway::start(&config(&targets, upstream, route));
    let addr = gw.addr("main");
    for _ in 0..6 {
        let res = fetch(addr, get("/x")).await;
        assert_eq!(res.status, 200, "{}", res.text());
        assert_eq!(res.json()["upstream"], "good");
    }
    assert!(refused.load(Ordering::SeqCst) >= 3);
    drop(gw);
    // Without retries, the refusal is the client's answer.
    let gw = TestGateway::start(&config(&[refusing.to_string()], upstream, ""));
    let res = fetch(gw.addr("main"), get("/x")).await;
    assert_eq!(res.status, 502);
    assert_eq!(res.json()["error"], "upstream connection failed");
}
