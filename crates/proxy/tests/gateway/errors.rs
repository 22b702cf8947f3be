//! Bad input and broken upstreams: each gets its exact status code (with the gateway's JSON error body where
//! the gateway answers itself), and the gateway keeps serving the next request.
//!
//! Routes are told apart by host, not path, so the mock upstream sees its own paths (`/slow/..`, `/reset`)
//! unchanged: `dead.test` goes to a port nothing listens on, `hurried.test` has a 200 ms timeout,
//! `small.test` a 1 KiB body limit and `single.test` one connection per target.

use std::time::Duration;

use bytes::Bytes;
use floodgate_testkit::{free_port, send, send_on, MockUpstream, Proto, TestGateway, TestResponse};
use http::Request;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Safety net for anything that waits on the network; no test relies on it for its outcome.
const SAFETY: Duration = Duration::from_secs(20);

fn config(backend: &MockUpstream) -> String {
    format!(
        r#"
workers: 1
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
limits: {{ max_header_bytes: 4KiB }}
upstreams:
  - id: backend
    targets: [{{ address: "{backend}" }}]
  - id: dead
    targets: [{{ address: "127.0.0.1:{dead}" }}]
  - id: single
    targets: [{{ address: "{backend}" }}]
    max_connections_per_target: 1
routes:
  - {{ id: all, paths: ["/*"], upstream: backend }}
  - {{ id: dead, hosts: ["dead.test"], paths: ["/*"], upstream: dead }}
  - {{ id: hurried, hosts: ["hurried.test"], paths: ["/*"], upstream: backend, timeout: 200ms }}
  - {{ id: small, hosts: ["small.test"], paths: ["/*"], upstream: backend, max_body_bytes: 1KiB }}
  - {{ id: single, hosts: ["single.test"], paths: ["/*"], upstream: single }}
"#,
        backend = backend.address(),
        dead = free_port(),
    )
}

fn get(host: &str, path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// A body of `frames` frames of `size` bytes with no length known up front (chunked on HTTP/1.1).
fn unsized_body(
    frames: usize,
    size: usize,
) -> StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, std::io::Error>>> {
    StreamBody::new(futures_util::stream::iter(
        (0..frames).map(move |_| Ok(Frame::data(Bytes::from(vec![b'b'; size])))),
    ))
}

async fn send_ok<B>(addr: std::net::SocketAddr, proto: Proto, req: Request<B>) -> TestResponse
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::time::timeout(SAFETY, send(addr, proto, req))
        .await
        .expect("request did not finish")
        .expect("request failed")
}

/// Asserts the gateway's own error answer: the status, JSON content type, and a body of exactly
/// `{"error": "...", "request_id": "..."}` whose id is the response's `x-request-id`.
fn assert_json_error(res: &TestResponse, status: u16) {
    assert_eq!(res.status, status, "body: {}", res.text());
    assert_eq!(res.header("content-type"), Some("application/json"));
    let id = res.header("x-request-id").expect("x-request-id on error");
    assert_error_body(&res.json(), id);
}

fn assert_error_body(body: &serde_json::Value, request_id: &str) {
    let object = body.as_object().expect("error body is a JSON object");
    assert_eq!(object.len(), 2, "unexpected fields in {body}");
    let message = body["error"].as_str().expect("error is a string");
    assert!(!message.is_empty(), "empty error message");
    assert_eq!(body["request_id"], request_id, "{body}");
    assert!(!request_id.is_empty());
}

/// The next request on the same gateway is proxied as usual.
async fn assert_still_serves(gw: &TestGateway) {
    let res = send_ok(gw.addr("main"), Proto::H1, get("ok.test", "/after")).await;
    assert_eq!(res.status, 200, "follow-up failed: {}", res.text());
    assert_eq!(res.json()["uri"], "/after");
}

/// A response read off a raw socket.
struct RawResponse {
    status_line: String,
    headers: Vec<(String, String)>,
    body: String,
    /// Everything read, for messages.
    text: String,
}

