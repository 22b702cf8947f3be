//! One host's addresses from the configured name servers, bounded by the configured timeout.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use floodgate_config::{DnsConfig, LookupFamily};
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
    ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;

use crate::ttl::TtlBounds;

/// Why a resolution gave no addresses. The last answer stays in use in every case.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// No name server answered within `dns.timeout`.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The name does not exist (`NXDOMAIN`).
    #[error("no such name")]
    NoSuchName,
    /// The name exists but has no address of the configured family.
    #[error("no address")]
    NoAddress,
    /// Anything else: a failing server, a malformed answer, a resolver that could not be set up.
    #[error("{0}")]
    Failed(String),
}

impl ResolveError {
    /// The `result` label of `floodgate_dns_resolutions_total` for this failure.
    pub fn label(&self) -> &'static str {
        match self {
            ResolveError::Timeout(_) => "timeout",
            ResolveError::NoSuchName => "nxdomain",
            ResolveError::NoAddress => "no_address",
            ResolveError::Failed(_) => "error",
        }
    }
}

/// A host's addresses, sorted, and how long to use them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Every address of the configured family, sorted and without repeats: a server that rotates
    /// its records' order (round-robin DNS) does not look like a change.
    pub addrs: Vec<IpAddr>,
    /// The records' TTL within the configured bounds.
    pub valid_for: Duration,
}

/// Resolves hosts as `dns` says. Cheap to share: every upstream's task uses the same one.
pub struct NameResolver {
    /// `None` when the resolver could not be set up (no name server configured or in
    /// resolv.conf): every resolution then fails with the reason, which the metrics and logs show.
    inner: Result<TokioResolver, String>,
    timeout: Duration,
    bounds: TtlBounds,
}

impl NameResolver {
    /// A resolver with `config`'s name servers (the system's when it names none), family and
    /// timeout. Builds nothing that does I/O: the first query opens the sockets.
    pub fn new(config: &DnsConfig) -> Self {
        Self {
            inner: build(config),
            timeout: config.timeout.get(),
            bounds: TtlBounds::of(config),
        }
    }

    /// The bounds answers are used within.
    pub fn bounds(&self) -> TtlBounds {
        self.bounds
    }

    /// `host`'s addresses, waiting at most `dns.timeout`.
    pub async fn resolve(&self, host: &str) -> Result<Answer, ResolveError> {
        let resolver = self
            .inner
            .as_ref()
            .map_err(|e| ResolveError::Failed(e.clone()))?;
        let lookup = tokio::time::timeout(self.timeout, resolver.lookup_ip(host))
            .await
            .map_err(|_| ResolveError::Timeout(self.timeout))?
            .map_err(|e| {
                if e.is_nx_domain() {
                    ResolveError::NoSuchName
                } else if e.is_no_records_found() {
                    ResolveError::NoAddress
                } else {
                    ResolveError::Failed(e.to_string())
                }
            })?;
        let mut addrs: Vec<IpAddr> = lookup.iter().collect();
        addrs.sort_unstable();
        addrs.dedup();
        if addrs.is_empty() {
            return Err(ResolveError::NoAddress);
        }
        let ttl = lookup
            .valid_until()
            .saturating_duration_since(Instant::now());
        Ok(Answer {
            addrs,
            valid_for: self.bounds.after_answer(ttl),
        })
    }
}

fn build(config: &DnsConfig) -> Result<TokioResolver, String> {
    let system = hickory_resolver::system_conf::read_system_conf();
    let servers = config.nameserver_addrs();
    let (resolver_config, mut options) = match (system, servers.is_empty()) {
        (Ok(system), true) => system,
        (Err(e), true) => {
            return Err(format!(
                "no name server: dns.nameservers is empty and /etc/resolv.conf gave none ({e})"
            ))
        }
        // Explicit servers replace the system's; its search list and options still apply, as
        // they would to any program on the host.
        (system, false) => {
            let (system_config, options) = system.unwrap_or_else(|_| {
                (
                    ResolverConfig::from_parts(None, Vec::new(), Vec::new()),
                    ResolverOpts::default(),
                )
            });
            let (domain, search, _) = system_config.into_parts();
            let servers = servers.iter().map(name_server).collect();
            (ResolverConfig::from_parts(domain, search, servers), options)
        }
    };
    options.timeout = config.timeout.get();
    options.ip_strategy = match config.lookup_family {
        LookupFamily::Ipv4Preferred => LookupIpStrategy::Ipv4thenIpv6,
        LookupFamily::Ipv6Preferred => LookupIpStrategy::Ipv6thenIpv4,
        LookupFamily::Ipv4Only => LookupIpStrategy::Ipv4Only,
        LookupFamily::Ipv6Only => LookupIpStrategy::Ipv6Only,
        LookupFamily::All => LookupIpStrategy::Ipv4AndIpv6,
    };
    options.use_hosts_file = ResolveHosts::Always;
    // The gateway keeps the last answer of each host itself, with its own bounds; a second cache
    // here could only hand back an answer past the time `max_ttl` asked for a fresh one.
    options.cache_size = 0;
    let mut builder =
        TokioResolver::builder_with_config(resolver_config, TokioRuntimeProvider::default());
    *builder.options_mut() = options;
    builder.build().map_err(|e| e.to_string())
}

/// A name server at `addr`, over UDP with TCP for truncated answers.
fn name_server(addr: &SocketAddr) -> NameServerConfig {
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
}
