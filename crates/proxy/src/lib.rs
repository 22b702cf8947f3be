//! floodgate's data plane: listeners, TLS, the HTTP/1.1 and HTTP/2 server, forwarding, and per-worker
//! upstream connection pools.
//!
//! The [`Gateway`] runs N workers, each a thread with a single-threaded tokio runtime, its own
//! `SO_REUSEPORT` socket per listener and its own upstream pools: a request never crosses cores or takes a
//! lock. Configuration reaches the workers as an immutable [`Snapshot`] swapped atomically on reload.
//!
//! This crate does not parse configuration files (see `floodgate-config`) or serve the admin API.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::disallowed_types, clippy::disallowed_methods)]

mod background;
mod client_conn;
mod completion;
mod deadline;
mod discovery;
mod endpoints;
mod error;
mod executor;
mod forward;
mod gateway;
mod headers;
mod listener;
mod method_override;
mod overload;
mod path_normalize;
mod plugin_phases;
mod probe;
mod proxy_protocol;
mod read_size;
mod registered;
mod request_body;
mod request_id;
mod request_state;
mod response_body;
mod response_fields;
mod retired;
mod rewind;
mod server;
mod snapshot;
mod status;
mod stop;
mod stream;
mod tls;
mod underscore_fields;
mod upstream;
mod upstream_runtime;
mod worker;
mod worker_ctx;
mod write_all;

pub use error::ProxyError;
pub use gateway::{BoundListener, Gateway, GatewayError};
pub use registered::RegisteredTargets;
pub use snapshot::{BuildInputs, Snapshot};

/// The TLS client config floodgate uses towards an upstream with these settings (roots or CA file, SNI
/// verification or `insecure_skip_verify`, ALPN by protocol). Errors are field messages.
pub fn upstream_tls_config(
    tls: &floodgate_config::UpstreamTlsConfig,
    protocol: Option<floodgate_config::UpstreamProtocol>,
) -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
    tls::client::client_config(tls, protocol, "tls")
        .map_err(|(path, message)| format!("{path}: {message}"))
}
