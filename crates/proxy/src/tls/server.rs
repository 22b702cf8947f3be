//! Listener TLS: one rustls config per listener, the certificate picked by SNI, ALPN `h2` and `http/1.1`.

use std::collections::HashMap;
use std::sync::Arc;

use floodgate_config::ListenerTlsConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use x509_parser::extensions::GeneralName;

use super::{read_certificates, read_private_key};

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

/// Builds a listener's TLS config. Errors name the certificate at fault, relative to `path`
/// (e.g. `listeners[1].tls.certificates[0].key`).
pub fn server_config(
    config: &ListenerTlsConfig,
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
        for name in dns_names(&certified.cert[0]) {
            let name = name.to_ascii_lowercase();
            let index = resolver.certificates.len();
            if let Some(suffix) = name.strip_prefix("*.") {
                resolver.wildcard.entry(suffix.to_string()).or_insert(index);
            } else {
                resolver.exact.entry(name).or_insert(index);
            }
        }
        resolver.certificates.push(Arc::new(certified));
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
