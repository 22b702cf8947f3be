//! Tunnels for upgraded connections (WebSocket and other `Upgrade` protocols): bytes copied both ways.

use std::rc::Rc;

use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::worker::WorkerCtx;

/// Joins the client's and the upstream's upgraded connections and copies between them until either side
/// closes. The tunnel counts as an open connection so graceful shutdown waits for it.
pub async fn tunnel(ctx: Rc<WorkerCtx>, client: OnUpgrade, upstream: OnUpgrade) {
    let _open = ctx.track_connection();
    let (client, upstream) = tokio::join!(client, upstream);
    let (Ok(client), Ok(upstream)) = (client, upstream) else {
        tracing::debug!("upgrade failed on one side; tunnel not opened");
        return;
    };
    copy_until_closed(&ctx, TokioIo::new(client), upstream).await;
}

/// Like [`tunnel`], for a client connection the caller already holds (see `http1.rs`).
pub async fn tunnel_io<C>(ctx: Rc<WorkerCtx>, client: C, upstream: OnUpgrade)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    match upstream.await {
        Ok(upstream) => copy_until_closed(&ctx, client, upstream).await,
        Err(e) => tracing::debug!(error = %e, "upstream upgrade failed; tunnel not opened"),
    }
}

async fn copy_until_closed<C>(ctx: &WorkerCtx, mut client: C, upstream: Upgraded)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let mut upstream = TokioIo::new(upstream);
    let mut shutdown = ctx.shutdown_signal();
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
        _ = shutdown.wait_for(|stop| *stop) => {
            // Tunnels carry no requests to finish, so they end at the shutdown deadline, not before it.
            ctx.wait_for_deadline().await;
        }
    }
}
