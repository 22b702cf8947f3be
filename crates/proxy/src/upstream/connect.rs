//! Opening a connection to a target: TCP, optional TLS with ALPN, then the HTTP/1.1 or HTTP/2 handshake.

use std::rc::Rc;
use std::time::Instant;

use floodgate_config::UpstreamProtocol;
use hyper::client::conn::http2;
use hyper::rt::{Read, Write};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tracing::debug;

use super::failure::{AttemptFailure, FailureClass};
use super::http1::{Http1Conn, ReadTimeout};
use super::io::UpstreamIo;
use super::pool::{Conn, WorkerPools};
use crate::executor::LocalExec;
use crate::snapshot::{Target, UpstreamRuntime};
use floodgate_upstream::breaker::ConnectionPermit;

/// Connects to `target` within the upstream's connect timeout and performs the HTTP handshake. The task
/// driving the connection is counted in `pools` while it lives.
pub async fn connect(
    upstream: &UpstreamRuntime,
    target: &Target,
    pools: &Rc<WorkerPools>,
    worker: usize,
    permit: Option<ConnectionPermit>,
) -> Result<Conn, AttemptFailure> {
    let attempt = async {
        let tcp = TcpStream::connect(target.socket_addr).await.map_err(|e| {
            debug!(upstream = %upstream.id, target = %target.address, error = %e, "connect failed");
            AttemptFailure::new(FailureClass::Connect, e)
        })?;
        let _ = tcp.set_nodelay(true);
        match &upstream.tls {
            None if upstream.protocol == Some(UpstreamProtocol::Http2) => {
                handshake_h2(TokioIo::new(tcp), upstream, target, pools, (permit, worker)).await
            }
            None => Ok(Conn::H1(Http1Conn::new(
                UpstreamIo::Plain(tcp),
                pools.opened(&target.pool_key, permit, &upstream.metrics, worker),
                ReadTimeout::of(upstream, worker),
            ))),
            Some(tls) => {
                let Some(name) = target.server_name.clone() else {
                    debug!(target = %target.address, "no valid TLS server name");
                    return Err(AttemptFailure::new(
                        FailureClass::Handshake,
                        "no valid TLS server name",
                    ));
                };
                let stream = tokio_rustls::TlsConnector::from(tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| {
                        debug!(upstream = %upstream.id, target = %target.address, error = %e, "TLS handshake failed");
                        AttemptFailure::new(FailureClass::Handshake, e)
                    })?;
                if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                    handshake_h2(
                        TokioIo::new(stream),
                        upstream,
                        target,
                        pools,
                        (permit, worker),
                    )
                    .await
                } else {
                    Ok(Conn::H1(Http1Conn::new(
                        UpstreamIo::Tls(Box::new(stream)),
                        pools.opened(&target.pool_key, permit, &upstream.metrics, worker),
                        ReadTimeout::of(upstream, worker),
                    )))
                }
            }
        }
    };
    let started = Instant::now();
    match tokio::time::timeout(upstream.connect_timeout, attempt).await {
        Ok(Ok(conn)) => {
            upstream.metrics.timing.connected(worker, started.elapsed());
            Ok(conn)
        }
        Ok(Err(e)) => {
            upstream.metrics.connect_error(worker);
            Err(e)
        }
        Err(_) => {
            upstream.metrics.timeout(worker);
            Err(AttemptFailure::bare(FailureClass::ConnectTimeout))
        }
    }
}

/// The HTTP/2 handshake; a task drives the connection, shared by this worker's requests to the target.
async fn handshake_h2<I>(
    io: I,
    upstream: &UpstreamRuntime,
    target: &Target,
    pools: &Rc<WorkerPools>,
    (permit, worker): (Option<ConnectionPermit>, usize),
) -> Result<Conn, AttemptFailure>
where
    I: Read + Write + Unpin + Send + 'static,
{
    let (sender, connection) = http2::Builder::new(LocalExec)
        .timer(TokioTimer::new())
        .handshake(io)
        .await
        .map_err(|e| {
            debug!(target = %target.address, error = %e, "HTTP/2 handshake failed");
            AttemptFailure::new(FailureClass::Handshake, e)
        })?;
    let open = pools.opened(&target.pool_key, permit, &upstream.metrics, worker);
    tokio::task::spawn_local(async move {
        let _ = connection.await;
        drop(open);
    });
    pools.share_h2(&target.pool_key, sender.clone());
    Ok(Conn::H2(sender))
}
