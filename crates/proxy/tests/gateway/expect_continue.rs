//! `Expect: 100-continue` (RFC 9110 §10.1.1) on a raw socket: the client holds its body back until the
//! gateway says `100 Continue`, and a body the route would refuse is refused without asking for it.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use floodgate_testkit::{send, MockUpstream, Proto, TestGateway};
use http::Request;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Safety net for reads that wait on the gateway; no test relies on it for its outcome.
const SAFETY: Duration = Duration::from_secs(20);

fn config(backend: &MockUpstream) -> String {
    format!(
        r#"
workers: 1
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
upstreams:
  - id: backend
    targets: [{{ address: "{}" }}]
routes:
  - {{ id: all, paths: ["/*"], upstream: backend }}
  - {{ id: small, hosts: ["small.test"], paths: ["/*"], upstream: backend, max_body_bytes: 1KiB }}
"#,
        backend.address()
    )
}

fn head(host: &str, len: usize) -> String {
    format!(
        "POST /upload HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len}\r\n\
         Expect: 100-continue\r\nConnection: close\r\n\r\n"
    )
}

/// Reads until `done(read so far)` holds or the connection ends; returns what was read.
async fn read_until(stream: &mut TcpStream, out: &mut Vec<u8>, done: impl Fn(&[u8]) -> bool) {
    let mut buf = [0u8; 8192];
    let read = async {
        while !done(out) {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(SAFETY, read).await;
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn assert_still_serves(addr: SocketAddr) {
    let req = Request::get("/after")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = send(addr, Proto::H1, req).await.expect("follow-up request");
    assert_eq!(res.status, 200, "{}", res.text());
}

#[tokio::test]
async fn expect_continue_gets_100_then_body_is_forwarded() {
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&config(&backend));
    let body = vec![b'z'; 700];
    let mut stream = TcpStream::connect(gw.addr("main")).await.expect("connect");
    stream
        .write_all(head("x", body.len()).as_bytes())
        .await
        .expect("write head");
    let mut out = Vec::new();
    read_until(&mut stream, &mut out, |read| contains(read, b"\r\n\r\n")).await;
    let interim = String::from_utf8_lossy(&out).to_string();
    assert!(
        interim.starts_with("HTTP/1.1 100 Continue\r\n"),
        "expected 100 Continue before sending the body, got {interim:?}"
    );

    stream.write_all(&body).await.expect("write body");
    out.clear();
    read_until(&mut stream, &mut out, |_| false).await;
    let text = String::from_utf8_lossy(&out).to_string();
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    let (_, json) = text.split_once("\r\n\r\n").expect("response head");
    let echo: serde_json::Value = serde_json::from_str(json).expect("echo JSON");
    assert_eq!(echo["body_len"], body.len());
    // The expectation is hop by hop: the gateway answered it, the upstream must not wait for its own.
    assert!(echo["headers"].get("expect").is_none(), "{echo}");
    assert_still_serves(gw.addr("main")).await;
}

#[tokio::test]
async fn expect_continue_over_limit_is_413_without_100() {
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&config(&backend));
    let mut stream = TcpStream::connect(gw.addr("main")).await.expect("connect");
    stream
        .write_all(head("small.test", 5000).as_bytes())
        .await
        .expect("write head");
    // The body is never sent; the gateway must answer from the headers alone and close.
    let mut out = Vec::new();
    read_until(&mut stream, &mut out, |_| false).await;
    let text = String::from_utf8_lossy(&out).to_string();
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert!(
        !text.contains("100 Continue"),
        "asked for a refused body: {text}"
    );
    let lower = text.to_ascii_lowercase();
    assert!(lower.contains("content-type: application/json"), "{text}");
    let (_, json) = text.split_once("\r\n\r\n").expect("response head");
    let body: serde_json::Value = serde_json::from_str(json).expect("error JSON");
    assert!(body["error"].is_string(), "{body}");
    assert!(body["request_id"].is_string(), "{body}");
    assert_eq!(backend.connections(), 0, "upstream was contacted");
    assert_still_serves(gw.addr("main")).await;
}
