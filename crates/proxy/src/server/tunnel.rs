//! Tunnels for upgraded connections (WebSocket and other `Upgrade` protocols): bytes copied both ways.

use std::rc::Rc;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::upstream::io::UpstreamTunnel;
use crate::worker_ctx::WorkerCtx;

/// Joins the client's connection (once the 101 is written) with the upstream's and copies between them
/// until either side closes. The tunnel counts as an open connection so graceful shutdown waits for it.
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
    // A tunnel has no request boundary at which to stop, so during a graceful stop it keeps carrying
    // traffic, as nginx's draining workers do, and is cut at the shutdown deadline, not before it.
    let deadline = async {
        ctx.stop.stopped().await;
        ctx.wait_for_deadline().await;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
        () = deadline => {}
    }
}
