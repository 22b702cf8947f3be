//! [`Metrics`]: the process's metric handles and process-wide gauges; `scrape.rs` renders them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use super::breaker::BreakerMetrics;
use super::overload::{OverloadMetrics, Rejection};
use super::per_worker::PerWorker;
use super::route::RouteMetrics;
use super::targets::{TargetMetrics, TargetsById};
use super::timeouts::TimeoutMetrics;
use super::upstream::UpstreamMetrics;

/// Sentinel of `loaded_at_nanos`: no configuration loaded yet.
const NEVER_LOADED: u64 = 0;

/// All of the process's metrics: one per process, shared as `Arc<Metrics>` by the workers, the config
/// snapshot builder and the admin endpoint.
///
/// Route and upstream handles are created (get-or-create, under a lock) when a snapshot is built and kept in
/// the snapshot; recording through them takes no lock. Handles are never removed, so a route's counters
/// keep counting across reloads, and a route deleted from the config keeps its last values, as Prometheus
/// counters should.
pub struct Metrics {
    workers: usize,
    routes: Mutex<HashMap<Arc<str>, Arc<RouteMetrics>>>,
    unmatched: Arc<RouteMetrics>,
    upstreams: Mutex<HashMap<Arc<str>, Arc<UpstreamMetrics>>>,
    /// TLS handshakes by listener name, for listeners that serve TLS.
    tls_listeners: Mutex<HashMap<Arc<str>, Arc<super::TlsHandshakeMetrics>>>,
    /// Circuit breakers by upstream id, for upstreams that have one.
    breakers: Mutex<HashMap<Arc<str>, Arc<BreakerMetrics>>>,
    /// The running configuration's targets (see [`Metrics::retain_targets`]).
    targets: Mutex<TargetsById>,
    /// Per worker: connections opened minus closed on that worker.
    connections: PerWorker<AtomicI64>,
    /// Connections closed because a peer missed a deadline, by kind.
    pub timeouts: TimeoutMetrics,
    /// Connections and requests turned away by a limit.
    pub(super) overload: OverloadMetrics,
    /// Process-wide counters of the plugins.
    pub plugins: Arc<super::plugins::PluginStats>,
    /// The etcd configuration source's state, when it is in use.
    pub config_source: super::ConfigSourceMetrics,
    /// Spans exported, dropped and failed, shared with every exporter started.
    pub tracing: Arc<super::TracingMetrics>,
    /// The access log's dropped lines, shared with every access log opened.
    pub access_log: Arc<super::AccessLogMetrics>,
    reloads_success: AtomicU64,
    reloads_failure: AtomicU64,
    /// Time to apply a configuration; written by the one task that applies them.
    config_apply: super::histogram::HistogramCell,
    /// Age is measured on the monotonic clock, so a wall-clock step cannot make it negative or jump.
    clock_origin: Instant,
    /// Nanoseconds from `clock_origin` to the last load, plus one; [`NEVER_LOADED`] before the first.
    loaded_at_nanos: AtomicU64,
    /// Wall-clock time of the last load in microseconds since the Unix epoch.
    loaded_unix_micros: AtomicU64,
}

impl Metrics {
    /// The `Content-Type` of [`Metrics::render`]'s output, for the `/metrics` response.
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";

    /// Metrics for a proxy with `workers` worker threads, indexed `0..workers` in every `worker` argument
    /// (zero is treated as one).
    pub fn new(workers: usize) -> Arc<Metrics> {
        let workers = workers.max(1);
        Arc::new(Metrics {
            workers,
            routes: Mutex::new(HashMap::new()),
            unmatched: Arc::new(RouteMetrics::new(workers)),
            upstreams: Mutex::new(HashMap::new()),
            targets: Mutex::default(),
            breakers: Mutex::default(),
            tls_listeners: Mutex::default(),
            connections: PerWorker::new(workers),
            plugins: Arc::default(),
            config_source: Default::default(),
            access_log: Arc::default(),
            tracing: Arc::default(),
            timeouts: TimeoutMetrics::new(workers),
            overload: OverloadMetrics::new(workers),
            reloads_success: AtomicU64::new(0),
            reloads_failure: AtomicU64::new(0),
            config_apply: Default::default(),
            clock_origin: Instant::now(),
            loaded_at_nanos: AtomicU64::new(NEVER_LOADED),
            loaded_unix_micros: AtomicU64::new(0),
        })
    }

