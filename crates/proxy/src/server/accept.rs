//! Accepting connections on a worker's socket and serving HTTP on each.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use hyper::rt::{Read, Write};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};

use crate::executor::LocalExec;
use crate::server::framing::FramingInspector;
use crate::server::handle::{handle, ConnInfo};
use crate::worker::WorkerCtx;

/// Slow or stalled TLS handshakes are cut off after this, so they cannot hold sockets forever.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts until the task is aborted (listener removed on reload, or shutdown).
pub async fn accept_loop(ctx: Rc<WorkerCtx>, name: Arc<str>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::task::spawn_local(serve_connection(ctx.clone(), name.clone(), stream, peer));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(listener = %name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_connection(ctx: Rc<WorkerCtx>, name: Arc<str>, stream: TcpStream, peer: SocketAddr) {
    let _open = ctx.track_connection();
    let metrics = ctx.shared.metrics.clone();
    metrics.connection_opened(ctx.index);
    let _ = stream.set_nodelay(true);
    let (tls, max_header_bytes) = {
        let snapshot = ctx.shared.snapshot.load();
        let tls = snapshot.listeners.get(&*name).and_then(|l| l.tls.clone());
        (tls, snapshot.max_header_bytes)
    };
    match tls {
        None => {
            let (info, io) = inspected(peer, false, stream);
            serve_http(ctx.clone(), io, info, max_header_bytes).await;
        }
        Some(acceptor) => {
            // Boxed so plain connections do not carry the handshake's state for their whole life.
            let handshake = Box::pin(tokio::time::timeout(
                TLS_HANDSHAKE_TIMEOUT,
                acceptor.accept(stream),
            ));
            match handshake.await {
                Ok(Ok(tls_stream)) => {
                    let (info, io) = inspected(peer, true, tls_stream);
                    // Boxed: the TLS connection state is large, and inline it would make every plain
                    // connection's task as large too.
                    Box::pin(serve_http(ctx.clone(), io, info, max_header_bytes)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
    metrics.connection_closed(ctx.index);
}

fn inspected<I>(
    peer: SocketAddr,
    tls: bool,
    stream: I,
) -> (ConnInfo, TokioIo<FramingInspector<I>>) {
    let ambiguous = Arc::new(AtomicBool::new(false));
    let info = ConnInfo {
        client: peer,
        tls,
        ambiguous_framing: ambiguous.clone(),
    };
    (info, TokioIo::new(FramingInspector::new(stream, ambiguous)))
}

async fn serve_http<I>(ctx: Rc<WorkerCtx>, io: I, info: ConnInfo, max_header_bytes: usize)
where
    I: Read + Write + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(LocalExec);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        // Headers between the limit and hyper's buffer get our 431 with a JSON body; beyond the buffer hyper
        // answers 431 itself.
        .max_buf_size((max_header_bytes + 16 * 1024).max(8192))
        .max_headers(1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(max_header_bytes).unwrap_or(u32::MAX));
    let info = Rc::new(info);
    let service_ctx = ctx.clone();
    // hyper keeps the service's future in a box it allocates per connection and reuses; boxing it per
    // request instead means an idle keep-alive connection does not hold a request's worth of state.
    let service = service_fn(move |req| Box::pin(handle(service_ctx.clone(), info.clone(), req)));
    let connection = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(connection);
    let mut shutdown = ctx.shutdown_signal();
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = shutdown.wait_for(|stop| *stop) => {
            // Finish the requests in flight, refuse new ones (HTTP/1.1: close after the current response;
            // HTTP/2: GOAWAY).
            connection.as_mut().graceful_shutdown();
            let _ = connection.as_mut().await;
        }
    }
}
