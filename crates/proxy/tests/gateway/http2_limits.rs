//! The HTTP/2 server's limits, driven by a real HTTP/2 client (the `h2` crate, which lets a test do what
//! a well-behaved client would not) and, where the exact frames matter, by raw frames: streams past the
//! limit are refused, an oversized header list gets 431, a rapid-reset flood or a stream of
//! protocol-error resets gets GOAWAY ENHANCE_YOUR_CALM while other clients are served, a peer that stops
//! answering PINGs is closed, and so is an idle connection.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use floodgate_testkit::{eventually, send, MockUpstream, Proto, TestGateway};
use h2::client::{Connection, SendRequest};
use h2::Reason;
use http::{Method, Request, StatusCode};
use http_body_util::Empty;
use tokio::net::TcpStream;

/// A safety net for a hung test, never a timing assertion.
const SAFETY: Duration = Duration::from_secs(10);

fn gateway(backend: &MockUpstream, http2: &str) -> TestGateway {
    TestGateway::start(&format!(
        r#"
workers: 1
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
http2: {http2}
upstreams: [{{ id: backend, targets: [{{ address: "{backend}" }}] }}]
routes:
  - {{ id: api, paths: ["/api/*"], upstream: backend }}
  - {{ id: ping, paths: ["/ping"], respond: {{ status: 200, body: "pong" }} }}
"#,
        backend = backend.address(),
    ))
}

/// An HTTP/2 connection whose connection task the caller has not started yet: until it does, nothing is
/// read from the gateway, so the client does not yet know the gateway's SETTINGS.
async fn connect(addr: SocketAddr) -> (SendRequest<Bytes>, Connection<TcpStream, Bytes>) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    h2::client::handshake(tcp).await.expect("h2 handshake")
}

fn request(addr: SocketAddr, method: Method, path: &str) -> Request<()> {
    Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .body(())
        .expect("request")
}

async fn ping_on(client: &mut SendRequest<Bytes>, addr: SocketAddr) -> StatusCode {
    let mut ready = client.clone().ready().await.expect("connection ready");
    let (response, _) = ready
        .send_request(request(addr, Method::GET, "/ping"), true)
        .expect("send");
    let response = tokio::time::timeout(SAFETY, response)
        .await
        .expect("in time")
        .expect("response");
    *client = ready;
    response.status()
}

/// `floodgate_connection_timeouts_total` of `kind`.
fn timeouts(gw: &TestGateway, kind: &str) -> u64 {
    let prefix = format!("floodgate_connection_timeouts_total{{kind=\"{kind}\"}} ");
    gw.metrics
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(&prefix)?.parse().ok())
        .unwrap_or(0)
}

/// A request on a new h2c connection, through hyper's client.
async fn ping_new_connection(addr: SocketAddr) -> StatusCode {
    let req = Request::get("/ping").body(Empty::<Bytes>::new()).unwrap();
    send(addr, Proto::H2c, req).await.expect("ping").status
}

#[tokio::test]
async fn streams_past_the_concurrency_limit_are_refused() {
    let backend = MockUpstream::http("backend").await;
    let gw = gateway(&backend, "{ max_concurrent_streams: 2 }");
    let addr = gw.addr("main");
    let (mut client, connection) = connect(addr).await;
    // Two streams held open (their request bodies are not finished), and a third opened before the
    // client has read the gateway's limit: the client sends all three.
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(
            client
                .send_request(request(addr, Method::POST, "/api/held"), false)
                .expect("send"),
        );
    }
    let (third, _) = client
        .send_request(request(addr, Method::GET, "/ping"), true)
        .expect("send");
    tokio::spawn(connection);

    let refused = tokio::time::timeout(SAFETY, third).await.expect("in time");
    let error = refused.expect_err("the third stream is refused");
    assert_eq!(error.reason(), Some(Reason::REFUSED_STREAM), "{error}");

    // The streams within the limit are served, and once they end a new stream on the same connection is.
    for (response, mut body) in held {
        body.send_data(Bytes::from_static(b"hi"), true)
            .expect("body");
        let response = tokio::time::timeout(SAFETY, response)
            .await
            .expect("in time")
            .expect("response");
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(ping_on(&mut client, addr).await, StatusCode::OK);
}

