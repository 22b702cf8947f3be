//! [`CidrSet`]: a set of IPv4 and IPv6 networks with a lookup that is not linear in their number.
//!
//! Written here rather than taken from a crate: the networks are merged into sorted, disjoint ranges
//! once per snapshot, and a lookup is one binary search, which is all `ip-restriction` and `real_ip`
//! need (tens of thousands of entries, no updates between snapshots). `ipnet` parses the networks.

use std::net::IpAddr;

use ipnet::IpNet;

/// IPv4 and IPv6 networks, merged into sorted disjoint ranges.
#[derive(Debug, Default, Clone)]
pub struct CidrSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

/// A network entry that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BadCidr {
    /// Not `a.b.c.d/n`, `x::y/n` or a bare address.
    #[error("{0:?} is not an IP network (a.b.c.d/n, x::y/n or an address)")]
    NotANetwork(String),
    /// An IPv6 network of prefix 81 to 95 holding the IPv4-mapped block `::ffff:0:0/96`: part IPv4,
    /// part IPv6, it has no single meaning once mapped addresses are compared as IPv4.
    #[error(
        "{0:?} holds the IPv4-mapped block ::ffff:0:0/96 and IPv6 addresses beside it: \
         write the IPv4 part as IPv4 (0.0.0.0/0 for all of it) and the IPv6 part separately"
    )]
    PartlyMapped(String),
}

impl CidrSet {
    /// The set of `networks`; a bare address is a network of one address. An IPv4-mapped IPv6
    /// network (`::ffff:10.0.0.0/104`) is the IPv4 network it maps (`10.0.0.0/8`), since peers are
    /// compared as IPv4 too ([`canonical`]); `::/n` with `n` up to 80 holds IPv6 addresses only.
    pub fn parse<'a>(networks: impl IntoIterator<Item = &'a str>) -> Result<Self, BadCidr> {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for text in networks {
            let net =
                parse_net(text.trim()).ok_or_else(|| BadCidr::NotANetwork(text.to_string()))?;
            match canonical_net(net).ok_or_else(|| BadCidr::PartlyMapped(text.to_string()))? {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
            }
        }
        Ok(Self {
            v4: merge(v4),
            v6: merge(v6),
        })
    }

    /// Whether the set holds no network.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Whether `ip` is in one of the networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match canonical(ip) {
            IpAddr::V4(v4) => in_ranges(&self.v4, u32::from(v4)),
            IpAddr::V6(v6) => in_ranges(&self.v6, u128::from(v6)),
        }
    }
}

/// `ip` with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) turned into IPv4, as a dual-stack socket
/// reports IPv4 clients.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The prefix length of `::ffff:0:0/96`, the IPv4-mapped block (RFC 4291 §2.5.5.2).
const MAPPED_PREFIX: u8 = 96;

/// `net` as lookups see it: a network inside the IPv4-mapped block as that IPv4 network; `None` for a
/// network of prefix 81 to 95 that holds the block (shorter prefixes are read as IPv6 only, or
/// `::/0` would let every IPv4 client through an allow list written for IPv6).
fn canonical_net(net: IpNet) -> Option<IpNet> {
    let IpNet::V6(v6) = net else {
        return Some(net);
    };
    let prefix = v6.prefix_len();
    if prefix >= MAPPED_PREFIX {
        // A block of /96 or longer is either inside the mapped block or apart from it.
        return Some(match v6.network().to_ipv4_mapped() {
            Some(v4) => IpNet::V4(ipnet::Ipv4Net::new(v4, prefix - MAPPED_PREFIX).ok()?),
            None => net,
        });
    }
    let mapped = u128::from(std::net::Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0));
    let holds_mapped = u128::from(v6.network()) <= mapped && mapped <= u128::from(v6.broadcast());
    if prefix > 80 && holds_mapped {
        return None;
    }
    Some(net)
}

fn parse_net(text: &str) -> Option<IpNet> {
    if let Ok(net) = text.parse::<IpNet>() {
        return Some(net.trunc());
    }
    text.parse::<IpAddr>().ok().map(IpNet::from)
}

fn merge<T: Ord + Copy + num_like::Succ>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut merged: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start <= last.1.succ_saturating() => {
                if end > last.1 {
                    last.1 = end;
                }
            }
            _ => merged.push((start, end)),
        }
    }
    merged
}

fn in_ranges<T: Ord + Copy>(ranges: &[(T, T)], ip: T) -> bool {
    // The last range starting at or before `ip` is the only one that can hold it.
    let after = ranges.partition_point(|&(start, _)| start <= ip);
    after > 0 && ranges[after - 1].1 >= ip
}

