//! The `ewma` balancer against real targets of different speeds, and balancing state that outlives
//! a reload.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use floodgate_testkit::config::{head, target_list};
use floodgate_testkit::{eventually, send, FnUpstream, MockUpstream, Proto, TestGateway};
use http::Request;
use http_body_util::Full;
use tokio::task::JoinSet;

/// A target that answers every request after `delay`, counting them.
async fn target_with_delay(delay: Duration) -> (FnUpstream, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let target = FnUpstream::start(move |_req| {
        seen.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(delay).await;
            http::Response::new(Full::new(Bytes::from_static(b"ok")))
        }
    })
    .await;
    (target, count)
}

fn config(balancer: &str, targets: &[String], route: &str) -> String {
    let targets = target_list(targets);
    head(2)
        + &format!(
            "upstreams:\n  - {{ id: pool, balancer: {balancer}, targets: [{}] }}\n\
         routes:\n  - {{ id: r, paths: [\"/*\"], upstream: pool{route} }}\n",
            targets
        )
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path).body(Full::new(Bytes::new())).unwrap()
}

#[tokio::test]
async fn a_target_100ms_slower_than_two_others_gets_under_5_percent() {
    let (fast_a, a) = target_with_delay(Duration::ZERO).await;
    let (fast_b, b) = target_with_delay(Duration::ZERO).await;
    let (slow, s) = target_with_delay(Duration::from_millis(100)).await;
    let targets = [fast_a.address(), fast_b.address(), slow.address()];
    let gw = TestGateway::start(&config("ewma", &targets, ""));
    let addr = gw.addr("main");
    let mut clients = JoinSet::new();
    for _ in 0..4 {
        clients.spawn(async move {
            for _ in 0..150 {
                let res = send(addr, Proto::H1, get("/x")).await.unwrap();
                assert_eq!(res.status, 200);
            }
        });
    }
    while let Some(done) = clients.join_next().await {
        done.unwrap();
    }
    let (a, b, s) = (
        a.load(Ordering::SeqCst),
        b.load(Ordering::SeqCst),
        s.load(Ordering::SeqCst),
    );
    assert_eq!(a + b + s, 600);
    assert!(
        s * 100 < 5 * 600,
        "slow target got {s} of 600 ({a}, {b} for the fast ones)"
    );
    // The status shows each target's estimate: the slow one's far above the others'.
    let status: serde_json::Value =
        serde_json::from_str(&gw.gateway().upstream_status_source()()).unwrap();
    let targets = &status["upstreams"][0]["targets"];
    let slow_ms = targets[2]["ewma_ms"].as_f64().unwrap();
    let fast_ms = targets[0]["ewma_ms"].as_f64().unwrap();
    assert!(slow_ms > 50.0 && fast_ms < 50.0, "{targets}");
}

#[tokio::test]
async fn requests_in_flight_are_counted_across_a_reload() {
    let a = MockUpstream::http("a").await;
    let b = MockUpstream::http("b").await;
    let targets = [a.address(), b.address()];
    let mut gw = TestGateway::start(&config("least_request", &targets, ""));
    let addr = gw.addr("main");
    let held = tokio::spawn(async move { send(addr, Proto::H1, get("/slow/1500")).await });
    eventually("the slow request reached a target", || {
        a.requests() + b.requests() == 1
    })
    .await;
    gw.reload(&config("least_request", &targets, ", timeout: 30s"))
        .unwrap();
    let status: serde_json::Value =
        serde_json::from_str(&gw.gateway().upstream_status_source()()).unwrap();
    let in_flight: Vec<u64> = status["upstreams"][0]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["in_flight"].as_u64().unwrap())
        .collect();
    assert_eq!(in_flight.iter().sum::<u64>(), 1, "{status}");
    // The next requests go to the idle target while the other holds the slow one.
    let busy = if a.requests() == 1 { 0 } else { 1 };
    for _ in 0..10 {
        let res = send(addr, Proto::H1, get("/x")).await.unwrap();
        assert_eq!(res.status, 200);
    }
    let (ra, rb) = (a.requests(), b.requests());
    if busy == 0 {
        assert_eq!((ra, rb), (1, 10));
    } else {
        assert_eq!((ra, rb), (10, 1));
    }
    assert_eq!(held.await.unwrap().unwrap().status, 200);
}

