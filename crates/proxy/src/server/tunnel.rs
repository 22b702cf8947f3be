//! Tunnels for upgraded connections (WebSocket and other `Upgrade` protocols): bytes copied both ways.

use std::rc::Rc;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::server::rewind::Rewind;
use crate::upstream::io::UpstreamIo;
use crate::worker::WorkerCtx;

/// The upstream's side of a tunnel: its connection after the 101, with any bytes it sent past the
/// response head put back in front.
pub type UpstreamTunnel = Rewind<UpstreamIo>;

/// Joins the client's upgraded connection (once hyper has written the 101) with the upstream's and copies
/// between them until either side closes. The tunnel counts as an open connection so graceful shutdown
/// waits for it.
pub async fn tunnel(ctx: Rc<WorkerCtx>, client: OnUpgrade, upstream: UpstreamTunnel) {
    let _open = ctx.track_connection();
    match client.await {
        Ok(client) => copy_until_closed(&ctx, TokioIo::new(client), upstream).await,
        Err(e) => tracing::debug!(error = %e, "client upgrade failed; tunnel not opened"),
    }
}

/// Like [`tunnel`], for a client connection the caller already holds (see `http1.rs`).
pub async fn tunnel_io<C>(ctx: Rc<WorkerCtx>, client: C, upstream: UpstreamTunnel)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    copy_until_closed(&ctx, client, upstream).await;
}

async fn copy_until_closed<C>(ctx: &WorkerCtx, mut client: C, mut upstream: UpstreamTunnel)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let mut shutdown = ctx.shutdown_signal();
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
        _ = shutdown.wait_for(|stop| *stop) => {
            // Tunnels carry no requests to finish, so they end at the shutdown deadline, not before it.
            ctx.wait_for_deadline().await;
        }
    }
}
