//! [`SlidingWindow`]: the weighted two-window counter, one packed `u64` per key.
//!
//! Time is cut into fixed windows of length `W`. A key remembers the number of its current window and
//! the requests it admitted in that window and in the one before. At `e` into the current window,
//! the requests of the last `W` are estimated as `previous * (W - e) / W + current`: the previous
//! window's requests are assumed evenly spread, and the part of it still inside the sliding window
//! counts. A request is admitted while the estimate plus itself stays within `limit`; refused
//! requests are not counted, so a client that keeps sending is still served at the limit's rate.
//!
//! Error: each fixed window admits at most `limit`, so any interval of length `W` holds fewer than
//! `2 * limit` admitted requests. That worst case needs the previous window's requests bunched at its
//! very end (the weighting then forgets them too early); with evenly spread traffic the estimate is
//! exact, and bunched at the start of the previous window it refuses early instead.
//!
//! The three numbers share one word, updated with one compare-and-swap: `c` bits for each count
//! (enough for `limit`), the window number's low `64 - 2c` bits above them.

use super::Verdict;

/// The largest `limit`: counts take at most 20 bits each, leaving the window number 24 or more.
pub(crate) const MAX_LIMIT: u64 = (1 << 20) - 2;

/// A sliding window's parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlidingWindow {
    limit: u64,
    /// Window length in nanoseconds.
    window: u64,
    count_bits: u32,
    count_mask: u64,
    window_mask: u64,
}

/// Requests other gateways admitted, in the previous and the current window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Others {
    /// In the previous window.
    pub previous: u64,
    /// In the current window so far.
    pub current: u64,
}

impl Others {
    /// No other gateway.
    pub(crate) const NONE: Others = Others {
        previous: 0,
        current: 0,
    };
}

struct Unpacked {
    number: u64,
    previous: u64,
    current: u64,
}

impl SlidingWindow {
    /// `limit` requests per `window_nanos`. `None` when either is 0 or `limit` is above [`MAX_LIMIT`].
    pub(crate) fn new(limit: u64, window_nanos: u64) -> Option<Self> {
        if limit == 0 || limit > MAX_LIMIT || window_nanos == 0 {
            return None;
        }
        // One spare value above `limit`, so a count is never all ones and the word never u64::MAX
        // (the table's "being reclaimed" mark).
        let count_bits = 64 - (limit + 1).leading_zeros();
        Some(Self {
            limit,
            window: window_nanos,
            count_bits,
            count_mask: (1 << count_bits) - 1,
            window_mask: (1 << (64 - 2 * count_bits)) - 1,
        })
    }

    fn unpack(&self, state: u64) -> Unpacked {
        Unpacked {
            number: state >> (2 * self.count_bits),
            previous: (state >> self.count_bits) & self.count_mask,
            current: state & self.count_mask,
        }
    }

    fn pack(&self, number: u64, previous: u64, current: u64) -> u64 {
        ((number & self.window_mask) << (2 * self.count_bits))
            | (previous << self.count_bits)
            | current
    }

    /// The counts of the window `number` (its previous and its own) from a stored state.
    fn counts_at(&self, state: u64, number: u64) -> (u64, u64) {
        let stored = self.unpack(state);
        match number.wrapping_sub(stored.number) & self.window_mask {
            0 => (stored.previous, stored.current),
            1 => (stored.current, 0),
            _ => (0, 0),
        }
    }

    /// The decision for a request at `now` (nanoseconds) on `state`: the new state when allowed.
    pub(crate) fn decide(&self, state: u64, now: u64) -> (Option<u64>, Verdict) {
        self.decide_with(state, now, Others::NONE, self.limit)
    }

