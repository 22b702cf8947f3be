//! Keys from a JWKS URL: fetched by a background task, published through an `ArcSwap` that the request
//! path only loads.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{header, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use ring::digest::{digest, SHA256};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::keys::KeySet;
use crate::stats::PluginStats;

/// The key set of one JWKS URL, shared by the plugin instances of an unchanged configuration across
/// reloads. When the last instance drops it, its fetch task stops.
pub struct JwksKeys {
    /// The last good key set (empty until the first fetch succeeds).
    pub keys: ArcSwap<KeySet>,
    /// Wakes the task early: a token named an unknown `kid`, or the set is being dropped.
    wake: Arc<Notify>,
    /// When the last fetch started or an early one was asked for (milliseconds since the epoch).
    last_fetch_ms: AtomicU64,
    /// The least time between two early fetches.
    min_refetch_ms: u64,
    /// Whether a task fetches for this set (a set made while only validating has none).
    started: AtomicBool,
}

impl JwksKeys {
    /// An empty set whose early fetches are at least `min_refetch` apart.
    pub fn new(min_refetch: Duration) -> Self {
        Self {
            keys: ArcSwap::from_pointee(KeySet::new(Vec::new())),
            wake: Arc::new(Notify::new()),
            last_fetch_ms: AtomicU64::new(0),
            min_refetch_ms: u64::try_from(min_refetch.as_millis()).unwrap_or(u64::MAX),
            started: AtomicBool::new(false),
        }
    }

    /// Asks for an early fetch (a token named a `kid` the set does not have), at most once per
    /// `min_refetch`: tokens with made-up `kid`s must not turn into a flood of fetches.
    pub fn request_refetch(&self) {
        let now = now_ms();
        let last = self.last_fetch_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < self.min_refetch_ms {
            return;
        }
        if self
            .last_fetch_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.wake.notify_one();
        }
    }

    /// Starts the fetch task on `runtime` unless one already runs for this set; the task ends once
    /// the set is dropped.
    pub fn start(
        self: &Arc<Self>,
        runtime: &tokio::runtime::Handle,
        source: JwksSource,
        refresh: Duration,
        stats: Arc<PluginStats>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if self.started.swap(true, Ordering::AcqRel) {
            return None;
        }
        let task = FetchTask {
            keys: Arc::downgrade(self),
            wake: self.wake.clone(),
            source,
            refresh,
            stats,
        };
        Some(runtime.spawn(task.run()))
    }
}

impl Drop for JwksKeys {
    fn drop(&mut self) {
        // The task sees the set gone at once instead of at its next refresh.
        self.wake.notify_one();
    }
}

/// Where and how the key set is fetched.
pub struct JwksSource {
    /// The JWKS URL (`http` or `https`).
    pub uri: Uri,
    /// TLS settings for an `https` URL.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The most a whole fetch may take.
    pub timeout: Duration,
    /// The largest document accepted.
    pub max_size: usize,
}

struct FetchTask {
    /// Weak: the task must not keep the set (and itself) alive once no plugin uses it.
    keys: Weak<JwksKeys>,
    wake: Arc<Notify>,
    source: JwksSource,
    refresh: Duration,
    stats: Arc<PluginStats>,
}

impl FetchTask {
    async fn run(self) {
        let mut last_document: Option<[u8; 32]> = None;
        loop {
            let Some(shared) = self.keys.upgrade() else {
                return;
            };
            shared.last_fetch_ms.store(now_ms(), Ordering::Relaxed);
            match fetch(&self.source).await {
                Ok(document) => match KeySet::from_jwks(&document) {
                    Ok(set) => {
                        self.stats.jwks_fetches.fetch_add(1, Ordering::Relaxed);
                        let mut sum = [0; 32];
                        sum.copy_from_slice(digest(&SHA256, &document).as_ref());
                        // An unchanged document keeps the set's generation, so cached tokens stay.
                        if last_document != Some(sum) {
                            last_document = Some(sum);
                            shared.keys.store(Arc::new(set));
                        }
                    }
                    Err(e) => self.failed(&e),
                },
                Err(e) => self.failed(&e),
            }
            drop(shared);
            tokio::select! {
                () = tokio::time::sleep(self.refresh) => {}
                () = self.wake.notified() => {}
            }
        }
    }

    fn failed(&self, error: &str) {
        self.stats.jwks_failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(url = %self.source.uri, %error, "JWKS fetch failed; the last good key set stays in use");
    }
}

/// GETs the document at `source.uri`, within its timeout and size limit.
pub async fn fetch(source: &JwksSource) -> Result<Bytes, String> {
    tokio::time::timeout(source.timeout, fetch_unbounded(source))
        .await
        .map_err(|_| format!("no answer within {:?}", source.timeout))?
}