#[tokio::test]
async fn a_target_added_by_a_reload_ramps_up_to_its_share() {
    let a = MockUpstream::http("a").await;
    let b = MockUpstream::http("b").await;
    let c = MockUpstream::http("c").await;
    let yaml = |targets: &[String]| {
        let targets = target_list(targets);
        head(1)
            + &format!(
                "upstreams:\n  - {{ id: pool, balancer: random, slow_start: {{ window: 5s, min_weight_percent: 5 }}, targets: [{targets}] }}\n\
                 routes:\n  - {{ id: r, paths: [\"/*\"], upstream: pool }}\n"
            )
    };
    // The targets of the first configuration take their full share at once.
    let mut gw = TestGateway::start(&yaml(&[a.address(), b.address()]));
    let addr = gw.addr("main");
    for _ in 0..200 {
        assert_eq!(send(addr, Proto::H1, get("/x")).await.unwrap().status, 200);
    }
    assert!(
        a.requests() > 60 && b.requests() > 60,
        "{} {}",
        a.requests(),
        b.requests()
    );
    gw.reload(&yaml(&[a.address(), b.address(), c.address()]))
        .unwrap();
    let status: serde_json::Value =
        serde_json::from_str(&gw.gateway().upstream_status_source()()).unwrap();
    let ramping = status["upstreams"][0]["targets"][2]["effective_weight"]
        .as_f64()
        .unwrap();
    assert!(ramping < 0.5, "{status}");
    assert_eq!(
        status["upstreams"][0]["targets"][0]["effective_weight"],
        1.0
    );
    // Right after the reload the new target gets a small share (its full one would be a third).
    for _ in 0..200 {
        assert_eq!(send(addr, Proto::H1, get("/x")).await.unwrap().status, 200);
    }
    let early = c.requests();
    assert!(early < 40, "the new target got {early} of 200 at once");
    // After the window, its full share.
    tokio::time::sleep(Duration::from_millis(5_100)).await;
    for _ in 0..300 {
        send(addr, Proto::H1, get("/x")).await.unwrap();
    }
    let late = c.requests() - early;
    assert!(
        late > 70,
        "the new target got {late} of 300 after its slow start"
    );
}

/// A target that answers every request with `endpoint-load-metrics: TEXT cpu_utilization=<load>`.
async fn target_reporting(load: &'static str) -> (FnUpstream, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let target = FnUpstream::start(move |_req| {
        seen.fetch_add(1, Ordering::SeqCst);
        let mut response = http::Response::new(Full::new(Bytes::from_static(b"ok")));
        let report = format!("TEXT cpu_utilization={load}");
        response
            .headers_mut()
            .insert("endpoint-load-metrics", report.parse().unwrap());
        std::future::ready(response)
    })
    .await;
    (target, count)
}

#[tokio::test]
async fn load_reports_move_the_share_toward_the_idle_target_but_never_to_zero() {
    let (busy, busy_count) = target_reporting("0.9").await;
    let (idle, idle_count) = target_reporting("0.1").await;
    let yaml = format!(
        "workers: 1\nlisteners: [{{ name: main, address: \"127.0.0.1:0\" }}]\n\
         admin: {{ address: \"127.0.0.1:0\" }}\n\
         upstreams:\n  - {{ id: pool, balancer: random, load_reports: {{ period: 200ms, min_weight_percent: 5 }}, targets: [{{ address: \"{}\" }}, {{ address: \"{}\" }}] }}\n\
         routes:\n  - {{ id: r, paths: [\"/*\"], upstream: pool }}\n",
        busy.address(),
        idle.address()
    );
    let gw = TestGateway::start(&yaml);
    let addr = gw.addr("main");
    // A few periods of reports.
    for _ in 0..10 {
        for _ in 0..20 {
            assert_eq!(send(addr, Proto::H1, get("/x")).await.unwrap().status, 200);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = (
        busy_count.load(Ordering::SeqCst),
        idle_count.load(Ordering::SeqCst),
    );
    for _ in 0..400 {
        assert_eq!(send(addr, Proto::H1, get("/x")).await.unwrap().status, 200);
    }
    let busy_share = busy_count.load(Ordering::SeqCst) - before.0;
    let idle_share = idle_count.load(Ordering::SeqCst) - before.1;
    assert_eq!(busy_share + idle_share, 400);
    // Headroom 0.1 against 0.9: about a tenth of the requests, and never none.
    assert!(idle_share > 300, "{busy_share} busy, {idle_share} idle");
    assert!(busy_share > 0, "the busy target never goes to zero");
}
