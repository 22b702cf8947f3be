//! Route configuration: which requests go where.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{ByteSize, HumanDuration, RetriesConfig};

/// A rule that matches requests and sends them to an upstream (or answers them directly).
///
/// All given conditions must hold. When several routes match, the most specific wins: exact host before
/// wildcard host before any host; exact path before `{param}` path before prefix path; longer prefix before
/// shorter; then the route with more conditions (methods, headers); then the one listed first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Unique id, used in logs and metrics.
    pub id: String,
    /// Host names to match (`api.example.com`, or `*.example.com` for any subdomain). Empty: any host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Paths to match: `/exact`, `/prefix/*` (anything below `/prefix/`), `/users/{id}` (one segment).
    pub paths: Vec<String>,
    /// HTTP methods to match. Empty: any method.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Request headers that must be present with exactly these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Id of the upstream to forward to. Exactly one of `upstream` and `respond` is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Answer the request directly instead of forwarding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respond: Option<DirectResponse>,
    /// Longest time to wait for the upstream's response headers; 504 after that.
    #[serde(default = "default_route_timeout")]
    pub timeout: HumanDuration,
    /// Send the client's `Host` header to the upstream (true), or the target's address (false).
    #[serde(default = "default_true")]
    pub preserve_host: bool,
    /// Largest request body for this route; default: `limits.max_body_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<ByteSize>,
    /// Protocols a client may switch this route's connections to with `Upgrade` (RFC 9110 §7.8),
    /// tunnelled after the upstream's `101`. A request asking for any other protocol is forwarded as a
    /// plain request without its `Upgrade`. `h2c` is never tunnelled, whatever this says: an h2c
    /// tunnel would carry requests that no route sees (h2c smuggling).
    #[serde(default = "default_upgrades")]
    pub upgrades: Vec<String>,
    /// The route's plugins by name (`jwt-auth: {...}`); see docs/plugins.md. A route's plugin replaces
    /// a global plugin of the same name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub plugins: BTreeMap<String, serde_json::Value>,
    /// What happens to a method-override field (`X-HTTP-Method-Override`, `X-HTTP-Method`,
    /// `X-Method-Override`, in any spelling with `_` for `-`) or `_method` query parameter that names a
    /// method a request would not be routed here with: `drop` it (the default), `reject` the request
    /// (400), or `allow` it.
    #[serde(default, skip_serializing_if = "MethodOverride::is_default")]
    pub method_override: MethodOverride,
    /// Tries a failed request again on another target. Absent: every request gets one attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<RetriesConfig>,
    /// Whether the route's requests are traced when the configuration has a `tracing` section; `false`
    /// leaves them out (no spans, no `traceparent` written, the client's passed on as it came).
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub tracing: bool,
}

fn is_true(value: &bool) -> bool {
    *value
}

/// The handling of method-override fields that name a method another route (or none) would serve.
///
/// Express, Rails, ASP.NET Core and Symfony let such a field replace the request's method, so a
/// `POST` on a public route could act as a `DELETE` that only an authenticated route allows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MethodOverride {
    /// Remove every method-override field and `_method` parameter before the plugins and the upstream
    /// see the request.
    #[default]
    Drop,
    /// Answer 400.
    Reject,
    /// Forward the fields as sent (the route's upstream is trusted to judge them).
    Allow,
}

impl MethodOverride {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

fn default_route_timeout() -> HumanDuration {
    HumanDuration::from_secs(60)
}

fn default_true() -> bool {
    true
}

fn default_upgrades() -> Vec<String> {
    vec!["websocket".to_string()]
}

/// A fixed response the gateway sends itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DirectResponse {
    /// Status code.
    #[serde(default = "default_status")]
    pub status: u16,
    /// `Content-Type` of the body.
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// Response body.
    #[serde(default)]
    pub body: String,
}

fn default_status() -> u16 {
    200
}

fn default_content_type() -> String {
    "text/plain; charset=utf-8".to_string()
}
