//! [`Gcra`]: the token bucket as the generic cell rate algorithm, one arrival time per key.
//!
//! A bucket of `burst` tokens refilled at one token per emission interval `T` (`period / rate`) is
//! the same as remembering one time, the theoretical arrival time (TAT) at which the bucket will be
//! full again: a request at `now` is allowed when `max(TAT, now) + T - now <= burst * T`, and then
//! moves TAT to `max(TAT, now) + T`. One `u64` per key, updated with one compare-and-swap, so every
//! worker of the process sees one bucket per key and admits exactly what the bucket holds.

use super::Verdict;

/// A token bucket's parameters, in nanoseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gcra {
    /// Emission interval: time to refill one token.
    interval: u64,
    /// `burst * interval`: how far ahead of now TAT may run.
    tolerance: u64,
}

impl Gcra {
    /// `rate` tokens per `period_nanos`, at most `burst` at once. `None` when the interval is below
    /// one nanosecond or the tolerance does not fit in 64 bits.
    pub(crate) fn new(rate: u64, period_nanos: u64, burst: u64) -> Option<Self> {
        let interval = period_nanos.checked_div(rate).filter(|&t| t > 0)?;
        // TAT stays below u64::MAX (the table's "being reclaimed" mark) for centuries of uptime.
        let tolerance = interval.checked_mul(burst).filter(|&t| t < 1 << 62)?;
        Some(Self {
            interval,
            tolerance,
        })
    }

    /// The decision for a request at `now` on state `tat`: the new state when allowed.
    pub(crate) fn decide(&self, tat: u64, now: u64) -> (Option<u64>, Verdict) {
        let start = tat.max(now);
        let next = start + self.interval;
        let ahead = next - now;
        if ahead > self.tolerance {
            return (
                None,
                Verdict {
                    allowed: false,
                    remaining: 0,
                    reset_nanos: start - now,
                    retry_nanos: ahead - self.tolerance,
                },
            );
        }
        let verdict = Verdict {
            allowed: true,
            remaining: (self.tolerance - ahead) / self.interval,
            reset_nanos: ahead,
            retry_nanos: 0,
        };
        (Some(next), verdict)
    }

    /// Takes one token at `now` from state `tat` whether or not the bucket has one: an empty bucket
    /// goes into debt, so what was spent past it is paid back before the next token is admitted.
    /// For costs counted after the fact (`auth-failure-limit` learns of a failure when the request
    /// ends, after concurrent ones may have passed the same check).
    pub(crate) fn charge(&self, tat: u64, now: u64) -> u64 {
        // Below the table's "being reclaimed" mark (u64::MAX) however deep the debt.
        tat.max(now).saturating_add(self.interval).min(u64::MAX - 1)
    }

    /// Whether a key in state `tat` has a full bucket at `now` (forgetting it changes nothing).
    pub(crate) fn is_idle(tat: u64, now: u64) -> bool {
        tat <= now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn run(g: &Gcra, tat: &mut u64, now: u64) -> Verdict {
        let (next, verdict) = g.decide(*tat, now);
        if let Some(next) = next {
            *tat = next;
        }
        verdict
    }

    #[test]
    fn a_full_bucket_admits_burst_then_one_per_interval() {
        // 10 per second, burst 3: T = 100ms, tolerance 300ms.
        let g = Gcra::new(10, SECOND, 3).unwrap();
        let mut tat = 0;
        let now = 5 * SECOND;
        let remaining: Vec<u64> = (0..3).map(|_| run(&g, &mut tat, now).remaining).collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = run(&g, &mut tat, now);
        assert!(!refused.allowed);
        // The next token is one interval away; the bucket is full again three intervals away.
        assert_eq!(refused.retry_nanos, SECOND / 10);
        assert_eq!(refused.reset_nanos, 3 * SECOND / 10);
        assert!(!run(&g, &mut tat, now + SECOND / 10 - 1).allowed);
        let later = run(&g, &mut tat, now + SECOND / 10);
        assert!(later.allowed);
        assert_eq!(later.remaining, 0);
    }

    #[test]
    fn the_long_run_rate_is_the_configured_rate() {
        // 100 per second, burst 5, a request every millisecond for 10 seconds.
        let g = Gcra::new(100, SECOND, 5).unwrap();
        let mut tat = 0;
        let start = SECOND;
        let allowed = (0..10_000)
            .filter(|i| run(&g, &mut tat, start + i * SECOND / 1000).allowed)
            .count();
        // 5 at once, then one per 10ms over 9.999 s.
        assert_eq!(allowed, 5 + 999);
    }

    #[test]
    fn rate_per_period_and_idleness() {
        // 3 per minute, burst 1: T = 20 s.
        let g = Gcra::new(3, 60 * SECOND, 1).unwrap();
        let mut tat = 0;
        assert!(run(&g, &mut tat, SECOND).allowed);
        assert!(!Gcra::is_idle(tat, SECOND));
        let refused = run(&g, &mut tat, 2 * SECOND);
        assert_eq!(refused.retry_nanos, 19 * SECOND);
        assert!(Gcra::is_idle(tat, 21 * SECOND));
        assert!(run(&g, &mut tat, 21 * SECOND).allowed);
    }

    #[test]
    fn charges_past_an_empty_bucket_are_debt_paid_back_before_the_next_token() {
        // 1 per second, burst 2; five charged at once, as five failures that passed one check.
        let g = Gcra::new(1, SECOND, 2).unwrap();
        let now = 10 * SECOND;
        let mut tat = 0;
        for _ in 0..5 {
            tat = g.charge(tat, now);
        }
        // Three seconds of debt, then a token earned: nothing until four seconds on.
        assert!(!g.decide(tat, now + SECOND).1.allowed);
        assert!(!g.decide(tat, now + 3 * SECOND).1.allowed);
        assert!(g.decide(tat, now + 4 * SECOND).1.allowed);
        // Never reaching the table's reserved mark, however deep.
        assert!(g.charge(u64::MAX - 1, now) < u64::MAX);
    }

    #[test]
    fn degenerate_parameters_are_refused() {
        assert!(Gcra::new(0, SECOND, 1).is_none());
        assert!(Gcra::new(2 * SECOND, SECOND, 1).is_none());
        assert!(Gcra::new(1, SECOND, u64::MAX).is_none());
    }
}