impl RawResponse {
    fn status(&self) -> u16 {
        self.status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {:?}", self.text))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts a gateway JSON error with this status.
    fn assert_json_error(&self, status: u16) {
        assert_eq!(self.status(), status, "{}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{}",
            self.text
        );
        let body: serde_json::Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text));
        assert_error_body(&body, self.header("x-request-id").expect("x-request-id"));
    }
}

fn parse_raw(text: String) -> RawResponse {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("").to_string();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let body = body.to_string();
    RawResponse {
        status_line,
        headers,
        body,
        text,
    }
}

/// Writes `bytes` while reading until the gateway closes the connection. Write and read errors only end
/// the exchange: a server that refuses a request may close (or reset) before reading all of it, and what
/// it answered before that is what the test checks.
async fn raw(addr: std::net::SocketAddr, bytes: Vec<u8>) -> RawResponse {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let write = tokio::spawn(async move {
        let _ = writer.write_all(&bytes).await;
        // Keep the write half open: a half-close could end the exchange before the answer.
        writer
    });
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let read = async {
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(SAFETY, read).await;
    drop(write.await);
    parse_raw(String::from_utf8_lossy(&out).to_string())
}

#[tokio::test]
async fn upstream_refused_is_502_json_then_serves() {
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&config(&backend));
    for proto in [Proto::H1, Proto::H2c] {
        let res = send_ok(gw.addr("main"), proto, get("dead.test", "/anything")).await;
        assert_json_error(&res, 502);
    }
    assert_still_serves(&gw).await;
}

#[tokio::test]
async fn upstream_reset_is_502_json_then_serves() {
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&config(&backend));
    // Once on a fresh upstream connection, once on a pooled one.
    for _ in 0..2 {
        let res = send_ok(gw.addr("main"), Proto::H1, get("ok.test", "/reset")).await;
        assert_json_error(&res, 502);
        assert_still_serves(&gw).await;
    }
}

#[tokio::test]
async fn no_target_with_capacity_is_503_json_until_connection_frees() {
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&config(&backend));
    let addr = gw.addr("main");
    let slow = tokio::spawn(send_ok(addr, Proto::H1, get("single.test", "/slow/2000")));
    // Wait until the upstream holds the slow request: the single connection is then in use.
    tokio::time::timeout(SAFETY, async {
        while backend.requests() < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("slow request never reached the upstream");
    let res = send_ok(addr, Proto::H1, get("single.test", "/busy")).await;
    assert_json_error(&res, 503);
    assert_eq!(backend.requests(), 1, "503 request reached the upstream");

    let slow = slow.await.expect("slow request task");
    assert_eq!(slow.status, 200, "{}", slow.text());
    assert_eq!(slow.json()["uri"], "/slow/2000");
    for _ in 0..3 {
        let res = send_ok(addr, Proto::H1, get("single.test", "/free-again")).await;
        assert_eq!(res.status, 200, "{}", res.text());
    }
    assert_still_serves(&gw).await;
}

#[tokio::test]
async fn upstream_slower_than_route_timeout_is_504_json_then_serves() {
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&config(&backend));
    let res = send_ok(
        gw.addr("main"),
        Proto::H1,
        get("hurried.test", "/slow/3000"),
    )
    .await;
    assert_json_error(&res, 504);
    // The route itself still works for a quick answer.
    let res = send_ok(gw.addr("main"), Proto::H1, get("hurried.test", "/quick")).await;
    assert_eq!(res.status, 200);
    assert_still_serves(&gw).await;
}

#[tokio::test]
async fn route_timeouts_hold_request_by_request_on_one_connection() {
    // A connection keeps one timer for its requests' deadlines, moved for each: a longer timeout after a
    // shorter one must not fire at the earlier deadline, and a shorter one after a longer must still fire.
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&config(&backend));
    let tcp = TcpStream::connect(gw.addr("main")).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(connection);
    let steps = [
        ("hurried.test", "/quick", 200),
        // The default 60 s timeout: 400 ms is fine, though the previous deadline (200 ms) has passed.
        ("other.test", "/slow/400", 200),
        ("hurried.test", "/slow/3000", 504),
        ("other.test", "/slow/400", 200),
    ];
    for (host, path, status) in steps {
        let res = tokio::time::timeout(SAFETY, sender.send_request(get(host, path)))
            .await
            .expect("request did not finish")
            .expect("request failed");
        assert_eq!(res.status(), status, "{host}{path}");
        res.into_body().collect().await.unwrap();
    }
    assert_still_serves(&gw).await;
}

