//! Clients for tests: HTTP/1.1, h2c (prior knowledge), and TLS with ALPN, each on a fresh connection, plus a
//! raw TCP exchange for requests no well-behaved client would send.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How a test client talks to the gateway.
#[derive(Clone, Debug)]
pub enum Proto {
    /// HTTP/1.1 in cleartext.
    H1,
    /// HTTP/2 in cleartext with prior knowledge.
    H2c,
    /// TLS, trusting `root`, sending `server_name` as SNI; ALPN offers only `h2` or only `http/1.1`.
    Tls {
        /// Offer h2 (else http/1.1).
        h2: bool,
        /// SNI name.
        server_name: String,
        /// Certificate to trust.
        root: CertificateDer<'static>,
    },
}

/// A whole response, body collected.
#[derive(Debug)]
pub struct TestResponse {
    /// Status.
    pub status: StatusCode,
    /// Version the gateway answered with.
    pub version: Version,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// Trailers, when any.
    pub trailers: Option<HeaderMap>,
}

impl TestResponse {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }

    /// The body as JSON; panics when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// `GET path` with no body.
pub fn get_request(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .body(Full::new(Bytes::new()))
        .expect("request")
}

/// `GET path` over HTTP/1.1 on a new connection to `addr`, the response collected.
pub async fn get(addr: SocketAddr, path: &str) -> Result<TestResponse, String> {
    send(addr, Proto::H1, get_request(path)).await
}

/// Sends a request on a new connection and collects the response.
pub async fn send<B>(
    addr: SocketAddr,
    proto: Proto,
    req: Request<B>,
) -> Result<TestResponse, String>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let response = send_on(addr, proto, req).await?;
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.map_err(|e| format!("body: {e}"))?;
    let trailers = collected.trailers().cloned();
    Ok(TestResponse {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body: collected.to_bytes(),
        trailers,
    })
}

/// Sends a request on a new connection and returns the response with its body still streaming.
pub async fn send_on<B>(
    addr: SocketAddr,
    proto: Proto,
    mut req: Request<B>,
) -> Result<Response<Incoming>, String>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    match proto {
        Proto::H1 => h1(TokioIo::new(tcp), addr, req).await,
        Proto::H2c => h2(TokioIo::new(tcp), addr, "http", req).await,
        Proto::Tls {
            h2: use_h2,
            server_name,
            root,
        } => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(root).map_err(|e| format!("root: {e}"))?;
            let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
            config.alpn_protocols = vec![if use_h2 {
                b"h2".to_vec()
            } else {
                b"http/1.1".to_vec()
            }];
            let name = ServerName::try_from(server_name.clone()).map_err(|e| e.to_string())?;
            let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .map_err(|e| format!("tls: {e}"))?;
            if req.headers().get(header::HOST).is_none() {
                if let Ok(host) = HeaderValue::from_str(&server_name) {
                    req.headers_mut().insert(header::HOST, host);
                }
            }
            if use_h2 {
                h2(TokioIo::new(stream), addr, "https", req).await
            } else {
                h1(TokioIo::new(stream), addr, req).await
            }
        }
    }
}

async fn h1<I, B>(
    io: I,
    addr: SocketAddr,
    mut req: Request<B>,
) -> Result<Response<Incoming>, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn.with_upgrades());
    if req.headers().get(header::HOST).is_none() {
        let host = req
            .uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_else(|| addr.to_string());
        if let Ok(value) = HeaderValue::from_str(&host) {
            req.headers_mut().insert(header::HOST, value);
        }
    }
    sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))
}

async fn h2<I, B>(
    io: I,
    addr: SocketAddr,
    scheme: &str,
    mut req: Request<B>,
) -> Result<Response<Incoming>, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    if req.uri().authority().is_none() {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .unwrap_or_else(|| addr.to_string());
        let path = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        *req.uri_mut() =
            Uri::try_from(format!("{scheme}://{host}{path}")).map_err(|e| e.to_string())?;
        req.headers_mut().remove(header::HOST);
    }
    *req.version_mut() = Version::HTTP_2;
    sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))
}

/// The leaf certificate the TLS listener at `addr` presents for `server_name` (a DNS name is sent as
/// SNI; an IP address makes rustls send no SNI at all). The gateway's own `insecure_skip_verify`
/// client config accepts any certificate, so a test can look at which one was presented.
pub async fn presented_certificate(addr: SocketAddr, server_name: &str) -> CertificateDer<'static> {
    let skip_verify = floodgate_config::UpstreamTlsConfig {
        insecure_skip_verify: true,
        ..Default::default()
    };
    let config = floodgate_proxy::upstream_tls_config(&skip_verify, None).expect("a client config");
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from(server_name.to_string()).expect("a server name");
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .expect("handshake");
    stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("a certificate")[0]
        .clone()
}

/// Writes `bytes` on a new connection and reads until the gateway closes it (at most 10 s, a safety net for
/// a broken test, not a timing assertion). Returns what was read as text.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).to_string()
}

/// Reads what the gateway sends on `stream` until it closes the connection (at most 20 s, a safety net
/// for a broken test, not a timing assertion), as text.
pub async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut out))
        .await
        .expect("the gateway closed the connection")
        .ok();
    String::from_utf8_lossy(&out).to_string()
}

/// Reads body frames until at least `at_least` bytes arrived (or the body ended) and returns how many did.
/// Reading part of a body and pausing keeps a download in flight, held back by this slow reader.
pub async fn read_body(body: &mut Incoming, at_least: usize) -> Result<usize, String> {
    let mut received = 0;
    while received < at_least {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => received += frame.data_ref().map_or(0, Bytes::len),
            Some(Err(e)) => return Err(format!("body broke after {received} bytes: {e}")),
        }
    }
    Ok(received)
}

/// [`request`] for `host`: named in `Host` over HTTP/1.1 and TLS, in the `:authority` of an absolute
/// target over h2c (where a `Host` field must not contradict it).
pub async fn request_to_host(
    addr: SocketAddr,
    proto: Proto,
    method: http::Method,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> TestResponse {
    if matches!(proto, Proto::H2c) {
        return request(
            addr,
            proto,
            method,
            &format!("http://{host}{path}"),
            headers,
        )
        .await;
    }
    let mut with_host = vec![("host", host)];
    with_host.extend_from_slice(headers);
    request(addr, proto, method, path, &with_host).await
}

/// Sends a request without a body, with `headers`, on a new connection, and collects the response;
/// panics when there is none.
pub async fn request(
    addr: SocketAddr,
    proto: Proto,
    method: http::Method,
    target: &str,
    headers: &[(&str, &str)],
) -> TestResponse {
    let mut req = Request::builder().method(method).uri(target);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req
        .body(http_body_util::Empty::<Bytes>::new())
        .expect("a valid request");
    send(addr, proto, req).await.expect("response")
}
