//! An HTTP/1.1 client that goes away while its request waits for the upstream: the request is
//! abandoned at once (its upstream connection closed, its `limit-conn` slot freed, a 499 logged), and
//! a client that is still there keeps every byte it pipelined.
//!
//! The upstream here answers every request at once except `/hold` (never answered; it reports when
//! the gateway closes that connection) and `/wait` (answered when the test says so).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use floodgate_config::{UpstreamProtocol, UpstreamTlsConfig};
use floodgate_testkit::{
    eventually, free_port, raw_exchange, read_to_close, MockUpstream, OneRoute, TestCerts,
    TestGateway,
};
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio_rustls::client::TlsStream;

/// Safety net for anything that waits on the network; no test relies on it for its outcome.
const SAFETY: Duration = Duration::from_secs(20);

/// What the upstream saw.
#[derive(Debug, PartialEq)]
enum Seen {
    /// A request for this target arrived (and, unless held, was answered).
    Request(String),
    /// The connection a `/hold` request came on was closed by the gateway.
    HeldClosed,
}

struct Upstream {
    addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
    release: std::sync::Arc<Notify>,
}

impl Upstream {
    async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (tx, seen) = mpsc::unbounded_channel();
        let release = std::sync::Arc::new(Notify::new());
        let released = release.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, tx.clone(), released.clone()));
            }
        });
        Upstream {
            addr,
            seen,
            release,
        }
    }

    async fn next(&mut self) -> Seen {
        tokio::time::timeout(SAFETY, self.seen.recv())
            .await
            .expect("the upstream saw nothing more")
            .expect("upstream stopped")
    }
}

