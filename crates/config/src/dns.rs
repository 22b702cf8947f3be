//! How targets given by host name are resolved: which name servers are asked, how long an answer is
//! used, and which of a name's addresses become targets.
//!
//! Resolution runs in the background; these settings bound how fresh the targets are, never how long
//! a request waits (it never does).

use std::net::SocketAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{FieldError, HumanDuration};

/// The resolver of upstream target names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// Name servers to ask, each `ip:port` (`"10.0.0.2:53"`), over UDP with TCP for truncated
    /// answers. Empty, the default: those of the system's `/etc/resolv.conf`. Names in the system's
    /// hosts file are answered from it either way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Longest wait for one resolution of one name. It also bounds how long start-up and a reload
    /// wait for a name that has no answer yet. Default 5s.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Shortest time an answer is used before the name is asked again, whatever its TTL says (a TTL
    /// of 0 would otherwise ask in a loop). Default 1s.
    #[serde(default = "default_min_ttl")]
    pub min_ttl: HumanDuration,
    /// Longest time an answer is used before the name is asked again, whatever its TTL says.
    /// Default 300s.
    #[serde(default = "default_max_ttl")]
    pub max_ttl: HumanDuration,
    /// How soon a name is asked again after its resolution failed (timeout, `SERVFAIL`, `NXDOMAIN`,
    /// no address); its last answer stays in use meanwhile (RFC 8767). Default 5s.
    #[serde(default = "default_retry_interval")]
    pub retry_interval: HumanDuration,
    /// Which addresses of a name become targets.
    #[serde(default)]
    pub lookup_family: LookupFamily,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            nameservers: Vec::new(),
            timeout: default_timeout(),
            min_ttl: default_min_ttl(),
            max_ttl: default_max_ttl(),
            retry_interval: default_retry_interval(),
            lookup_family: LookupFamily::default(),
        }
    }
}

fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(5)
}

fn default_min_ttl() -> HumanDuration {
    HumanDuration::from_secs(1)
}

fn default_max_ttl() -> HumanDuration {
    HumanDuration::from_secs(300)
}

fn default_retry_interval() -> HumanDuration {
    HumanDuration::from_secs(5)
}

/// The address families a name's targets come from (Envoy's `dns_lookup_family`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LookupFamily {
    /// Every A record; the AAAA records only of a name that has no A record. The default: a host
    /// whose IPv6 addresses the gateway cannot reach (common in containers) still gets all its
    /// traffic.
    #[default]
    Ipv4Preferred,
    /// Every AAAA record; the A records only of a name that has no AAAA record.
    Ipv6Preferred,
    /// Only A records.
    Ipv4Only,
    /// Only AAAA records.
    Ipv6Only,
    /// Every A and every AAAA record.
    All,
}

impl DnsConfig {
    /// The name servers as socket addresses; those that do not parse are left out (validation
    /// reports them).
    pub fn nameserver_addrs(&self) -> Vec<SocketAddr> {
        self.nameservers
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect()
    }

    /// Records every problem under `dns`.
    pub(crate) fn validate_into(&self, errors: &mut Vec<FieldError>) {
        for (i, server) in self.nameservers.iter().enumerate() {
            match server.parse::<SocketAddr>() {
                Ok(addr) if addr.port() != 0 => {}
                _ => errors.push(FieldError::new(
                    format!("dns.nameservers[{i}]"),
                    format!(
                        "invalid name server {server:?}, expected ip:port such as \"10.0.0.2:53\""
                    ),
                )),
            }
        }
        for (name, value) in [
            ("timeout", self.timeout),
            ("min_ttl", self.min_ttl),
            ("retry_interval", self.retry_interval),
        ] {
            value.require_nonzero(format!("dns.{name}"), errors);
        }
        if self.max_ttl < self.min_ttl {
            errors.push(FieldError::new(
                "dns.max_ttl",
                format!("must be at least min_ttl ({})", self.min_ttl),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(yaml: &str) -> Vec<String> {
        let base = "listeners: [{ name: main, address: \"127.0.0.1:0\" }]\n";
        match crate::parse_yaml(&format!("{base}{yaml}")) {
            Ok(_) => Vec::new(),
            Err(e) => e.field_errors().iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let defaults = DnsConfig::default();
        let mut errors = Vec::new();
        defaults.validate_into(&mut errors);
        assert!(errors.is_empty());
        assert_eq!(defaults.min_ttl.get().as_secs(), 1);
        assert_eq!(defaults.max_ttl.get().as_secs(), 300);
        assert_eq!(defaults.lookup_family, LookupFamily::Ipv4Preferred);
        assert!(errors_of("dns: {}\n").is_empty());
    }

    #[test]
    fn bad_settings_are_refused_with_their_paths() {
        assert_eq!(
            errors_of(
                "dns:\n  nameservers: [\"10.0.0.2:53\", \"10.0.0.3\", \"ns.example:53\"]\n  \
                 timeout: 0s\n  min_ttl: 10s\n  max_ttl: 5s\n  retry_interval: 0s\n"
            ),
            [
                "dns.nameservers[1]: invalid name server \"10.0.0.3\", expected ip:port such as \"10.0.0.2:53\"",
                "dns.nameservers[2]: invalid name server \"ns.example:53\", expected ip:port such as \"10.0.0.2:53\"",
                "dns.timeout: must be greater than zero",
                "dns.retry_interval: must be greater than zero",
                "dns.max_ttl: must be at least min_ttl (10s)",
            ]
        );
        assert_eq!(
            errors_of("dns: { min_ttl: 0s, lookup_family: ipv5 }\n"),
            ["dns.lookup_family: unknown variant `ipv5`, expected one of `ipv4_preferred`, `ipv6_preferred`, `ipv4_only`, `ipv6_only`, `all`"]
        );
        assert_eq!(
            errors_of("dns: { min_ttl: 0s }\n"),
            ["dns.min_ttl: must be greater than zero"]
        );
        assert_eq!(
            errors_of("dns: { resolvers: [] }\n")[0].split(':').next(),
            Some("dns.resolvers")
        );
    }
}