    /// [`Self::decide`] for a limit shared with other gateways: `others` are the requests they
    /// admitted in the previous and the current window (counted in no state here), and `limit` the
    /// limit to hold (the configured one, or this gateway's share of it).
    pub(crate) fn decide_with(
        &self,
        state: u64,
        now: u64,
        others: Others,
        limit: u64,
    ) -> (Option<u64>, Verdict) {
        let w = u128::from(self.window);
        let number = now / self.window;
        let into = now % self.window;
        let window_end = self.window - into;
        let (mine_previous, mine_current) = self.counts_at(state, number);
        // The packed counts hold at most the configured limit; a lower share never fills them past it.
        let limit = limit.min(self.limit);
        let previous = mine_previous.saturating_add(others.previous);
        let current = mine_current.saturating_add(others.current);
        let wide_limit = u128::from(limit);
        // Everything times W, to stay in integers: previous * (W - e) + (current + 1) * W <= limit * W.
        let weighted = u128::from(previous) * u128::from(window_end);
        let used = weighted + u128::from(current.saturating_add(1)) * w;
        if used <= wide_limit * w && mine_current < self.limit {
            let verdict = Verdict {
                allowed: true,
                remaining: u64::try_from((wide_limit * w - used) / w).unwrap_or(0),
                // The requests of this window weigh on until the end of the next one.
                reset_nanos: window_end + self.window,
                retry_nanos: 0,
            };
            let next = self.pack(number, mine_previous, mine_current + 1);
            return (Some(next), verdict);
        }
        let reset_nanos = match (previous, current) {
            (_, c) if c > 0 => window_end + self.window,
            (p, _) if p > 0 => window_end,
            _ => 0,
        };
        let verdict = Verdict {
            allowed: false,
            remaining: 0,
            reset_nanos,
            retry_nanos: self.wait(previous, current, into, limit),
        };
        (None, verdict)
    }

    /// The counts this gateway admitted in window `number` and the one before, from its state.
    pub(crate) fn own_counts(&self, state: u64, number: u64) -> (u64, u64) {
        self.counts_at(state, number)
    }

    /// The window's length in nanoseconds.
    pub(crate) fn window_nanos(&self) -> u64 {
        self.window
    }

    /// The configured limit.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// How long until a request is admitted after one refused at `into` ns into a window with these
    /// counts.
    fn wait(&self, previous: u64, current: u64, into: u64, limit: u64) -> u64 {
        let w = u128::from(self.window);
        let limit = u128::from(limit.max(1));
        // Later in this window, once enough of the previous window has slid out.
        if u128::from(current) < limit && previous > 0 {
            let room = (limit - u128::from(current) - 1) * w / u128::from(previous);
            let at = w.saturating_sub(room);
            if at < w {
                return u64::try_from(at).unwrap_or(u64::MAX).saturating_sub(into);
            }
        }
        // Early in the next window, where this window's count is the previous one.
        let at = if current == 0 {
            0
        } else {
            w.saturating_sub((limit - 1) * w / u128::from(current))
        };
        let at = u64::try_from(at).unwrap_or(u64::MAX);
        (self.window - into).saturating_add(at)
    }

