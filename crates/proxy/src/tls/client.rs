//! Upstream TLS: verification against the system's roots or a CA file, SNI, ALPN by protocol.

use std::sync::Arc;

use floodgate_config::{UpstreamProtocol, UpstreamTlsConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::read_certificates;

/// Builds the client config for one upstream. `path` names the upstream's `tls` field for errors.
pub fn client_config(
    tls: &UpstreamTlsConfig,
    protocol: Option<UpstreamProtocol>,
    path: &str,
) -> Result<Arc<ClientConfig>, (String, String)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| (path.to_string(), e.to_string()))?;
    let mut config = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        match &tls.ca_file {
            Some(file) => {
                for cert in read_certificates(file).map_err(|e| (format!("{path}.ca_file"), e))? {
                    roots.add(cert).map_err(|e| {
                        (
                            format!("{path}.ca_file"),
                            format!("{file:?}: unusable CA certificate: {e}"),
                        )
                    })?;
                }
            }
            None => {
                // Unreadable entries in the system store are skipped, as curl and Go do.
                let native = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(native.certs);
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = match protocol {
        Some(UpstreamProtocol::Http1) => vec![b"http/1.1".to_vec()],
        Some(UpstreamProtocol::Http2) => vec![b"h2".to_vec()],
        None => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    };
    Ok(Arc::new(config))
}

/// The server name to send and verify: the configured `sni`, or the target's host.
pub fn server_name(tls: &UpstreamTlsConfig, target_host: &str) -> Option<ServerName<'static>> {
    let name = tls.sni.as_deref().unwrap_or(target_host);
    let name = name.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(name.to_string()).ok()
}

/// `insecure_skip_verify`: signatures are still checked so the handshake is well-formed, but any certificate
/// is accepted.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