    /// The metrics of route `route_id`, created on first use. The same `Arc` comes back for the same id on
    /// every call, so a snapshot rebuilt on reload keeps adding to the same counters. The empty id is the
    /// `route=""` series of [`Metrics::unmatched`].
    pub fn route(&self, route_id: &str) -> Arc<RouteMetrics> {
        if route_id.is_empty() {
            return self.unmatched();
        }
        let mut routes = self.routes.lock();
        if let Some(existing) = routes.get(route_id) {
            return Arc::clone(existing);
        }
        let created = Arc::new(RouteMetrics::new(self.workers));
        routes.insert(Arc::from(route_id), Arc::clone(&created));
        created
    }

    /// The metrics of requests that matched no route, rendered with `route=""`.
    pub fn unmatched(&self) -> Arc<RouteMetrics> {
        Arc::clone(&self.unmatched)
    }

    /// The metrics of upstream `upstream_id`, created on first use; the same `Arc` for the same id.
    pub fn upstream(&self, upstream_id: &str) -> Arc<UpstreamMetrics> {
        let mut upstreams = self.upstreams.lock();
        if let Some(existing) = upstreams.get(upstream_id) {
            return Arc::clone(existing);
        }
        let created = Arc::new(UpstreamMetrics::new(self.workers));
        upstreams.insert(Arc::from(upstream_id), Arc::clone(&created));
        created
    }

    /// The TLS handshake counts of listener `name`, created on first use; the same `Arc` for the same
    /// name, so the counts survive reloads.
    pub fn tls_listener(&self, name: &str) -> Arc<super::TlsHandshakeMetrics> {
        let mut listeners = self.tls_listeners.lock();
        if let Some(existing) = listeners.get(name) {
            return Arc::clone(existing);
        }
        let created = Arc::new(super::TlsHandshakeMetrics::default());
        listeners.insert(Arc::from(name), Arc::clone(&created));
        created
    }

    /// TLS listeners' handshake counts, sorted by name.
    pub(super) fn tls_listeners(&self) -> Vec<(Arc<str>, Arc<super::TlsHandshakeMetrics>)> {
        let mut listeners: Vec<_> = self
            .tls_listeners
            .lock()
            .iter()
            .map(|(name, m)| (Arc::clone(name), Arc::clone(m)))
            .collect();
        listeners.sort_by(|a, b| a.0.cmp(&b.0));
        listeners
    }

    /// The health metrics of target `address` of upstream `upstream_id`, created on first use; the same
    /// `Arc` for the same pair, so a reload that keeps a target keeps its series.
    pub fn target(&self, upstream_id: &str, address: &str) -> Arc<TargetMetrics> {
        let mut targets = self.targets.lock();
        let key = (Arc::from(upstream_id), Arc::from(address));
        Arc::clone(targets.entry(key).or_default())
    }

    /// The circuit breaker metrics of upstream `upstream_id`, created on first use; the same `Arc`
    /// for the same id. Only upstreams that asked for one are listed.
    pub fn breaker(&self, upstream_id: &str) -> Arc<BreakerMetrics> {
        let mut breakers = self.breakers.lock();
        Arc::clone(breakers.entry(Arc::from(upstream_id)).or_default())
    }

