//! HTTP/1.1 on cleartext connections, parked outside hyper while idle.
//!
//! hyper keeps a read buffer, a header write buffer and its connection state for as long as a connection
//! lives: about 16 KiB for a keep-alive connection that sends nothing. nginx frees its buffers between
//! requests, and so does this: a connection with no request for [`PARK_AFTER`] is taken back from hyper
//! (which hands over the socket and any bytes it read but did not use) and waits for its next bytes with
//! nothing but the socket; then a fresh hyper connection resumes it. Busy connections never park, so the
//! request path pays only a counter per request and a timer tick per [`PARK_AFTER`].
//!
//! Taking the socket back means hyper cannot hand the client's side of an upgrade to the tunnel itself:
//! after it has written the 101 it stops, and this loop joins the socket with the upstream's side.

use std::future::poll_fn;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::server::framing::FramingInspector;
use crate::server::handle::{handle, ConnInfo};
use crate::server::rewind::Rewind;
use crate::server::tunnel::tunnel_io;
use crate::worker::WorkerCtx;

/// How long a connection may go without a request before it is parked.
pub const PARK_AFTER: Duration = Duration::from_secs(1);

/// What ended one hyper connection over the socket.
enum Ended {
    /// The client closed, asked to close, or the gateway is shutting down.
    Closed,
    /// Idle: hyper gave the socket back.
    Parked,
}

/// Serves HTTP/1.1 on `stream` until it closes.
pub async fn serve(ctx: Rc<WorkerCtx>, stream: TcpStream, info: ConnInfo, max_header_bytes: usize) {
    let info = Rc::new(info);
    let mut stream = stream;
    let mut unread = Bytes::new();
    loop {
        // Boxed: hyper's connection and everything that serves requests live in this allocation only
        // while the connection is active, so a parked connection's task is small.
        let active = Box::pin(serve_until_idle(
            &ctx,
            &info,
            stream,
            unread,
            max_header_bytes,
        ));
        match active.await {
            Phase::Closed => return,
            Phase::Upgraded(client, upstream) => {
                tunnel_io(ctx.clone(), client, upstream).await;
                return;
            }
            Phase::Parked(socket, rest) => {
                (stream, unread) = (socket, rest);
            }
        }
        tracing::trace!(unread = unread.len(), "connection parked");
        if unread.is_empty() {
            let mut shutdown = ctx.shutdown_signal();
            tokio::select! {
                ready = stream.readable() => {
                    if ready.is_err() {
                        return;
                    }
                }
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }
}

/// hyper's HTTP/1.1 server as floodgate configures it, for cleartext and TLS connections alike.
pub fn builder(max_header_bytes: usize) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        // Headers between the limit and hyper's buffer get our 431 with a JSON body; beyond the buffer
        // hyper answers 431 itself.
        .max_buf_size((max_header_bytes + 16 * 1024).max(8192))
        .max_headers(1024);
    builder
}

/// How an active phase of a connection ended.
enum Phase {
    /// Nothing more to do with the connection.
    Closed,
    /// Idle: the socket and the bytes read from it but not used yet.
    Parked(TcpStream, Bytes),
    /// A 101 was sent: the client's side, to join with the upstream's.
    Upgraded(Rewind<TcpStream>, crate::server::tunnel::UpstreamTunnel),
}

/// Serves requests on `stream` with a hyper connection until it closes, upgrades or goes idle.
async fn serve_until_idle(
    ctx: &Rc<WorkerCtx>,
    info: &Rc<ConnInfo>,
    stream: TcpStream,
    unread: Bytes,
    max_header_bytes: usize,
) -> Phase {
    let io = TokioIo::new(Rewind::new(
        FramingInspector::new(stream, info.ambiguous_framing.clone()),
        unread,
    ));
    let service_ctx = ctx.clone();
    let service_info = info.clone();
    // hyper keeps the service's future in a box it allocates per connection and reuses; boxing it per
    // request instead means a connection between requests holds no request state.
    let service =
        service_fn(move |req| Box::pin(handle(service_ctx.clone(), service_info.clone(), req)));
    let mut connection = builder(max_header_bytes).serve_connection(io, service);
    let ended = drive(ctx, info, &mut connection).await;
    let upgrade = info.pending_upgrade.borrow_mut().take();
    if matches!(ended, Ended::Closed) && upgrade.is_none() {
        return Phase::Closed;
    }
    let parts = connection.into_parts();
    let (inspector, rewound) = parts.io.into_inner().into_inner();
    let stream = inspector.into_inner();
    let unread = join(rewound, parts.read_buf);
    match upgrade {
        Some(upstream) => Phase::Upgraded(Rewind::new(stream, unread), upstream),
        None => Phase::Parked(stream, unread),
    }
}

/// Polls `connection` until hyper is done with it: the client closed (or asked to), shutdown began,
/// an upgrade was accepted, or it sat idle for [`PARK_AFTER`] and was asked to stop.
async fn drive<S>(
    ctx: &WorkerCtx,
    info: &ConnInfo,
    connection: &mut http1::Connection<TokioIo<Rewind<FramingInspector<TcpStream>>>, S>,
) -> Ended
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = crate::body::ResponseBody>,
    S: Unpin,
    S::Future: Unpin,
{
    let mut shutdown = ctx.shutdown_signal();
    let mut seen = info.requests.get();
    let mut parking = false;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + PARK_AFTER, PARK_AFTER);
    loop {
        tokio::select! {
            result = poll_fn(|cx| connection.poll_without_shutdown(cx)) => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                    return Ended::Closed;
                }
                // A request that arrived after parking began was answered with keep-alive off (hyper
                // had started reading it), so the client expects the connection to close.
                return if parking && info.requests.get() == seen {
                    Ended::Parked
                } else {
                    Ended::Closed
                };
            }
            _ = tick.tick(), if !parking => {
                let requests = info.requests.get();
                if requests == seen && info.in_flight.get() == 0 {
                    // Idle for a whole tick: hyper stops at once when it is between requests and keeps
                    // any bytes it read in the parts it hands back; when it is halfway through reading
                    // a request head, it answers that request with keep-alive off instead.
                    parking = true;
                    std::pin::Pin::new(&mut *connection).graceful_shutdown();
                }
                seen = requests;
            }
            _ = shutdown.wait_for(|stop| *stop), if !parking => {
                // Finish the response in flight, then close instead of waiting for another request.
                std::pin::Pin::new(&mut *connection).graceful_shutdown();
                let result = poll_fn(|cx| connection.poll_without_shutdown(cx)).await;
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return Ended::Closed;
            }
        }
    }
}

/// Bytes still to be read: what the rewind had left, then what hyper had read past its last message.
fn join(first: Bytes, second: Bytes) -> Bytes {
    match (first.is_empty(), second.is_empty()) {
        (true, _) => second,
        (_, true) => first,
        _ => {
            let mut joined = BytesMut::with_capacity(first.len() + second.len());
            joined.extend_from_slice(&first);
            joined.extend_from_slice(&second);
            joined.freeze()
        }
    }
}
