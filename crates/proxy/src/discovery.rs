//! Following the names of upstream targets: one task per upstream with names, on the background
//! runtime (never on a worker), that resolves them again as their answers run out and swaps the
//! upstream's endpoints when an address changes. Routes and snapshots are not rebuilt, and no
//! request ever waits on a resolution.
//!
//! Start-up and reloads wait (at most `dns.timeout`) for the first answer of a name nobody has
//! resolved yet, so the first requests have targets; a name some running task has an answer for
//! starts from it, without waiting. An upstream whose names have no answer has no targets: its
//! requests get the gateway's 503 at once.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use floodgate_config::{Config, DnsConfig};
use floodgate_dns::{follow, refresh, Answer, HostRecords, Hosts, NameResolver, ResolveError};
use floodgate_observe::{Metrics, UpstreamMetrics};
use parking_lot::Mutex;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::endpoints::hosts_of;
use crate::probe::Probes;
use crate::snapshot::{NameAnswers, Snapshot, UpstreamRuntime};

/// How long past `dns.timeout` start-up and reloads wait for first answers: the resolutions end
/// by their own timeout, this covers the background runtime taking them up.
const FIRST_ANSWER_MARGIN: Duration = Duration::from_millis(250);

/// The tasks following upstream names, by upstream id.
pub struct Discovery {
    metrics: Arc<Metrics>,
    probes: Arc<Mutex<Probes>>,
    resolver: Option<(DnsConfig, Arc<NameResolver>)>,
    watches: HashMap<Arc<str>, Watch>,
}

/// One upstream's names and the task that follows them. A reload that keeps the upstream's names
/// and the `dns` settings keeps the task.
#[derive(Clone)]
struct Watch {
    hosts: Vec<Arc<str>>,
    dns: DnsConfig,
    followed: Arc<Mutex<Followed>>,
    task: Option<Arc<AbortOnDrop>>,
}

/// What a watch's task found, and the upstream it keeps up to date. The lock is taken by the task
/// when an answer changes and by a reload handing it the new snapshot's upstream, never by a
/// request.
struct Followed {
    hosts: Hosts,
    /// Counts the changes of any host's addresses; endpoints built from an older count are behind.
    generation: u64,
    /// Weak: a replaced snapshot's upstream is not kept alive by its names' task.
    upstream: Weak<UpstreamRuntime>,
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The watches a configuration needs and the answers its snapshot is built from; it replaces the
/// running ones only once the snapshot is built ([`Discovery::commit`]), so a refused reload
/// changes nothing.
pub struct Plan {
    resolver: Arc<NameResolver>,
    dns: DnsConfig,
    watches: HashMap<Arc<str>, Watch>,
    /// Each upstream's hosts with their answers, for the snapshot's build.
    pub answers: NameAnswers,
}

impl Discovery {
    /// No names followed yet. `probes` follow the endpoints a new answer brings.
    pub fn new(metrics: Arc<Metrics>, probes: Arc<Mutex<Probes>>) -> Self {
        Self {
            metrics,
            probes,
            resolver: None,
            watches: HashMap::new(),
        }
    }

    /// The watches `config` needs: those running whose names and settings are unchanged, and new
    /// ones starting from any answer a running watch has for the same host. Hosts that no watch
    /// has an answer for are resolved now, on `runtime`, waiting at most `dns.timeout`.
    pub fn plan(&self, config: &Config, runtime: Option<&Handle>) -> Plan {
        let resolver = match &self.resolver {
            Some((dns, resolver)) if *dns == config.dns => resolver.clone(),
            _ => Arc::new(NameResolver::new(&config.dns)),
        };
        let now = Instant::now();
        let mut watches = HashMap::new();
        for upstream in &config.upstreams {
            let hosts = hosts_of(upstream);
            if hosts.is_empty() {
                continue;
            }
            let id: Arc<str> = upstream.id.as_str().into();
            let kept = self
                .watches
                .get(&id)
                .filter(|w| w.hosts == hosts && w.dns == config.dns);
            let watch = match kept {
                Some(watch) => watch.clone(),
                None => Watch {
                    followed: Arc::new(Mutex::new(Followed {
                        hosts: hosts
                            .iter()
                            .map(|host| {
                                let known = self.known(host);
                                (
                                    host.clone(),
                                    known.unwrap_or_else(|| HostRecords::unresolved(now)),
                                )
                            })
                            .collect(),
                        generation: 0,
                        upstream: Weak::new(),
                    })),
                    hosts,
                    dns: config.dns.clone(),
                    task: None,
                },
            };
            watches.insert(id, watch);
        }
        if let Some(runtime) = runtime {
            self.first_answers(&resolver, &watches, runtime, config.dns.timeout.get());
        }
        let answers = watches
            .iter()
            .map(|(id, watch)| {
                let followed = watch.followed.lock();
                (id.clone(), (followed.hosts.clone(), followed.generation))
            })
            .collect();
        Plan {
            resolver,
            dns: config.dns.clone(),
            watches,
            answers,
        }
    }

