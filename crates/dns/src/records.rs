//! One host's last answer, kept when a resolution fails (serve-stale, RFC 8767).

use std::net::IpAddr;
use std::time::Instant;

use crate::resolver::{Answer, ResolveError};
use crate::ttl::TtlBounds;

/// What a resolution did to a host's addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// New addresses: the targets change.
    Changed,
    /// The same addresses: only the time to ask again moved.
    Unchanged,
    /// No answer: the last addresses stay, and the host is asked again after the retry interval.
    Failed,
}

/// A host's addresses as last resolved, and when to ask again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRecords {
    addrs: Vec<IpAddr>,
    answered: bool,
    due: Instant,
}

impl HostRecords {
    /// A host not resolved yet: due now, no addresses.
    pub fn unresolved(now: Instant) -> Self {
        Self {
            addrs: Vec::new(),
            answered: false,
            due: now,
        }
    }

    /// The addresses to use: the last answer's, however old (empty before the first answer).
    pub fn addrs(&self) -> &[IpAddr] {
        &self.addrs
    }

    /// Whether the host was ever answered.
    pub fn answered(&self) -> bool {
        self.answered
    }

    /// When the host is to be asked again.
    pub fn due(&self) -> Instant {
        self.due
    }

    /// Takes in a resolution that ended at `now`. A failure of any kind keeps the last addresses:
    /// a gateway that dropped a service's targets because its name server hiccuped would turn a DNS
    /// outage into a service outage, which is what RFC 8767 is for.
    pub fn record(
        &mut self,
        result: &Result<Answer, ResolveError>,
        bounds: &TtlBounds,
        now: Instant,
    ) -> Resolution {
        match result {
            Ok(answer) => {
                self.due = now + answer.valid_for;
                let first = !self.answered;
                self.answered = true;
                if first || self.addrs != answer.addrs {
                    self.addrs.clone_from(&answer.addrs);
                    Resolution::Changed
                } else {
                    Resolution::Unchanged
                }
            }
            Err(_) => {
                self.due = now + bounds.after_failure();
                Resolution::Failed
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const BOUNDS: TtlBounds = TtlBounds {
        min: Duration::from_secs(1),
        max: Duration::from_secs(300),
        retry: Duration::from_secs(5),
    };

    fn answer(addrs: &[&str], secs: u64) -> Result<Answer, ResolveError> {
        Ok(Answer {
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            valid_for: Duration::from_secs(secs),
        })
    }

    #[test]
    fn an_answer_is_used_until_its_ttl_and_a_new_one_replaces_it() {
        let now = Instant::now();
        let mut host = HostRecords::unresolved(now);
        assert!(!host.answered() && host.addrs().is_empty() && host.due() == now);
        let first = answer(&["10.0.0.1", "10.0.0.2"], 30);
        assert_eq!(host.record(&first, &BOUNDS, now), Resolution::Changed);
        assert_eq!(host.due(), now + Duration::from_secs(30));
        assert_eq!(host.record(&first, &BOUNDS, now), Resolution::Unchanged);
        let moved = answer(&["10.0.0.3"], 60);
        assert_eq!(host.record(&moved, &BOUNDS, now), Resolution::Changed);
        assert_eq!(host.addrs(), ["10.0.0.3".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn a_failure_keeps_the_last_answer_and_retries_after_the_interval() {
        let now = Instant::now();
        let mut host = HostRecords::unresolved(now);
        host.record(&answer(&["10.0.0.1"], 30), &BOUNDS, now);
        for error in [
            ResolveError::Timeout(Duration::from_secs(5)),
            ResolveError::NoSuchName,
            ResolveError::NoAddress,
            ResolveError::Failed("SERVFAIL".into()),
        ] {
            assert_eq!(host.record(&Err(error), &BOUNDS, now), Resolution::Failed);
            assert_eq!(host.addrs(), ["10.0.0.1".parse::<IpAddr>().unwrap()]);
            assert_eq!(host.due(), now + Duration::from_secs(5));
        }
    }

    #[test]
    fn a_host_never_answered_has_no_addresses_and_is_retried() {
        let now = Instant::now();
        let mut host = HostRecords::unresolved(now);
        let failed = Err(ResolveError::NoSuchName);
        assert_eq!(host.record(&failed, &BOUNDS, now), Resolution::Failed);
        assert!(!host.answered() && host.addrs().is_empty());
        assert_eq!(host.due(), now + Duration::from_secs(5));
    }
}
