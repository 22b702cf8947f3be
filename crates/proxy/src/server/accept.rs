//! Accepting connections on a worker's socket and serving HTTP on each.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use floodgate_config::Http2Config;
use floodgate_observe::{Rejection, TlsFailure, TlsHandshakeMetrics};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use crate::client_conn::ConnInfo;
use crate::client_conn::ListenerRules;
use crate::overload::connections::{ConnectionCount, OpenConnection};
use crate::proxy_protocol;
use crate::server::h1;
use crate::server::h2::serve_h2;
use crate::server::io::ClientIo;
use crate::worker_ctx::WorkerCtx;

/// Slow or stalled TLS handshakes are cut off after this, so they cannot hold sockets forever.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts until the task is aborted (listener removed on reload, or shutdown). `connections` counts
/// the listener's open connections across workers.
pub async fn accept_loop(
    ctx: Rc<WorkerCtx>,
    name: Arc<str>,
    listener: TcpListener,
    connections: Arc<ConnectionCount>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => match admit(&ctx, &name, &connections) {
                Some(counted) => {
                    tokio::task::spawn_local(serve_connection(
                        ctx.clone(),
                        name.clone(),
                        stream,
                        peer,
                        counted,
                    ));
                }
                None => refuse(stream),
            },
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(listener = %name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The counts a connection is part of while it is open: the gateway's and its listener's.
struct Counted {
    _gateway: OpenConnection,
    _listener: OpenConnection,
}

/// Counts a new connection against `limits.max_connections` and its listener's `max_connections`, or
/// counts its refusal by the limit it hit.
fn admit(ctx: &WorkerCtx, name: &str, listener_count: &Arc<ConnectionCount>) -> Option<Counted> {
    let snapshot = ctx.shared.snapshot.load();
    let listener_limit = snapshot
        .listeners
        .get(name)
        .map_or(0, |l| l.max_connections);
    let metrics = &ctx.shared.metrics;
    let Some(gateway) = ctx.shared.connections.try_open(snapshot.max_connections) else {
        metrics.rejected(ctx.index, Rejection::MaxConnections);
        return None;
    };
    let Some(listener) = listener_count.try_open(listener_limit) else {
        metrics.rejected(ctx.index, Rejection::ListenerMaxConnections);
        return None;
    };
    Some(Counted {
        _gateway: gateway,
        _listener: listener,
    })
}

/// Closes a connection past a limit at once, with a reset rather than a FIN: nothing was read from it,
/// and a reset leaves no TIME_WAIT socket behind on the gateway, which a flood would otherwise fill.
fn refuse(stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

async fn serve_connection(
    ctx: Rc<WorkerCtx>,
    name: Arc<str>,
    mut stream: TcpStream,
    peer: SocketAddr,
    _counted: Counted,
) {
    let _open = ctx.track_connection();
    let metrics = ctx.shared.metrics.clone();
    metrics.connection_opened(ctx.index);
    let _ = stream.set_nodelay(true);
    let (tls, rules, max_header_bytes, header_timeout, http2, proxy_protocol) = {
        let snapshot = ctx.shared.snapshot.load();
        let listener = snapshot.listeners.get(&*name);
        let tls = listener.and_then(|l| l.tls.clone());
        // A listener missing from the snapshot is being removed; its last connections get the defaults.
        let rules = listener.map_or_else(ListenerRules::default, |l| ListenerRules {
            path: l.path_rules,
            underscores: l.underscores,
        });
        (
            tls,
            rules,
            snapshot.max_header_bytes,
            snapshot.client_timeouts.header,
            snapshot.http2.clone(),
            listener.is_some_and(|l| l.proxy_protocol),
        )
    };
    // The PROXY header and the first request's first bytes share one `client_header` deadline. From
    // here on `peer` is the client: behind a load balancer, the one its header names.
    let deadline = tokio::time::Instant::now() + header_timeout;
    let peer = if proxy_protocol {
        match proxy_protocol::client_address(&ctx, &mut stream, peer, deadline).await {
            Some(client) => client,
            None => return metrics.connection_closed(ctx.index),
        }
    } else {
        peer
    };
    match tls {
        None => match sniff_cleartext(&stream, deadline).await {
            Ok(Protocol::Http1) => {
                let info = ConnInfo::new(peer, false, rules);
                h1::serve(ctx.clone(), ClientIo::Plain(stream), info, max_header_bytes).await;
            }
            Ok(Protocol::Http2) => {
                let info = ConnInfo::new(peer, false, rules);
                // Boxed: hyper's HTTP/2 connection state is large, and inline it would make every
                // HTTP/1.1 connection's task as large too.
                Box::pin(serve_h2(ctx.clone(), TokioIo::new(stream), info, &http2)).await;
            }
            Err(e) => {
                if e.kind() == std::io::ErrorKind::TimedOut {
                    metrics
                        .timeouts
                        .record(ctx.index, floodgate_observe::TimeoutKind::ClientHeader);
                }
                tracing::debug!(%peer, error = %e, "connection closed before a request");
            }
        },
        // Boxed: the handshake and the TLS connection's state are large, and inline they would make
        // every plain connection's task as large too.
        Some(acceptor) => {
            Box::pin(serve_tls(
                ctx.clone(),
                acceptor,
                stream,
                peer,
                rules,
                max_header_bytes,
                &http2,
            ))
            .await
        }
    }
    metrics.connection_closed(ctx.index);
}

/// Runs the TLS handshake, then serves the protocol ALPN chose (HTTP/1.1 when the client offered none).
async fn serve_tls(
    ctx: Rc<WorkerCtx>,
    (acceptor, handshakes): (tokio_rustls::TlsAcceptor, Arc<TlsHandshakeMetrics>),
    stream: TcpStream,
    peer: SocketAddr,
    rules: ListenerRules,
    max_header_bytes: usize,
    http2: &Http2Config,
) {
    let tls_stream =
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls_stream)) => {
                handshakes.completed();
                tls_stream
            }
            Ok(Err(e)) => {
                handshakes.failed(super::tls_failure::classify(&e));
                return tracing::debug!(%peer, error = %e, "TLS handshake failed");
            }
            Err(_) => {
                handshakes.failed(TlsFailure::Timeout);
                return tracing::debug!(%peer, "TLS handshake timed out");
            }
        };
    let info = ConnInfo::new(peer, true, rules);
    if tls_stream.get_ref().1.alpn_protocol() == Some(b"h2") {
        Box::pin(serve_h2(ctx, TokioIo::new(tls_stream), info, http2)).await;
    } else {
        let io = ClientIo::Tls(Box::new(tls_stream));
        h1::serve(ctx, io, info, max_header_bytes).await;
    }
}

