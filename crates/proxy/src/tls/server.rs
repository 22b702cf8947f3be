//! Listener TLS: one rustls config per listener, the certificate picked by SNI, ALPN `h2` and `http/1.1`.

use std::collections::HashMap;
use std::sync::Arc;

use floodgate_config::{CertificateResource, FieldError, ListenerTlsConfig};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;

use super::{parse_certificates, parse_private_key, read_certificates, read_private_key};

/// Picks a certificate by the SNI name: exact names first, then `*.suffix` wildcards, else the first
/// certificate (also for clients that send no SNI, such as those connecting by IP).
#[derive(Debug)]
struct SniResolver {
    certificates: Vec<Arc<CertifiedKey>>,
    exact: HashMap<String, usize>,
    wildcard: HashMap<String, usize>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let index = hello
            .server_name()
            .and_then(|name| {
                let name = name.to_ascii_lowercase();
                self.exact.get(&name).copied().or_else(|| {
                    let (_, parent) = name.split_once('.')?;
                    self.wildcard.get(parent).copied()
                })
            })
            .unwrap_or(0);
        self.certificates.get(index).cloned()
    }
}

/// A certificate resource ready to serve: its key pair and the names it answers.
#[derive(Debug, Clone)]
pub struct ServedCertificate {
    names: Vec<String>,
    key: Arc<CertifiedKey>,
}

/// The `certificates[]` resources parsed once, for every TLS listener. Errors name the field at
/// fault (`certificates[2].key`).
pub fn served_certificates(
    resources: &[Arc<CertificateResource>],
) -> Result<Vec<ServedCertificate>, Vec<FieldError>> {
    let provider = rustls::crypto::ring::default_provider();
    let mut served = Vec::new();
    let mut errors = Vec::new();
    for (i, resource) in resources.iter().enumerate() {
        let at = format!("certificates[{i}]");
        let chain = match parse_certificates(resource.cert.as_bytes()) {
            Ok(chain) => chain,
            Err(e) => {
                errors.push(FieldError::new(format!("{at}.cert"), e));
                continue;
            }
        };
        let key = match parse_private_key(resource.key.as_bytes()) {
            Ok(key) => key,
            Err(e) => {
                errors.push(FieldError::new(format!("{at}.key"), e));
                continue;
            }
        };
        match certified(&provider, chain, key, &at) {
            Ok(key) => {
                let names = if resource.snis.is_empty() {
                    dns_names(&key.cert[0])
                } else {
                    resource.snis.clone()
                };
                served.push(ServedCertificate {
                    names,
                    key: Arc::new(key),
                });
            }
            Err((path, message)) => errors.push(FieldError::new(path, message)),
        }
    }
    if errors.is_empty() {
        Ok(served)
    } else {
        Err(errors)
    }
}

/// A certificate chain with its key, checked to belong together; errors at `{at}.key`.
fn certified(
    provider: &CryptoProvider,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    at: &str,
) -> Result<CertifiedKey, (String, String)> {
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| (format!("{at}.key"), format!("unsupported private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified.keys_match().map_err(|e| {
        (
            format!("{at}.key"),
            format!("the key does not belong to the certificate: {e}"),
        )
    })?;
    Ok(certified)
}

impl SniResolver {
    /// Serves `key` for `names`, unless a certificate added before already answers a name.
    fn add(&mut self, names: impl IntoIterator<Item = String>, key: Arc<CertifiedKey>) {
        let index = self.certificates.len();
        for name in names {
            let name = name.to_ascii_lowercase();
            if let Some(suffix) = name.strip_prefix("*.") {
                self.wildcard.entry(suffix.to_string()).or_insert(index);
            } else {
                self.exact.entry(name).or_insert(index);
            }
        }
        self.certificates.push(key);
    }
}

/// Builds a listener's TLS config: its own certificates (the first is its default), then the
/// certificate resources `served`. Errors name the certificate at fault, relative to `path`
/// (e.g. `listeners[1].tls.certificates[0].key`).
pub fn server_config(
    config: &ListenerTlsConfig,
    served: &[ServedCertificate],
    path: &str,
) -> Result<Arc<ServerConfig>, (String, String)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut resolver = SniResolver {
        certificates: Vec::new(),
        exact: HashMap::new(),
        wildcard: HashMap::new(),
    };
    for (i, entry) in config.certificates.iter().enumerate() {
        let at = format!("{path}.certificates[{i}]");
        let chain = read_certificates(&entry.cert).map_err(|e| (format!("{at}.cert"), e))?;
        let key = read_private_key(&entry.key).map_err(|e| (format!("{at}.key"), e))?;
        let certified = certified(&provider, chain, key, &at)?;
        let names = dns_names(&certified.cert[0]);
        resolver.add(names, Arc::new(certified));
    }
    for certificate in served {
        resolver.add(certificate.names.iter().cloned(), certificate.key.clone());
    }
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| (path.to_string(), e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}

/// The DNS names a certificate is valid for: its subjectAltName entries, or its CN when it has none.
fn dns_names(cert: &[u8]) -> Vec<String> {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                names.push(dns.to_string());
            }
        }
    }
    if names.is_empty() {
        names.extend(
            parsed
                .subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok().map(str::to_string)),
        );
    }
    names
}
