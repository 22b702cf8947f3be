//! Active health checks: one task per probed target on the background runtime (once per process,
//! never on a worker), whose results reach the workers through the target's health atomics.
//!
//! A probe speaks the upstream's own protocol and TLS: an `http` probe is a `GET` over HTTP/1.1 or
//! HTTP/2 as a request would be, a `grpc` probe the standard `grpc.health.v1.Health/Check` call, a
//! `tcp` probe a connection (with its TLS handshake). Each probe opens a connection of its own, so
//! it measures what a new request would meet and never takes a pooled connection from a worker.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use floodgate_config::{ActiveHealthConfig, Config, ProbeKind, UpstreamProtocol};
use floodgate_upstream::health::{Millis, TargetHealth};
use http::{header, HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::snapshot::{Snapshot, UpstreamRuntime};

/// The probe tasks running, by upstream id, target address and everything that shapes the probe: a
/// reload that keeps all three keeps the task (and its counts); any other change restarts it.
#[derive(Default)]
pub struct Probes {
    tasks: HashMap<(Arc<str>, Arc<str>, String), AbortOnDrop>,
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What one probe task needs of its target.
struct ProbeTarget {
    upstream: Arc<str>,
    address: Arc<str>,
    /// Where to connect: the resolved address, never a name.
    socket_addr: SocketAddr,
    /// `Host` (or `:authority`) unless the probe sets one: the target as configured, a name for a
    /// resolved target, as requests send it.
    authority: Arc<str>,
    health: Arc<TargetHealth>,
    probe: Arc<ActiveHealthConfig>,
    protocol: Option<UpstreamProtocol>,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

impl Probes {
    /// Starts the probes `config` asks for that are not running yet, and stops those it no longer
    /// asks for. `snapshot` is `config`'s, the one going into service.
    pub fn apply(&mut self, config: &Config, snapshot: &Snapshot, runtime: &Handle) {
        let mut wanted = HashMap::new();
        for upstream_config in &config.upstreams {
            if let Some(upstream) = snapshot.upstream(&upstream_config.id) {
                self.want(upstream, runtime, &mut wanted);
            }
        }
        // What is left is no longer configured: dropping it stops it.
        self.tasks = wanted;
    }

    /// Follows `upstream`'s endpoints after a name's addresses changed: a new address gets its
    /// probe, one gone loses it, and a kept one keeps its task and counts. Other upstreams' probes
    /// are left as they are.
    pub fn follow(&mut self, upstream: &UpstreamRuntime, runtime: &Handle) {
        let mut wanted = HashMap::new();
        self.want(upstream, runtime, &mut wanted);
        self.tasks.retain(|(id, _, _), _| *id != upstream.id);
        self.tasks.extend(wanted);
    }

    /// Moves into `wanted` the probe of each of `upstream`'s targets, running or started now.
    fn want(
        &mut self,
        upstream: &UpstreamRuntime,
        runtime: &Handle,
        wanted: &mut HashMap<(Arc<str>, Arc<str>, String), AbortOnDrop>,
    ) {
        let config = &upstream.config;
        let Some(active) = &config.health_checks.active else {
            return;
        };
        let shape = format!("{active:?}|{:?}|{:?}", config.protocol, config.tls);
        let probe = Arc::new(active.clone());
        let endpoints = upstream.endpoints.load();
        for (index, target) in endpoints.targets.iter().enumerate() {
            let Some((id, address, health)) = endpoints.health.target(index) else {
                continue;
            };
            let key = (id.clone(), address.clone(), shape.clone());
            let task = match self.tasks.remove(&key) {
                Some(running) => running,
                None => {
                    let tls = match (&upstream.tls, &target.server_name) {
                        (Some(tls), Some(name)) => Some((tls.clone(), name.clone())),
                        _ => None,
                    };
                    let target = ProbeTarget {
                        upstream: id.clone(),
                        address: address.clone(),
                        socket_addr: target.socket_addr,
                        authority: target.name.clone().unwrap_or_else(|| address.clone()),
                        health: health.clone(),
                        probe: probe.clone(),
                        protocol: upstream.protocol,
                        tls,
                    };
                    AbortOnDrop(runtime.spawn(run(target)))
                }
            };
            wanted.insert(key, task);
        }
    }
}

/// Probes `target` now and then every `interval` (plus jitter), for as long as the task lives.
async fn run(target: ProbeTarget) {
    let probe = &target.probe;
    let thresholds = (probe.healthy_threshold, probe.unhealthy_threshold);
    loop {
        let passed = tokio::time::timeout(probe.timeout.get(), probe_once(&target))
            .await
            .unwrap_or(false);
        target.health.record_probe(
            passed,
            Millis::now(),
            thresholds,
            &target.upstream,
            &target.address,
        );
        let jitter = probe.jitter.get();
        let extra = if jitter.is_zero() {
            Duration::ZERO
        } else {
            let micros = u64::try_from(jitter.as_micros()).unwrap_or(u64::MAX);
            Duration::from_micros(fastrand::u64(0..=micros))
        };
        tokio::time::sleep(probe.interval.get() + extra).await;
    }
}

/// One probe: whether the target passed it.
async fn probe_once(target: &ProbeTarget) -> bool {
    let Ok(tcp) = TcpStream::connect(target.socket_addr).await else {
        return false;
    };
    let _ = tcp.set_nodelay(true);
    match &target.tls {
        None => {
            let h2 = target.protocol == Some(UpstreamProtocol::Http2)
                || target.probe.kind == ProbeKind::Grpc;
            speak(target, tcp, h2).await
        }
        Some((tls, name)) => {
            let connector = tokio_rustls::TlsConnector::from(tls.clone());
            let Ok(stream) = connector.connect(name.clone(), tcp).await else {
                return false;
            };
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            speak(target, stream, h2).await
        }
    }
}

/// The probe's exchange on an open connection: nothing more for `tcp`, a request for `http` and
/// `grpc`.
async fn speak<I>(target: &ProbeTarget, io: I, h2: bool) -> bool
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let probe = &target.probe;
    let request = match probe.kind {
        ProbeKind::Tcp => return true,
        ProbeKind::Http => http_request(target),
        ProbeKind::Grpc => grpc_request(target),
    };
    let Some(mut request) = request else {
        return false;
    };
    if !h2 {
        // HTTP/1.1 wants the origin form and a `Host` field; HTTP/2 takes the absolute URI's
        // authority as `:authority`.
        let Ok(host) = HeaderValue::from_str(authority(target)) else {
            return false;
        };
        request.headers_mut().insert(header::HOST, host);
        if let Some(path) = request.uri().path_and_query().cloned() {
            *request.uri_mut() = http::Uri::from(path);
        }
    }
    let io = TokioIo::new(io);
    let response = if h2 {
        let Ok((mut sender, conn)) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await
        else {
            return false;
        };
        tokio::spawn(conn);
        sender.send_request(request).await
    } else {
        let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(io).await else {
            return false;
        };
        tokio::spawn(conn);
        sender.send_request(request).await
    };
    let Ok(response) = response else {
        return false;
    };
    match probe.kind {
        ProbeKind::Grpc => grpc_serving(response).await,
        _ => probe.passes(response.status().as_u16()),
    }
}

fn authority(target: &ProbeTarget) -> &str {
    target.probe.host.as_deref().unwrap_or(&target.authority)
}

fn http_request(target: &ProbeTarget) -> Option<Request<Full<Bytes>>> {
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(format!("http://{}{}", authority(target), target.probe.path))
        .header(header::USER_AGENT, "floodgate-health-check");
    for (name, value) in &target.probe.headers {
        request = request.header(
            HeaderName::from_bytes(name.as_bytes()).ok()?,
            HeaderValue::from_str(value).ok()?,
        );
    }
    request.body(Full::new(Bytes::new())).ok()
}

/// `grpc.health.v1.Health/Check` for the configured service: a gRPC frame holding a
/// `HealthCheckRequest` whose field 1 is the service name.
fn grpc_request(target: &ProbeTarget) -> Option<Request<Full<Bytes>>> {
    let service = target.probe.service.as_bytes();
    let mut message = Vec::with_capacity(service.len() + 2);
    if !service.is_empty() {
        message.push(0x0a);
        encode_varint(&mut message, service.len() as u64);
        message.extend_from_slice(service);
    }
    let mut frame = Vec::with_capacity(message.len() + 5);
    frame.push(0);
    frame.extend_from_slice(&u32::try_from(message.len()).ok()?.to_be_bytes());
    frame.extend_from_slice(&message);
    Request::builder()
        .method(Method::POST)
        .uri(format!(
            "http://{}/grpc.health.v1.Health/Check",
            authority(target)
        ))
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::TE, "trailers")
        .body(Full::new(Bytes::from(frame)))
        .ok()
}

fn encode_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Whether a `Health/Check` answer says `SERVING`: `grpc-status: 0`, and a `HealthCheckResponse`
/// whose field 1 (`status`) is 1.
async fn grpc_serving(response: http::Response<hyper::body::Incoming>) -> bool {
    if response
        .headers()
        .get("grpc-status")
        .is_some_and(|s| s != "0")
    {
        return false;
    }
    let Ok(collected) = response.into_body().collect().await else {
        return false;
    };
    let status_ok = collected
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .is_some_and(|s| s == "0");
    let mut body = collected.to_bytes();
    if !status_ok || body.len() < 5 {
        return false;
    }
    body.advance(5);
    // The message's one field: 1, a varint (tag 0x08), SERVING = 1.
    body[..] == [0x08, 0x01]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_protobuf_varints() {
        let mut out = Vec::new();
        encode_varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        out.clear();
        encode_varint(&mut out, 5);
        assert_eq!(out, [5]);
    }
}
