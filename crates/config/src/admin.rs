//! The admin listener's configuration.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The admin listener: `/healthz`, `/readyz`, `/metrics`, `/status/upstreams` and the admin REST API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address to listen on, `ip:port`. Keep it on loopback or behind a firewall.
    #[serde(default = "default_admin_address")]
    pub address: String,
    /// Key that admin API calls must present in `X-API-Key`; this or `api_key_env` is required when
    /// `address` is not a loopback address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// Name of an environment variable holding the key instead, so the key stays out of the file; it must
    /// be set and non-empty when the gateway starts. Wins over `api_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            address: default_admin_address(),
            api_key: None,
            api_key_env: None,
        }
    }
}

fn default_admin_address() -> String {
    "127.0.0.1:9180".to_string()
}
