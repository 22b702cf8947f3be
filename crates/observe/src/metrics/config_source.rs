//! Where a configuration from etcd stands: the revision in service, whether etcd is reachable, when the
//! last change arrived, and how many resources were skipped as invalid.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::exposition::{Kind, Seconds, TextWriter};

const REVISION: &str = "floodgate_config_revision";
const CONNECTED: &str = "floodgate_config_source_connected";
const LAST_SYNC: &str = "floodgate_config_last_sync_timestamp_seconds";
const SKIPPED: &str = "floodgate_config_resources_skipped_total";

/// The etcd source's state, written by its task, read by a scrape. Nothing is rendered while the
/// configuration comes from a file.
#[derive(Default)]
pub struct ConfigSourceMetrics {
    in_use: AtomicBool,
    revision: AtomicU64,
    connected: AtomicBool,
    last_sync_unix_micros: AtomicU64,
    skipped: AtomicU64,
}

impl ConfigSourceMetrics {
    /// Whether etcd can be reached now (`floodgate_config_source_connected`).
    pub fn set_connected(&self, connected: bool) {
        self.in_use.store(true, Ordering::Relaxed);
        self.connected.store(connected, Ordering::Relaxed);
    }

    /// The configuration in service now reflects etcd at `revision`, as of now.
    pub fn synced(&self, revision: u64) {
        self.in_use.store(true, Ordering::Relaxed);
        self.revision.store(revision, Ordering::Relaxed);
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.last_sync_unix_micros.store(
            u64::try_from(unix.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Whether etcd was reachable at the last attempt.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// The revision of the configuration in service (0 before any).
    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::Relaxed)
    }

    /// Counts a resource left out because it was invalid.
    pub fn skipped(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn render(&self, w: &mut TextWriter) {
        if !self.in_use.load(Ordering::Relaxed) {
            return;
        }
        w.family(
            REVISION,
            "The etcd revision the configuration in service reflects.",
            Kind::Gauge,
        );
        w.sample(REVISION, &[], self.revision());
        w.family(
            CONNECTED,
            "1 while etcd, the configuration source, is reachable; 0 while the last configuration is served without it.",
            Kind::Gauge,
        );
        w.sample(
            CONNECTED,
            &[],
            u8::from(self.connected.load(Ordering::Relaxed)),
        );
        w.family(
            LAST_SYNC,
            "Unix time of the last configuration read from etcd; time() minus it is the age of what is served.",
            Kind::Gauge,
        );
        let last = self.last_sync_unix_micros.load(Ordering::Relaxed);
        if last > 0 {
            w.sample(LAST_SYNC, &[], Seconds { micros: last });
        }
        w.family(
            SKIPPED,
            "Resources in etcd left out of the configuration because they were invalid.",
            Kind::Counter,
        );
        w.sample(SKIPPED, &[], self.skipped.load(Ordering::Relaxed));
    }
}
