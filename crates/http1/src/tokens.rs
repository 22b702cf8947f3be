//! Tokens and the connection-level header rules framing depends on: which fields describe one connection
//! rather than the message (RFC 9110 §7.6.1), and the `Connection` header's options.

/// Whether `b` may appear in a token (RFC 9110 §5.6.2: field names, transfer codings, chunk extensions).
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `bytes` without the optional whitespace around it (RFC 9110 §5.6.3: OWS is spaces and tabs only). Not
/// `trim_ascii`, which also strips form feeds, CRs and LFs: a value like `5\x0c` must stay invalid rather
/// than read as `5`.
pub(crate) fn trim_ows(bytes: &[u8]) -> &[u8] {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !ows(b))
        .map_or(start, |at| at + 1);
    &bytes[start..end]
}

/// Whether a comma-separated list value has `token` (case-insensitive).
pub fn list_has(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| trim_ows(t).eq_ignore_ascii_case(token))
}

/// Whether a `Connection` header of `headers` lists `token` (case-insensitive).
pub fn connection_has(headers: &http::HeaderMap, token: &[u8]) -> bool {
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .any(|v| list_has(v.as_bytes(), token))
}

/// Which of the headers that are hop-by-hop by themselves a message has: the one list of them.
#[derive(Debug, Default, Clone, Copy)]
pub struct HopByHop {
    /// `Connection`.
    pub connection: bool,
    /// `Keep-Alive`.
    pub keep_alive: bool,
    /// `Proxy-Connection`.
    pub proxy_connection: bool,
    /// `Transfer-Encoding`.
    pub transfer_encoding: bool,
    /// `TE`.
    pub te: bool,
    /// `Upgrade`.
    pub upgrade: bool,
    /// `HTTP2-Settings`: only meaningful on a connection asking to become h2c (RFC 7540 §3.2.1).
    pub http2_settings: bool,
}

impl HopByHop {
    /// Notes `name` (lowercase) when it is one of them, and says whether it was.
    pub fn note(&mut self, name: &[u8]) -> bool {
        // Most names start with none of these letters: one comparison rules them out.
        if !matches!(name.first(), Some(b'c' | b'k' | b'p' | b't' | b'u' | b'h')) {
            return false;
        }
        let slot = match name {
            b"connection" => &mut self.connection,
            b"keep-alive" => &mut self.keep_alive,
            b"proxy-connection" => &mut self.proxy_connection,
            b"transfer-encoding" => &mut self.transfer_encoding,
            b"te" => &mut self.te,
            b"upgrade" => &mut self.upgrade,
            b"http2-settings" => &mut self.http2_settings,
            _ => return false,
        };
        *slot = true;
        true
    }
}

/// Whether `name`, in any case, is one of the headers that are hop-by-hop by themselves (as opposed to
/// those a `Connection` header names), for a head kept as bytes.
pub fn is_hop_by_hop_name(name: &[u8]) -> bool {
    // Names as they arrived may be in any case; at most 17 bytes need lowering.
    let mut lower = [0u8; 17];
    match lower.get_mut(..name.len()) {
        Some(slot) => {
            slot.copy_from_slice(name);
            slot.make_ascii_lowercase();
            HopByHop::default().note(slot)
        }
        None => false,
    }
}

/// The header names a `Connection` value lists, beyond the options `keep-alive` and `close` (and
/// `upgrade` when `keep_upgrade`).
pub fn named_by_connection(value: &[u8], keep_upgrade: bool) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(trim_ows)
        .filter(move |token| !is_kept_token(token, keep_upgrade))
}

/// Connection options that are not header names to remove.
pub fn is_kept_token(token: &[u8], keep_upgrade: bool) -> bool {
    token.is_empty()
        || token.eq_ignore_ascii_case(b"close")
        || token.eq_ignore_ascii_case(b"keep-alive")
        || (keep_upgrade && token.eq_ignore_ascii_case(b"upgrade"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_names_in_any_case() {
        for name in [
            "Connection",
            "KEEP-ALIVE",
            "te",
            "Upgrade",
            "HTTP2-Settings",
            "transfer-encoding",
        ] {
            assert!(is_hop_by_hop_name(name.as_bytes()), "{name}");
        }
        for name in [
            "content-length",
            "x-connection",
            "trailer",
            "a-very-long-header-name-indeed",
        ] {
            assert!(!is_hop_by_hop_name(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn connection_names_leave_out_options() {
        let named: Vec<&[u8]> =
            named_by_connection(b"close, X-A , keep-alive,,Upgrade", true).collect();
        assert_eq!(named, [&b"X-A"[..]]);
        assert!(list_has(b"a, Close", b"close"));
    }
}
