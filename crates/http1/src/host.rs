//! The `Host` header and absolute-form request targets (RFC 9112 §3.2, RFC 3986 §3.2).

/// Whether `value` is a valid `Host` value: `uri-host [ ":" port ]`, with no userinfo. The host is an
/// IPv6 address in brackets or a reg-name / IPv4 address of unreserved characters and sub-delimiters;
/// the port is at most five digits. An empty value is valid (RFC 9112 §3.2: a target without an
/// authority).
pub fn is_valid_authority(value: &[u8]) -> bool {
    // The common `Host`, a name or IPv4 address with an optional port, in one pass of table lookups:
    // this runs on every request.
    if value.first() != Some(&b'[') {
        let name = value
            .iter()
            .take_while(|b| REG_NAME[usize::from(**b)])
            .count();
        return match value.get(name) {
            None => true,
            Some(b':') => {
                let port = &value[name + 1..];
                port.len() <= 5 && port.iter().all(u8::is_ascii_digit)
            }
            Some(_) => false,
        };
    }
    let (host, port) = split_port(value);
    let host_ok = if let Some(literal) = host.strip_prefix(b"[") {
        // An IPv6 address, checked as one: a bracketed run of hex digits, colons and dots that is not an
        // address would be refused by `http` when it becomes an HTTP/2 `:authority`.
        literal
            .strip_suffix(b"]")
            .and_then(|inner| std::str::from_utf8(inner).ok())
            .is_some_and(|inner| inner.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        reg_name(host)
    };
    host_ok && port.is_none_or(|p| p.len() <= 5 && p.iter().all(u8::is_ascii_digit))
}

/// The host and, after the last `:` outside an IP literal, the port.
fn split_port(value: &[u8]) -> (&[u8], Option<&[u8]>) {
    let after_literal = value
        .iter()
        .rposition(|b| *b == b']')
        .map_or(0, |at| at + 1);
    match value[after_literal..].iter().position(|b| *b == b':') {
        Some(at) => {
            let at = after_literal + at;
            (&value[..at], Some(&value[at + 1..]))
        }
        None => (value, None),
    }
}

/// unreserved and sub-delims (RFC 3986 §2.2, §2.3); never `@`, `/`, `?`, `#`, space or controls. Not
/// percent-encodings either, though RFC 3986 allows them: no DNS name has one, `http` refuses them
/// (so an HTTP/2 upstream would get no `:authority` where an HTTP/1.1 one gets `Host`), and a host
/// spelled two ways could match one route's host and not another's.
/// unreserved and sub-delims (RFC 3986 §2.2, §2.3), the bytes a host name may hold, as a table: this
/// runs on every request's `Host`.
const REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        b += 1;
    }
    table
};

fn reg_name(host: &[u8]) -> bool {
    host.iter().all(|b| REG_NAME[usize::from(*b)])
}

/// Whether two authorities name the same host and port, ignoring ASCII case.
pub fn same_authority(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_values() {
        for good in [
            "a.example",
            "a.example:8080",
            "127.0.0.1:1",
            "[::1]:443",
            "[::1]",
            "",
            "xn--d1a.example",
            "[::ffff:1.2.3.4]:80",
        ] {
            assert!(is_valid_authority(good.as_bytes()), "{good:?}");
        }
        for bad in [
            "a b/c@d",
            "x@b.example",
            "a/b",
            "a?b",
            "a#b",
            "a:b",
            "a:123456",
            "[::1",
            "[zz]",
            "a\tb",
            "%zz",
            "a:1:2",
            // Refused by `http` as an HTTP/2 `:authority`, so refused as a `Host` too.
            "a%41",
            "[::f::::::::::::::::.]",
            "[1.2.3.4]",
            "[:]",
        ] {
            assert!(!is_valid_authority(bad.as_bytes()), "{bad:?}");
        }
    }
}