    /// Puts `plan` in service with `snapshot`, the snapshot built from its answers: each watch now
    /// keeps that snapshot's upstream up to date (at once, when an answer arrived while it was
    /// built), new watches start, and those no longer needed stop.
    pub fn commit(&mut self, plan: Plan, snapshot: &Snapshot, runtime: &Handle) {
        let mut watches = plan.watches;
        for (id, watch) in &mut watches {
            let Some(upstream) = snapshot.upstream(id) else {
                continue;
            };
            {
                let mut followed = watch.followed.lock();
                followed.upstream = Arc::downgrade(upstream);
                if upstream.endpoints.load().generation != followed.generation {
                    self.publish(&followed, upstream, runtime);
                }
            }
            if watch.task.is_none() {
                watch.task = Some(Arc::new(self.start(
                    id,
                    &plan.resolver,
                    &watch.followed,
                    runtime,
                )));
            }
        }
        self.resolver = Some((plan.dns, plan.resolver));
        // Watches left out of the plan are dropped here, and their tasks stop.
        self.watches = watches;
    }

    /// The last answer any running watch has for `host`.
    fn known(&self, host: &str) -> Option<HostRecords> {
        self.watches.values().find_map(|watch| {
            watch
                .followed
                .lock()
                .hosts
                .get(host)
                .filter(|records| records.answered())
                .cloned()
        })
    }

    /// Resolves the hosts of new watches that have no answer, all at once on `runtime`, and waits
    /// for them at most `timeout` (plus a margin): a name whose server is slow or down leaves its
    /// upstream without targets until its task gets an answer, rather than holding up start-up.
    fn first_answers(
        &self,
        resolver: &Arc<NameResolver>,
        watches: &HashMap<Arc<str>, Watch>,
        runtime: &Handle,
        timeout: Duration,
    ) {
        let (sender, receiver) = std::sync::mpsc::channel();
        let mut waiting = 0;
        for (id, watch) in watches {
            let mut hosts = watch.followed.lock().hosts.clone();
            if watch.task.is_some() || hosts.values().all(HostRecords::answered) {
                continue;
            }
            let (resolver, sender) = (resolver.clone(), sender.clone());
            let (id, metrics) = (id.clone(), self.metrics.upstream(id));
            runtime.spawn(async move {
                refresh(
                    &resolver,
                    &mut hosts,
                    |records| !records.answered(),
                    &mut |host, result| heard(&id, &metrics, host, result),
                )
                .await;
                let _ = sender.send((id, hosts));
            });
            waiting += 1;
        }
        let deadline = Instant::now() + timeout + FIRST_ANSWER_MARGIN;
        for _ in 0..waiting {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok((id, hosts)) = receiver.recv_timeout(left) else {
                break;
            };
            if let Some(watch) = watches.get(&id) {
                watch.followed.lock().hosts = hosts;
            }
        }
    }

    /// Starts the task following `followed`'s hosts for upstream `id`.
    fn start(
        &self,
        id: &Arc<str>,
        resolver: &Arc<NameResolver>,
        followed: &Arc<Mutex<Followed>>,
        runtime: &Handle,
    ) -> AbortOnDrop {
        let hosts = followed.lock().hosts.clone();
        let (id, metrics) = (id.clone(), self.metrics.upstream(id));
        let publisher = Publisher {
            metrics: self.metrics.clone(),
            probes: self.probes.clone(),
            runtime: runtime.clone(),
        };
        let followed = followed.clone();
        AbortOnDrop(runtime.spawn(follow(
            resolver.clone(),
            hosts,
            move |host, result| heard(&id, &metrics, host, result),
            move |hosts| {
                let mut followed = followed.lock();
                followed.hosts = hosts.clone();
                followed.generation += 1;
                if let Some(upstream) = followed.upstream.upgrade() {
                    publisher.publish(&followed, &upstream);
                }
            },
        )))
    }

    fn publish(&self, followed: &Followed, upstream: &UpstreamRuntime, runtime: &Handle) {
        Publisher {
            metrics: self.metrics.clone(),
            probes: self.probes.clone(),
            runtime: runtime.clone(),
        }
        .publish(followed, upstream);
    }
}

/// What a new answer is handed to: the upstream's endpoints, their metrics and their probes.
struct Publisher {
    metrics: Arc<Metrics>,
    probes: Arc<Mutex<Probes>>,
    runtime: Handle,
}

impl Publisher {
    fn publish(&self, followed: &Followed, upstream: &UpstreamRuntime) {
        upstream.refresh_endpoints(&followed.hosts, followed.generation, &self.metrics);
        let endpoints = upstream.endpoints.load();
        let addresses: Vec<&str> = endpoints.targets.iter().map(|t| &*t.address).collect();
        tracing::info!(upstream = %upstream.id, targets = ?addresses, "targets follow their names' new addresses");
        if upstream.config.health_checks.active.is_some() {
            self.probes.lock().follow(upstream, &self.runtime);
        }
    }
}

/// Counts a resolution of `host` for upstream `id`, and says why a failed one keeps the last
/// answer.
fn heard(id: &str, metrics: &UpstreamMetrics, host: &str, result: &Result<Answer, ResolveError>) {
    match result {
        Ok(_) => metrics.dns_resolution("success"),
        Err(error) => {
            metrics.dns_resolution(error.label());
            tracing::warn!(upstream = %id, %host, %error, "name resolution failed; its last addresses stay in use");
        }
    }
}
