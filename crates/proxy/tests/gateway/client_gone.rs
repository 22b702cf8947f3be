//! An HTTP/1.1 client that goes away while its request waits for the upstream: the request is
//! abandoned at once (its upstream connection closed, its `limit-conn` slot freed, a 499 logged), and
//! a client that is still there keeps every byte it pipelined.
//!
//! The upstream here answers every request at once except `/hold` (never answered; it reports when
//! the gateway closes that connection) and `/wait` (answered when the test says so).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use floodgate_testkit::{eventually, raw_exchange, read_to_close, OneRoute};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};

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

#[tokio::test]
async fn a_client_gone_while_waiting_frees_its_slot_and_its_upstream_connection() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("access.log");
    let mut upstream = Upstream::start().await;
    let gw = OneRoute::to(upstream.addr.to_string())
        .route("plugins: { limit-conn: { max: 1 } }")
        .top(&format!(
            "access_log: {{ path: {:?} }}",
            log.display().to_string()
        ))
        .start();
    let addr = gw.addr("main");

    for (round, leave) in [Leave::Reset, Leave::Close, Leave::HalfClose]
        .into_iter()
        .enumerate()
    {
        let mut a = TcpStream::connect(addr).await.expect("connect");
        a.write_all(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("send");
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
                let rest = tokio::time::timeout(SAFETY, read_to_close(&mut a))
                    .await
                    .expect("the gateway kept the half-closed connection");
                assert_eq!(rest, "", "{leave:?}");
            }
        }
        // The gateway dropped the upstream exchange: that connection is closed, not pooled.
        assert_eq!(upstream.next().await, Seen::HeldClosed, "{leave:?}");

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
        assert!(text.starts_with("HTTP/1.1 200 "), "{leave:?}: {text}");
        assert!(text.ends_with("served /next"), "{leave:?}: {text}");
        assert_eq!(
            upstream.next().await,
            Seen::Request("/next".into()),
            "{leave:?}"
        );

        // A's request is logged as nginx logs it: 499, on its route.
        eventually("A's access log line", || {
            log_lines(&log).len() >= 2 * (round + 1)
        })
        .await;
        let lines = log_lines(&log);
        let held: Vec<_> = lines.iter().filter(|l| l["path"] == "/hold").collect();
        assert_eq!(held.len(), round + 1, "{lines:#?}");
        assert_eq!(held[round]["status"], 499, "{leave:?}: {lines:#?}");
        assert_eq!(held[round]["route"], "all", "{leave:?}");
    }
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
