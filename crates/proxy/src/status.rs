//! `GET /status/upstreams`: every upstream's targets as the gateway sees them now.

use floodgate_upstream::health::Millis;
use serde_json::{json, Value};

use crate::snapshot::Snapshot;

/// Every upstream of `snapshot`, sorted by id, with each target as it is now (a name's resolved
/// addresses, each with the name it came from), its health, ejection, last probe and requests in
/// flight.
pub fn upstream_status(snapshot: &Snapshot) -> Value {
    let now = Millis::now();
    let mut ids: Vec<_> = snapshot.upstreams.keys().collect();
    ids.sort();
    let upstreams: Vec<Value> = ids
        .into_iter()
        .filter_map(|id| snapshot.upstreams.get(id))
        .map(|upstream| {
            let endpoints = upstream.endpoints.load();
            let statuses = endpoints.health.statuses(now);
            let targets: Vec<Value> = statuses
                .into_iter()
                .enumerate()
                .map(|(index, (address, status))| {
                    let ejected = status.ejected_for_ms.is_some();
                    json!({
                        "address": &*address,
                        "name": endpoints.targets.get(index).and_then(|t| t.name.as_deref()),
                        "priority": endpoints.health.priority(index),
                        "effective_weight": endpoints.health.effective_weight(index, now),
                        "healthy": !ejected && !status.probed_down,
                        "ejected": ejected,
                        "ejected_for_ms": status.ejected_for_ms,
                        "ejections": status.ejections,
                        "consecutive_5xx": status.consecutive_5xx,
                        "consecutive_gateway_errors": status.consecutive_gateway_errors,
                        "probed_down": status.probed_down,
                        "last_probe": status.last_probe.map(|(ago_ms, passed)| {
                            json!({ "ago_ms": ago_ms, "passed": passed })
                        }),
                        "in_flight": endpoints.balancer.in_flight(index),
                        "ewma_ms": endpoints
                            .balancer
                            .rtt_estimate(index)
                            .map(|rtt| rtt.as_secs_f64() * 1000.0),
                    })
                })
                .collect();
            let breaker = upstream.breaker.as_ref().map(|b| {
                json!({
                    "state": b.state().as_str(),
                    "requests_in_flight": b.requests_in_flight(),
                })
            });
            json!({ "id": &*upstream.id, "breaker": breaker, "targets": targets })
        })
        .collect();
    json!({ "upstreams": upstreams })
}
