//! Deadlines for clients: how long the gateway waits for a slow or silent client before it closes the
//! connection. Each closes only the connection at fault and is counted in
//! `floodgate_connection_timeouts_total{kind}`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::HumanDuration;

/// How long the gateway waits on a client at each stage of a connection (nginx's `client_header_timeout`,
/// `keepalive_timeout`, `client_body_timeout` and `send_timeout`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsConfig {
    /// Longest time to receive a whole request head: from the connection's start for its first request,
    /// and from the head's first byte for later ones. A head that started but did not finish gets 408.
    #[serde(default = "default_client_header")]
    pub client_header: HumanDuration,
    /// Longest time an HTTP/1.1 keep-alive connection may stay idle between requests before it is closed.
    #[serde(default = "default_client_keepalive")]
    pub client_keepalive: HumanDuration,
    /// Longest wait between two reads of a request body; past it the request gets 408 and the connection
    /// closes.
    #[serde(default = "default_client_body")]
    pub client_body: HumanDuration,
    /// Longest wait for a client to take more of its response (between two writes); past it the connection
    /// closes.
    #[serde(default = "default_client_send")]
    pub client_send: HumanDuration,
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        Self {
            client_header: default_client_header(),
            client_keepalive: default_client_keepalive(),
            client_body: default_client_body(),
            client_send: default_client_send(),
        }
    }
}

fn default_client_header() -> HumanDuration {
    HumanDuration::from_secs(30)
}

fn default_client_keepalive() -> HumanDuration {
    HumanDuration::from_secs(75)
}

fn default_client_body() -> HumanDuration {
    HumanDuration::from_secs(60)
}

fn default_client_send() -> HumanDuration {
    HumanDuration::from_secs(60)
}

impl TimeoutsConfig {
    /// Each deadline with its field name, for validation.
    pub fn fields(&self) -> [(&'static str, &HumanDuration); 4] {
        [
            ("client_header", &self.client_header),
            ("client_keepalive", &self.client_keepalive),
            ("client_body", &self.client_body),
            ("client_send", &self.client_send),
        ]
    }
}
