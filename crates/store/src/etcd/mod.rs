//! `config_source: etcd`: the resources are keys under a prefix; the gateway lists them, applies the
//! configuration they make, and watches for changes from the revision it listed. Through an outage it
//! keeps serving what it last applied and keeps a copy of it on disk; when etcd comes back it lists
//! again (changes made meanwhile included) and watches on. A compaction that outran the watch makes it
//! list again too.

mod assemble;
mod copy;
mod parsed;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, EventType};
use floodgate_config::{Config, EtcdSourceConfig};
use floodgate_observe::Metrics;

pub use assemble::{assemble, Resources, Skipped, Validator};
use parsed::Parsed;
pub use writer::{Condition, EtcdWriter, Stored, WriteError};

use crate::cluster::{list_prefix, watch_prefix, Cluster};
use crate::{Applier, ApplyError, ChangeSource};

/// Longest pause between two attempts to reach etcd.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Shortest time between two writes of the copy on disk while changes come in.
const COPY_INTERVAL: Duration = Duration::from_millis(500);

/// Waits until `at`, or for ever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Where the configuration the gateway starts with came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartedFrom {
    /// etcd itself, at this revision.
    Etcd(i64),
    /// The copy on disk, of this revision: etcd could not be reached.
    Copy(i64),
    /// Neither: the file's settings with no resources, until etcd answers.
    Nothing,
}

/// The etcd configuration source of one gateway.
pub struct EtcdSource {
    settings: EtcdSourceConfig,
    bootstrap: Config,
    copy_file: PathBuf,
    validate: Arc<Validator>,
    metrics: Arc<Metrics>,
    resources: Resources,
    /// `resources`, each parsed when it changed.
    parsed: Parsed,
    /// The configuration in service, as the history holds it.
    last_applied: Option<Arc<Config>>,
    /// The revision whose copy on disk is still to be written, and when the last was.
    copy_due: Option<i64>,
    copy_written: Option<Instant>,
}

impl Drop for EtcdSource {
    /// A copy still due is written as the gateway stops, so a restart while etcd is down starts
    /// from the last change.
    fn drop(&mut self) {
        self.write_copy();
    }
}

impl EtcdSource {
    /// A source for the file's settings `bootstrap` (whose `config_source` is `settings`), keeping its
    /// copy in `copy_file`, checking each configuration with `validate` before it is applied.
    pub fn new(
        settings: EtcdSourceConfig,
        bootstrap: Config,
        copy_file: PathBuf,
        validate: Arc<Validator>,
        metrics: Arc<Metrics>,
    ) -> EtcdSource {
        EtcdSource {
            settings,
            bootstrap,
            copy_file,
            validate,
            metrics,
            resources: Resources::new(),
            parsed: Parsed::default(),
            last_applied: None,
            copy_due: None,
            copy_written: None,
        }
    }

