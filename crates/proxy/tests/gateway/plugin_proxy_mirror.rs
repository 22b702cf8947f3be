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
