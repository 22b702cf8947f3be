//! Load balancing across real upstreams: each balancer's split, stickiness of consistent hashing, the
//! HTTP/2 upstream protocol, and targets given by DNS name.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use floodgate_testkit::{eventually, send, MockUpstream, Proto, TestGateway, TestResponse};
use http::Request;
use http_body_util::Full;

/// A gateway config with one upstream `pool` (`settings` are extra YAML lines for it, indented by four
/// spaces) and one route to it for `/pool/*` and the mock's `/slow/*`.
fn config(workers: usize, settings: &str, targets: &[String]) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("{{ {t} }}")).collect();
    format!(
        r#"
workers: {workers}
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
upstreams:
  - id: pool
    targets: [{}]
{settings}
routes:
  - {{ id: pool-route, paths: ["/pool/*", "/slow/*"], upstream: pool }}
"#,
        targets.join(", ")
    )
}

/// `address: "host:port"` of a mock upstream, for [`config`].
fn target(upstream: &MockUpstream) -> String {
    format!(r#"address: "{}""#, upstream.address())
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path).body(Full::new(Bytes::new())).unwrap()
}

fn get_with(path: &str, name: &str, value: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header(name, value)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// Sends a request that must succeed and returns which upstream answered it (the echo's `x-upstream`).
async fn served_by(addr: SocketAddr, req: Request<Full<Bytes>>) -> String {
    let res: TestResponse = send(addr, Proto::H1, req).await.unwrap();
    assert_eq!(res.status, 200, "body: {}", res.text());
    res.header("x-upstream")
        .unwrap_or_else(|| panic!("no x-upstream in {:?}", res.headers))
        .to_string()
}

/// How many requests each upstream answered.
fn tally<'a>(names: impl IntoIterator<Item = &'a String>) -> BTreeMap<&'a str, usize> {
    let mut counts = BTreeMap::new();
    for name in names {
        *counts.entry(name.as_str()).or_insert(0) += 1;
    }
    counts
}

#[tokio::test]
async fn round_robin_splits_by_weight_exactly() {
    let a = MockUpstream::http("a").await;
    let b = MockUpstream::http("b").await;
    let targets = [
        format!("{}, weight: 3", target(&a)),
        format!("{}, weight: 1", target(&b)),
    ];
    let gw = TestGateway::start(&config(1, "    balancer: round_robin", &targets));
    let addr = gw.addr("main");
    let mut names = Vec::new();
    for i in 0..40 {
        names.push(served_by(addr, get(&format!("/pool/{i}"))).await);
    }
    let counts = tally(&names);
    assert_eq!(counts.get("a"), Some(&30), "{counts:?}");
    assert_eq!(counts.get("b"), Some(&10), "{counts:?}");
    // Smooth weighted round robin never sends the light target two requests in a row.
    assert!(
        !names.windows(2).any(|w| w[0] == "b" && w[1] == "b"),
        "sequence {names:?}"
    );
    assert_eq!((a.requests(), b.requests()), (30, 10));
}

#[tokio::test]
async fn random_reaches_every_target() {
    let a = MockUpstream::http("a").await;
    let b = MockUpstream::http("b").await;
    let targets = [target(&a), target(&b)];
    let gw = TestGateway::start(&config(2, "    balancer: random", &targets));
    let addr = gw.addr("main");
    let mut names = Vec::new();
    for i in 0..200 {
        names.push(served_by(addr, get(&format!("/pool/{i}"))).await);
    }
    let counts = tally(&names);
    assert!(counts.get("a").is_some_and(|n| *n > 0), "{counts:?}");
    assert!(counts.get("b").is_some_and(|n| *n > 0), "{counts:?}");
    assert_eq!(a.requests() + b.requests(), 200);
}