#[tokio::test]
async fn an_oversized_header_list_is_431_and_the_connection_still_serves() {
    let backend = MockUpstream::http("backend").await;
    let gw = gateway(&backend, "{ max_header_list_size: 4KiB }");
    let addr = gw.addr("main");
    let (mut client, connection) = connect(addr).await;
    tokio::spawn(connection);

    let mut big = request(addr, Method::GET, "/api/big");
    big.headers_mut()
        .insert("x-big", "a".repeat(8 * 1024).parse().unwrap());
    let (response, _) = client.send_request(big, true).expect("send");
    let response = tokio::time::timeout(SAFETY, response)
        .await
        .expect("in time")
        .expect("a response, not a reset");
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    assert_eq!(backend.requests(), 0, "nothing reached the upstream");

    assert_eq!(ping_on(&mut client, addr).await, StatusCode::OK);
    assert_eq!(ping_new_connection(addr).await, StatusCode::OK);
}

#[tokio::test]
async fn rapid_reset_closes_the_attacking_connection_and_others_are_served() {
    let backend = MockUpstream::http("backend").await;
    let gw = gateway(&backend, "{}");
    let addr = gw.addr("main");
    let (mut attacker, connection) = connect(addr).await;
    let connection = tokio::spawn(connection);

    // Another client, on its own connections, is served while the flood goes on.
    let bystander = tokio::spawn(async move {
        for _ in 0..20 {
            assert_eq!(ping_new_connection(addr).await, StatusCode::OK);
        }
    });
    // Open a stream and reset it at once, thousands of times: each costs the server a stream set-up
    // and the client almost nothing (CVE-2023-44487).
    let mut sent = 0;
    for _ in 0..10_000 {
        let Ok(mut ready) = attacker.clone().ready().await else {
            break;
        };
        let Ok((_, mut stream)) = ready.send_request(request(addr, Method::GET, "/ping"), false)
        else {
            break;
        };
        stream.send_reset(Reason::CANCEL);
        attacker = ready;
        sent += 1;
        // Let the connection task write the frames out, and hear the gateway's answer.
        tokio::task::yield_now().await;
    }
    let ended = tokio::time::timeout(SAFETY, connection)
        .await
        .expect("the attacking connection is closed")
        .expect("connection task");
    let error = ended.expect_err("closed by the gateway, with an error");
    // The gateway sends GOAWAY ENHANCE_YOUR_CALM and closes; a client still writing at that moment may
    // see the closed socket before it reads the GOAWAY (the exact frame is checked below, in
    // `rapid_reset_gets_goaway_enhance_your_calm`).
    assert!(
        error.reason() == Some(Reason::ENHANCE_YOUR_CALM) || error.is_io(),
        "{error}"
    );
    assert!(
        sent < 10_000,
        "the gateway stopped the flood ({sent} streams)"
    );
    tokio::time::timeout(SAFETY, bystander)
        .await
        .expect("in time")
        .expect("the other client was served throughout");

    assert_eq!(ping_new_connection(addr).await, StatusCode::OK);
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    out.extend_from_slice(&len[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// The frames' types and payloads read until the gateway closes the connection (or the safety net).
async fn frames_until_closed(stream: &mut TcpStream) -> Vec<(u8, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let mut bytes = Vec::new();
    let read = tokio::time::timeout(SAFETY, stream.read_to_end(&mut bytes)).await;
    assert!(read.is_ok(), "the gateway closes the connection");
    let mut frames = Vec::new();
    let mut at = 0;
    while bytes.len() >= at + 9 {
        let len = usize::from(bytes[at]) << 16
            | usize::from(bytes[at + 1]) << 8
            | usize::from(bytes[at + 2]);
        let Some(payload) = bytes.get(at + 9..at + 9 + len) else {
            break;
        };
        frames.push((bytes[at + 3], payload.to_vec()));
        at += 9 + len;
    }
    frames
}

#[tokio::test]
async fn rapid_reset_gets_goaway_enhance_your_calm() {
    use tokio::io::AsyncWriteExt;
    let backend = MockUpstream::http("backend").await;
    let gw = gateway(&backend, "{ max_pending_accept_reset_streams: 20 }");
    let addr = gw.addr("main");
    // One write holding the preface and 500 streams, each opened (`GET /ping`, HPACK: :method GET,
    // :scheme http, :path /, :authority "a" without indexing) and reset at once: the gateway reads them
    // all before it could accept any.
    let mut flood = PREFACE.to_vec();
    frame(&mut flood, SETTINGS, 0, 0, &[]);
    let block = [0x82, 0x86, 0x84, 0x01, 0x01, b'a'];
    for i in 0..500u32 {
        let id = 2 * i + 1;
        // END_STREAM | END_HEADERS
        frame(&mut flood, HEADERS, 0x5, id, &block);
        frame(
            &mut flood,
            RST_STREAM,
            0,
            id,
            &u32::from(Reason::CANCEL).to_be_bytes(),
        );
    }
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(&flood).await.expect("write");
    let frames = frames_until_closed(&mut stream).await;
    assert_eq!(goaway_reason(&frames), Reason::ENHANCE_YOUR_CALM);
    assert_eq!(ping_new_connection(addr).await, StatusCode::OK);
}

/// The error code of the GOAWAY among `frames`.
fn goaway_reason(frames: &[(u8, Vec<u8>)]) -> Reason {
    let goaway = frames
        .iter()
        .find(|(kind, _)| *kind == GOAWAY)
        .expect("a GOAWAY before the close");
    Reason::from(u32::from_be_bytes(goaway.1[4..8].try_into().unwrap()))
}

#[tokio::test]
async fn streams_reset_for_protocol_errors_past_the_budget_get_goaway() {
    use tokio::io::AsyncWriteExt;
    let backend = MockUpstream::http("backend").await;
    let gw = gateway(&backend, "{ max_local_error_reset_streams: 5 }");
    let addr = gw.addr("main");
    // Each stream is opened with a `content-length` that is not a number, a malformed request (RFC 9113
    // §8.1.1) that the gateway answers by resetting the stream: a peer that makes the server reset
    // streams for it, the "MadeYouReset" pattern (CVE-2025-8671).
    let mut flood = PREFACE.to_vec();
    frame(&mut flood, SETTINGS, 0, 0, &[]);
    // As in the rapid-reset test, plus `content-length: x` (static name index 28, without indexing).
    let block = [0x82, 0x86, 0x84, 0x01, 0x01, b'a', 0x0f, 0x0d, 0x01, b'x'];
    for i in 0..50u32 {
        // END_STREAM | END_HEADERS
        frame(&mut flood, HEADERS, 0x5, 2 * i + 1, &block);
    }
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(&flood).await.expect("write");
    let frames = frames_until_closed(&mut stream).await;
    assert_eq!(goaway_reason(&frames), Reason::ENHANCE_YOUR_CALM);
    assert_eq!(ping_new_connection(addr).await, StatusCode::OK);
}

#[tokio::test]
async fn a_client_that_does_not_answer_keepalive_pings_is_closed() {
    use tokio::io::AsyncWriteExt;
    let backend = MockUpstream::http("backend").await;
    let gw = gateway(
        &backend,
        "{ keepalive_interval: 200ms, keepalive_timeout: 200ms }",
    );
    let addr = gw.addr("main");
    // A peer that says hello and then never answers anything, as a vanished client would.
    let mut hello = PREFACE.to_vec();
    frame(&mut hello, SETTINGS, 0, 0, &[]);
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(&hello).await.expect("write");
    let frames = frames_until_closed(&mut stream).await;
    assert!(
        frames.iter().any(|(kind, _)| *kind == PING),
        "the gateway pinged before closing: {:?}",
        frames.iter().map(|(kind, _)| kind).collect::<Vec<_>>()
    );
    // Counted as the connection ends, which the client may see first.
    eventually("the keep-alive timeout counted", || {
        timeouts(&gw, "http2_keepalive") == 1
    })
    .await;
    assert_eq!(ping_new_connection(addr).await, StatusCode::OK);
}

#[tokio::test]
async fn an_idle_connection_is_closed_and_a_busy_one_is_not() {
    let backend = MockUpstream::http("backend").await;
    let gw = gateway(&backend, "{ idle_timeout: 300ms }");
    let addr = gw.addr("main");

    // A stream open for longer than the idle timeout keeps its connection.
    let (mut client, connection) = connect(addr).await;
    let connection = tokio::spawn(connection);
    let (response, mut body) = client
        .send_request(request(addr, Method::POST, "/api/held"), false)
        .expect("send");
    tokio::time::sleep(Duration::from_millis(900)).await;
    body.send_data(Bytes::from_static(b"late"), true)
        .expect("the connection is still open");
    let response = tokio::time::timeout(SAFETY, response)
        .await
        .expect("in time")
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    drop(response);

    // Once nothing is open, the gateway sends GOAWAY and closes the connection.
    let ended = tokio::time::timeout(SAFETY, connection)
        .await
        .expect("the idle connection is closed")
        .expect("connection task");
    assert!(ended.is_ok(), "a graceful close: {ended:?}");
    eventually("the idle timeout counted", || {
        timeouts(&gw, "http2_idle") == 1
    })
    .await;
    assert_eq!(ping_new_connection(addr).await, StatusCode::OK);
}
