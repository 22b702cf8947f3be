//! Self-signed certificates written to a temporary directory, for TLS listeners and upstreams.

use std::path::PathBuf;

use rustls_pki_types::CertificateDer;

/// A self-signed certificate and key for the given names, as PEM files and as DER for client trust.
pub struct TestCerts {
    _dir: tempfile::TempDir,
    /// PEM certificate file.
    pub cert_path: PathBuf,
    /// PEM key file.
    pub key_path: PathBuf,
    /// The certificate, to trust it in a client.
    pub cert_der: CertificateDer<'static>,
    /// PEM text of the certificate.
    pub cert_pem: String,
    /// PEM text of the key.
    pub key_pem: String,
}

impl TestCerts {
    /// Creates a certificate valid for `names` (DNS names or IP addresses).
    pub fn new(names: &[&str]) -> TestCerts {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let generated = rcgen::generate_simple_self_signed(names).expect("generate certificate");
        let dir = tempfile::tempdir().expect("temp dir");
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        let cert_pem = generated.cert.pem();
        let key_pem = generated.signing_key.serialize_pem();
        std::fs::write(&cert_path, &cert_pem).expect("write cert");
        std::fs::write(&key_path, &key_pem).expect("write key");
        TestCerts {
            _dir: dir,
            cert_path,
            key_path,
            cert_der: generated.cert.der().clone(),
            cert_pem,
            key_pem,
        }
    }

    /// The certificate file path as a string for YAML.
    pub fn cert(&self) -> String {
        self.cert_path.display().to_string()
    }

    /// The key file path as a string for YAML.
    pub fn key(&self) -> String {
        self.key_path.display().to_string()
    }

    /// A rustls server config serving this certificate with ALPN h2 and http/1.1.
    pub fn server_config(&self) -> std::sync::Arc<rustls::ServerConfig> {
        let key = <rustls_pki_types::PrivateKeyDer<'static> as rustls_pki_types::pem::PemObject>::from_pem_slice(
            self.key_pem.as_bytes(),
        )
        .expect("key pem");
        let mut config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![self.cert_der.clone()], key)
        .expect("server cert");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        std::sync::Arc::new(config)
    }
}
