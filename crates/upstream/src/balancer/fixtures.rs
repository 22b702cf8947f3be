//! Test inputs shared by the balancer tests.

use std::time::Duration;

use floodgate_config::{Balancer, HumanDuration, KeepaliveConfig, TargetConfig, UpstreamConfig};
use http::HeaderMap;

use super::PickContext;

/// Targets from `(address, weight)` pairs.
pub(crate) fn targets(list: &[(&str, u32)]) -> Vec<TargetConfig> {
    list.iter()
        .map(|&(address, weight)| TargetConfig {
            address: address.to_owned(),
            weight,
            priority: 0,
        })
        .collect()
}

/// An upstream with the given balancer and targets, everything else at its default.
pub(crate) fn upstream(balancer: Balancer, list: &[(&str, u32)]) -> UpstreamConfig {
    UpstreamConfig {
        id: "test".to_owned(),
        targets: targets(list),
        discovery: None,
        balancer,
        hash_on: None,
        hash_key: None,
        protocol: None,
        tls: None,
        connect_timeout: HumanDuration(Duration::from_secs(5)),
        read_timeout: HumanDuration(Duration::from_secs(60)),
        max_connections_per_target: None,
        keepalive: KeepaliveConfig::default(),
        health_checks: Default::default(),
        circuit_breaker: None,
        ewma: Default::default(),
        slow_start: None,
        load_reports: None,
    }
}

/// A pick context for `worker` with the given headers, path `/` and no client address.
pub(crate) fn context(worker: usize, headers: &HeaderMap) -> PickContext<'_> {
    PickContext {
        worker,
        headers,
        path: "/",
        client_ip: None,
    }
}
