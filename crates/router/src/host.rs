//! Host names: configured patterns and the request's `Host`, brought to one comparable form.
//!
//! Both sides are lowercased and lose a trailing dot (RFC 4343: DNS names compare case-insensitively;
//! `example.com.` is the same fully qualified name). The request side also loses its port, because a route
//! names a host, not a listener.

use std::net::Ipv6Addr;

/// Longest DNS name in text form (RFC 1035 §2.3.4, 255 octets on the wire less the length bytes).
///
/// Configured hosts longer than this are rejected, so a longer request host can skip the host tiers.
pub(crate) const MAX_HOST_LEN: usize = 253;

/// A configured host, ready to be a hash-map key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostPattern {
    /// Matches this name only.
    Exact(Box<[u8]>),
    /// `*.suffix`: matches names with at least one label before `.suffix`; holds `suffix`.
    Wildcard(Box<[u8]>),
}

impl HostPattern {
    /// Parses a configured host such as `api.example.com`, `*.example.com`, `10.0.0.1` or `[::1]`.
    pub(crate) fn parse(pattern: &str) -> Result<Self, String> {
        let lower = pattern.to_ascii_lowercase();
        let name = lower.strip_suffix('.').unwrap_or(&lower);
        let name = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(name);
        let (wildcard, name) = match name.strip_prefix("*.") {
            Some(suffix) => (true, suffix),
            None => (false, name),
        };
        if name.contains('*') {
            return Err(format!(
                "host {pattern:?}: a wildcard is only allowed as the first label, as in \"*.example.com\""
            ));
        }
        if name.is_empty() {
            return Err(format!("host {pattern:?} is empty"));
        }
        if name.len() > MAX_HOST_LEN {
            return Err(format!(
                "host {pattern:?} is longer than {MAX_HOST_LEN} characters"
            ));
        }
        if name.contains(':') && name.parse::<Ipv6Addr>().is_err() {
            // The request's port is stripped before matching, so a pattern with one could never match.
            return Err(format!(
                "host {pattern:?} must not include a port; routes match the host on any port"
            ));
        }
        if name
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'/')
        {
            return Err(format!("host {pattern:?} is not a valid host name"));
        }
        let key = name.as_bytes().into();
        Ok(if wildcard {
            HostPattern::Wildcard(key)
        } else {
            HostPattern::Exact(key)
        })
    }
}

/// The request's host, without port or trailing dot, lowercased.
///
/// A host already in lowercase (nearly every one) is borrowed from the request; another is
/// lowercased into a buffer on the stack. Neither allocates, and the common case does not even fill
/// the buffer (253 bytes zeroed and copied per request were most of what a table with host-bound
/// routes cost over one without).
// Boxing the buffer would allocate per request; the value lives on the stack for one lookup.
#[allow(clippy::large_enum_variant)]
pub(crate) enum RequestHost<'a> {
    /// Already lowercase: the request's own bytes.
    Borrowed(&'a [u8]),
    /// Lowercased into a buffer.
    Lowered {
        /// The buffer.
        buf: [u8; MAX_HOST_LEN],
        /// How much of it is the name.
        len: usize,
    },
}

impl<'a> RequestHost<'a> {
    /// Normalises a `Host` header or `:authority` value; `None` when no configured host could match it.
    pub(crate) fn new(raw: &'a str) -> Option<Self> {
        let name = if let Some(bracketed) = raw.strip_prefix('[') {
            // RFC 3986 §3.2.2: an IPv6 literal is bracketed, and its colons are not a port separator.
            bracketed.split_once(']')?.0
        } else {
            match raw.split_once(':') {
                Some((name, port)) if !port.contains(':') => name,
                // More than one colon and no brackets: a bare IPv6 address, which has no port to strip.
                _ => raw,
            }
        };
        let name = name.strip_suffix('.').unwrap_or(name).as_bytes();
        if name.is_empty() || name.len() > MAX_HOST_LEN {
            return None;
        }
        if !name.iter().any(u8::is_ascii_uppercase) {
            return Some(RequestHost::Borrowed(name));
        }
        let mut buf = [0; MAX_HOST_LEN];
        let slot = buf.get_mut(..name.len())?;
        slot.copy_from_slice(name);
        slot.make_ascii_lowercase();
        Some(RequestHost::Lowered {
            buf,
            len: name.len(),
        })
    }