    /// Forgets the targets `keep` says no to: a target removed from the configuration leaves the
    /// scrape, rather than being reported healthy forever.
    pub fn retain_targets(&self, keep: impl Fn(&str, &str) -> bool) {
        self.targets
            .lock()
            .retain(|(upstream, address), _| keep(upstream, address));
    }

    /// A downstream connection was accepted on `worker` (`floodgate_downstream_connections_open` + 1).
    pub fn connection_opened(&self, worker: usize) {
        self.connections.get(worker).fetch_add(1, Ordering::Relaxed);
    }

    /// A downstream connection accepted on `worker` was closed (`floodgate_downstream_connections_open` - 1).
    pub fn connection_closed(&self, worker: usize) {
        self.connections.get(worker).fetch_sub(1, Ordering::Relaxed);
    }

    /// Counts a connection or request that `worker` turned away because of `rejection`
    /// (`floodgate_downstream_connections_rejected_total` or `floodgate_requests_rejected_total`).
    pub fn rejected(&self, worker: usize, rejection: Rejection) {
        self.overload.record(worker, rejection);
    }

    /// Counts a configuration reload attempt in `floodgate_config_reloads_total{result="success"|"failure"}`.
    pub fn record_reload(&self, success: bool) {
        let counter = if success {
            &self.reloads_success
        } else {
            &self.reloads_failure
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Observes the time one configuration took to apply, whatever its outcome
    /// (`floodgate_config_apply_duration_seconds`). Called by the task that applies configurations, one at
    /// a time: the histogram has a single writer.
    pub fn record_config_apply(&self, elapsed: std::time::Duration) {
        self.config_apply.observe(elapsed);
    }

    /// The apply-time histogram as of now.
    pub(super) fn config_apply(&self) -> super::histogram::HistogramSnapshot {
        let mut snapshot = super::histogram::HistogramSnapshot::default();
        snapshot.add(&self.config_apply);
        snapshot
    }

    /// Notes that a configuration was loaded and put in service now: `floodgate_config_age_seconds` counts
    /// from here, and `floodgate_config_last_reload_success_timestamp_seconds` becomes now.
    pub fn set_config_loaded_now(&self) {
        let since_origin =
            u64::try_from(self.clock_origin.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        self.loaded_at_nanos
            .store(since_origin.saturating_add(1), Ordering::Relaxed);
        // A clock set before 1970 reads as the epoch rather than failing.
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let unix_micros = u64::try_from(unix.as_micros()).unwrap_or(u64::MAX);
        self.loaded_unix_micros
            .store(unix_micros, Ordering::Relaxed);
    }

    /// Every route's handle with its id, the unmatched one as `""`, sorted by id. Copied out so the
    /// registry lock is not held while a scrape reads and formats them.
    pub(super) fn routes_by_id(&self) -> Vec<(Arc<str>, Arc<RouteMetrics>)> {
        let mut routes: Vec<(Arc<str>, Arc<RouteMetrics>)> = self
            .routes
            .lock()
            .iter()
            .map(|(id, m)| (Arc::clone(id), Arc::clone(m)))
            .collect();
        routes.push((Arc::from(""), self.unmatched()));
        routes.sort_by(|a, b| a.0.cmp(&b.0));
        routes
    }

    /// Every upstream's handle with its id, sorted by id.
    pub(super) fn breakers_by_id(&self) -> Vec<(Arc<str>, Arc<BreakerMetrics>)> {
        let mut breakers: Vec<_> = self
            .breakers
            .lock()
            .iter()
            .map(|(id, m)| (Arc::clone(id), Arc::clone(m)))
            .collect();
        breakers.sort_by(|a, b| a.0.cmp(&b.0));
        breakers
    }

    pub(super) fn targets(&self) -> TargetsById {
        self.targets.lock().clone()
    }

    pub(super) fn upstreams_by_id(&self) -> Vec<(Arc<str>, Arc<UpstreamMetrics>)> {
        let mut upstreams: Vec<(Arc<str>, Arc<UpstreamMetrics>)> = self
            .upstreams
            .lock()
            .iter()
            .map(|(id, m)| (Arc::clone(id), Arc::clone(m)))
            .collect();
        upstreams.sort_by(|a, b| a.0.cmp(&b.0));
        upstreams
    }

    /// Downstream connections open, summed over workers.
    pub(super) fn open_connections(&self) -> i64 {
        self.connections
            .iter()
            .fold(0i64, |acc, c| acc.wrapping_add(c.load(Ordering::Relaxed)))
    }

    /// Reload attempts as `(successes, failures)`.
    pub(super) fn reloads(&self) -> (u64, u64) {
        (
            self.reloads_success.load(Ordering::Relaxed),
            self.reloads_failure.load(Ordering::Relaxed),
        )
    }

    /// The configuration's age and its load time since the Unix epoch, both in microseconds; `None`
    /// before the first load.
    pub(super) fn config_loaded(&self) -> Option<ConfigLoaded> {
        let loaded_at = self.loaded_at_nanos.load(Ordering::Relaxed);
        if loaded_at == NEVER_LOADED {
            return None;
        }
        let now = u64::try_from(self.clock_origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        Some(ConfigLoaded {
            age_micros: now.saturating_sub(loaded_at - 1) / 1_000,
            unix_micros: self.loaded_unix_micros.load(Ordering::Relaxed),
        })
    }
}

/// When the configuration in service was loaded, as a scrape reports it.
pub(super) struct ConfigLoaded {
    /// Time since the load, on the monotonic clock.
    pub(super) age_micros: u64,
    /// Wall-clock time of the load, since the Unix epoch.
    pub(super) unix_micros: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_route_id_gives_the_same_handle() {
        let metrics = Metrics::new(2);
        let first = metrics.route("users");
        assert!(Arc::ptr_eq(&first, &metrics.route("users")));
        assert!(!Arc::ptr_eq(&first, &metrics.route("orders")));
        assert!(Arc::ptr_eq(&metrics.upstream("u"), &metrics.upstream("u")));
        assert!(!Arc::ptr_eq(&metrics.upstream("u"), &metrics.upstream("v")));
        assert!(Arc::ptr_eq(&metrics.route(""), &metrics.unmatched()));
    }

    #[test]
    fn handles_are_listed_sorted_with_unmatched_first() {
        let metrics = Metrics::new(1);
        for id in ["b", "a", "b"] {
            metrics.route(id);
            metrics.upstream(id);
        }
        let routes: Vec<String> = metrics
            .routes_by_id()
            .iter()
            .map(|(id, _)| id.to_string())
            .collect();
        assert_eq!(routes, ["", "a", "b"]);
        let upstreams: Vec<String> = metrics
            .upstreams_by_id()
            .iter()
            .map(|(id, _)| id.to_string())
            .collect();
        assert_eq!(upstreams, ["a", "b"]);
    }

    #[test]
    fn open_connections_are_summed_over_workers() {
        let metrics = Metrics::new(2);
        metrics.connection_opened(0);
        metrics.connection_opened(1);
        metrics.connection_opened(1);
        metrics.connection_closed(1);
        metrics.connection_opened(42);
        assert_eq!(metrics.open_connections(), 3);
    }

    #[test]
    fn reloads_are_counted_by_result() {
        let metrics = Metrics::new(1);
        metrics.record_reload(true);
        metrics.record_reload(true);
        metrics.record_reload(false);
        assert_eq!(metrics.reloads(), (2, 1));
    }

    #[test]
    fn config_load_time_is_known_only_after_a_load() {
        let metrics = Metrics::new(1);
        assert!(metrics.config_loaded().is_none());
        metrics.set_config_loaded_now();
        let loaded = metrics.config_loaded().unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros();
        assert!(u128::from(loaded.unix_micros) <= now);
        assert!(loaded.age_micros < 3_600_000_000);
    }
}
