//! TLS on both sides: certificates chosen by SNI for listeners, and verified client configs for upstreams.

pub mod client;
pub mod server;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Reads a PEM certificate chain; the error says what is wrong in words a user can act on.
pub(crate) fn read_certificates(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path:?}: {e}"))?;
    parse_certificates(&bytes).map_err(|e| format!("{path:?} {e}"))
}

/// The PEM certificates in `pem`, leaf first. The error says what is wrong with them, for the
/// caller to put after where they came from (`… holds no PEM certificate`).
pub(crate) fn parse_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("is not a valid PEM certificate: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate".to_string());
    }
    Ok(certs)
}

/// Reads a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn read_private_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path:?}: {e}"))?;
    parse_private_key(&bytes).map_err(|e| format!("{path:?} {e}"))
}

/// The PEM private key (PKCS#8, PKCS#1 or SEC1) in `pem`; the error as [`parse_certificates`]'.
pub(crate) fn parse_private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("holds no usable PEM private key: {e}"))
}
