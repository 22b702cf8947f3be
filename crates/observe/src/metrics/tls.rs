//! TLS handshakes on the listeners: completed, and failed by reason.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::exposition::{Kind, TextWriter};

const HANDSHAKES: &str = "floodgate_tls_handshakes_total";
const ERRORS: &str = "floodgate_tls_handshake_errors_total";

/// Why a handshake failed, as the `reason` label names it. A fixed set: the reason is chosen by the
/// gateway from the TLS library's error kind, never copied from what the client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailure {
    /// The client sent nothing complete within the handshake timeout.
    Timeout,
    /// The client closed the connection, or it broke, during the handshake.
    Closed,
    /// Bytes that are not a TLS handshake (plain HTTP sent to a TLS port, a malformed or out-of-order
    /// message).
    Protocol,
    /// Nothing in common: no protocol version, cipher suite, group or ALPN protocol both accept.
    Incompatible,
    /// No certificate for the server name the client asked for (SNI).
    UnknownServerName,
    /// A client certificate was required and was missing or not trusted.
    ClientCertificate,
    /// The client ended the handshake with an alert: usually it does not trust the gateway's
    /// certificate.
    AlertReceived,
    /// Anything else.
    Other,
}

impl TlsFailure {
    const ALL: [TlsFailure; 8] = [
        TlsFailure::Timeout,
        TlsFailure::Closed,
        TlsFailure::Protocol,
        TlsFailure::Incompatible,
        TlsFailure::UnknownServerName,
        TlsFailure::ClientCertificate,
        TlsFailure::AlertReceived,
        TlsFailure::Other,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            TlsFailure::Timeout => "timeout",
            TlsFailure::Closed => "closed",
            TlsFailure::Protocol => "protocol",
            TlsFailure::Incompatible => "incompatible",
            TlsFailure::UnknownServerName => "unknown_server_name",
            TlsFailure::ClientCertificate => "client_certificate",
            TlsFailure::AlertReceived => "alert_received",
            TlsFailure::Other => "other",
        }
    }
}

/// One TLS listener's handshakes, from [`Metrics::tls_listener`](crate::Metrics::tls_listener). Counted
/// once per connection, not per request, so shared atomics are cheap enough.
#[derive(Default)]
pub struct TlsHandshakeMetrics {
    completed: AtomicU64,
    failed: [AtomicU64; TlsFailure::ALL.len()],
}

impl TlsHandshakeMetrics {
    /// Counts a completed handshake (`floodgate_tls_handshakes_total`).
    pub fn completed(&self) {
        self.completed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failed one (`floodgate_tls_handshake_errors_total{reason}`).
    pub fn failed(&self, reason: TlsFailure) {
        let index = TlsFailure::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(TlsFailure::ALL.len() - 1);
        self.failed[index].fetch_add(1, Ordering::Relaxed);
    }
}

pub(super) fn render_tls(w: &mut TextWriter, listeners: &[(Arc<str>, Arc<TlsHandshakeMetrics>)]) {
    w.family(
        HANDSHAKES,
        "TLS handshakes completed on a listener.",
        Kind::Counter,
    );
    for (listener, m) in listeners {
        w.sample(
            HANDSHAKES,
            &[("listener", listener)],
            m.completed.load(Ordering::Relaxed),
        );
    }
    w.family(
        ERRORS,
        "TLS handshakes that failed on a listener, by reason.",
        Kind::Counter,
    );
    for (listener, m) in listeners {
        for (reason, count) in TlsFailure::ALL.iter().zip(&m.failed) {
            w.sample(
                ERRORS,
                &[("listener", listener), ("reason", reason.label())],
                count.load(Ordering::Relaxed),
            );
        }
    }
}
