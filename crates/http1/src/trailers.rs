//! Which fields may travel in a trailer section (RFC 9110 §6.5.1).

/// Whether `name` (lowercase) must not be sent or accepted as a trailer field: fields that frame the
/// message, route it, modify the request, authenticate, control the response, or describe its content
/// are read from the header section alone, so a trailer carrying one could make the next hop act on a
/// value the gateway never checked. Such trailers are dropped when read and never written.
pub fn is_forbidden_trailer(name: &[u8]) -> bool {
    const FORBIDDEN: &[&[u8]] = &[
        // framing and the connection
        b"content-length",
        b"transfer-encoding",
        b"trailer",
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"upgrade",
        b"te",
        // routing and request modifiers
        b"host",
        b"expect",
        b"max-forwards",
        b"range",
        b"if-match",
        b"if-none-match",
        b"if-modified-since",
        b"if-unmodified-since",
        b"if-range",
        b"cache-control",
        b"pragma",
        // authentication and state
        b"authorization",
        b"proxy-authorization",
        b"www-authenticate",
        b"proxy-authenticate",
        b"cookie",
        b"set-cookie",
        // response control and content description
        b"age",
        b"expires",
        b"date",
        b"location",
        b"retry-after",
        b"vary",
        b"warning",
        b"content-encoding",
        b"content-type",
        b"content-range",
        // the gateway's own
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-request-id",
    ];
    FORBIDDEN.iter().any(|f| f.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_routing_and_auth_fields_are_forbidden() {
        for name in [
            "Content-Length",
            "host",
            "AUTHORIZATION",
            "transfer-encoding",
            "x-forwarded-for",
        ] {
            assert!(is_forbidden_trailer(name.as_bytes()), "{name}");
        }
        for name in ["grpc-status", "grpc-message", "x-checksum", "server-timing"] {
            assert!(!is_forbidden_trailer(name.as_bytes()), "{name}");
        }
    }
}
