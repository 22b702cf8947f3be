//! Listener configuration: where clients connect, with which certificates, and how their paths are read.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::PathNormalizationConfig;

/// One address the gateway accepts client connections on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Unique name, used in logs and to tell listeners apart on reload.
    pub name: String,
    /// `ip:port` to bind. Without `tls` it serves HTTP/1.1 and HTTP/2 cleartext (h2c) on the same port.
    pub address: String,
    /// Serve TLS on this address; ALPN offers `h2` and `http/1.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTlsConfig>,
    /// How request paths are normalised before routing, and which path goes upstream.
    #[serde(default)]
    pub path_normalization: PathNormalizationConfig,
    /// Client connections open at once on this listener, across workers; a new connection past it is
    /// closed as soon as it is accepted. `0`, the default, sets no limit of its own.
    #[serde(default)]
    pub max_connections: u64,
    /// Expect a PROXY protocol header (v1 or v2) before anything else on each connection, and take the
    /// client's address from it: for a listener behind an L4 load balancer (HAProxy, AWS NLB). Every peer
    /// that can reach the listener is trusted to tell the truth; a connection without a valid header is
    /// closed. `false`, the default, reads no header (a PROXY line is then a bad request).
    #[serde(default)]
    pub proxy_protocol: bool,
    /// What to do with request fields whose names contain `_`, which CGI-style servers read as the
    /// same field as the name with `-`.
    #[serde(default)]
    pub underscores_in_headers: UnderscoresInHeaders,
}

/// The handling of request fields named with `_` (`X_User`). Servers that hand fields to applications
/// as `HTTP_*` variables (CGI, WSGI, Rack, PHP) read `X_User` and `X-User` as one field, so a client can
/// pass a field under a spelling the gateway's own rules never looked at. nginx drops such fields by
/// default (`underscores_in_headers off`); Envoy chooses with `headers_with_underscores_action`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnderscoresInHeaders {
    /// Pass them on. The default, so upstreams that use such names keep working; the gateway still
    /// removes the `_` spellings of the fields it writes or reads itself.
    #[default]
    Allow,
    /// Remove every one of them before routing and plugins, as nginx does by default.
    Drop,
    /// Answer 400.
    Reject,
}

/// TLS settings of a listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsConfig {
    /// Certificates, chosen by the SNI name the client sends; the first one is the default.
    pub certificates: Vec<CertificateConfig>,
}

/// A certificate chain and its private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// PEM file with the certificate chain, leaf first.
    pub cert: String,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
}
