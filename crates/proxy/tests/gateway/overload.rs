//! Overload protection: connections past a connection limit are closed at once and counted, requests past
//! a worker's in-flight limit get 503, and a crowd of stalled slowloris connections does not stop the
//! gateway from serving everyone else. After each refusal the gateway serves again.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use floodgate_testkit::{eventually, free_port, send, MockUpstream, Proto, TestGateway};
use http::{Request, StatusCode};
use http_body_util::Empty;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A safety net for a hung test, never a timing assertion.
const SAFETY: Duration = Duration::from_secs(10);

const PING: &[u8] = b"GET /ping HTTP/1.1\r\nHost: a\r\n\r\n";

/// Sends a ping on `stream` and reads its answer: whether the gateway served it (it closes refused
/// connections without a word).
async fn served(stream: &mut TcpStream) -> bool {
    if stream.write_all(PING).await.is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
            if answer.ends_with(b"pong") {
                return answer.starts_with(b"HTTP/1.1 200");
            }
        }
    };
    tokio::time::timeout(SAFETY, read).await.unwrap_or(false)
}

/// A new connection to `addr` that has been served once and stays open.
async fn served_connection(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    assert!(
        served(&mut stream).await,
        "a connection within the limit is served"
    );
    stream
}

/// Connects until a new connection is served (the gateway sees a closed connection go a moment after
/// the client closes it).
async fn served_again(addr: SocketAddr) {
    let deadline = tokio::time::Instant::now() + SAFETY;
    loop {
        // A connection refused by the limit may be reset before connect() even returns.
        if let Ok(mut stream) = TcpStream::connect(addr).await {
            if served(&mut stream).await {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a connection was never served again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn has_line(gw: &TestGateway, line: &str) -> bool {
    gw.metrics.render().lines().any(|l| l == line)
}

fn routes(backend: &MockUpstream) -> String {
    format!(
        r#"
upstreams: [{{ id: backend, targets: [{{ address: "{}" }}] }}]
routes:
  - {{ id: api, paths: ["/api/*"], upstream: backend }}
  - {{ id: ping, paths: ["/ping"], respond: {{ status: 200, body: "pong" }} }}
"#,
        backend.address()
    )
}

#[tokio::test]
async fn the_connection_past_max_connections_is_closed_counted_and_served_once_one_closes() {
    let backend = MockUpstream::http("backend").await;
    // Two workers: the limit counts the connections of both.
    let gw = TestGateway::start(&format!(
        r#"
workers: 2
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
limits: {{ max_connections: 5 }}
{}"#,
        routes(&backend)
    ));
    let addr = gw.addr("main");
    let mut open = Vec::new();
    for _ in 0..5 {
        open.push(served_connection(addr).await);
    }

    // Reset at once: connect() itself may already see it.
    if let Ok(mut sixth) = TcpStream::connect(addr).await {
        assert!(!served(&mut sixth).await, "the sixth connection is closed");
    }
    assert!(has_line(
        &gw,
        r#"floodgate_downstream_connections_rejected_total{reason="max_connections"} 1"#
    ));
    // The open ones are not disturbed.
    assert!(served(&mut open[0]).await);

    drop(open.pop());
    served_again(addr).await;
}

#[tokio::test]
async fn a_listener_past_its_own_max_connections_closes_new_ones_and_others_are_served() {
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&format!(
        r#"
workers: 2
listeners:
  - {{ name: limited, address: "127.0.0.1:0", max_connections: 2 }}
  - {{ name: open, address: "127.0.0.1:{}" }}
{}"#,
        free_port(),
        routes(&backend)
    ));
    let limited = gw.addr("limited");
    let mut open = vec![
        served_connection(limited).await,
        served_connection(limited).await,
    ];
    // Reset at once: connect() itself may already see it.
    if let Ok(mut third) = TcpStream::connect(limited).await {
        assert!(!served(&mut third).await, "the third connection is closed");
    }
    assert!(has_line(
        &gw,
        r#"floodgate_downstream_connections_rejected_total{reason="listener_max_connections"} 1"#
    ));
    assert!(has_line(
        &gw,
        r#"floodgate_downstream_connections_rejected_total{reason="max_connections"} 0"#
    ));
    // The other listener has no limit of its own.
    let _others: Vec<TcpStream> =
        futures_util::future::join_all((0..4).map(|_| served_connection(gw.addr("open")))).await;

    drop(open.pop());
    served_again(limited).await;
}

#[tokio::test]
async fn a_request_past_the_in_flight_limit_is_503_then_the_worker_serves_again() {
    let backend = MockUpstream::http("backend").await;
    // One worker, so every request is counted against the same limit.
    let gw = TestGateway::start(&format!(
        r#"
workers: 1
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
limits: {{ max_requests_in_flight_per_worker: 1 }}
{}"#,
        routes(&backend)
    ));
    let addr = gw.addr("main");

    // The first request stays in flight while its body has not all arrived.
    let mut first = TcpStream::connect(addr).await.expect("connect");
    first
        .write_all(b"POST /api/held HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n")
        .await
        .expect("write");
    eventually("the first request reaches the upstream", || {
        backend.requests() == 1
    })
    .await;

    for proto in [Proto::H1, Proto::H2c] {
        let req = Request::get("/ping").body(Empty::<Bytes>::new()).unwrap();
        let refused = send(addr, proto.clone(), req).await.expect("answer");
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE, "{proto:?}");
        assert_eq!(refused.json()["error"], "gateway overloaded");
        assert!(refused.json()["request_id"].is_string());
    }
    assert!(has_line(
        &gw,
        r#"floodgate_requests_rejected_total{reason="max_requests_in_flight_per_worker"} 2"#
    ));

    first.write_all(b"done").await.expect("write");
    let mut head = [0u8; 12];
    tokio::time::timeout(SAFETY, first.read_exact(&mut head))
        .await
        .expect("in time")
        .expect("the first request is answered");
    assert_eq!(&head, b"HTTP/1.1 200");
    drop(first);

    for proto in [Proto::H1, Proto::H2c] {
        let req = Request::get("/ping").body(Empty::<Bytes>::new()).unwrap();
        let response = send(addr, proto.clone(), req).await.expect("answer");
        assert_eq!(response.status, StatusCode::OK, "{proto:?}");
    }
}

/// How many slowloris connections the test opens: `FLOODGATE_SLOWLORIS_CONNECTIONS` when set, else
/// 2,000, and fewer when the open-files limit cannot hold both ends of that many connections (the test
/// holds the client's and the gateway's in one process).
fn slowloris_connections() -> usize {
    if let Some(n) = std::env::var("FLOODGATE_SLOWLORIS_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    let soft_limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|n| n.parse::<usize>().ok())
        })
        .unwrap_or(1024);
    (soft_limit.saturating_sub(1024) / 2).clamp(200, 2_000)
}

#[tokio::test]
async fn stalled_slowloris_connections_do_not_stop_normal_clients() {
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&format!(
        r#"
workers: 2
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
{}"#,
        routes(&backend)
    ));
    let addr = gw.addr("main");
    let count = slowloris_connections();
    let mut stalled = Vec::with_capacity(count);
    for i in 0..count {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        // A request head begun and never finished.
        stream
            .write_all(b"GET /api/x HTTP/1.1\r\nHost: a\r\nX-Slow: ")
            .await
            .expect("write");
        stalled.push(stream);
        // Normal clients are served while the crowd builds up.
        if i % 500 == 499 {
            assert!(served(&mut TcpStream::connect(addr).await.expect("connect")).await);
        }
    }
    eventually("the gateway holds every stalled connection", || {
        gw.metrics
            .render()
            .lines()
            .find_map(|l| l.strip_prefix("floodgate_downstream_connections_open "))
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|open| open >= count)
    })
    .await;

    for proto in [Proto::H1, Proto::H2c] {
        let req = Request::get("/api/normal")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = send(addr, proto.clone(), req).await.expect("answer");
        assert_eq!(response.status, StatusCode::OK, "{proto:?}");
    }
    assert!(served(&mut TcpStream::connect(addr).await.expect("connect")).await);
    drop(stalled);
}
