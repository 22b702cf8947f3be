//! What went wrong with one attempt at an upstream target, typed, so retries, outlier detection and
//! the error answer each read what they need from one value.

use std::fmt;

use crate::request_body::BoxError;

/// The kind of failure of one upstream attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// The TCP connection could not be made (refused, unreachable).
    Connect,
    /// Connecting (TCP and TLS) took longer than `connect_timeout`.
    ConnectTimeout,
    /// The TLS or HTTP/2 handshake failed.
    Handshake,
    /// The connection was reset or closed before a whole response head arrived.
    Reset,
    /// No response head within the attempt's time (`per_try_timeout`).
    Timeout,
    /// The upstream answered with something that is not a usable response head.
    BadResponse,
    /// An HTTP/2 upstream refused the stream before processing it (`REFUSED_STREAM`, `GOAWAY`).
    RefusedStream,
}

impl FailureClass {
    /// Whether nothing of the request can have reached the upstream's application: it is safe to
    /// send it elsewhere, body and all.
    pub fn before_request(self) -> bool {
        matches!(
            self,
            FailureClass::Connect
                | FailureClass::ConnectTimeout
                | FailureClass::Handshake
                | FailureClass::RefusedStream
        )
    }

    /// Whether this is a failure to connect at all (`retry_on: connect_failure`).
    pub fn is_connect_failure(self) -> bool {
        matches!(
            self,
            FailureClass::Connect | FailureClass::ConnectTimeout | FailureClass::Handshake
        )
    }

    /// The short name logs use.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Connect => "connect",
            FailureClass::ConnectTimeout => "connect_timeout",
            FailureClass::Handshake => "handshake",
            FailureClass::Reset => "reset",
            FailureClass::Timeout => "timeout",
            FailureClass::BadResponse => "bad_response",
            FailureClass::RefusedStream => "refused_stream",
        }
    }
}

/// One failed upstream attempt: its class and the error underneath, for the log line.
#[derive(Debug)]
pub struct AttemptFailure {
    /// What kind of failure.
    pub class: FailureClass,
    /// The underlying error, when there was one.
    pub cause: Option<BoxError>,
}

impl AttemptFailure {
    /// A failure of `class` caused by `cause`.
    pub fn new(class: FailureClass, cause: impl Into<BoxError>) -> Self {
        Self {
            class,
            cause: Some(cause.into()),
        }
    }

    /// A failure of `class` with nothing more to say.
    pub fn bare(class: FailureClass) -> Self {
        Self { class, cause: None }
    }
}

impl fmt::Display for AttemptFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            Some(cause) => write!(f, "{}: {cause}", self.class.as_str()),
            None => f.write_str(self.class.as_str()),
        }
    }
}
