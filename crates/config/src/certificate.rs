//! `certificates[]`: certificates given inline, as the admin API and etcd manage them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A certificate chain and its private key as PEM text, served by every TLS listener to clients
/// that ask for one of its names (SNI). A listener's own certificate files come first: a name both
/// cover is answered with the listener's, and the listener's first file stays its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateResource {
    /// Unique id, the last segment of its admin API path and etcd key.
    pub id: String,
    /// The certificate chain, PEM, leaf first.
    pub cert: String,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1). Never shown whole by the admin API.
    pub key: String,
    /// The names it is served for (`api.example.com`, `*.example.com`). Default: the names the
    /// certificate itself is valid for (its subjectAltName entries, else its CN).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snis: Vec<String>,
}
