//! Choosing a target for each request: one [`LoadBalancer`] per upstream, one file per algorithm.

mod consistent_hash;
mod ewma;
#[cfg(test)]
pub(crate) mod fixtures;
mod hash_key;
mod least_request;
mod random;
mod rejected;
mod round_robin;
mod weights;

use std::net::IpAddr;

use floodgate_config::{Balancer, TargetConfig, UpstreamConfig};
use http::HeaderMap;

use std::sync::Arc;

use crate::in_flight::InFlightGuard;
use crate::load::{EwmaSettings, TargetLoad};
use consistent_hash::ConsistentHash;
use ewma::Ewma;
use hash_key::HashKey;
use least_request::LeastRequest;
use random::WeightedRandom;
use round_robin::RoundRobin;

/// What a balancer may look at to pick a target for one request.
#[derive(Debug, Clone, Copy)]
pub struct PickContext<'a> {
    /// Index of the worker thread making the pick, `0..workers`. Round robin keeps one cursor per worker
    /// so that workers never write the same cache line.
    pub worker: usize,
    /// The client's request headers (`consistent_hash` on a header or a cookie).
    pub headers: &'a HeaderMap,
    /// The request path; a query string, if present, is ignored (`consistent_hash` on the path).
    pub path: &'a str,
    /// The client's address, when known (`consistent_hash` on the client IP).
    pub client_ip: Option<IpAddr>,
}

/// One balancer per upstream, built once per config snapshot and shared by all workers (Send + Sync).
///
/// Everything a pick needs is precomputed here; a pick only reads this structure and updates atomics.
#[derive(Debug)]
pub struct LoadBalancer {
    strategy: Strategy,
    targets: usize,
}

/// The algorithm chosen by the upstream's `balancer` setting. An enum rather than a trait object keeps
/// `pick` statically dispatched and lets each algorithm inline the caller's `eligible` closure.
#[derive(Debug)]
enum Strategy {
    RoundRobin(RoundRobin),
    Random(WeightedRandom),
    LeastRequest(LeastRequest),
    ConsistentHash(ConsistentHash),
    Ewma(Ewma),
}

impl LoadBalancer {
    /// Builds the balancer for `config`, whose targets have passed validation (non-empty, weights
    /// 1..=10000), for a proxy running `workers` worker threads.
    ///
    /// Nothing here fails: an empty target list gives a balancer whose picks are all `None`, a weight of
    /// 0 counts as 1, and `consistent_hash` without a usable `hash_on`/`hash_key` falls back to round robin
    /// for every request.
    pub fn new(config: &UpstreamConfig, workers: usize) -> LoadBalancer {
        let loads: Vec<Arc<TargetLoad>> = config.targets.iter().map(|_| Arc::default()).collect();
        Self::with_loads(config, &config.targets, workers, &loads)
    }

    /// Like [`LoadBalancer::new`], for `targets`, `config`'s targets as they are now (a name's
    /// resolved addresses in its place), with each target's load (in flight, latency) kept outside
    /// the balancer, indexed like the targets: a reload or a new answer that keeps a target hands its
    /// load to the new balancer.
    pub fn with_loads(
        config: &UpstreamConfig,
        targets: &[TargetConfig],
        workers: usize,
        loads: &[Arc<TargetLoad>],
    ) -> LoadBalancer {
        let loads: Box<[Arc<TargetLoad>]> = loads.iter().take(targets.len()).cloned().collect();
        let strategy = match config.balancer {
            Balancer::RoundRobin => Strategy::RoundRobin(RoundRobin::new(targets, workers)),
            Balancer::Random => Strategy::Random(WeightedRandom::new(targets)),
            Balancer::LeastRequest => Strategy::LeastRequest(LeastRequest::new(targets, loads)),
            Balancer::ConsistentHash => Strategy::ConsistentHash(ConsistentHash::new(
                targets,
                HashKey::new(config.hash_on, config.hash_key.as_deref()),
                workers,
            )),
            Balancer::Ewma => Strategy::Ewma(Ewma::new(
                targets,
                loads,
                EwmaSettings::new(config.ewma.decay.get(), config.ewma.default_rtt.get()),
            )),
        };
        LoadBalancer {
            strategy,
            targets: targets.len(),
        }
    }

    /// Picks a target index. `eligible(i)` says whether target i may be used (the proxy passes a closure
    /// that rejects targets at their connection limit); returns `None` when no target is eligible.
    ///
    /// `eligible` may be called more than once for the same target within one pick.
    #[inline]
    pub fn pick(&self, ctx: &PickContext<'_>, eligible: impl Fn(usize) -> bool) -> Option<usize> {
        match &self.strategy {
            Strategy::RoundRobin(balancer) => balancer.pick(ctx.worker, &eligible),
            Strategy::Random(balancer) => balancer.pick(&eligible),
            Strategy::LeastRequest(balancer) => balancer.pick(&eligible),
            Strategy::ConsistentHash(balancer) => balancer.pick(ctx, &eligible),
            Strategy::Ewma(balancer) => balancer.pick(&eligible),
        }
    }

