//! Why a client's TLS handshake failed, in the fixed set of reasons the metrics name.

use floodgate_observe::TlsFailure;

/// The reason for a failed handshake, from the error tokio-rustls gave: a rustls error wrapped in the
/// I/O error, or the I/O error itself when the connection broke.
pub(crate) fn classify(error: &std::io::Error) -> TlsFailure {
    let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return TlsFailure::Closed;
    };
    match tls {
        rustls::Error::InvalidMessage(_)
        | rustls::Error::InappropriateMessage { .. }
        | rustls::Error::InappropriateHandshakeMessage { .. }
        | rustls::Error::PeerMisbehaved(_)
        | rustls::Error::PeerSentOversizedRecord
        | rustls::Error::DecryptError => TlsFailure::Protocol,
        rustls::Error::PeerIncompatible(_) | rustls::Error::NoApplicationProtocol => {
            TlsFailure::Incompatible
        }
        rustls::Error::NoCertificatesPresented | rustls::Error::InvalidCertificate(_) => {
            TlsFailure::ClientCertificate
        }
        rustls::Error::AlertReceived(_) => TlsFailure::AlertReceived,
        // What rustls's server says when the certificate resolver has nothing for the client's SNI.
        rustls::Error::General(message) if message.contains("no server certificate") => {
            TlsFailure::UnknownServerName
        }
        _ => TlsFailure::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error, ErrorKind};

    fn wrapped(error: rustls::Error) -> Error {
        Error::new(ErrorKind::InvalidData, error)
    }

    #[test]
    fn reasons() {
        assert_eq!(
            classify(&Error::from(ErrorKind::UnexpectedEof)),
            TlsFailure::Closed
        );
        assert_eq!(
            classify(&wrapped(rustls::Error::InvalidMessage(
                rustls::InvalidMessage::InvalidContentType
            ))),
            TlsFailure::Protocol
        );
        assert_eq!(
            classify(&wrapped(rustls::Error::PeerIncompatible(
                rustls::PeerIncompatible::NoCipherSuitesInCommon
            ))),
            TlsFailure::Incompatible
        );
        assert_eq!(
            classify(&wrapped(rustls::Error::General(
                "no server certificate chain resolved".to_owned()
            ))),
            TlsFailure::UnknownServerName
        );
        assert_eq!(
            classify(&wrapped(rustls::Error::AlertReceived(
                rustls::AlertDescription::UnknownCA
            ))),
            TlsFailure::AlertReceived
        );
        assert_eq!(
            classify(&wrapped(rustls::Error::NoCertificatesPresented)),
            TlsFailure::ClientCertificate
        );
        assert_eq!(
            classify(&wrapped(rustls::Error::FailedToGetRandomBytes)),
            TlsFailure::Other
        );
    }
}
