//! Client keep-alive connections: reused across requests, holding no buffer while idle, serving the
//! next request when it arrives, and closed on shutdown.

use std::time::Duration;

use bytes::Bytes;
use floodgate_testkit::{MockUpstream, TestGateway};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A pause between requests, so the connection is idle (its buffer given back) when the next one comes.
const IDLE: Duration = Duration::from_millis(200);

fn config(upstream: &MockUpstream) -> String {
    format!(
        r#"
workers: 1
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
upstreams: [{{ id: backend, targets: [{{ address: "{}" }}] }}]
routes: [{{ id: all, paths: ["/*"], upstream: backend }}]
"#,
        upstream.address()
    )
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", "keepalive.test")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn idle_connection_serves_the_next_request() {
    let upstream = MockUpstream::http("one").await;
    let gw = TestGateway::start(&config(&upstream));
    let tcp = TcpStream::connect(gw.addr("main")).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    for round in 0..3 {
        let response = sender
            .send_request(get(&format!("/round/{round}")))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let echo: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(echo["uri"], format!("/round/{round}"));
        assert!(
            response_kept_alive(&echo),
            "the gateway must not close a kept-alive connection"
        );
        tokio::time::sleep(IDLE).await;
        sender
            .ready()
            .await
            .expect("connection still open after idling");
    }
}

fn response_kept_alive(echo: &serde_json::Value) -> bool {
    echo["headers"].get("connection").is_none()
}

#[tokio::test]
async fn request_head_split_across_a_pause_is_answered() {
    let upstream = MockUpstream::http("one").await;
    let gw = TestGateway::start(&config(&upstream));
    let mut tcp = TcpStream::connect(gw.addr("main")).await.unwrap();
    tcp.write_all(b"GET /split HTTP/1.1\r\nHo").await.unwrap();
    tokio::time::sleep(IDLE).await;
    tcp.write_all(b"st: keepalive.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_string(&mut response))
        .await
        .expect("safety timeout")
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.contains("\"uri\":\"/split\""), "{response}");
}

#[tokio::test]
async fn pipelined_requests_after_an_idle_pause_are_all_answered() {
    let upstream = MockUpstream::http("one").await;
    let gw = TestGateway::start(&config(&upstream));
    let mut tcp = TcpStream::connect(gw.addr("main")).await.unwrap();
    tcp.write_all(b"GET /first HTTP/1.1\r\nHost: keepalive.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tcp.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("/first"));
    tokio::time::sleep(IDLE).await;
    tcp.write_all(
        b"GET /second HTTP/1.1\r\nHost: keepalive.test\r\n\r\nGET /third HTTP/1.1\r\nHost: keepalive.test\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut rest = String::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_string(&mut rest))
        .await
        .expect("safety timeout")
        .unwrap();
    assert_eq!(rest.matches("HTTP/1.1 200 OK").count(), 2, "{rest}");
    let second = rest.find("/second").expect("second answered");
    let third = rest.find("/third").expect("third answered");
    assert!(second < third, "answers in request order: {rest}");
}

#[tokio::test]
async fn idle_connection_is_closed_on_shutdown() {
    let upstream = MockUpstream::http("one").await;
    let gw = TestGateway::start(&config(&upstream));
    let mut tcp = TcpStream::connect(gw.addr("main")).await.unwrap();
    tcp.write_all(b"GET /once HTTP/1.1\r\nHost: keepalive.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tcp.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200 OK"));
    tokio::time::sleep(IDLE).await;
    // A long grace period: the idle connection must close at once, not hold shutdown up.
    tokio::task::spawn_blocking(move || gw.shutdown(Duration::from_secs(60)))
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
        .await
        .expect("safety timeout")
        .unwrap_or(0);
    assert_eq!(n, 0, "the gateway closes idle connections when it stops");
}
