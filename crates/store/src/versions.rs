//! The configurations the gateway has applied: the running one and a bounded history of those before it.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use floodgate_config::Config;
use parking_lot::Mutex;

/// What made a configuration the running one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeSource {
    /// Read from the configuration file at start or on SIGHUP.
    File,
    /// The built-in configuration (`floodgate run` without `--config`).
    BuiltIn,
    /// Replaced whole through the admin API (`POST /floodgate/admin/config`).
    Admin,
    /// A rollback to an earlier version through the admin API.
    Rollback,
    /// Read from etcd (`config_source: etcd`), at start, from its copy on disk, or on a change.
    Etcd,
}

impl ChangeSource {
    /// The name the admin API shows.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeSource::File => "file",
            ChangeSource::BuiltIn => "built_in",
            ChangeSource::Admin => "admin",
            ChangeSource::Rollback => "rollback",
            ChangeSource::Etcd => "etcd",
        }
    }
}

/// One applied configuration.
#[derive(Debug)]
pub struct Applied {
    /// 1 for the configuration the process started with, then one more for each change applied.
    pub version: u64,
    /// The configuration itself, secrets included.
    pub config: Arc<Config>,
    /// Its entity tag, made when first asked for: hashing the whole configuration's JSON is the
    /// one part of recording a change that grows with the configuration.
    etag: OnceLock<String>,
    /// When it became the running configuration.
    pub applied_at: SystemTime,
    /// What made it so.
    pub source: ChangeSource,
}

impl Applied {
    /// Its entity tag: the same configuration always has the same one (see [`etag_of`]).
    pub fn etag(&self) -> &str {
        self.etag.get_or_init(|| etag_of(&*self.config))
    }
}

/// The running configuration and up to `capacity - 1` of the versions before it, newest last.
pub struct ConfigVersions {
    capacity: usize,
    versions: Mutex<VecDeque<Arc<Applied>>>,
}

impl ConfigVersions {
    /// Starts the history with the configuration the process started with.
    pub fn new(config: Config, source: ChangeSource, capacity: usize) -> ConfigVersions {
        let versions = ConfigVersions {
            capacity: capacity.max(1),
            versions: Mutex::new(VecDeque::new()),
        };
        versions.push(1, config, source);
        versions
    }

    /// Records `config` as the running configuration; the oldest version goes once the history is full.
    pub fn record(&self, config: Config, source: ChangeSource) -> Arc<Applied> {
        let next = self.current().version + 1;
        self.push(next, config, source)
    }

    fn push(&self, version: u64, config: Config, source: ChangeSource) -> Arc<Applied> {
        let applied = Arc::new(Applied {
            version,
            etag: OnceLock::new(),
            config: Arc::new(config),
            applied_at: SystemTime::now(),
            source,
        });
        let mut versions = self.versions.lock();
        if versions.len() == self.capacity {
            versions.pop_front();
        }
        versions.push_back(applied.clone());
        applied
    }

    /// The running configuration.
    pub fn current(&self) -> Arc<Applied> {
        let versions = self.versions.lock();
        // `new` pushes one version and nothing removes the last, so the history is never empty.
        versions.back().cloned().unwrap_or_else(|| unreachable!())
    }

    /// The version numbered `version`, while the history still holds it.
    pub fn get(&self, version: u64) -> Option<Arc<Applied>> {
        let versions = self.versions.lock();
        versions.iter().find(|v| v.version == version).cloned()
    }

    /// Every version held, oldest first.
    pub fn all(&self) -> Vec<Arc<Applied>> {
        self.versions.lock().iter().cloned().collect()
    }
}

/// The entity tag of `value` (a configuration, or one of its resources): a hash of its JSON form, quoted
/// as HTTP wants it. Equal values have equal tags, so a write made against what a client last read can be
/// told from one made against an older state.
pub fn etag_of(value: &impl serde::Serialize) -> String {
    let json = serde_json::to_vec(value).unwrap_or_default();
    format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(&json))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(route: &str) -> Config {
        floodgate_config::parse_yaml(&format!(
            "listeners: [{{ name: a, address: \"127.0.0.1:0\" }}]\nroutes: [{{ id: {route}, paths: [\"/\"], respond: {{ status: 200 }} }}]\n"
        ))
        .expect("config")
    }

    #[test]
    fn versions_count_up_and_the_oldest_go_first() {
        let versions = ConfigVersions::new(config("a"), ChangeSource::File, 3);
        assert_eq!(versions.current().version, 1);
        versions.record(config("b"), ChangeSource::Admin);
        versions.record(config("c"), ChangeSource::Admin);
        let d = versions.record(config("d"), ChangeSource::Rollback);
        assert_eq!(d.version, 4);
        assert_eq!(versions.current().version, 4);
        let held: Vec<u64> = versions.all().iter().map(|v| v.version).collect();
        assert_eq!(held, [2, 3, 4]);
        assert!(versions.get(1).is_none());
        assert_eq!(versions.get(2).expect("held").config.routes[0].id, "b");
        assert_eq!(versions.current().source.as_str(), "rollback");
    }

    #[test]
    fn equal_configurations_have_equal_tags_and_others_do_not() {
        assert_eq!(etag_of(&config("a")), etag_of(&config("a")));
        assert_ne!(etag_of(&config("a")), etag_of(&config("b")));
        assert!(etag_of(&config("a")).starts_with('"'));
    }
}
