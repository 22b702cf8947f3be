//! The gateway's HTTP/1.1 server on raw sockets: pipelining, HTTP/1.0, HEAD, bodies it does not read,
//! framing it refuses, and how each connection ends; the gateway keeps serving after every case.

use std::time::Duration;

use floodgate_testkit::{raw_exchange, MockUpstream, ScriptedUpstream, TestGateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Safety net for anything that waits on the network; no test relies on it for its outcome.
const SAFETY: Duration = Duration::from_secs(20);

fn gateway(upstream: &str) -> TestGateway {
    TestGateway::start(&format!(
        r#"
workers: 1
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
upstreams:
  - id: backend
    targets: [{{ address: "{upstream}" }}]
routes:
  - {{ id: hello, paths: ["/hello"], respond: {{ status: 200, body: "hi there" }} }}
  - {{ id: all, paths: ["/*"], upstream: backend }}
"#
    ))
}

/// Responses in `text`, split at each status line.
fn statuses(text: &str) -> Vec<&str> {
    text.match_indices("HTTP/1.1 ")
        .map(|(at, _)| &text[at + 9..at + 12])
        .collect()
}

async fn assert_still_serves(gw: &TestGateway) {
    let text = raw_exchange(
        gw.addr("main"),
        b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with("hi there"), "{text}");
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let backend = MockUpstream::http("backend").await;
    let gw = gateway(&backend.address());
    let text = raw_exchange(
        gw.addr("main"),
        b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /first HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /missing-route-is-proxied HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&text), ["200", "200", "200"], "{text}");
    let first = text.find("hi there").unwrap();
    let second = text.find("\"uri\":\"/first\"").unwrap();
    let third = text.find("/missing-route-is-proxied").unwrap();
    assert!(first < second && second < third, "out of order: {text}");
    assert!(
        text.contains("connection: close"),
        "the last answer says it closes: {text}"
    );
}

#[tokio::test]
async fn http10_clients_get_keep_alive_only_when_they_ask() {
    let backend = MockUpstream::http("backend").await;
    let gw = gateway(&backend.address());
    // Without keep-alive: the answer says close, and the gateway closes (raw_exchange reads to EOF).
    let text = raw_exchange(gw.addr("main"), b"GET /hello HTTP/1.0\r\n\r\n").await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("connection: close\r\n"), "{text}");
    assert!(text.contains("content-length: 8\r\n"), "{text}");

    // With keep-alive: two requests on one connection.
    let mut stream = TcpStream::connect(gw.addr("main")).await.unwrap();
    for _ in 0..2 {
        stream
            .write_all(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .await
            .unwrap();
        let text = read_response(&mut stream).await;
        assert!(text.contains("connection: keep-alive\r\n"), "{text}");
        assert!(text.ends_with("hi there"), "{text}");
    }
    assert_still_serves(&gw).await;
}

/// Reads one response with a `content-length` body off `stream`.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(SAFETY, async {
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&out));
            out.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&out);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if body.len() >= length {
                    return;
                }
            }
        }
    })
    .await
    .expect("response did not arrive");
    String::from_utf8_lossy(&out).to_string()
}

#[tokio::test]
async fn head_keeps_the_length_and_sends_no_body() {
    let upstream = ScriptedUpstream::start(|_req: &floodgate_testkit::ScriptedRequest| {
        floodgate_testkit::Reply::new("HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n")
    })
    .await;
    let gw = gateway(&upstream.address());
    let text = raw_exchange(
        gw.addr("main"),
        b"HEAD /file HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("content-length: 1234\r\n"), "{text}");
    assert!(
        text.ends_with("\r\n\r\n"),
        "no body after the head: {text:?}"
    );
    assert_still_serves(&gw).await;
}

#[tokio::test]
async fn body_of_unknown_length_is_chunked_for_http11_and_closes_for_http10() {
    let upstream = ScriptedUpstream::start(|_req: &floodgate_testkit::ScriptedRequest| {
        floodgate_testkit::Reply::new("HTTP/1.1 200 OK\r\n\r\nstreamed to the end").close()
    })
    .await;
    let gw = gateway(&upstream.address());
    let text = raw_exchange(
        gw.addr("main"),
        b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(text.contains("transfer-encoding: chunked\r\n"), "{text}");
    assert!(
        text.ends_with("13\r\nstreamed to the end\r\n0\r\n\r\n"),
        "{text:?}"
    );
    let text = raw_exchange(gw.addr("main"), b"GET /a HTTP/1.0\r\n\r\n").await;
    assert!(!text.contains("transfer-encoding"), "{text}");
    assert!(text.contains("connection: close\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nstreamed to the end"), "{text:?}");
    assert_still_serves(&gw).await;
}

#[tokio::test]
async fn body_the_gateway_does_not_read_still_gets_its_answer() {
    let backend = MockUpstream::http("backend").await;
    let gw = gateway(&backend.address());
    // The direct-response route never reads the 256 KiB body: the gateway answers, then closes
    // without resetting the connection under the client's feet.
    let mut request = b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 262144\r\n\r\n".to_vec();
    request.extend(std::iter::repeat_n(b'x', 262_144));
    let text = raw_exchange(gw.addr("main"), &request).await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("connection: close\r\n"), "{text}");
    assert!(text.ends_with("hi there"), "{text}");
    assert_still_serves(&gw).await;
}

#[tokio::test]
async fn refused_heads_get_json_errors_and_close() {
    let backend = MockUpstream::http("backend").await;
    let gw = gateway(&backend.address());
    for (request, status) in [
        (
            &b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"[..],
            "400",
        ),
        (
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "400",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 12x\r\n\r\n",
            "400",
        ),
        (b"GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n", "400"),
    ] {
        let text = raw_exchange(gw.addr("main"), request).await;
        assert_eq!(
            statuses(&text),
            [status],
            "{:?}: {text}",
            String::from_utf8_lossy(request)
        );
        assert!(
            text.contains("content-type: application/json\r\n"),
            "{text}"
        );
        let id = text
            .lines()
            .find_map(|l| l.strip_prefix("x-request-id: "))
            .expect("x-request-id");
        assert!(text.contains(&format!("\"request_id\":\"{id}\"")), "{text}");
    }
    assert_eq!(backend.requests(), 0);
    assert_still_serves(&gw).await;
}
