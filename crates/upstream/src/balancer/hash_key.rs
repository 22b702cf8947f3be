//! The request property that consistent hashing hashes, and reading it from a request.

use std::net::IpAddr;

use floodgate_config::HashOn;
use http::header::{HeaderName, COOKIE};
use http::HeaderMap;
use xxhash_rust::xxh3::xxh3_64;

use super::PickContext;

/// What to hash, resolved once per snapshot (the header name parsed, the cookie name kept as bytes).
#[derive(Debug)]
pub(crate) enum HashKey {
    /// The first value of this request header.
    Header(HeaderName),
    /// The value of the cookie with exactly this name.
    Cookie(Box<[u8]>),
    /// The client's IP address.
    ClientIp,
    /// The request path, without its query.
    Path,
    /// Nothing usable was configured; every request falls back to round robin.
    Unset,
}

impl HashKey {
    /// The key for `hash_on` with `hash_key` naming the header or cookie. Validation requires both where
    /// they matter; if they are missing or the header name is invalid anyway, the key is [`HashKey::Unset`].
    pub(crate) fn new(hash_on: Option<HashOn>, hash_key: Option<&str>) -> Self {
        match (hash_on, hash_key) {
            (Some(HashOn::Header), Some(name)) => HeaderName::try_from(name)
                .map(HashKey::Header)
                .unwrap_or(HashKey::Unset),
            (Some(HashOn::Cookie), Some(name)) if !name.is_empty() => {
                HashKey::Cookie(name.as_bytes().into())
            }
            (Some(HashOn::ClientIp), _) => HashKey::ClientIp,
            (Some(HashOn::Path), _) => HashKey::Path,
            _ => HashKey::Unset,
        }
    }

    /// The xxh3 hash of the request's key, or `None` when the request does not carry it. An empty value
    /// counts as missing: hashing it would send every such request to one target.
    #[inline]
    pub(crate) fn hash(&self, ctx: &PickContext<'_>) -> Option<u64> {
        let bytes_hash = |bytes: &[u8]| (!bytes.is_empty()).then(|| xxh3_64(bytes));
        match self {
            HashKey::Header(name) => bytes_hash(ctx.headers.get(name)?.as_bytes()),
            HashKey::Cookie(name) => bytes_hash(cookie_value(ctx.headers, name)?),
            // IPv4-mapped IPv6 (`::ffff:a.b.c.d`, what a dual-stack listener reports for IPv4 clients)
            // is the same client as `a.b.c.d` and must land on the same target.
            HashKey::ClientIp => match ctx.client_ip?.to_canonical() {
                IpAddr::V4(ip) => Some(xxh3_64(&ip.octets())),
                IpAddr::V6(ip) => Some(xxh3_64(&ip.octets())),
            },
            HashKey::Path => {
                let path = ctx.path.split_once('?').map_or(ctx.path, |(path, _)| path);
                bytes_hash(path.as_bytes())
            }
            HashKey::Unset => None,
        }
    }
}

/// The value of the cookie named exactly `name` (case-sensitive, RFC 6265 §5.4) in any `Cookie` header;
/// HTTP/2 clients may split cookies over several headers (RFC 9113 §8.2.3). The first match wins.
fn cookie_value<'h>(headers: &'h HeaderMap, name: &[u8]) -> Option<&'h [u8]> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|header| header.as_bytes().split(|&b| b == b';'))
        .find_map(|pair| {
            let (key, value) = split_once(pair, b'=')?;
            (key.trim_ascii() == name).then(|| value.trim_ascii())
        })
}

fn split_once(bytes: &[u8], separator: u8) -> Option<(&[u8], &[u8])> {
    let at = bytes.iter().position(|&b| b == separator)?;
    Some((bytes.get(..at)?, bytes.get(at + 1..)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn context<'a>(headers: &'a HeaderMap, path: &'a str, ip: Option<IpAddr>) -> PickContext<'a> {
        PickContext {
            worker: 0,
            headers,
            path,
            client_ip: ip,
        }
    }

    fn cookies(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(COOKIE, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn cookie_is_found_by_exact_name() {
        let headers = cookies(&["sessionid=wrong; session = abc ;theme=dark"]);
        assert_eq!(cookie_value(&headers, b"session"), Some(&b"abc"[..]));
        assert_eq!(cookie_value(&headers, b"Session"), None);
        assert_eq!(cookie_value(&headers, b"sess"), None);
        assert_eq!(cookie_value(&headers, b"theme"), Some(&b"dark"[..]));
    }

    #[test]
    fn cookie_may_be_in_any_cookie_header() {
        let headers = cookies(&["a=1", "b=2; flag", "c=x=y"]);
        assert_eq!(cookie_value(&headers, b"b"), Some(&b"2"[..]));
        assert_eq!(cookie_value(&headers, b"c"), Some(&b"x=y"[..]));
        assert_eq!(cookie_value(&headers, b"flag"), None);
    }

    #[test]
    fn cookie_key_hashes_its_value() {
        let key = HashKey::new(Some(HashOn::Cookie), Some("session"));
        let one = cookies(&["theme=dark; session=abc"]);
        let two = cookies(&["session=abc"]);
        let other = cookies(&["session=abd"]);
        let hash = |headers: &HeaderMap| key.hash(&context(headers, "/", None));
        assert_eq!(hash(&one), Some(xxh3_64(b"abc")));
        assert_eq!(hash(&one), hash(&two));
        assert_ne!(hash(&one), hash(&other));
        assert_eq!(hash(&cookies(&["theme=dark"])), None);
        assert_eq!(hash(&cookies(&["session="])), None);
    }

    #[test]
    fn header_key_hashes_its_first_value() {
        let key = HashKey::new(Some(HashOn::Header), Some("X-User"));
        let mut headers = HeaderMap::new();
        assert_eq!(key.hash(&context(&headers, "/", None)), None);
        headers.append("x-user", HeaderValue::from_static("alice"));
        headers.append("x-user", HeaderValue::from_static("bob"));
        assert_eq!(
            key.hash(&context(&headers, "/", None)),
            Some(xxh3_64(b"alice"))
        );
    }

    #[test]
    fn client_ip_key_treats_mapped_ipv4_as_ipv4() {
        let key = HashKey::new(Some(HashOn::ClientIp), None);
        let headers = HeaderMap::new();
        let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let hash = |ip| key.hash(&context(&headers, "/", ip));
        assert_eq!(hash(Some(v4)), Some(xxh3_64(&[192, 0, 2, 7])));
        assert_eq!(hash(Some(mapped)), hash(Some(v4)));
        assert_ne!(hash(Some(v6)), hash(Some(v4)));
        assert_eq!(hash(None), None);
    }

    #[test]
    fn path_key_ignores_the_query() {
        let key = HashKey::new(Some(HashOn::Path), None);
        let headers = HeaderMap::new();
        let hash = |path| key.hash(&context(&headers, path, None));
        assert_eq!(hash("/users/7?page=2"), Some(xxh3_64(b"/users/7")));
        assert_eq!(hash("/users/7"), hash("/users/7?page=3"));
        assert_eq!(hash(""), None);
    }

    #[test]
    fn unusable_configuration_means_no_key() {
        assert!(matches!(HashKey::new(None, None), HashKey::Unset));
        assert!(matches!(
            HashKey::new(Some(HashOn::Header), None),
            HashKey::Unset
        ));
        assert!(matches!(
            HashKey::new(Some(HashOn::Header), Some("bad header")),
            HashKey::Unset
        ));
        assert!(matches!(
            HashKey::new(Some(HashOn::Cookie), Some("")),
            HashKey::Unset
        ));
    }
}