#[tokio::test]
async fn malformed_requests_are_400_then_serves() {
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&config(&backend));
    let cases: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
        b"NOT A REQUEST LINE\r\n\r\n",
        b"GET /\x01path HTTP/1.1\r\nHost: x\r\n\r\n",
    ];
    for bytes in cases {
        let res = raw(gw.addr("main"), bytes.to_vec()).await;
        assert!(
            res.status_line.starts_with("HTTP/1.1 400"),
            "{:?} got {:?}",
            String::from_utf8_lossy(bytes),
            res.text
        );
    }
    assert_eq!(backend.requests(), 0);
    assert_still_serves(&gw).await;
}

#[tokio::test]
async fn headers_over_limit_are_431_then_serves() {
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&config(&backend));
    let addr = gw.addr("main");
    // Slightly over 4 KiB: within hyper's buffer, so the gateway answers with its JSON.
    let req = Request::get("/big")
        .header("x-big", "a".repeat(4200))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = send_ok(addr, Proto::H1, req).await;
    assert_json_error(&res, 431);
    // Just under the limit still passes.
    let req = Request::get("/fits")
        .header("x-big", "a".repeat(3000))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send_ok(addr, Proto::H1, req).await.status, 200);

    // Far over: hyper refuses before the gateway sees the request; its own 431 is fine.
    let mut request = b"GET /huge HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..100 {
        request.extend_from_slice(format!("x-h{i}: {}\r\n", "a".repeat(1024)).as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    let res = raw(addr, request).await;
    assert_eq!(res.status(), 431, "{}", res.text);
    assert_eq!(
        backend.requests(),
        1,
        "only the fitting request is forwarded"
    );
    assert_still_serves(&gw).await;
}

#[tokio::test]
async fn content_length_with_transfer_encoding_is_400_and_not_forwarded() {
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&config(&backend));
    let requests: [&[u8]; 2] = [
        b"POST /smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\
          Connection: close\r\n\r\n0\r\n\r\n",
        b"POST /smuggle HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\
          Connection: close\r\n\r\n0\r\n\r\n",
    ];
    let mut accepted = Vec::new();
    for (order, bytes) in ["CL then TE", "TE then CL"].into_iter().zip(requests) {
        let res = raw(gw.addr("main"), bytes.to_vec()).await;
        if res.status() != 400 {
            accepted.push(format!("{order}: {}", res.text));
            continue;
        }
        // The gateway's own answer when hyper lets it through; hyper's bare 400 otherwise.
        if res.header("content-type").is_some() {
            res.assert_json_error(400);
        }
    }
    assert!(accepted.is_empty(), "not refused: {accepted:#?}");
    assert_eq!(
        backend.requests(),
        0,
        "ambiguous request reached the upstream"
    );
    assert_still_serves(&gw).await;
}

#[tokio::test]
async fn declared_body_over_route_limit_is_413_without_contacting_upstream() {
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&config(&backend));
    let req = Request::post("/upload")
        .header("host", "small.test")
        .body(Full::new(Bytes::from(vec![b'a'; 2000])))
        .unwrap();
    let res = send_ok(gw.addr("main"), Proto::H1, req).await;
    assert_json_error(&res, 413);
    assert_eq!(backend.connections(), 0, "upstream was contacted");
    // A body within the limit passes on the same route.
    let req = Request::post("/upload")
        .header("host", "small.test")
        .body(Full::new(Bytes::from(vec![b'a'; 1000])))
        .unwrap();
    let res = send_ok(gw.addr("main"), Proto::H1, req).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["body_len"], 1000);
    assert_still_serves(&gw).await;
}

