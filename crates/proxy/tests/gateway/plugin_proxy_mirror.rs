//! `proxy-mirror` over real sockets: the mirror gets the copies, and a dead or stalled mirror changes
//! nothing for clients: copies past `max_in_flight` are dropped and counted.

use std::net::SocketAddr;

use bytes::Bytes;
use floodgate_testkit::{eventually, free_port, send, MockUpstream, Proto, TestGateway};
use http::Request;
use http_body_util::Full;
use tokio::net::TcpListener;

fn config(main: &str, mirror: &str, plugin: &str) -> String {
    format!(
        "workers: 1\nlisteners: [{{ name: main, address: \"127.0.0.1:0\" }}]\n\
         admin: {{ address: \"127.0.0.1:0\" }}\n\
         upstreams:\n  - {{ id: main, targets: [{{ address: \"{main}\" }}] }}\n  - {{ id: shadow, targets: [{{ address: \"{mirror}\" }}] }}\n\
         routes:\n  - {{ id: r, paths: [\"/*\"], upstream: main, timeout: 1s, plugins: {{ proxy-mirror: {plugin} }} }}\n"
    )
}

async fn get(addr: SocketAddr, path: &str) -> u16 {
    let req = Request::get(path)
        .header("x-trace", "abc")
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(addr, Proto::H1, req).await.unwrap().status.as_u16()
}

fn mirrored(gw: &TestGateway, result: &str) -> f64 {
    let prefix =
        format!("floodgate_mirror_requests_total{{upstream=\"shadow\",result=\"{result}\"}} ");
    gw.metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn the_mirror_receives_a_copy_of_each_request() {
    let main = MockUpstream::http("main").await;
    let shadow = MockUpstream::http("shadow").await;
    let gw = TestGateway::start(&config(
        &main.address(),
        &shadow.address(),
        "{ upstream_id: shadow }",
    ));
    let addr = gw.addr("main");
    for i in 0..50 {
        assert_eq!(get(addr, &format!("/orders/{i}")).await, 200);
    }
    eventually("50 copies answered", || mirrored(&gw, "answered") == 50.0).await;
    assert_eq!(shadow.requests(), 50);
    assert_eq!(main.requests(), 50);
    // A request with a body is not copied (its body streams once, to the real upstream).
    let post = Request::post("/orders")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    assert_eq!(send(addr, Proto::H1, post).await.unwrap().status, 200);
    assert_eq!(mirrored(&gw, "dropped"), 1.0);
}

#[tokio::test]
async fn a_dead_mirror_changes_nothing_for_clients() {
    let main = MockUpstream::http("main").await;
    let dead = format!("127.0.0.1:{}", free_port());
    let gw = TestGateway::start(&config(&main.address(), &dead, "{ upstream_id: shadow }"));
    let addr = gw.addr("main");
    for _ in 0..20 {
        assert_eq!(get(addr, "/x").await, 200);
    }
    eventually("20 copies failed", || mirrored(&gw, "failed") == 20.0).await;
}

#[tokio::test]
async fn a_stalled_mirror_holds_at_most_max_in_flight_copies() {
    let main = MockUpstream::http("main").await;
    // Accepts connections and never answers.
    let stalled = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stalled_addr = stalled.local_addr().unwrap();
    let _holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = stalled.accept().await {
            held.push(stream);
        }
    });
    let gw = TestGateway::start(&config(
        &main.address(),
        &stalled_addr.to_string(),
        "{ upstream_id: shadow, max_in_flight: 2 }",
    ));
    let addr = gw.addr("main");
    for _ in 0..30 {
        assert_eq!(get(addr, "/x").await, 200);
    }
    assert_eq!(main.requests(), 30);
    assert_eq!(mirrored(&gw, "dropped"), 28.0);
    // The two waiting copies give up at the route's timeout, and copies go out again.
    eventually("the stalled copies fail", || mirrored(&gw, "failed") == 2.0).await;
    assert_eq!(get(addr, "/x").await, 200);
    assert_eq!(mirrored(&gw, "dropped"), 28.0);
}

#[tokio::test]
async fn a_mirror_naming_an_unknown_upstream_is_refused() {
    let err = TestGateway::try_start(&config(
        "127.0.0.1:1",
        "127.0.0.1:2",
        "{ upstream_id: shadw }",
    ))
    .err()
    .expect("refused");
    assert!(
        err.contains("routes[0].plugins.proxy-mirror.upstream_id: no upstream with id \"shadw\""),
        "{err}"
    );
}

#[tokio::test]
async fn a_copy_carries_the_gateways_forwarding_fields_not_the_clients() {
    let main = MockUpstream::http("main").await;
    let mut shadow = floodgate_testkit::ScriptedUpstream::start(|_| {
        floodgate_testkit::Reply::new("HTTP/1.1 204 No Content\r\n\r\n")
    })
    .await;
    let gw = TestGateway::start(&config(
        &main.address(),
        &shadow.address(),
        "{ upstream_id: shadow }",
    ));
    let req = Request::get("/x")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .header("connection", "x-secret")
        .header("x-secret", "hop")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = send(gw.addr("main"), Proto::H1, req).await.unwrap();
    assert_eq!(res.status, 200);
    let request_id = res.header("x-request-id").unwrap().to_string();
    let copy = shadow.next_request().await;
    assert_eq!(copy.header("x-forwarded-for"), Some("6.6.6.6, 127.0.0.1"));
    assert_eq!(copy.header("x-forwarded-proto"), Some("http"));
    assert_ne!(copy.header("x-forwarded-host"), Some("evil.example"));
    assert_eq!(copy.header("x-request-id"), Some(request_id.as_str()));
    assert_eq!(
        copy.header("x-secret"),
        None,
        "hop-by-hop fields do not go on"
    );
    // The real request saw the same.
    let echoed = res.json();
    assert_eq!(echoed["headers"]["x-forwarded-for"], "6.6.6.6, 127.0.0.1");
}
