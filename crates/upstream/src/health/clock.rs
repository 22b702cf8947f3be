//! The time health state is kept in: milliseconds since the process's first use of it, so a time fits
//! one atomic and every snapshot reads the same clock.

use std::sync::OnceLock;
use std::time::Instant;

/// Milliseconds since the process's health epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Millis(pub u64);

static EPOCH: OnceLock<Instant> = OnceLock::new();

impl Millis {
    /// `at` on the health clock (an instant before the epoch reads as the epoch).
    pub fn of(at: Instant) -> Millis {
        let epoch = *EPOCH.get_or_init(Instant::now);
        Millis(u64::try_from(at.saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX))
    }

    /// Now, on the health clock.
    pub fn now() -> Millis {
        Millis::of(Instant::now())
    }
}

/// Nanoseconds since the process's health epoch, for latency estimates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Nanos(pub u64);

impl Nanos {
    /// The same time in milliseconds.
    pub fn millis(self) -> Millis {
        Millis(self.0 / 1_000_000)
    }

    /// Now, on the health clock (never 0).
    pub fn now() -> Nanos {
        Nanos::of(Instant::now())
    }

    /// `at` on the health clock (never 0; an instant before the epoch reads as its first tick).
    pub fn of(at: Instant) -> Nanos {
        let epoch = *EPOCH.get_or_init(Instant::now);
        let nanos =
            u64::try_from(at.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX);
        Nanos(nanos.max(1))
    }
}