/// The `floodgate_requests_total` value of `route` for GET 2xx, 0 when absent.
fn ok_count(gw: &TestGateway, route: &str) -> u64 {
    let prefix =
        format!(r#"floodgate_requests_total{{route="{route}",method="GET",status_class="2xx"}} "#);
    gw.metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn least_request_avoids_the_busy_target() {
    let a = MockUpstream::http("a").await;
    let b = MockUpstream::http("b").await;
    let targets = [target(&a), target(&b)];
    let gw = TestGateway::start(&config(1, "    balancer: least_request", &targets));
    let addr = gw.addr("main");

    // Hold one target busy with a request that will not finish during the test (30 s is only a bound).
    let held = tokio::spawn(send(addr, Proto::H1, get("/slow/30000")));
    eventually("the slow request to reach an upstream", || {
        a.requests() + b.requests() == 1
    })
    .await;
    let (busy, idle) = if a.requests() == 1 {
        (&a, &b)
    } else {
        (&b, &a)
    };

    for i in 0..10u64 {
        let name = served_by(addr, get(&format!("/pool/quick/{i}"))).await;
        assert_eq!(name, idle.name, "quick request {i} went to the busy target");
        // The request is out of flight once its completion is recorded; wait for that so the next pick
        // sees the idle target at zero again rather than racing the end of this response.
        eventually("the quick request to complete", || {
            ok_count(&gw, "pool-route") == i + 1
        })
        .await;
    }
    assert_eq!(busy.requests(), 1);
    assert_eq!(idle.requests(), 10);
    held.abort();
}

#[tokio::test]
async fn consistent_hash_on_header_is_sticky_per_user() {
    let a = MockUpstream::http("a").await;
    let b = MockUpstream::http("b").await;
    let targets = [target(&a), target(&b)];
    let settings = "    balancer: consistent_hash\n    hash_on: header\n    hash_key: x-user";
    let gw = TestGateway::start(&config(2, settings, &targets));
    let addr = gw.addr("main");

    let first = served_by(addr, get_with("/pool/x", "x-user", "alice")).await;
    for i in 0..20 {
        let name = served_by(addr, get_with(&format!("/pool/{i}"), "x-user", "alice")).await;
        assert_eq!(name, first, "request {i} of the same user moved");
    }

    // Different users spread over both targets, each one sticky.
    let mut owners = BTreeMap::new();
    for user in 0..20 {
        let user = format!("user-{user}");
        let name = served_by(addr, get_with("/pool/x", "x-user", &user)).await;
        let again = served_by(addr, get_with("/pool/y", "x-user", &user)).await;
        assert_eq!(name, again, "{user} moved");
        owners.insert(user, name);
    }
    let counts = tally(owners.values());
    assert_eq!(counts.len(), 2, "users reached only {counts:?}");
}

#[tokio::test]
async fn consistent_hash_on_cookie_is_sticky() {
    let a = MockUpstream::http("a").await;
    let b = MockUpstream::http("b").await;
    let targets = [target(&a), target(&b)];
    let settings = "    balancer: consistent_hash\n    hash_on: cookie\n    hash_key: session";
    let gw = TestGateway::start(&config(2, settings, &targets));
    let addr = gw.addr("main");

    let mut owners = BTreeMap::new();
    for session in 0..20 {
        let first = served_by(
            addr,
            get_with("/pool/c", "cookie", &format!("session=s{session}")),
        )
        .await;
        for round in 0..3 {
            // Other cookies around it do not change the key.
            let cookie = format!("theme=dark{round}; session=s{session}; lang=en");
            let name = served_by(addr, get_with("/pool/c", "cookie", &cookie)).await;
            assert_eq!(name, first, "session s{session} moved");
        }
        owners.insert(session, first);
    }
    assert_eq!(tally(owners.values()).len(), 2, "sessions: {owners:?}");
}

#[tokio::test]
async fn consistent_hash_on_client_ip_is_sticky() {
    let a = MockUpstream::http("a").await;
    let b = MockUpstream::http("b").await;
    let targets = [target(&a), target(&b)];
    let settings = "    balancer: consistent_hash\n    hash_on: client_ip";
    let gw = TestGateway::start(&config(2, settings, &targets));
    let addr = gw.addr("main");

    // Every request comes from 127.0.0.1, on a new connection each time.
    let mut names = Vec::new();
    for i in 0..20 {
        names.push(served_by(addr, get(&format!("/pool/{i}"))).await);
    }
    assert_eq!(tally(&names).len(), 1, "one client spread: {names:?}");
}

#[tokio::test]
async fn consistent_hash_on_path_is_sticky() {
    let a = MockUpstream::http("a").await;
    let b = MockUpstream::http("b").await;
    let targets = [target(&a), target(&b)];
    let settings = "    balancer: consistent_hash\n    hash_on: path";
    let gw = TestGateway::start(&config(2, settings, &targets));
    let addr = gw.addr("main");

    let mut owners = BTreeMap::new();
    for item in 0..20 {
        let path = format!("/pool/items/{item}");
        let first = served_by(addr, get(&path)).await;
        for round in 0..3 {
            // The query string is not part of the key.
            let name = served_by(addr, get(&format!("{path}?round={round}"))).await;
            assert_eq!(name, first, "{path} moved");
        }
        owners.insert(path, first);
    }
    assert_eq!(tally(owners.values()).len(), 2, "paths: {owners:?}");
}

#[tokio::test]
async fn consistent_hash_without_the_key_falls_back_to_round_robin() {
    let a = MockUpstream::http("a").await;
    let b = MockUpstream::http("b").await;
    let targets = [target(&a), target(&b)];
    let settings = "    balancer: consistent_hash\n    hash_on: header\n    hash_key: x-user";
    let gw = TestGateway::start(&config(1, settings, &targets));
    let addr = gw.addr("main");

    let mut names = Vec::new();
    for i in 0..10 {
        names.push(served_by(addr, get(&format!("/pool/{i}"))).await);
    }
    // An empty value counts as missing too.
    for i in 0..10 {
        names.push(served_by(addr, get_with(&format!("/pool/e{i}"), "x-user", "")).await);
    }
    let counts = tally(&names);
    assert_eq!(counts.get("a"), Some(&10), "{counts:?}");
    assert_eq!(counts.get("b"), Some(&10), "{counts:?}");
}

/// An upstream spoken to over HTTP/2 in cleartext (prior knowledge).
fn h2_config(upstream: &MockUpstream) -> String {
    config(1, "    protocol: http2", &[target(upstream)])
}

#[tokio::test]
async fn http2_upstream_serves_http1_and_h2c_clients() {
    let upstream = MockUpstream::http("h2").await;
    let gw = TestGateway::start(&h2_config(&upstream));
    let addr = gw.addr("main");

    let res = send(addr, Proto::H1, get("/pool/one?q=1")).await.unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(res.version, http::Version::HTTP_11);
    let echo = res.json();
    assert_eq!(echo["version"], "HTTP/2.0");
    assert_eq!(echo["uri"], format!("http://{addr}/pool/one?q=1"));
    // HTTP/2 forbids connection-specific headers (RFC 9113 §8.2.2).
    assert!(echo["headers"].get("connection").is_none(), "{echo}");

    let res = send(addr, Proto::H2c, get("/pool/two")).await.unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(res.version, http::Version::HTTP_2);
    let echo = res.json();
    assert_eq!(echo["version"], "HTTP/2.0");
    assert_eq!(echo["upstream"], "h2");

    // A request body crosses the HTTP/2 hop intact.
    let req = Request::post("/pool/upload")
        .body(Full::new(Bytes::from(vec![b'z'; 100_000])))
        .unwrap();
    let res = send(addr, Proto::H1, req).await.unwrap();
    assert_eq!(res.json()["body_len"], 100_000);
    assert_eq!(upstream.requests(), 3);
}

#[tokio::test]
async fn http2_upstream_connection_is_shared_by_sequential_requests() {
    let upstream = MockUpstream::http("h2").await;
    let gw = TestGateway::start(&h2_config(&upstream));
    let addr = gw.addr("main");
    for i in 0..10 {
        let proto = if i % 2 == 0 { Proto::H1 } else { Proto::H2c };
        let res = send(addr, proto, get(&format!("/pool/{i}"))).await.unwrap();
        assert_eq!(res.status, 200);
        assert_eq!(res.json()["version"], "HTTP/2.0");
    }
    assert_eq!(upstream.requests(), 10);
    assert_eq!(
        upstream.connections(),
        1,
        "one worker should multiplex every request on one HTTP/2 connection"
    );
}

#[tokio::test]
async fn target_given_as_dns_name_is_reached() {
    let upstream = MockUpstream::http("named").await;
    let name = format!("localhost:{}", upstream.addr.port());
    let yaml = format!(
        r#"
workers: 1
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
upstreams:
  - id: named
    targets: [{{ address: "{name}" }}]
routes:
  - {{ id: named, paths: ["/named/*"], upstream: named, preserve_host: false }}
"#
    );
    let gw = TestGateway::start(&yaml);
    let addr = gw.addr("main");
    for i in 0..3 {
        let res = send(addr, Proto::H1, get(&format!("/named/{i}")))
            .await
            .unwrap();
        assert_eq!(res.status, 200, "body: {}", res.text());
        let echo = res.json();
        assert_eq!(echo["upstream"], "named");
        // Without preserve_host the upstream sees the target as configured, name and all.
        assert_eq!(echo["headers"]["host"], name);
    }
    assert_eq!(upstream.requests(), 3);
}
