//! Every peer has a deadline: silent and slow clients and upstreams are cut off, each timeout closes only
//! the connection at fault and is counted by kind, and the gateway goes on serving. Timeouts are set short
//! so the tests finish soon; they assert what happens, never how long it took.

use std::time::Duration;

use floodgate_testkit::{
    eventually, read_to_close, OneRoute, Reply, ScriptedUpstream, TestGateway,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Safety net for anything that waits on the network; no test relies on it for its outcome.
const SAFETY: Duration = Duration::from_secs(20);

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

fn gateway(upstream: &ScriptedUpstream) -> TestGateway {
    OneRoute::to(upstream.address())
        .top("timeouts: { client_header: 300ms, client_keepalive: 300ms, client_body: 300ms, client_send: 300ms }")
        .upstream("read_timeout: 300ms")
        .start()
}

/// Reads one response with a `Content-Length` body off `stream`.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    let head_end = loop {
        tokio::time::timeout(SAFETY, stream.read_exact(&mut byte))
            .await
            .expect("a response")
            .expect("a response");
        out.push(byte[0]);
        if out.ends_with(b"\r\n\r\n") {
            break out.len();
        }
    };
    let head = String::from_utf8_lossy(&out[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .split("\r\n")
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.expect("body");
    out.extend_from_slice(&body);
    String::from_utf8_lossy(&out).into_owned()
}

fn timeouts_of(gw: &TestGateway, kind: &str) -> u64 {
    let text = gw.metrics.render();
    let prefix = format!("floodgate_connection_timeouts_total{{kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {kind} series in\n{text}"))
}

async fn still_serves(gw: &TestGateway) {
    let mut stream = TcpStream::connect(gw.addr("main")).await.unwrap();
    stream
        .write_all(b"GET /after HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut stream)
        .await
        .starts_with("HTTP/1.1 200 OK"));
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_and_counted() {
    let upstream = ScriptedUpstream::start(|_| Reply::new(OK)).await;
    let gw = gateway(&upstream);
    let mut stream = TcpStream::connect(gw.addr("main")).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut stream)
        .await
        .starts_with("HTTP/1.1 200 OK"));
    // Then silence: the gateway closes the connection without a response.
    assert_eq!(read_to_close(&mut stream).await, "");
    eventually("the keep-alive timeout counted", || {
        timeouts_of(&gw, "client_keepalive") == 1
    })
    .await;
    still_serves(&gw).await;
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed() {
    let upstream = ScriptedUpstream::start(|_| Reply::new(OK)).await;
    let gw = gateway(&upstream);
    let mut stream = TcpStream::connect(gw.addr("main")).await.unwrap();
    assert_eq!(read_to_close(&mut stream).await, "");
    eventually("the header timeout counted", || {
        timeouts_of(&gw, "client_header") == 1
    })
    .await;
    still_serves(&gw).await;
}

#[tokio::test]
async fn a_head_that_stops_halfway_gets_408() {
    let upstream = ScriptedUpstream::start(|_| Reply::new(OK)).await;
    let gw = gateway(&upstream);
    let mut stream = TcpStream::connect(gw.addr("main")).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
    let answer = read_to_close(&mut stream).await;
    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout"),
        "{answer}"
    );
    assert!(
        answer.contains("\"error\":\"request timed out\""),
        "{answer}"
    );
    eventually("the header timeout counted", || {
        timeouts_of(&gw, "client_header") == 1
    })
    .await;
    still_serves(&gw).await;
}

#[tokio::test]
async fn a_body_that_stalls_gets_408_and_its_upstream_connection_is_not_reused() {
    let mut upstream = ScriptedUpstream::start(|_| Reply::new(OK)).await;
    let gw = gateway(&upstream);
    let mut stream = TcpStream::connect(gw.addr("main")).await.unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .unwrap();
    let answer = read_to_close(&mut stream).await;
    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout"),
        "{answer}"
    );
    assert!(answer.contains("connection: close"), "{answer}");
    eventually("the body timeout counted", || {
        timeouts_of(&gw, "client_body") == 1
    })
    .await;
    still_serves(&gw).await;
    // The upstream never saw a whole request but the one after, on a connection of its own.
    let after = upstream.next_request().await;
    assert_eq!(after.target(), "/after");
    assert_eq!(upstream.connections(), 2);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off() {
    // Far more than the socket buffers on both sides hold, so the gateway's writes must wait.
    let big = 64 * 1024 * 1024;
    let mut reply = format!("HTTP/1.1 200 OK\r\ncontent-length: {big}\r\n\r\n").into_bytes();
    reply.resize(reply.len() + big, b'x');
    let upstream = ScriptedUpstream::start(move |_| Reply::new(reply.clone())).await;
    let gw = gateway(&upstream);
    let mut stream = TcpStream::connect(gw.addr("main")).await.unwrap();
    stream
        .write_all(b"GET /big HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await
        .unwrap();
    // Not reading: the gateway gives up on this client and closes its connection.
    eventually("the send timeout counted", || {
        timeouts_of(&gw, "client_send") == 1
    })
    .await;
    let received = read_to_close(&mut stream).await;
    assert!(received.len() < big, "the whole body cannot have been sent");
    still_serves(&gw).await;
}

#[tokio::test]
async fn an_upstream_body_that_stalls_is_cut_off_and_counted() {
    // Ten bytes declared, three sent, and the connection left open.
    let upstream = ScriptedUpstream::start(|request| match request.target() {
        "/stall" => Reply::new(&b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc"[..]),
        _ => Reply::new(OK),
    })
    .await;
    let gw = gateway(&upstream);
    let mut stream = TcpStream::connect(gw.addr("main")).await.unwrap();
    stream
        .write_all(b"GET /stall HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await
        .unwrap();
    let received = read_to_close(&mut stream).await;
    assert!(received.starts_with("HTTP/1.1 200 OK"), "{received}");
    assert!(received.ends_with("\r\n\r\nabc"), "{received}");
    eventually("the upstream read timeout counted", || {
        timeouts_of(&gw, "upstream_read") == 1
    })
    .await;
    still_serves(&gw).await;
}
