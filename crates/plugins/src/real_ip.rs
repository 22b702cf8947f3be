//! [`RealIp`]: the one notion of a request's client address that every plugin, metric and log uses.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName};

use crate::cidr::{canonical, CidrSet};

/// How the client's address is found behind trusted proxies (`real_ip` in the configuration).
///
/// The connection's peer is the client unless it is a trusted proxy. Then the address list of the
/// configured header (`X-Forwarded-For` by default) is read from its right end, each proxy having
/// appended the address it saw: trusted addresses are skipped, and the first untrusted one is the
/// client. An untrusted client can add any addresses it likes to the left of that list, and they are
/// never reached; it cannot add any to the right, where only trusted proxies write.
#[derive(Debug, Default, Clone)]
pub struct RealIp {
    trusted: CidrSet,
    header: Option<HeaderName>,
    /// Whether the header is one whose `_`/`-` twins the forwarding path does not already remove
    /// (any but `X-Forwarded-For`, which the gateway rewrites and guards itself).
    guard_twins: bool,
}

impl RealIp {
    /// Trust `trusted` to report clients in `header`.
    pub fn new(trusted: CidrSet, header: HeaderName) -> Self {
        let header = (!trusted.is_empty()).then_some(header);
        let guard_twins = header.as_ref().is_some_and(|h| {
            h != "x-forwarded-for" && floodgate_http1::can_have_twins(h.as_str().as_bytes())
        });
        Self {
            trusted,
            header,
            guard_twins,
        }
    }

    /// Removes the client's fields spelled as the configured header with `_` for `-` (`X_Real_IP`
    /// for `X-Real-IP`): a trusted proxy writes the header under its own name and passes such a
    /// field on untouched, and an upstream reading names as `HTTP_*` variables would take it for the
    /// header the gateway read the client from. Costs one flag test unless such a header is set.
    pub fn remove_header_twins(&self, headers: &mut HeaderMap) {
        if let (true, Some(header)) = (self.guard_twins, &self.header) {
            floodgate_http1::remove_twins(headers, &[header]);
        }
    }

    /// The client's address for a request from `peer` (the connection's address, or the one the
    /// PROXY protocol header gave) with these header fields.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        let Some(header) = &self.header else {
            return peer;
        };
        if !self.trusted.contains(peer) {
            return peer;
        }
        let mut client = peer;
        // Lines of the field are one list, in order (RFC 9110 §5.3).
        for line in headers.get_all(header).iter().rev() {
            for item in line.as_bytes().rsplit(|&b| b == b',') {
                let Some(ip) = parse_item(item) else {
                    // Junk where a trusted proxy should have written an address: the last hop known
                    // is the answer, never anything to the left of it.
                    return client;
                };
                client = ip;
                if !self.trusted.contains(ip) {
                    return ip;
                }
            }
        }
        client
    }

    /// Whether any proxy is trusted (otherwise the peer is always the client).
    pub fn is_on(&self) -> bool {
        self.header.is_some()
    }
}

/// One list item: an address, possibly with a port (`1.2.3.4:5`, `[::1]:5`), with optional whitespace.
fn parse_item(item: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(item).ok()?.trim_matches([' ', '\t']);
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(addr) = text.parse::<std::net::SocketAddr>() {
        return Some(canonical(addr.ip()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn real_ip() -> RealIp {
        RealIp::new(
            CidrSet::parse(["10.0.0.0/8", "127.0.0.1"]).unwrap(),
            HeaderName::from_static("x-forwarded-for"),
        )
    }

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for line in lines {
            map.append("x-forwarded-for", HeaderValue::from_str(line).unwrap());
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let got = real_ip().client(ip("203.0.113.9"), &headers(&["1.1.1.1"]));
        assert_eq!(got, ip("203.0.113.9"));
    }

    #[test]
    fn the_right_most_untrusted_address_behind_trusted_proxies_is_the_client() {
        let h = headers(&["6.6.6.6, 198.51.100.4", "10.1.1.1"]);
        assert_eq!(real_ip().client(ip("127.0.0.1"), &h), ip("198.51.100.4"));
    }

    #[test]
    fn a_spoofed_left_part_is_never_reached() {
        // The client sent "1.2.3.4"; the trusted proxy appended what it saw.
        let h = headers(&["1.2.3.4, 198.51.100.4"]);
        assert_eq!(real_ip().client(ip("10.0.0.2"), &h), ip("198.51.100.4"));
    }

    #[test]
    fn junk_stops_at_the_last_known_hop_and_all_trusted_gives_the_left_most() {
        let h = headers(&["1.2.3.4, not-an-ip, 10.0.0.9"]);
        assert_eq!(real_ip().client(ip("10.0.0.2"), &h), ip("10.0.0.9"));
        let h = headers(&["10.0.0.7, 10.0.0.9"]);
        assert_eq!(real_ip().client(ip("10.0.0.2"), &h), ip("10.0.0.7"));
        assert_eq!(
            real_ip().client(ip("10.0.0.2"), &headers(&[])),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn ports_and_brackets_are_accepted() {
        let h = headers(&["[2001:db8::1]:443, 198.51.100.4:1234"]);
        assert_eq!(real_ip().client(ip("10.0.0.2"), &h), ip("198.51.100.4"));
    }

    #[test]
    fn without_trusted_proxies_nothing_is_read() {
        let off = RealIp::default();
        assert!(!off.is_on());
        assert_eq!(
            off.client(ip("10.0.0.2"), &headers(&["1.1.1.1"])),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn a_trusted_proxy_written_as_ipv4_mapped_ipv6_is_trusted() {
        let mapped = RealIp::new(
            CidrSet::parse(["::ffff:10.0.0.0/104"]).unwrap(),
            HeaderName::from_static("x-forwarded-for"),
        );
        let h = headers(&["198.51.100.4"]);
        assert_eq!(mapped.client(ip("10.0.0.2"), &h), ip("198.51.100.4"));
        assert_eq!(mapped.client(ip("::ffff:10.0.0.2"), &h), ip("198.51.100.4"));
        assert_eq!(mapped.client(ip("11.0.0.2"), &h), ip("11.0.0.2"));
    }
}