async fn serve(
    mut stream: TcpStream,
    seen: mpsc::UnboundedSender<Seen>,
    release: std::sync::Arc<Notify>,
) {
    let mut buf = Vec::new();
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            let mut chunk = [0; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.drain(..end + 4);
        let target = head.split(' ').nth(1).unwrap_or("").to_string();
        let _ = seen.send(Seen::Request(target.clone()));
        match target.as_str() {
            "/hold" => {
                let mut rest = [0; 1024];
                while matches!(stream.read(&mut rest).await, Ok(n) if n > 0) {}
                let _ = seen.send(Seen::HeldClosed);
                return;
            }
            "/wait" => release.notified().await,
            _ => {}
        }
        let body = format!("served {target}");
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// How client A leaves.
#[derive(Debug, Clone, Copy)]
enum Leave {
    /// SO_LINGER 0, then close: a reset.
    Reset,
    /// An ordinary close.
    Close,
    /// Shuts down its sending side only, and keeps reading.
    HalfClose,
}

fn log_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A plain listener (`main`) and a TLS one (`secure`), both routing `/*` under `limit-conn: { max: 1 }`.
fn config(upstream: &Upstream, certs: &TestCerts, log: &Path) -> String {
    format!(
        r#"
workers: 1
listeners:
  - {{ name: main, address: "127.0.0.1:0" }}
  - name: secure
    address: "127.0.0.1:{port}"
    tls: {{ certificates: [{{ cert: "{cert}", key: "{key}" }}] }}
admin: {{ address: "127.0.0.1:0" }}
access_log: {{ path: {log:?} }}
upstreams:
  - id: backend
    targets: [{{ address: "{upstream}" }}]
routes:
  - {{ id: all, paths: ["/*"], upstream: backend, plugins: {{ limit-conn: {{ max: 1 }} }} }}
"#,
        // Only one listener may take port 0.
        port = free_port(),
        cert = certs.cert(),
        key = certs.key(),
        log = log.display().to_string(),
        upstream = upstream.addr,
    )
}

/// A TLS connection to `addr` that accepts any certificate and offers only HTTP/1.1.
async fn tls_connect(addr: SocketAddr) -> TlsStream<TcpStream> {
    let skip_verify = UpstreamTlsConfig {
        insecure_skip_verify: true,
        ..Default::default()
    };
    let config = floodgate_proxy::upstream_tls_config(&skip_verify, Some(UpstreamProtocol::Http1))
        .expect("client config");
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("a.test".to_string()).expect("name");
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .expect("handshake")
}

/// Sends `/hold` as client A on `listener` and leaves as `leave` says once the upstream has it.
async fn hold_and_leave(addr: SocketAddr, tls: bool, leave: Leave, upstream: &mut Upstream) {
    const HOLD: &[u8] = b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n";
    if tls {
        let mut a = tls_connect(addr).await;
        a.write_all(HOLD).await.expect("send");
        a.flush().await.expect("flush");
        assert_eq!(
            upstream.next().await,
            Seen::Request("/hold".into()),
            "{leave:?}"
        );
        let (tcp, _) = a.get_ref();
        match leave {
            Leave::Reset => {
                socket2::SockRef::from(tcp)
                    .set_linger(Some(Duration::ZERO))
                    .expect("SO_LINGER");
                drop(a);
            }
            // Without close_notify, as a client that simply goes away does.
            Leave::Close => drop(a),
            Leave::HalfClose => {
                socket2::SockRef::from(tcp)
                    .shutdown(std::net::Shutdown::Write)
                    .expect("shutdown");
                let mut rest = Vec::new();
                let _ = tokio::time::timeout(SAFETY, a.read_to_end(&mut rest))
                    .await
                    .expect("the gateway kept the half-closed connection");
                assert!(rest.is_empty(), "{leave:?}: {rest:?}");
            }
        }
        return;
    }
    let mut a = TcpStream::connect(addr).await.expect("connect");
    a.write_all(HOLD).await.expect("send");
    assert_eq!(
        upstream.next().await,
        Seen::Request("/hold".into()),
        "{leave:?}"
    );
    match leave {
        Leave::Reset => {
            socket2::SockRef::from(&a)
                .set_linger(Some(Duration::ZERO))
                .expect("SO_LINGER");
            drop(a);
        }
        Leave::Close => drop(a),
        Leave::HalfClose => {
            a.shutdown().await.expect("shutdown");
            // Gone for the gateway: it closes without an answer.
            assert_eq!(read_to_close(&mut a).await, "", "{leave:?}");
        }
    }
}

#[tokio::test]
async fn a_client_gone_while_waiting_frees_its_slot_and_its_upstream_connection() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("access.log");
    let certs = TestCerts::new(&["a.test"]);
    let mut upstream = Upstream::start().await;
    let gw = TestGateway::start(&config(&upstream, &certs, &log));
    let addr = gw.addr("main");

    let mut round = 0;
    for tls in [false, true] {
        for leave in [Leave::Reset, Leave::Close, Leave::HalfClose] {
            let listener = if tls { gw.addr("secure") } else { addr };
            hold_and_leave(listener, tls, leave, &mut upstream).await;
            // The gateway dropped the upstream exchange: that connection is closed, not pooled.
            assert_eq!(
                upstream.next().await,
                Seen::HeldClosed,
                "tls {tls} {leave:?}"
            );

            // B on the same route gets the slot A held: 200, not limit-conn's 503.
            let text = tokio::time::timeout(
                SAFETY,
                raw_exchange(
                    addr,
                    b"GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                ),
            )
            .await
            .expect("B's exchange did not finish");
            assert!(
                text.starts_with("HTTP/1.1 200 "),
                "tls {tls} {leave:?}: {text}"
            );
            assert!(
                text.ends_with("served /next"),
                "tls {tls} {leave:?}: {text}"
            );
            assert_eq!(upstream.next().await, Seen::Request("/next".into()));

            // A's request is logged as nginx logs it: 499, on its route.
            round += 1;
            eventually("A's access log line", || log_lines(&log).len() >= 2 * round).await;
            let lines = log_lines(&log);
            let held: Vec<_> = lines.iter().filter(|l| l["path"] == "/hold").collect();
            assert_eq!(held.len(), round, "{lines:#?}");
            assert_eq!(
                held[round - 1]["status"],
                499,
                "tls {tls} {leave:?}: {lines:#?}"
            );
            assert_eq!(held[round - 1]["route"], "all", "tls {tls} {leave:?}");
        }
    }
}

/// HTTP/2 needs no watching: a stream the client resets is dropped, and its slot with it.
#[tokio::test]
async fn an_http2_stream_reset_while_waiting_frees_its_slot_and_the_connection_serves_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = TestCerts::new(&["a.test"]);
    let mut upstream = Upstream::start().await;
    let gw = TestGateway::start(&config(&upstream, &certs, &dir.path().join("access.log")));
    let tcp = TcpStream::connect(gw.addr("main")).await.expect("connect");
    let (mut client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(connection);
    let request = |path: &str| http::Request::get(path).body(()).expect("request");

    let (held, _) = client.send_request(request("/hold"), true).expect("send");
    assert_eq!(upstream.next().await, Seen::Request("/hold".into()));
    // Dropping the response resets the stream (RST_STREAM CANCEL).
    drop(held);
    assert_eq!(upstream.next().await, Seen::HeldClosed);

    let mut client = client.ready().await.expect("ready");
    let (next, _) = client.send_request(request("/next"), true).expect("send");
    let response = tokio::time::timeout(SAFETY, next)
        .await
        .expect("no answer")
        .expect("response");
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut text = Vec::new();
    while let Some(chunk) = body.data().await {
        text.extend_from_slice(&chunk.expect("body"));
    }
    assert_eq!(text, b"served /next");
    assert_eq!(upstream.next().await, Seen::Request("/next".into()));
    // The reset request is logged as the HTTP/1.1 ones are: 499, on its route.
    let log = dir.path().join("access.log");
    eventually("the reset request's access log line", || {
        log_lines(&log).iter().any(|l| l["path"] == "/hold")
    })
    .await;
    let held: Vec<_> = log_lines(&log)
        .into_iter()
        .filter(|l| l["path"] == "/hold")
        .collect();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0]["status"], 499);
    assert_eq!(held[0]["route"], "all");
}

