//! Consumers and the client-address rules: who a request comes from.

use std::collections::BTreeMap;

use std::collections::HashSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Config, FieldError};

/// A client of the gateway that an authentication plugin can identify (a team, an application, a
/// customer), with its credentials and optional plugins of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsumerConfig {
    /// Unique id: written to the access log, usable as a rate-limit key.
    pub id: String,
    /// Credentials by authentication plugin name (`key-auth: {key: ...}`,
    /// `basic-auth: {username: ..., password_hash: ...}`, `jwt-auth: {...}`); see docs/plugins.md.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub credentials: BTreeMap<String, serde_json::Value>,
    /// The consumer's own plugins (`rate-limit`, `limit-conn`, `headers`, `rewrite`), replacing a
    /// route's plugin of the same name on requests this consumer makes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub plugins: BTreeMap<String, serde_json::Value>,
}

/// How the client's address is found when the gateway runs behind proxies or load balancers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RealIpConfig {
    /// Networks of the proxies whose `header` is believed (`10.0.0.0/8`, `2001:db8::/32`, or single
    /// addresses). Empty, the default: the connection's peer is always the client.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
    /// The header trusted proxies append the address they saw to. Default `x-forwarded-for`; the
    /// right-most address that is not a trusted proxy's is the client.
    #[serde(default = "default_real_ip_header")]
    pub header: String,
}

impl Default for RealIpConfig {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            header: default_real_ip_header(),
        }
    }
}

fn default_real_ip_header() -> String {
    "x-forwarded-for".to_string()
}

impl Config {
    /// Consumer ids are unique and non-empty; their credentials and plugins are checked when plugins are
    /// built, by the plugin they belong to.
    pub(crate) fn validate_consumers(&self, errors: &mut Vec<FieldError>) {
        let mut ids = HashSet::new();
        for (i, consumer) in self.consumers.iter().enumerate() {
            if consumer.id.is_empty() {
                errors.push(FieldError::new(
                    format!("consumers[{i}].id"),
                    "must not be empty",
                ));
            } else if !ids.insert(consumer.id.as_str()) {
                errors.push(FieldError::new(
                    format!("consumers[{i}].id"),
                    format!("duplicate consumer id {:?}", consumer.id),
                ));
            }
        }
    }
}