    /// Whether `state` weighs nothing at `now` (forgetting it changes nothing).
    pub(crate) fn is_idle(&self, state: u64, now: u64) -> bool {
        self.counts_at(state, now / self.window) == (0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn run(s: &SlidingWindow, state: &mut u64, now: u64) -> Verdict {
        let (next, verdict) = s.decide(*state, now);
        if let Some(next) = next {
            *state = next;
        }
        verdict
    }

    #[test]
    fn a_fresh_key_gets_the_limit_in_one_window() {
        let s = SlidingWindow::new(5, SECOND).unwrap();
        let mut state = 0;
        let now = 10 * SECOND + 3;
        let remaining: Vec<u64> = (0..5).map(|_| run(&s, &mut state, now).remaining).collect();
        assert_eq!(remaining, [4, 3, 2, 1, 0]);
        let refused = run(&s, &mut state, now);
        assert!(!refused.allowed);
        assert!(s.is_idle(state, 12 * SECOND));
        assert!(!s.is_idle(state, 11 * SECOND + SECOND / 2));
    }

    #[test]
    fn the_previous_window_weighs_by_its_overlap() {
        let s = SlidingWindow::new(10, SECOND).unwrap();
        let mut state = 0;
        for _ in 0..10 {
            assert!(run(&s, &mut state, 20 * SECOND).allowed);
        }
        // A quarter into the next window, 7.5 of those 10 still count: 2 more fit, not 3.
        let at = 21 * SECOND + SECOND / 4;
        assert!(run(&s, &mut state, at).allowed);
        assert!(run(&s, &mut state, at).allowed);
        let refused = run(&s, &mut state, at);
        assert!(!refused.allowed);
        // 10 * (1 - e) + 2 + 1 <= 10 once e >= 0.3: 50ms later.
        assert_eq!(refused.retry_nanos, SECOND / 20);
        assert!(!run(&s, &mut state, at + SECOND / 20 - 1).allowed);
        assert!(run(&s, &mut state, at + SECOND / 20).allowed);
    }

    #[test]
    fn a_full_window_waits_into_the_next() {
        let s = SlidingWindow::new(4, SECOND).unwrap();
        let mut state = 0;
        for _ in 0..4 {
            run(&s, &mut state, 30 * SECOND + SECOND / 2);
        }
        let refused = run(&s, &mut state, 30 * SECOND + SECOND / 2);
        // Next window: 4 * (1 - e) + 1 <= 4 once e >= 0.25.
        assert_eq!(refused.retry_nanos, SECOND / 2 + SECOND / 4);
        assert_eq!(refused.reset_nanos, SECOND / 2 + SECOND);
        assert!(run(&s, &mut state, 31 * SECOND + SECOND / 4).allowed);
    }

    #[test]
    fn even_traffic_is_admitted_at_the_limit() {
        // 100 per second offered 1,000 per second, evenly, for 20 seconds.
        let s = SlidingWindow::new(100, SECOND).unwrap();
        let mut state = 0;
        let start = 100 * SECOND;
        let mut admitted = Vec::new();
        for i in 0..20_000u64 {
            let now = start + i * SECOND / 1000;
            if run(&s, &mut state, now).allowed {
                admitted.push(now);
            }
        }
        // Requests arrive a millisecond apart, so a window admits one less than the limit when the
        // slot that would have been the limit-th falls just past the window's end.
        assert!(
            (1980..=2000).contains(&admitted.len()),
            "{}",
            admitted.len()
        );
        // Past the first window, every sliding second holds the limit, give or take 2%.
        let mut counts = Vec::new();
        for (i, &t) in admitted
            .iter()
            .enumerate()
            .filter(|(_, &t)| t >= start + 2 * SECOND)
        {
            counts.push(admitted[..=i].iter().filter(|&&a| a + SECOND > t).count());
        }
        let (min, max) = (counts.iter().min(), counts.iter().max());
        assert!(min >= Some(&98) && max <= Some(&100), "{min:?}..{max:?}");
    }

    #[test]
    fn bunched_traffic_stays_under_twice_the_limit() {
        // The worst case: the previous window's requests all at its end.
        let s = SlidingWindow::new(100, SECOND).unwrap();
        let mut state = 0;
        let end = 3 * SECOND - 1;
        let mut admitted = Vec::new();
        for _ in 0..100 {
            assert!(run(&s, &mut state, end).allowed);
            admitted.push(end);
        }
        for i in 0..1000u64 {
            let now = 3 * SECOND + i * SECOND / 1000;
            if run(&s, &mut state, now).allowed {
                admitted.push(now);
            }
        }
        let worst = admitted
            .iter()
            .map(|&t| {
                admitted
                    .iter()
                    .filter(|&&a| a <= t && a + SECOND > t)
                    .count()
            })
            .max()
            .unwrap_or(0);
        // 100 at the end of one window, then 99 of the next second's 1,000 one-millisecond slots:
        // the bound of 2 * limit, less one.
        assert_eq!(worst, 199);
    }

    #[test]
    fn window_numbers_wrap_without_reviving_old_counts() {
        let s = SlidingWindow::new(1000, SECOND).unwrap();
        let mut state = 0;
        run(&s, &mut state, 5 * SECOND);
        assert!(s.is_idle(state, 7 * SECOND));
        assert!(run(&s, &mut state, 7 * SECOND).remaining == 999);
        assert!(SlidingWindow::new(MAX_LIMIT + 1, SECOND).is_none());
        let big = SlidingWindow::new(MAX_LIMIT, SECOND).unwrap();
        let mut state = 0;
        assert!(run(&big, &mut state, SECOND).allowed);
        assert_ne!(state, u64::MAX);
    }
}