#[tokio::test]
async fn a_request_pipelined_while_the_first_waits_is_answered_after_it() {
    let mut upstream = Upstream::start().await;
    let gw = OneRoute::to(upstream.addr.to_string())
        .route("plugins: { limit-conn: { max: 1 } }")
        .start();
    let addr = gw.addr("main");

    let mut client = TcpStream::connect(addr).await.expect("connect");
    client
        .write_all(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send");
    assert_eq!(upstream.next().await, Seen::Request("/wait".into()));
    // Sent while the first request waits for its answer; the connection stays open for it.
    client
        .write_all(b"GET /second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    upstream.release.notify_one();
    let text = tokio::time::timeout(SAFETY, read_to_close(&mut client))
        .await
        .expect("the answers did not finish");
    let first = text.find("served /wait").expect("first answer");
    let second = text.find("served /second").expect("second answer");
    assert!(first < second, "{text}");
    assert_eq!(text.matches("HTTP/1.1 200 ").count(), 2, "{text}");
    assert_eq!(upstream.next().await, Seen::Request("/second".into()));
}

#[tokio::test]
async fn requests_pipelined_before_a_half_close_are_all_answered() {
    let mut upstream = Upstream::start().await;
    let gw = OneRoute::to(upstream.addr.to_string())
        .route("plugins: { limit-conn: { max: 1 } }")
        .start();
    let mut client = TcpStream::connect(gw.addr("main")).await.expect("connect");
    // As `printf '...' | nc -N` does: both requests at once, then the sending side shut. The client is
    // done sending, not gone: it waits for its answers.
    client
        .write_all(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send");
    client.shutdown().await.expect("shutdown");
    assert_eq!(upstream.next().await, Seen::Request("/wait".into()));
    upstream.release.notify_one();
    let text = tokio::time::timeout(SAFETY, read_to_close(&mut client))
        .await
        .expect("the answers did not finish");
    let first = text.find("served /wait").expect("first answer");
    let second = text.find("served /second").expect("second answer");
    assert!(first < second, "{text}");
    assert_eq!(text.matches("HTTP/1.1 200 ").count(), 2, "{text}");
}

/// A request with a body, forwarded to an HTTP/2 upstream whose connection task reads the body: once
/// it has, the client is watched, and its going frees the slot.
#[tokio::test]
async fn a_client_gone_after_its_body_went_to_an_http2_upstream_frees_its_slot() {
    let backend = MockUpstream::http("h2-backend").await;
    let gw = TestGateway::start(&format!(
        r#"
workers: 1
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
upstreams:
  - {{ id: backend, protocol: http2, targets: [{{ address: "{backend}" }}] }}
routes:
  - {{ id: all, paths: ["/*"], upstream: backend, plugins: {{ limit-conn: {{ max: 1 }} }} }}
"#,
        backend = backend.address()
    ));
    let addr = gw.addr("main");
    let mut a = TcpStream::connect(addr).await.expect("connect");
    // Answered in a minute: far past the test's safety net, so only the client's going frees the slot.
    a.write_all(b"POST /slow/60000 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .expect("send");
    eventually("the upstream has A's request", || backend.requests() == 1).await;
    drop(a);
    let next = b"GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let served = tokio::time::timeout(SAFETY, async {
        loop {
            let text = raw_exchange(addr, next).await;
            if text.starts_with("HTTP/1.1 200 ") {
                return text;
            }
            // 503 while A's slot is still held: the gateway has not noticed yet.
            assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("A's slot was never freed");
    assert!(served.contains("/next\""), "{served}");
}
