//! [`paced`]: steady HTTP/1.1 traffic at a fixed rate on kept-alive connections, for tests that
//! count what a limit lets through.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::{Instant, MissedTickBehavior};

/// How many connections [`paced`] spreads its requests over.
const CONNECTIONS: u32 = 8;

/// One request's outcome: when it was sent (from the start of the run) and its status (`None`:
/// the connection failed; the next request opens a new one).
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    /// When, from the start.
    pub at: Duration,
    /// The status, or `None` when no response came.
    pub status: Option<StatusCode>,
}

/// Sends `GET path` to `address` at `per_second` for `duration`, spread evenly over a few kept-alive
/// connections; returns every request's outcome.
pub async fn paced(
    address: SocketAddr,
    path: &str,
    per_second: u32,
    duration: Duration,
) -> Vec<Sent> {
    let start = Instant::now();
    let per_connection = Duration::from_secs(1) * CONNECTIONS / per_second.max(1);
    let mut workers = Vec::new();
    for n in 0..CONNECTIONS {
        let path = path.to_string();
        // Staggered, so the connections' requests interleave evenly.
        let first = start + per_connection * n / CONNECTIONS;
        workers.push(tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(first, per_connection);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
            let mut sender = None;
            let mut sent = Vec::new();
            loop {
                let tick = ticker.tick().await;
                if tick >= start + duration {
                    return sent;
                }
                let at = tick - start;
                if sender.is_none() {
                    sender = connect(address).await;
                }
                let status = match sender.as_mut() {
                    Some(s) => exchange(s, address, &path).await,
                    None => None,
                };
                if status.is_none() {
                    sender = None;
                }
                sent.push(Sent { at, status });
            }
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.expect("load worker"));
    }
    all.sort_by_key(|s| s.at);
    all
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(address: SocketAddr) -> Option<Sender> {
    let tcp = TcpStream::connect(address).await.ok()?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .ok()?;
    tokio::spawn(connection);
    Some(sender)
}

async fn exchange(sender: &mut Sender, address: SocketAddr, path: &str) -> Option<StatusCode> {
    sender.ready().await.ok()?;
    let request = Request::get(path)
        .header(header::HOST, address.to_string())
        .body(Empty::new())
        .ok()?;
    let response = sender.send_request(request).await.ok()?;
    let status = response.status();
    response.into_body().collect().await.ok()?;
    Some(status)
}
