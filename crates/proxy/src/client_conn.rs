//! What is known about a client connection, shared by every request that arrives on it.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Instant;

use http::HeaderValue;
use tokio::time::Sleep;

use crate::path_normalize::PathRules;
use crate::upstream::io::UpstreamTunnel;
use floodgate_config::UnderscoresInHeaders;

/// What a listener's configuration says about the requests of a connection it accepts, as of the
/// snapshot it was accepted under.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListenerRules {
    /// How paths are normalised.
    pub path: PathRules,
    /// What fields named with `_` become.
    pub underscores: UnderscoresInHeaders,
}

/// What is known about the client connection a request arrived on.
pub struct ConnInfo {
    /// The client's address.
    pub client: SocketAddr,
    /// The client's IP as a header value, made once per connection for `X-Forwarded-For`.
    pub client_ip_value: HeaderValue,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The listener's path normalisation, as of the snapshot the connection was accepted under.
    pub path_rules: PathRules,
    /// The listener's rule for request fields named with `_`.
    pub underscores: UnderscoresInHeaders,
    /// Set by the HTTP/1.1 server when a request head declared both `Content-Length` and
    /// `Transfer-Encoding`; the handler refuses that request.
    pub ambiguous_framing: Cell<bool>,
    /// The upstream's side of an accepted upgrade, waiting for the HTTP/1.1 connection to join it with
    /// the client's once the 101 is written.
    pub pending_upgrade: RefCell<Option<UpstreamTunnel>>,
    /// A timer kept for the next request's deadline (see [`ConnInfo::request_timer`]).
    spare_timer: Cell<Option<Pin<Box<Sleep>>>>,
}

impl ConnInfo {
    /// A connection from `client`, accepted on a listener with these rules.
    pub fn new(client: SocketAddr, tls: bool, rules: ListenerRules) -> Self {
        Self {
            client,
            client_ip_value: crate::headers::ip_value(client.ip()),
            tls,
            path_rules: rules.path,
            underscores: rules.underscores,
            ambiguous_framing: Cell::new(false),
            pending_upgrade: RefCell::new(None),
            spare_timer: Cell::new(None),
        }
    }

    /// A timer that fires at `deadline`: the connection's kept one when it is free, else a new one.
    ///
    /// Moving a registered timer to a later deadline takes no lock in tokio's timer, while a new timer
    /// takes one to register and another to unregister when dropped. An HTTP/1.1 connection runs one
    /// request at a time, so it always finds its timer free; HTTP/2 streams running at once make their own.
    pub fn request_timer(&self, deadline: Instant) -> Pin<Box<Sleep>> {
        match self.spare_timer.take() {
            Some(mut timer) => {
                timer.as_mut().reset(deadline.into());
                timer
            }
            None => Box::pin(tokio::time::sleep_until(deadline.into())),
        }
    }

    /// Keeps `timer` for the next request.
    pub fn keep_timer(&self, timer: Pin<Box<Sleep>>) {
        self.spare_timer.set(Some(timer));
    }
}
