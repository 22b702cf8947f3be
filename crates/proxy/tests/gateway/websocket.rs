//! WebSocket through the gateway: the HTTP/1.1 upgrade is forwarded, then frames flow both ways through the
//! tunnel, on the plain and on the TLS listener, and the gateway keeps serving ordinary requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use floodgate_testkit::{free_port, send, MockUpstream, Proto, TestCerts, TestGateway};
use futures_util::{SinkExt, StreamExt};
use http::Request;
use http_body_util::Full;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{client_async, WebSocketStream};

/// A safety net for a hung test, never a timing assertion.
const SAFETY: Duration = Duration::from_secs(10);

/// A gateway with a plain and a TLS listener (certificate for `a.test`): `/ws` goes to `ws`, `/api/*` to
/// `backend`, `/down/*` to an upstream that accepts no connections.
fn gateway(ws: &str, backend: &MockUpstream, certs: &TestCerts) -> TestGateway {
    TestGateway::start(&format!(
        r#"
workers: 2
listeners:
  - {{ name: main, address: "127.0.0.1:0" }}
  - name: secure
    address: "127.0.0.1:{secure}"
    tls:
      certificates: [{{ cert: "{cert}", key: "{key}" }}]
admin: {{ address: "127.0.0.1:0" }}
upstreams:
  - id: ws
    targets: [{{ address: "{ws}" }}]
  - id: backend
    targets: [{{ address: "{backend}" }}]
  - id: down
    targets: [{{ address: "127.0.0.1:{down}" }}]
routes:
  - {{ id: ws, paths: ["/ws"], upstream: ws }}
  - {{ id: api, paths: ["/api/*"], upstream: backend }}
  - {{ id: down, paths: ["/down/*"], upstream: down }}
"#,
        backend = backend.address(),
        cert = certs.cert(),
        key = certs.key(),
        // Two listeners on port 0 collide in the gateway (see tls.rs,
        // `tls_and_plain_listeners_on_port_zero_are_both_served`), so the TLS one gets a fixed free port.
        secure = free_port(),
        down = free_port(),
    ))
}

async fn open<S>(url: &str, stream: S) -> WebSocketStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (ws, response) = tokio::time::timeout(SAFETY, client_async(url, stream))
        .await
        .expect("safety timeout")
        .expect("WebSocket handshake through the gateway");
    assert_eq!(response.status(), 101);
    ws
}

async fn open_plain(addr: SocketAddr, path: &str) -> WebSocketStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    open(&format!("ws://{addr}{path}"), tcp).await
}

/// The next message, skipping nothing: a ping or anything else unexpected fails the comparison.
async fn next<S>(ws: &mut WebSocketStream<S>) -> Message
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tokio::time::timeout(SAFETY, ws.next())
        .await
        .expect("safety timeout")
        .expect("stream ended")
        .expect("message")
}

async fn assert_http_works(addr: SocketAddr) {
    let req = Request::get("/api/after")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = send(addr, Proto::H1, req).await.unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["uri"], "/api/after");
}

#[tokio::test]
async fn text_and_binary_messages_echo_through_the_tunnel() {
    let upstream = MockUpstream::http("echo").await;
    let certs = TestCerts::new(&["a.test"]);
    let gw = gateway(&upstream.address(), &upstream, &certs);
    let addr = gw.addr("main");
    let mut ws = open_plain(addr, "/ws").await;

    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text("hello"));
    let binary: Vec<u8> = (0..=255).collect();
    ws.send(Message::binary(binary.clone())).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::binary(binary));

    // Many messages in flight at once come back whole and in order.
    for i in 0..50 {
        ws.feed(Message::text(format!("message {i}")))
            .await
            .unwrap();
    }
    ws.flush().await.unwrap();
    for i in 0..50 {
        assert_eq!(next(&mut ws).await, Message::text(format!("message {i}")));
    }

    // An ordinary request meanwhile, while the tunnel is open.
    assert_http_works(addr).await;

    // Closing: the mock echo server stops at our Close and drops its connection without a Close of its
    // own, so the end of the stream (not an echoed Close) is what proves our Close crossed the tunnel.
    ws.close(None).await.unwrap();
    let end = tokio::time::timeout(SAFETY, ws.next())
        .await
        .expect("the upstream's end reaches the client");
    assert!(
        matches!(
            end,
            None | Some(Ok(Message::Close(_)))
                | Some(Err(WsError::ConnectionClosed))
                | Some(Err(WsError::Protocol(
                    ProtocolError::ResetWithoutClosingHandshake
                )))
        ),
        "unexpected end of the stream: {end:?}"
    );
    assert_http_works(addr).await;
}

#[tokio::test]
async fn large_message_crosses_the_tunnel_intact() {
    let upstream = MockUpstream::http("echo").await;
    let certs = TestCerts::new(&["a.test"]);
    let gw = gateway(&upstream.address(), &upstream, &certs);
    let mut ws = open_plain(gw.addr("main"), "/ws").await;
    // Larger than any socket buffer, so both copy directions must make progress together.
    let big: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    ws.send(Message::binary(big.clone())).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::binary(big));
    ws.send(Message::text("small after big")).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text("small after big"));
}

/// A WebSocket server that answers a Close with a Close and reports the Close it received.
async fn closing_echo_server() -> (SocketAddr, oneshot::Receiver<Option<CloseFrame>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (report, received) = oneshot::channel();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        while let Some(Ok(message)) = ws.next().await {
            // tungstenite queues the Close reply; reading on flushes it and ends the stream.
            if let Message::Close(frame) = message {
                let _ = report.send(frame);
                while let Some(Ok(_)) = ws.next().await {}
                break;
            }
            if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
                break;
            }
        }
    });
    (addr, received)
}

