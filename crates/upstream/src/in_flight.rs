//! Counting the requests in flight to each target, for the `least_request` balancer.

use std::sync::Arc;

use crate::load::{Slot, TargetLoad};

/// The in-flight counts of all targets of one balancer: each target's own, in its [`TargetLoad`],
/// which outlives the balancer (a reload keeps the counts of the requests already in flight).
#[derive(Debug)]
pub(crate) struct InFlightCounters {
    loads: Box<[Arc<TargetLoad>]>,
}

impl InFlightCounters {
    /// The counters of these targets.
    pub(crate) fn new(loads: Box<[Arc<TargetLoad>]>) -> Self {
        Self { loads }
    }

    /// Requests in flight to `target` (0 for an index out of range).
    pub(crate) fn get(&self, target: usize) -> usize {
        self.loads.get(target).map_or(0, |load| load.in_flight())
    }

    /// Counts one more request to `target` until the returned guard is dropped.
    pub(crate) fn start(&self, target: usize) -> InFlightGuard {
        InFlightGuard {
            _slot: self
                .loads
                .get(target)
                .map(|load| Arc::clone(&load.in_flight)),
        }
    }
}

/// Counts one request as in flight to its target for as long as it is alive.
///
/// Returned by [`LoadBalancer::start`](crate::LoadBalancer::start). It owns its share of the counter, so
/// it may outlive the balancer (a configuration reload does not disturb requests in flight) and move to
/// the task that streams the response body.
#[derive(Debug)]
#[must_use = "the request counts as in flight only while the guard is alive"]
pub struct InFlightGuard {
    _slot: Option<Arc<Slot>>,
}

impl InFlightGuard {
    /// A guard that counts nothing, for balancers that do not track load.
    pub(crate) fn untracked() -> Self {
        Self { _slot: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(targets: usize) -> InFlightCounters {
        InFlightCounters::new((0..targets).map(|_| Arc::default()).collect())
    }

    #[test]
    fn guard_counts_until_dropped() {
        let counters = counters(2);
        let first = counters.start(1);
        let second = counters.start(1);
        assert_eq!((counters.get(0), counters.get(1)), (0, 2));
        drop(first);
        assert_eq!(counters.get(1), 1);
        drop(second);
        assert_eq!(counters.get(1), 0);
    }

    #[test]
    fn guard_is_static_send_and_outlives_the_counters() {
        fn assert_static_send<T: Send + 'static>(_: &T) {}
        let counters = counters(1);
        let guard = counters.start(0);
        assert_static_send(&guard);
        drop(counters);
        std::thread::spawn(move || drop(guard)).join().unwrap();
    }

    #[test]
    fn out_of_range_target_is_not_counted() {
        let counters = counters(1);
        let _guard = counters.start(7);
        assert_eq!(counters.get(7), 0);
        assert_eq!(counters.get(0), 0);
    }
}