#[tokio::test]
async fn unsized_body_over_route_limit_is_413_then_serves() {
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&config(&backend));
    for proto in [Proto::H1, Proto::H2c] {
        let req = Request::post("/upload")
            .header("host", "small.test")
            .body(unsized_body(10, 500))
            .unwrap();
        let res = send_ok(gw.addr("main"), proto.clone(), req).await;
        assert_json_error(&res, 413);
        // Within the limit, the same kind of body goes through.
        let req = Request::post("/upload")
            .header("host", "small.test")
            .body(unsized_body(2, 500))
            .unwrap();
        let res = send_ok(gw.addr("main"), proto, req).await;
        assert_eq!(res.status, 200, "{}", res.text());
        assert_eq!(res.json()["body_len"], 1000);
    }
    assert_still_serves(&gw).await;
}

#[tokio::test]
async fn dot_segments_are_resolved_before_they_reach_the_upstream() {
    // RFC 3986 §6.2.2.2: `%2e` is `.`, so every spelling of `.` and `..` is resolved, and the upstream
    // never receives a dot segment it could resolve differently.
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&config(&backend));
    for (path, forwarded) in [
        ("/api/../secret", "/secret"),
        ("/api/./secret", "/api/secret"),
        ("/api/..", "/"),
        ("/api/%2e%2e/secret", "/secret"),
        ("/api/%2E%2E/secret", "/secret"),
        ("/api/.%2e/secret", "/secret"),
        ("/api/%2e./secret", "/secret"),
        ("/api/%2e/secret", "/api/secret"),
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let res = raw(gw.addr("main"), request.into_bytes()).await;
        assert_eq!(res.status(), 200, "{path}: {}", res.text);
        let echo: serde_json::Value = serde_json::from_str(&res.body)
            .unwrap_or_else(|e| panic!("{path}: echo is not JSON ({e}): {}", res.text));
        assert_eq!(echo["uri"], forwarded, "{path}");
    }
    assert_still_serves(&gw).await;
}

#[tokio::test]
async fn dot_segments_above_the_root_are_400_json_and_not_forwarded() {
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&config(&backend));
    for path in [
        "/..",
        "/../secret",
        "/api/../../secret",
        "/%2e%2e/secret",
        "/api/.%2e/%2e./x",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let res = raw(gw.addr("main"), request.into_bytes()).await;
        res.assert_json_error(400);
    }
    assert_eq!(
        backend.requests(),
        0,
        "a path above the root reached the upstream"
    );
    assert_still_serves(&gw).await;
}

#[tokio::test]
async fn upstream_trailers_reach_h2c_client() {
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&config(&backend));
    // `te: trailers` says the client takes trailers (gRPC clients always send it); an HTTP/1.1 upstream
    // only sends trailers when asked this way.
    let req = Request::get("/trailers")
        .header("te", "trailers")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = send_ok(gw.addr("main"), Proto::H2c, req).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "ok");
    let trailers = res.trailers.expect("trailers reached the client");
    assert_eq!(
        trailers.get("x-checksum").and_then(|v| v.to_str().ok()),
        Some("abc123")
    );
    assert_still_serves(&gw).await;
}

#[tokio::test]
async fn large_download_streams_every_byte() {
    const TOTAL: usize = 50_000_000;
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&config(&backend));
    let download = async {
        let res = send_on(
            gw.addr("main"),
            Proto::H1,
            get("ok.test", &format!("/stream/{TOTAL}")),
        )
        .await
        .expect("request failed");
        assert_eq!(res.status(), 200);
        let mut body = res.into_body();
        let (mut bytes, mut frames) = (0usize, 0usize);
        while let Some(frame) = body.frame().await {
            let frame = frame.expect("body frame");
            if let Some(data) = frame.data_ref() {
                bytes += data.len();
                frames += 1;
            }
        }
        (bytes, frames)
    };
    let (bytes, frames) = tokio::time::timeout(Duration::from_secs(120), download)
        .await
        .expect("download did not finish");
    assert_eq!(bytes, TOTAL);
    // Streamed in pieces, not collected by the gateway into one.
    assert!(frames > 1, "body arrived in {frames} frame(s)");
    assert_still_serves(&gw).await;
}