/// The HTTP version a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Tells HTTP/2 with prior knowledge (h2c) from HTTP/1.1 by peeking at the connection's first bytes,
/// leaving them in the socket for the server that takes the connection.
///
/// Peeking instead of reading them into a buffer and replaying it (as hyper-util's `auto` server does)
/// hands either server an untouched socket, with no replay wrapper on every read.
///
/// A new connection may stay silent before its first bytes as long as a request head may take: until
/// `deadline`, `timeouts.client_header` after it was accepted.
async fn sniff_cleartext(
    stream: &TcpStream,
    deadline: tokio::time::Instant,
) -> std::io::Result<Protocol> {
    let mut first = [0u8; 24];
    loop {
        let n = tokio::time::timeout_at(deadline, stream.peek(&mut first))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no request"))??;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if first[..n] != H2_PREFACE[..n] {
            return Ok(Protocol::Http1);
        }
        if n == H2_PREFACE.len() {
            return Ok(Protocol::Http2);
        }
        // Only a prefix of the HTTP/2 preface so far (rare: it comes in one segment in practice). peek
        // returns at once while bytes are waiting, so pause instead of spinning until the rest arrives.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::{sniff_cleartext, Protocol, H2_PREFACE};

    /// Sends `parts` one write at a time (each after the previous was sniffed as undecided) and returns
    /// what the server side sniffed.
    async fn sniff(parts: &[&[u8]]) -> std::io::Result<Protocol> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let parts: Vec<Vec<u8>> = parts.iter().map(|p| p.to_vec()).collect();
        let writer = tokio::spawn(async move {
            for part in parts {
                client.write_all(&part).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            // Closing after the last part: what was sent stays readable, and an empty send is EOF.
        });
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        let result = sniff_cleartext(&server, deadline).await;
        writer.await.unwrap();
        result
    }

    #[tokio::test]
    async fn http2_preface_is_http2_even_when_split() {
        assert_eq!(sniff(&[H2_PREFACE]).await.unwrap(), Protocol::Http2);
        assert_eq!(
            sniff(&[&H2_PREFACE[..10], &H2_PREFACE[10..]])
                .await
                .unwrap(),
            Protocol::Http2
        );
    }

    #[tokio::test]
    async fn anything_else_is_http1() {
        assert_eq!(
            sniff(&[b"GET / HTTP/1.1\r\n\r\n"]).await.unwrap(),
            Protocol::Http1
        );
        assert_eq!(
            sniff(&[b"P", b"OST / HTTP/1.1\r\n"]).await.unwrap(),
            Protocol::Http1
        );
        assert_eq!(
            sniff(&[b"PRI * HTTP/1.1\r\n"]).await.unwrap(),
            Protocol::Http1
        );
    }

    #[tokio::test]
    async fn a_connection_closed_before_any_byte_is_an_error() {
        assert!(sniff(&[]).await.is_err());
    }
}