    /// The normalised name, the key for exact hosts.
    pub(crate) fn name(&self) -> &[u8] {
        match self {
            RequestHost::Borrowed(name) => name,
            RequestHost::Lowered { buf, len } => buf.get(..*len).unwrap_or_default(),
        }
    }

    /// Keys for wildcard hosts, longest suffix first: `a.b.example.com` gives `b.example.com`,
    /// `example.com`, `com`. The name itself is never one of them, so `*.example.com` does not match
    /// `example.com`.
    pub(crate) fn wildcard_suffixes(&self) -> impl Iterator<Item = &[u8]> {
        let name = self.name();
        name.iter()
            .enumerate()
            // A dot at position 0 would leave the wildcard's label empty.
            .filter(|&(i, &b)| i > 0 && b == b'.')
            .filter_map(move |(i, _)| name.get(i + 1..))
            .filter(|suffix| !suffix.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalised(raw: &str) -> Option<String> {
        RequestHost::new(raw).map(|h| String::from_utf8(h.name().to_vec()).unwrap())
    }

    fn suffixes(raw: &str) -> Vec<String> {
        let host = RequestHost::new(raw).unwrap();
        host.wildcard_suffixes()
            .map(|s| String::from_utf8(s.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn request_host_loses_port_case_and_trailing_dot() {
        assert_eq!(
            normalised("API.Example.COM").as_deref(),
            Some("api.example.com")
        );
        assert_eq!(
            normalised("api.example.com:8443").as_deref(),
            Some("api.example.com")
        );
        assert_eq!(
            normalised("api.example.com.").as_deref(),
            Some("api.example.com")
        );
        assert_eq!(
            normalised("Api.Example.com.:80").as_deref(),
            Some("api.example.com")
        );
        assert_eq!(normalised("10.0.0.1:8080").as_deref(), Some("10.0.0.1"));
    }

    #[test]
    fn request_ipv6_host_keeps_its_colons() {
        assert_eq!(normalised("[::1]:8080").as_deref(), Some("::1"));
        assert_eq!(normalised("[FE80::1]").as_deref(), Some("fe80::1"));
        assert_eq!(normalised("::1").as_deref(), Some("::1"));
        assert_eq!(normalised("[::1"), None);
    }

    #[test]
    fn empty_or_oversized_request_host_is_ignored() {
        assert_eq!(normalised(""), None);
        assert_eq!(normalised(":8080"), None);
        assert_eq!(normalised("."), None);
        assert_eq!(normalised(&"a".repeat(MAX_HOST_LEN + 1)), None);
        assert!(normalised(&"a".repeat(MAX_HOST_LEN)).is_some());
    }

    #[test]
    fn wildcard_suffixes_run_longest_first_and_exclude_the_name() {
        assert_eq!(
            suffixes("a.b.example.com"),
            ["b.example.com", "example.com", "com"]
        );
        assert_eq!(suffixes("example.com"), ["com"]);
        assert!(suffixes("localhost").is_empty());
        assert!(suffixes(".com").is_empty());
    }

    #[test]
    fn patterns_parse_to_lowercase_keys() {
        assert_eq!(
            HostPattern::parse("API.example.com.").unwrap(),
            HostPattern::Exact(b"api.example.com".as_slice().into())
        );
        assert_eq!(
            HostPattern::parse("*.Example.com").unwrap(),
            HostPattern::Wildcard(b"example.com".as_slice().into())
        );
        assert_eq!(
            HostPattern::parse("[::1]").unwrap(),
            HostPattern::Exact(b"::1".as_slice().into())
        );
        assert_eq!(
            HostPattern::parse("::1").unwrap(),
            HostPattern::Exact(b"::1".as_slice().into())
        );
    }

    #[test]
    fn patterns_that_could_never_match_are_rejected() {
        for bad in [
            "",
            "*",
            "*.",
            "a.*.com",
            "*.*.com",
            "api.example.com:8080",
            "api example.com",
            "api/example.com",
        ] {
            assert!(
                HostPattern::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
        assert!(HostPattern::parse(&"a".repeat(MAX_HOST_LEN + 1)).is_err());
    }
}