#[tokio::test]
async fn closing_handshake_passes_through_both_ways() {
    let (upstream, received) = closing_echo_server().await;
    let certs = TestCerts::new(&["a.test"]);
    let backend = MockUpstream::http("backend").await;
    let gw = gateway(&upstream.to_string(), &backend, &certs);
    let addr = gw.addr("main");
    let mut ws = open_plain(addr, "/ws").await;
    ws.send(Message::text("ping?")).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text("ping?"));

    let bye = CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    };
    ws.close(Some(bye.clone())).await.unwrap();
    // The upstream's Close comes back, then the stream ends cleanly.
    assert_eq!(next(&mut ws).await, Message::Close(Some(bye.clone())));
    let end = tokio::time::timeout(SAFETY, ws.next())
        .await
        .expect("safety timeout");
    assert!(end.is_none(), "stream did not end cleanly: {end:?}");
    let seen = tokio::time::timeout(SAFETY, received)
        .await
        .expect("safety timeout")
        .expect("upstream saw a Close");
    assert_eq!(seen, Some(bye));
    assert_http_works(addr).await;
}

#[tokio::test]
async fn websocket_works_through_the_tls_listener() {
    let upstream = MockUpstream::http("echo").await;
    let certs = TestCerts::new(&["a.test"]);
    let gw = gateway(&upstream.address(), &upstream, &certs);
    let addr = gw.addr("secure");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certs.cert_der.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    // WebSocket upgrades are HTTP/1.1 (RFC 6455); RFC 8441 over h2 is not what this client speaks.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("a.test").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));

    let mut ws = open("wss://a.test/ws", tls).await;
    ws.send(Message::text("over tls")).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text("over tls"));
    ws.send(Message::binary(vec![9u8; 70_000])).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::binary(vec![9u8; 70_000]));
    ws.close(None).await.unwrap();

    let req = Request::get("/api/after")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let proto = Proto::Tls {
        h2: false,
        server_name: "a.test".to_string(),
        root: certs.cert_der.clone(),
    };
    let res = send(addr, proto, req).await.unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["headers"]["x-forwarded-proto"], "https");
}

#[tokio::test]
async fn upgrade_refused_by_upstream_returns_its_answer() {
    let upstream = MockUpstream::http("echo").await;
    let certs = TestCerts::new(&["a.test"]);
    let gw = gateway(&upstream.address(), &upstream, &certs);
    let addr = gw.addr("main");
    // The echo path ignores the upgrade and answers 200: no tunnel, the client gets that answer.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let err = client_async(format!("ws://{addr}/api/not-ws"), tcp)
        .await
        .expect_err("no 101 from the upstream");
    match err {
        WsError::Http(response) => assert_eq!(response.status(), 200),
        other => panic!("expected the upstream's HTTP answer, got {other:?}"),
    }
    assert_http_works(addr).await;
}

#[tokio::test]
async fn upgrade_to_a_dead_upstream_is_502_and_gateway_keeps_serving() {
    let upstream = MockUpstream::http("echo").await;
    let certs = TestCerts::new(&["a.test"]);
    let gw = gateway(&upstream.address(), &upstream, &certs);
    let addr = gw.addr("main");
    let tcp = TcpStream::connect(addr).await.unwrap();
    let err = client_async(format!("ws://{addr}/down/ws"), tcp)
        .await
        .expect_err("the upstream is down");
    match err {
        WsError::Http(response) => {
            assert_eq!(response.status(), 502);
            let body = response.body().as_deref().unwrap_or_default();
            let json: serde_json::Value = serde_json::from_slice(body).unwrap();
            assert_eq!(json["error"], "upstream connection failed");
        }
        other => panic!("expected a 502 answer, got {other:?}"),
    }
    let mut ws = open_plain(addr, "/ws").await;
    ws.send(Message::text("still here")).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text("still here"));
    assert_http_works(addr).await;
}

#[tokio::test]
async fn an_open_tunnel_keeps_carrying_messages_during_a_graceful_stop_and_closes_at_its_deadline()
{
    let upstream = MockUpstream::http("echo").await;
    let certs = TestCerts::new(&["a.test"]);
    let gw = gateway(&upstream.address(), &upstream, &certs);
    let addr = gw.addr("main");
    let mut ws = open_plain(addr, "/ws").await;
    ws.send(Message::text("before")).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text("before"));

    // A grace period long enough for the exchange below; the tunnel must not end before it.
    let stopped = tokio::task::spawn_blocking(move || gw.shutdown(Duration::from_secs(5)));
    // The stop has begun once the gateway accepts no new connection (the sockets close as it starts).
    tokio::time::timeout(SAFETY, async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the gateway stops accepting");

    for i in 0..3 {
        ws.send(Message::text(format!("during the drain {i}")))
            .await
            .unwrap();
        assert_eq!(
            next(&mut ws).await,
            Message::text(format!("during the drain {i}"))
        );
    }

    // At the deadline the tunnel is cut and the gateway finishes stopping.
    let end = tokio::time::timeout(SAFETY, ws.next())
        .await
        .expect("the tunnel is closed at the deadline");
    assert!(
        matches!(
            end,
            None | Some(Err(WsError::ConnectionClosed))
                | Some(Err(WsError::Protocol(
                    ProtocolError::ResetWithoutClosingHandshake
                )))
                | Some(Err(WsError::Io(_)))
        ),
        "unexpected end of the tunnel: {end:?}"
    );
    tokio::time::timeout(SAFETY, stopped)
        .await
        .expect("the gateway stops at the deadline")
        .unwrap();
}
