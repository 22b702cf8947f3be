//! [`Answer`]: a whole response a plugin sends instead of forwarding.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};

/// A response a plugin answers a request with: status, headers (`WWW-Authenticate`, `Retry-After`,
/// CORS fields, `Location`) and body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status code.
    pub status: StatusCode,
    /// Header fields.
    pub headers: HeaderMap,
    /// Body (empty for a preflight or a redirect); ignored when `error` is set.
    pub body: Bytes,
    /// When set, the body is the gateway's JSON error body with this message, written by the proxy in
    /// the shape of every error floodgate sends (`{"error":"…","request_id":"…"}`).
    pub error: Option<&'static str>,
    /// Why, as a metric label value (`missing_credentials`, `rate_limited`); see docs/plugins.md.
    pub reason: &'static str,
    /// Whether an authentication plugin refused credentials the request presented (a wrong key, a
    /// bad token), as opposed to finding none: what `auth-failure-limit` counts.
    pub credentials_refused: bool,
}

impl Answer {
    /// An answer with no body.
    pub fn empty(status: StatusCode, reason: &'static str) -> Self {
        Self {
            status,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            error: None,
            reason,
            credentials_refused: false,
        }
    }

    /// The gateway's JSON error answer. `message` is fixed text: it never echoes the request, and says
    /// no more than a client needs (nothing that helps an attacker tell one failure from another
    /// beyond the status and `reason`-free wording).
    pub fn error(status: StatusCode, message: &'static str, reason: &'static str) -> Self {
        Self {
            status,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            error: Some(message),
            reason,
            credentials_refused: false,
        }
    }

    /// Marks the answer as an authentication plugin's refusal of presented credentials (builder style).
    pub fn refusing_credentials(mut self) -> Self {
        self.credentials_refused = true;
        self
    }

    /// Adds a header field (builder style).
    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }
}