mod num_like {
    /// The next value, saturating at the maximum (so adjacent ranges merge).
    pub trait Succ {
        fn succ_saturating(self) -> Self;
    }
    impl Succ for u32 {
        fn succ_saturating(self) -> Self {
            self.saturating_add(1)
        }
    }
    impl Succ for u128 {
        fn succ_saturating(self) -> Self {
            self.saturating_add(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_and_addresses_of_both_families() {
        let set = CidrSet::parse(["10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "::1"]).unwrap();
        assert!(set.contains(ip("10.255.0.1")));
        assert!(!set.contains(ip("11.0.0.0")));
        assert!(set.contains(ip("192.168.1.7")));
        assert!(!set.contains(ip("192.168.1.8")));
        assert!(set.contains(ip("2001:db8:1::5")));
        assert!(set.contains(ip("::1")));
        assert!(!set.contains(ip("::2")));
        assert!(set.contains(ip("::ffff:10.1.2.3")), "mapped IPv4 is IPv4");
    }

    #[test]
    fn overlapping_and_adjacent_networks_merge() {
        let set = CidrSet::parse(["10.0.0.0/24", "10.0.1.0/24", "10.0.0.128/25", "0.0.0.0/0"]);
        let set = set.unwrap();
        assert_eq!(set.v4, vec![(0, u32::MAX)]);
        let set = CidrSet::parse(["10.0.0.0/24", "10.0.1.0/24"]).unwrap();
        assert_eq!(set.v4.len(), 1);
    }

    #[test]
    fn host_bits_are_ignored_and_junk_is_refused() {
        let set = CidrSet::parse(["10.1.2.3/16"]).unwrap();
        assert!(set.contains(ip("10.1.200.1")));
        for bad in ["10.0.0.0/33", "nope", "10.0.0/8", ""] {
            assert!(CidrSet::parse([bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn ipv4_mapped_entries_are_the_ipv4_networks_they_map() {
        let set = CidrSet::parse(["::ffff:127.0.0.1", "::ffff:10.0.0.0/104"]).unwrap();
        assert_eq!(
            set.v4,
            vec![(0x0a00_0000, 0x0aff_ffff), (0x7f00_0001, 0x7f00_0001)]
        );
        assert!(set.v6.is_empty());
        for inside in ["127.0.0.1", "::ffff:127.0.0.1", "10.200.0.1"] {
            assert!(set.contains(ip(inside)), "{inside}");
        }
        assert!(!set.contains(ip("127.0.0.2")));
        let all = CidrSet::parse(["::ffff:0:0/96"]).unwrap();
        assert_eq!(all.v4, vec![(0, u32::MAX)]);
        assert!(all.contains(ip("127.0.0.1")) && !all.contains(ip("::1")));
        // Host bits past the prefix go, as for any entry.
        let truncated = CidrSet::parse(["::ffff:10.1.2.3/104"]).unwrap();
        assert_eq!(truncated.v4, vec![(0x0a00_0000, 0x0aff_ffff)]);
        // A neighbour of the mapped block stays IPv6.
        let beside = CidrSet::parse(["::fffe:0:0/96", "64:ff9b::/96"]).unwrap();
        assert!(beside.v4.is_empty() && beside.v6.len() == 2);
    }

    #[test]
    fn a_network_partly_ipv4_mapped_is_refused_and_a_wide_one_is_ipv6_only() {
        for partly in [
            "::ffff:0:0/95",
            "::fffe:0:0/81",
            "::8000:0:0/81",
            "::ffff:0:0/88",
        ] {
            assert!(
                matches!(CidrSet::parse([partly]), Err(BadCidr::PartlyMapped(_))),
                "{partly}"
            );
        }
        // Beside the mapped block, a prefix of 81 to 95 is an IPv6 network like any other.
        assert!(CidrSet::parse(["2001:db8::/88", "::/81"]).is_ok());
        let wide = CidrSet::parse(["::/80", "::/0"]).unwrap();
        assert!(wide.v4.is_empty());
        assert!(wide.contains(ip("2001:db8::1")));
        assert!(
            !wide.contains(ip("127.0.0.1")),
            "0.0.0.0/0 is needed for IPv4"
        );
        assert!(!wide.contains(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn many_entries_are_found() {
        let nets: Vec<String> = (0..20_000u32)
            .map(|i| i * 2)
            .map(|j| format!("{}.{}.{}.0/24", 1 + j / 65536, (j / 256) % 256, j % 256))
            .collect();
        let set = CidrSet::parse(nets.iter().map(String::as_str)).unwrap();
        assert_eq!(set.v4.len(), 20_000, "every other /24: nothing merges");
        assert!(set.contains(ip("1.0.200.9")));
        assert!(!set.contains(ip("1.0.201.9")));
        assert!(!set.contains(ip("9.9.9.9")));
    }
}
