//! Mock upstreams: real HTTP/1.1 + h2c (or TLS) servers on 127.0.0.1 whose answers depend on the path, and
//! a real gRPC server (tonic's health service, which has unary and streaming calls).
//!
//! Paths:
//! - `/status/{code}`: an empty response with that status.
//! - `/slow/{ms}`: waits, then answers like the echo.
//! - `/stream/{bytes}`: a streamed body of that many bytes, in 64 KiB chunks, produced as the client reads.
//! - `/trailers`: body `ok` followed by the trailer `x-checksum: abc123`.
//! - `/ws`: a WebSocket echo server.
//! - `/reset`: drops the connection without answering.
//! - anything else: a JSON echo of the request (`upstream`, `method`, `uri`, `version`, `headers`,
//!   `body_len`, `trailers`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use crate::TestCerts;

type MockBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// A running mock upstream; stops when dropped.
pub struct MockUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its name, echoed in every JSON answer as `upstream`.
    pub name: String,
    requests: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockUpstream {
    /// An HTTP/1.1 + h2c upstream.
    pub async fn http(name: &str) -> MockUpstream {
        Self::start(name, None).await
    }

    /// A TLS upstream (ALPN h2 and http/1.1) with the given certificate.
    pub async fn tls(name: &str, certs: &TestCerts) -> MockUpstream {
        Self::start(
            name,
            Some(tokio_rustls::TlsAcceptor::from(certs.server_config())),
        )
        .await
    }

    /// `host:port` for YAML.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    async fn start(name: &str, tls: Option<tokio_rustls::TlsAcceptor>) -> MockUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind mock upstream");
        let addr = listener.local_addr().expect("local addr");
        let requests = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let name_owned: Arc<str> = name.into();
        let (req_count, conn_count) = (requests.clone(), connections.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                conn_count.fetch_add(1, Ordering::SeqCst);
                let name = name_owned.clone();
                let req_count = req_count.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        req_count.fetch_add(1, Ordering::SeqCst);
                        answer(name.clone(), req)
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    match tls {
                        None => {
                            let _ = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                                .await;
                        }
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = builder
                                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                    }
                });
            }
        });
        MockUpstream {
            addr,
            name: name.to_string(),
            requests,
            connections,
            task,
        }
    }
}

fn full(body: impl Into<Bytes>) -> MockBody {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed()
}

async fn answer(
    name: Arc<str>,
    mut req: Request<Incoming>,
) -> Result<Response<MockBody>, std::io::Error> {
    let path = req.uri().path().to_string();
    let mut segments = path.trim_start_matches('/').splitn(2, '/');
    let first = segments.next().unwrap_or("");
    let arg = segments.next().unwrap_or("");
    match first {
        "status" => {
            let code = arg
                .parse()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::OK);
            let mut response = Response::new(full(Bytes::new()));
            *response.status_mut() = code;
            Ok(response)
        }
        "slow" => {
            let ms: u64 = arg.parse().unwrap_or(1000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            echo(&name, req).await
        }
        "stream" => {
            let total: u64 = arg.parse().unwrap_or(0);
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let stream = futures_util::stream::unfold(total, move |left| {
                let chunk = chunk.clone();
                async move {
                    if left == 0 {
                        return None;
                    }
                    let n = left.min(chunk.len() as u64);
                    Some((
                        Ok::<_, std::io::Error>(Frame::data(chunk.slice(..n as usize))),
                        left - n,
                    ))
                }
            });
            let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(total));
            Ok(response)
        }
        "trailers" => {
            let mut trailers = HeaderMap::new();
            trailers.insert("x-checksum", HeaderValue::from_static("abc123"));
            let frames = futures_util::stream::iter(vec![
                Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(b"ok"))),
                Ok(Frame::trailers(trailers)),
            ]);
            let mut response = Response::new(BodyExt::boxed(StreamBody::new(frames)));
            response
                .headers_mut()
                .insert(header::TRAILER, HeaderValue::from_static("x-checksum"));
            Ok(response)
        }
        "ws" => websocket(&mut req),
        "reset" => Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset on purpose",
        )),
        _ => echo(&name, req).await,
    }
}

async fn echo(name: &str, req: Request<Incoming>) -> Result<Response<MockBody>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let collected = body
        .collect()
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let trailers = collected.trailers().map(header_json).unwrap_or_default();
    let body = collected.to_bytes();
    let json = serde_json::json!({
        "upstream": name,
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "version": format!("{:?}", parts.version),
        "headers": header_json(&parts.headers),
        "body_len": body.len(),
        "trailers": trailers,
    });
    let mut response = Response::new(full(json.to_string()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response.headers_mut().insert(
        "x-upstream",
        HeaderValue::from_str(name).unwrap_or(HeaderValue::from_static("?")),
    );
    // A hop-by-hop header the gateway must not pass back to its client.
    response
        .headers_mut()
        .insert("keep-alive", HeaderValue::from_static("timeout=5"));
    Ok(response)
}

fn header_json(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).to_string();
        map.entry(name.as_str().to_string())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    map
}

fn websocket(req: &mut Request<Incoming>) -> Result<Response<MockBody>, std::io::Error> {
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
        let mut response = Response::new(full("not a websocket request"));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return Ok(response);
    };
    let accept = derive_accept_key(key.as_bytes());
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        while let Some(Ok(message)) = ws.next().await {
            if message.is_close() {
                break;
            }
            if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
                break;
            }
        }
    });
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).map_err(std::io::Error::other)?,
    );
    Ok(response)
}

/// A gRPC server (tonic's standard health service: unary `Check`, server-streaming `Watch`) with service
/// `"floodgate.test"` marked serving. Unknown services answer `NOT_FOUND`.
pub async fn grpc_health_server() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind grpc");
    let addr = listener.local_addr().expect("grpc addr");
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("floodgate.test", tonic_health::ServingStatus::Serving)
        .await;
    let task = tokio::spawn(async move {
        // Keep the reporter alive so Watch streams stay open.
        let _reporter = reporter;
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await;
    });
    (addr, task)
}
