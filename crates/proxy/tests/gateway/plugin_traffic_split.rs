//! `traffic-split` over real sockets: a 90/10 split lands within two points over 10,000 requests, a
//! coloured request always reaches the canary, stickiness keeps a key on one side, and a split naming
//! an unknown upstream or weights adding up to 0 is refused.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use floodgate_testkit::{send, MockUpstream, Proto, TestGateway};
use http::Request;
use http_body_util::Full;
use tokio::task::JoinSet;

fn config(stable: &MockUpstream, canary: &MockUpstream, split: &str) -> String {
    format!(
        "workers: 2\nlisteners: [{{ name: main, address: \"127.0.0.1:0\" }}]\n\
         admin: {{ address: \"127.0.0.1:0\" }}\n\
         upstreams:\n  - {{ id: stable, targets: [{{ address: \"{}\" }}] }}\n  - {{ id: canary, targets: [{{ address: \"{}\" }}] }}\n\
         routes:\n  - {{ id: r, paths: [\"/*\"], upstream: stable, plugins: {{ traffic-split: {split} }} }}\n",
        stable.address(),
        canary.address()
    )
}

async fn side(addr: SocketAddr, headers: &[(&str, String)]) -> String {
    let mut req = Request::get("/x");
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let res = send(addr, Proto::H1, req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status, 200);
    res.header("x-upstream").unwrap().to_string()
}

const SPLIT: &str = r#"{ rules: [
    { match: [{ headers: { x-canary: "1" } }, { cookies: { release: "canary" } }], weighted_upstreams: [{ upstream_id: canary }] },
    { weighted_upstreams: [{ upstream_id: canary, weight: 10 }, { weight: 90 }] } ] }"#;

#[tokio::test]
async fn a_90_10_split_lands_within_two_points_and_coloured_requests_reach_the_canary() {
    let stable = MockUpstream::http("stable").await;
    let canary = MockUpstream::http("canary").await;
    let gw = TestGateway::start(&config(&stable, &canary, SPLIT));
    let addr = gw.addr("main");
    let mut clients = JoinSet::new();
    for _ in 0..8 {
        clients.spawn(async move {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for _ in 0..1250 {
                *counts.entry(side(addr, &[]).await).or_default() += 1;
            }
            counts
        });
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    while let Some(part) = clients.join_next().await {
        for (k, v) in part.unwrap() {
            *counts.entry(k).or_default() += v;
        }
    }
    let to_canary = counts.get("canary").copied().unwrap_or(0);
    assert!((800..=1_200).contains(&to_canary), "{counts:?}");
    assert_eq!(
        to_canary + counts.get("stable").copied().unwrap_or(0),
        10_000
    );
    for _ in 0..100 {
        assert_eq!(side(addr, &[("x-canary", "1".into())]).await, "canary");
        assert_eq!(
            side(addr, &[("cookie", "a=b; release=canary".into())]).await,
            "canary"
        );
    }
}

#[tokio::test]
async fn stickiness_keeps_each_user_on_one_side() {
    let stable = MockUpstream::http("stable").await;
    let canary = MockUpstream::http("canary").await;
    let split = r#"{ rules: [{ weighted_upstreams: [{ upstream_id: canary, weight: 50 }, { weight: 50 }] }], sticky: { hash_on: header, key: x-user } }"#;
    let gw = TestGateway::start(&config(&stable, &canary, split));
    let addr = gw.addr("main");
    let mut sides = BTreeMap::new();
    for user in 0..30 {
        let header = [("x-user", format!("user-{user}"))];
        let first = side(addr, &header).await;
        for _ in 0..10 {
            assert_eq!(side(addr, &header).await, first, "user-{user}");
        }
        *sides.entry(first).or_insert(0) += 1;
    }
    assert_eq!(sides.len(), 2, "{sides:?}");
}

#[tokio::test]
async fn a_split_naming_an_unknown_upstream_or_weighing_nothing_is_refused() {
    let stable = MockUpstream::http("stable").await;
    let canary = MockUpstream::http("canary").await;
    let bad = r#"{ rules: [{ weighted_upstreams: [{ upstream_id: canari, weight: 0 }] }] }"#;
    let err = TestGateway::try_start(&config(&stable, &canary, bad))
        .err()
        .expect("refused");
    assert!(
        err.contains("routes[0].plugins.traffic-split.rules[0].weighted_upstreams[0].upstream_id: no upstream with id \"canari\""),
        "{err}"
    );
    assert!(err.contains("the weights add up to 0"), "{err}");
    // A reload with it changes nothing.
    let mut gw = TestGateway::start(&config(&stable, &canary, SPLIT));
    assert!(gw.reload(&config(&stable, &canary, bad)).is_err());
    assert_eq!(
        side(gw.addr("main"), &[("x-canary", "1".into())]).await,
        "canary"
    );
}