    /// The configuration to start with: etcd's if it answers within `timeout`, else the copy on disk,
    /// else the file's settings alone.
    pub async fn initial(&mut self) -> (Config, StartedFrom) {
        let listed = tokio::time::timeout(self.settings.timeout.get(), async {
            let mut client = self.connect().await?;
            self.list(&mut client).await
        })
        .await;
        let started = match listed {
            Ok(Ok((revision, resources))) => {
                self.metrics.config_source.set_connected(true);
                self.parsed = Parsed::of(&resources);
                self.resources = resources;
                self.keep_copy(revision);
                self.metrics.config_source.synced(revision.max(0) as u64);
                StartedFrom::Etcd(revision)
            }
            failed => {
                self.metrics.config_source.set_connected(false);
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "no answer in time".to_string(),
                };
                match copy::read(&self.copy_file, &self.settings.prefix) {
                    Some((revision, resources)) => {
                        tracing::warn!(error = %why, copy = %self.copy_file.display(), revision, "etcd cannot be reached: starting from the copy on disk");
                        self.parsed = Parsed::of(&resources);
                        self.resources = resources;
                        self.metrics.config_source.synced(revision.max(0) as u64);
                        StartedFrom::Copy(revision)
                    }
                    None => {
                        tracing::error!(error = %why, copy = %self.copy_file.display(), "etcd cannot be reached and there is no copy on disk: starting without routes");
                        StartedFrom::Nothing
                    }
                }
            }
        };
        let config = self.assembled().unwrap_or_else(|| self.bootstrap.clone());
        self.last_applied = Some(Arc::new(config.clone()));
        (config, started)
    }

    /// Keeps the gateway in step with etcd until the task is dropped: every change is applied through
    /// `applier`; `on_sync` runs after each configuration read from etcd is in service.
    pub async fn run(mut self, applier: Applier, on_sync: impl Fn() + Send) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.follow(&applier, &on_sync).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    // What etcd said last must be on disk before it is gone for long.
                    self.write_copy();
                    if self.metrics.config_source.connected() {
                        tracing::warn!(error = %e, "etcd connection lost: serving the last configuration");
                    }
                    self.metrics.config_source.set_connected(false);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One connection's life: list, apply, then watch from the next revision until the watch ends.
    /// `Ok` when a compaction or cancellation calls for listing again, `Err` when etcd is gone.
    async fn follow(
        &mut self,
        applier: &Applier,
        on_sync: &impl Fn(),
    ) -> Result<(), etcd_client::Error> {
        let mut client = self.connect().await?;
        let (revision, resources) = self.list(&mut client).await?;
        if !self.metrics.config_source.connected() {
            tracing::info!(revision, "etcd reached: following its changes");
        }
        self.metrics.config_source.set_connected(true);
        self.parsed = Parsed::of(&resources);
        self.resources = resources;
        self.apply(applier, revision).await;
        on_sync();
        let mut stream = watch_prefix(&client, &self.root(), revision + 1).await?;
        loop {
            let due = self.copy_written.map(|written| written + COPY_INTERVAL);
            // `message` keeps what it has read of a message in the stream, so losing the race to
            // the copy's timer drops nothing.
            let response = tokio::select! {
                message = stream.message() => message?,
                () = sleep_until(due), if self.copy_due.is_some() => {
                    self.write_copy();
                    continue;
                }
            };
            let Some(response) = response else { break };
            if response.canceled() || response.compact_revision() > 0 {
                tracing::warn!(
                    compacted_to = response.compact_revision(),
                    reason = response.cancel_reason(),
                    "etcd watch ended: listing again"
                );
                return Ok(());
            }
            if response.events().is_empty() {
                continue;
            }
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                let Some(key) = self.relative(kv.key()) else {
                    continue;
                };
                match event.event_type() {
                    EventType::Put => {
                        self.parsed.set(&key, Some(kv.value()));
                        self.resources.insert(key, kv.value().to_vec());
                    }
                    EventType::Delete => {
                        self.parsed.set(&key, None);
                        self.resources.remove(&key);
                    }
                }
            }
            let revision = response.header().map_or(revision, |h| h.revision());
            self.apply(applier, revision).await;
            on_sync();
        }
        Err(etcd_client::Error::WatchError(
            "the watch stream ended".into(),
        ))
    }

    async fn connect(&self) -> Result<Client, etcd_client::Error> {
        Cluster::from(&self.settings).connect(true).await
    }

    /// Every key under the prefix and the revision they were read at.
    async fn list(&self, client: &mut Client) -> Result<(i64, Resources), etcd_client::Error> {
        let (revision, listed) = list_prefix(client, &self.root()).await?;
        let resources = listed
            .into_iter()
            .filter_map(|(key, value)| Some((self.relative(&key)?, value)))
            .collect();
        Ok((revision, resources))
    }

    /// The prefix with its trailing `/`: `/floodgate/`, so `/floodgate2/...` is not listed.
    fn root(&self) -> String {
        format!("{}/", self.settings.prefix)
    }

    fn relative(&self, key: &[u8]) -> Option<String> {
        let key = std::str::from_utf8(key).ok()?;
        key.strip_prefix(&self.root()).map(str::to_string)
    }

    /// The configuration the resources make now, skipped resources logged and counted.
    fn assembled(&self) -> Option<Config> {
        match assemble(&self.bootstrap, &self.resources, &*self.validate) {
            Ok((config, skipped)) => {
                for Skipped { key, reason } in &skipped {
                    tracing::error!(key = %format!("{}/{key}", self.settings.prefix), "invalid resource in etcd left out: {reason}");
                    self.metrics.config_source.skipped();
                }
                Some(config)
            }
            Err(errors) => {
                for error in errors {
                    tracing::error!("the configuration from etcd cannot be used: {error}");
                }
                None
            }
        }
    }

    /// Applies what the resources make now, unless it is what is already in service. The copy on
    /// disk is written after, off the change's way into service.
    ///
    /// The configuration is first made from the resources parsed one by one, the gateway's own apply
    /// being its only full check; only when that fails (a resource at fault) is it assembled again
    /// resource by resource, leaving out those at fault.
    async fn apply(&mut self, applier: &Applier, revision: i64) {
        let mut outcome = Err(ApplyError::Invalid(Vec::new()));
        if let Some(config) = self
            .parsed
            .config(&self.bootstrap, self.last_applied.as_deref())
        {
            outcome = self.offer(applier, config, revision).await;
        }
        if matches!(outcome, Err(ApplyError::Invalid(_))) {
            let Some(config) = self.assembled() else {
                // Even the file's own settings do not make a configuration: logged by `assembled`.
                self.keep_copy(revision);
                return;
            };
            outcome = self.offer(applier, config, revision).await;
        }
        match outcome {
            Ok(()) => self.metrics.config_source.synced(revision.max(0) as u64),
            Err(ApplyError::ShuttingDown) => return,
            Err(e) => tracing::error!(revision, "configuration from etcd refused: {e}"),
        }
        self.keep_copy(revision);
    }

    /// Applies `config` unless it is the one in service.
    async fn offer(
        &mut self,
        applier: &Applier,
        config: Config,
        revision: i64,
    ) -> Result<(), ApplyError> {
        if self
            .last_applied
            .as_deref()
            .is_some_and(|applied| applied.same_as(&config))
        {
            return Ok(());
        }
        let applied = applier.apply(config, ChangeSource::Etcd).await?;
        tracing::info!(
            revision,
            version = applied.version,
            "configuration from etcd applied"
        );
        self.last_applied = Some(applied.config.clone());
        Ok(())
    }

    /// Keeps the copy on disk at `revision`: written now, or, within [`COPY_INTERVAL`] of the last
    /// write, once that has passed (a burst of changes writes a few copies, not one each), and at
    /// once when etcd is lost.
    fn keep_copy(&mut self, revision: i64) {
        self.copy_due = Some(revision);
        if self
            .copy_written
            .is_none_or(|written| written.elapsed() >= COPY_INTERVAL)
        {
            self.write_copy();
        }
    }

    /// Writes the copy due, if one is.
    fn write_copy(&mut self) {
        let Some(revision) = self.copy_due.take() else {
            return;
        };
        self.copy_written = Some(Instant::now());
        if let Err(e) = copy::write(
            &self.copy_file,
            &self.settings.prefix,
            revision,
            &self.resources,
        ) {
            tracing::warn!(error = %e, copy = %self.copy_file.display(), "cannot write the copy of the etcd configuration");
        }
    }
}
