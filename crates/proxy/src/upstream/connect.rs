//! Opening a connection to a target: TCP, optional TLS with ALPN, then the HTTP/1.1 or HTTP/2 handshake.

use std::rc::Rc;
use std::sync::Arc;

use floodgate_config::UpstreamProtocol;
use hyper::client::conn::{http1, http2};
use hyper::rt::{Read, Write};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tracing::debug;

use super::pool::{Conn, WorkerPools};
use crate::error::ProxyError;
use crate::executor::LocalExec;
use crate::snapshot::{Target, UpstreamRuntime};

/// Connects to `target` within the upstream's connect timeout and performs the HTTP handshake. The task
/// driving the connection is counted in `pools` while it lives.
pub async fn connect(
    upstream: &UpstreamRuntime,
    target: &Target,
    pools: &Rc<WorkerPools>,
    worker: usize,
) -> Result<Conn, ProxyError> {
    let attempt = async {
        let tcp = TcpStream::connect(&*target.address).await.map_err(|e| {
            debug!(upstream = %upstream.id, target = %target.address, error = %e, "connect failed");
            ProxyError::UpstreamConnect
        })?;
        let _ = tcp.set_nodelay(true);
        match &upstream.tls {
            None => {
                let h2 = upstream.protocol == Some(UpstreamProtocol::Http2);
                handshake(TokioIo::new(tcp), h2, target, pools).await
            }
            Some(tls) => {
                let Some(name) = target.server_name.clone() else {
                    debug!(target = %target.address, "no valid TLS server name");
                    return Err(ProxyError::UpstreamConnect);
                };
                let stream = tokio_rustls::TlsConnector::from(tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| {
                        debug!(upstream = %upstream.id, target = %target.address, error = %e, "TLS handshake failed");
                        ProxyError::UpstreamConnect
                    })?;
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                handshake(TokioIo::new(stream), h2, target, pools).await
            }
        }
    };
    match tokio::time::timeout(upstream.connect_timeout, attempt).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => {
            upstream.metrics.connect_error(worker);
            Err(e)
        }
        Err(_) => {
            upstream.metrics.timeout(worker);
            Err(ProxyError::UpstreamTimeout)
        }
    }
}

async fn handshake<I>(
    io: I,
    h2: bool,
    target: &Target,
    pools: &Rc<WorkerPools>,
) -> Result<Conn, ProxyError>
where
    I: Read + Write + Unpin + Send + 'static,
{
    let key: Arc<str> = target.pool_key.clone();
    if h2 {
        let (sender, connection) = http2::Builder::new(LocalExec)
            .timer(TokioTimer::new())
            .handshake(io)
            .await
            .map_err(|e| {
                debug!(target = %target.address, error = %e, "HTTP/2 handshake failed");
                ProxyError::UpstreamConnect
            })?;
        pools.opened(&key);
        let driver_pools = pools.clone();
        tokio::task::spawn_local(async move {
            let _ = connection.await;
            driver_pools.closed(&key);
        });
        pools.share_h2(&target.pool_key, sender.clone());
        Ok(Conn::H2(sender))
    } else {
        let (sender, connection) = http1::Builder::new().handshake(io).await.map_err(|e| {
            debug!(target = %target.address, error = %e, "HTTP/1.1 handshake failed");
            ProxyError::UpstreamConnect
        })?;
        pools.opened(&key);
        let driver_pools = pools.clone();
        tokio::task::spawn_local(async move {
            let _ = connection.with_upgrades().await;
            driver_pools.closed(&key);
        });
        Ok(Conn::H1(sender))
    }
}