    /// Whether the balancer learns from latency: only then is [`LoadBalancer::observe`] worth a
    /// clock reading.
    #[inline]
    pub fn observes_latency(&self) -> bool {
        matches!(self.strategy, Strategy::Ewma(_))
    }

    /// Counts a round trip of `rtt_ns` nanoseconds to `target`, ending at `ended` (`ewma` only).
    pub fn observe(&self, target: usize, rtt_ns: u64, ended: crate::health::Nanos) {
        if let Strategy::Ewma(balancer) = &self.strategy {
            balancer.observe(target, rtt_ns as f64, ended);
        }
    }

    /// `target`'s latency estimate, for balancers that keep one (`ewma`).
    pub fn rtt_estimate(&self, target: usize) -> Option<std::time::Duration> {
        match &self.strategy {
            Strategy::Ewma(balancer) => balancer
                .rtt_estimate(target)
                .map(|ns| std::time::Duration::from_nanos(ns as u64)),
            _ => None,
        }
    }

    /// Number of targets.
    pub fn len(&self) -> usize {
        self.targets
    }

    /// Whether the upstream has no targets (never, once validated).
    pub fn is_empty(&self) -> bool {
        self.targets == 0
    }

    /// Marks a request to `target` as started; the request counts as in flight until the returned guard
    /// is dropped, which the proxy does when the response body ends.
    ///
    /// Only `least_request` and `ewma` use the count, so only they pay for it (one atomic add now, one atomic sub on
    /// drop); for other balancers, and for an index out of range, the guard is a no-op.
    #[inline]
    pub fn start(&self, target: usize) -> InFlightGuard {
        match &self.strategy {
            Strategy::LeastRequest(balancer) => balancer.start(target),
            Strategy::Ewma(balancer) => balancer.start(target),
            _ => InFlightGuard::untracked(),
        }
    }

    /// Requests in flight to `target`, for balancers that track them (`least_request`); `None` otherwise.
    pub fn in_flight(&self, target: usize) -> Option<usize> {
        match &self.strategy {
            Strategy::LeastRequest(balancer) => Some(balancer.in_flight(target)),
            Strategy::Ewma(balancer) => Some(balancer.in_flight(target)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{context, upstream};
    use super::*;
    use floodgate_config::HashOn;

    #[test]
    fn balancer_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<LoadBalancer>();
    }

    #[test]
    fn every_balancer_picks_only_eligible_targets() {
        let headers = HeaderMap::new();
        for kind in [
            Balancer::RoundRobin,
            Balancer::Random,
            Balancer::LeastRequest,
            Balancer::ConsistentHash,
        ] {
            let mut config = upstream(kind, &[("a:80", 1), ("b:80", 2), ("c:80", 3)]);
            config.hash_on = Some(HashOn::Path);
            let balancer = LoadBalancer::new(&config, 2);
            assert_eq!(balancer.len(), 3);
            assert!(!balancer.is_empty());
            for worker in 0..2 {
                let ctx = context(worker, &headers);
                for _ in 0..100 {
                    assert_eq!(balancer.pick(&ctx, |i| i == 1), Some(1), "{kind:?}");
                }
                assert_eq!(balancer.pick(&ctx, |_| false), None, "{kind:?}");
            }
        }
    }

    #[test]
    fn no_targets_means_no_pick() {
        let headers = HeaderMap::new();
        for kind in [
            Balancer::RoundRobin,
            Balancer::Random,
            Balancer::LeastRequest,
            Balancer::ConsistentHash,
        ] {
            let balancer = LoadBalancer::new(&upstream(kind, &[]), 0);
            assert!(balancer.is_empty());
            assert_eq!(balancer.pick(&context(3, &headers), |_| true), None);
            let _guard = balancer.start(0);
        }
    }

    #[test]
    fn only_least_request_tracks_in_flight() {
        let targets = [("a:80", 1), ("b:80", 1)];
        let tracked = LoadBalancer::new(&upstream(Balancer::LeastRequest, &targets), 1);
        let guard = tracked.start(1);
        assert_eq!(tracked.in_flight(1), Some(1));
        drop(guard);
        assert_eq!(tracked.in_flight(1), Some(0));

        let untracked = LoadBalancer::new(&upstream(Balancer::RoundRobin, &targets), 1);
        let _guard = untracked.start(1);
        assert_eq!(untracked.in_flight(1), None);
    }

    #[test]
    fn consistent_hash_without_key_falls_back_to_round_robin() {
        let headers = HeaderMap::new();
        let mut config = upstream(Balancer::ConsistentHash, &[("a:80", 1), ("b:80", 1)]);
        config.hash_on = Some(HashOn::Header);
        config.hash_key = Some("x-user".to_owned());
        let balancer = LoadBalancer::new(&config, 1);
        let ctx = context(0, &headers);
        let picks: Vec<_> = (0..4)
            .filter_map(|_| balancer.pick(&ctx, |_| true))
            .collect();
        assert_eq!(picks, [0, 1, 0, 1]);
    }
}