async fn fetch_unbounded(source: &JwksSource) -> Result<Bytes, String> {
    let uri = &source.uri;
    let host = uri.host().ok_or("the URL has no host")?;
    let https = uri.scheme_str() == Some("https");
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');
    let tcp = TcpStream::connect((bare_host, port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let authority = uri.authority().map_or(host, |a| a.as_str());
    let request = Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(header::HOST, authority)
        .header(header::ACCEPT, "application/json")
        .header(header::USER_AGENT, "floodgate")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    match (https, &source.tls) {
        (true, Some(tls)) => {
            let name = ServerName::try_from(bare_host.to_string())
                .map_err(|e| format!("server name: {e}"))?;
            let stream = tokio_rustls::TlsConnector::from(tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            exchange(TokioIo::new(stream), request, source.max_size).await
        }
        (true, None) => Err("no TLS settings for an https URL".into()),
        (false, _) => exchange(TokioIo::new(tcp), request, source.max_size).await,
    }
}

async fn exchange<I>(
    io: I,
    request: Request<Empty<Bytes>>,
    max_size: usize,
) -> Result<Bytes, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let connection = tokio::spawn(connection);
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        if response.status() != StatusCode::OK {
            return Err(format!("status {}", response.status()));
        }
        Limited::new(response.into_body(), max_size)
            .collect()
            .await
            .map(|body| body.to_bytes())
            .map_err(|e| format!("body: {e}"))
    }
    .await;
    connection.abort();
    result
}

/// TLS settings for fetching over `https`: the system's roots, HTTP/1.1.
pub fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable entries in the system store are skipped, as curl and Go do.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Response;
    use http_body_util::Full;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::net::TcpListener;

    /// Serves `body` with `status` on 127.0.0.1, over TLS when `tls` is given; returns the port.
    async fn serve(status: u16, body: &'static str, tls: Option<Arc<rustls::ServerConfig>>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_req| async move {
                        let mut response =
                            Response::new(Full::new(Bytes::from_static(body.as_bytes())));
                        *response.status_mut() = StatusCode::from_u16(status).unwrap();
                        Ok::<_, std::convert::Infallible>(response)
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(config) => {
                            if let Ok(stream) =
                                tokio_rustls::TlsAcceptor::from(config).accept(tcp).await
                            {
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(tcp), service).await;
                        }
                    }
                });
            }
        });
        port
    }

    fn source(url: &str, tls: Option<Arc<rustls::ClientConfig>>, max_size: usize) -> JwksSource {
        JwksSource {
            uri: url.parse().unwrap(),
            tls,
            timeout: Duration::from_secs(10),
            max_size,
        }
    }

    const DOCUMENT: &str = r#"{"keys":[]}"#;

    #[tokio::test]
    async fn fetches_over_https_verifying_the_certificate() {
        let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let cert = CertificateDer::from(generated.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            generated.signing_key.serialize_der(),
        ));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        let port = serve(200, DOCUMENT, Some(Arc::new(server))).await;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let url = format!("https://127.0.0.1:{port}/jwks");
        let body = fetch(&source(&url, Some(Arc::new(client)), 1024))
            .await
            .unwrap();
        assert_eq!(&body[..], DOCUMENT.as_bytes());
        // The system's roots do not know the test certificate.
        let refused = fetch(&source(&url, Some(tls_config().unwrap()), 1024)).await;
        assert!(refused.unwrap_err().starts_with("TLS"));
    }

    #[tokio::test]
    async fn a_large_document_or_another_status_is_a_failed_fetch() {
        let ok = serve(200, DOCUMENT, None).await;
        let url = format!("http://127.0.0.1:{ok}/jwks");
        assert!(fetch(&source(&url, None, DOCUMENT.len())).await.is_ok());
        let too_large = fetch(&source(&url, None, DOCUMENT.len() - 1)).await;
        assert!(too_large.unwrap_err().starts_with("body"));
        let failing = serve(500, "", None).await;
        let status = fetch(&source(&format!("http://127.0.0.1:{failing}/"), None, 1024)).await;
        assert_eq!(status.unwrap_err(), "status 500 Internal Server Error");
    }

    #[tokio::test]
    async fn early_fetches_are_rate_limited() {
        let keys = JwksKeys::new(Duration::from_secs(3600));
        let woken = |keys: &JwksKeys| {
            let wake = keys.wake.clone();
            async move {
                tokio::time::timeout(Duration::ZERO, wake.notified())
                    .await
                    .is_ok()
            }
        };
        keys.request_refetch();
        assert!(woken(&keys).await, "the first unknown kid asks for a fetch");
        keys.request_refetch();
        assert!(
            !woken(&keys).await,
            "the next one within the interval does not"
        );
        let eager = JwksKeys::new(Duration::ZERO);
        eager.request_refetch();
        assert!(woken(&eager).await);
        eager.request_refetch();
        assert!(woken(&eager).await);
    }

    #[tokio::test]
    async fn the_task_stops_once_the_key_set_is_dropped_and_counts_failures() {
        // A port nothing listens on: every fetch fails at once.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let source = JwksSource {
            uri: format!("http://127.0.0.1:{port}/jwks").parse().unwrap(),
            tls: None,
            timeout: Duration::from_secs(5),
            max_size: 1024,
        };
        let stats = Arc::new(PluginStats::default());
        let keys = Arc::new(JwksKeys::new(Duration::ZERO));
        let runtime = tokio::runtime::Handle::current();
        let task = keys
            .start(&runtime, source, Duration::from_secs(3600), stats.clone())
            .expect("started");
        let again = JwksSource {
            uri: "http://127.0.0.1:1/".parse().unwrap(),
            tls: None,
            timeout: Duration::from_secs(1),
            max_size: 1,
        };
        assert!(keys
            .start(&runtime, again, Duration::from_secs(1), stats.clone())
            .is_none());
        let failed = async {
            while stats.jwks_failures.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), failed)
            .await
            .expect("a failed fetch");
        assert_eq!(
            keys.keys
                .load()
                .candidates(jsonwebtoken::Algorithm::ES256, None)
                .count(),
            0
        );
        drop(keys);
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the task ended")
            .expect("the task did not panic");
    }
}
