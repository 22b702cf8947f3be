//! The service registry in etcd (`upstreams[].discovery.etcd`): instances put their address under a
//! prefix with a lease, and the gateway follows each discovered upstream's prefix, handing the instances
//! to the upstream as they come and go. `register` is the instance's side: it keeps one key alive.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, EventType, PutOptions};
use floodgate_config::{Config, EtcdDiscoveryConfig, TargetConfig};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::cluster::{list_prefix, watch_prefix, Cluster};

/// Longest pause between two attempts to reach etcd.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Most weight an instance may ask for, as a configured target.
const MAX_WEIGHT: u64 = 10_000;

/// What is told of a discovered upstream's new instances: its id and its targets.
pub type OnInstances = dyn Fn(&str, Vec<TargetConfig>) + Send + Sync;

/// The tasks following the discovered upstreams' prefixes, by upstream id.
pub struct RegistryFollower {
    on_instances: Arc<OnInstances>,
    tasks: HashMap<String, (EtcdDiscoveryConfig, JoinHandle<()>)>,
}

impl RegistryFollower {
    /// Follows nothing yet; each upstream's instances will go to `on_instances`.
    pub fn new(on_instances: Arc<OnInstances>) -> RegistryFollower {
        RegistryFollower {
            on_instances,
            tasks: HashMap::new(),
        }
    }

    /// Follows the prefixes `config`'s upstreams name: a task per discovered upstream whose settings are
    /// new, on the current runtime; those whose upstream or settings are gone stop.
    pub fn follow(&mut self, config: &Config) {
        let mut wanted: HashMap<String, EtcdDiscoveryConfig> = config
            .upstreams
            .iter()
            .filter_map(|u| Some((u.id.clone(), config.discovery_of(u)?)))
            .collect();
        self.tasks.retain(|id, (settings, task)| {
            let keep = wanted.get(id) == Some(settings);
            if keep {
                wanted.remove(id);
            } else {
                task.abort();
            }
            keep
        });
        for (id, settings) in wanted {
            let on_instances = self.on_instances.clone();
            let task = tokio::spawn(follow_prefix(id.clone(), settings.clone(), on_instances));
            self.tasks.insert(id, (settings, task));
        }
    }
}

impl Drop for RegistryFollower {
    fn drop(&mut self) {
        for (_, task) in self.tasks.values() {
            task.abort();
        }
    }
}

async fn connect(settings: &EtcdDiscoveryConfig) -> Result<Client, etcd_client::Error> {
    Cluster::from(settings).connect(true).await
}

/// Lists and watches one upstream's prefix for as long as the task runs. Through an outage the last
/// instances stay; once etcd answers again it lists afresh.
async fn follow_prefix(id: String, settings: EtcdDiscoveryConfig, on_instances: Arc<OnInstances>) {
    let mut backoff = Duration::from_millis(100);
    let mut reachable = true;
    loop {
        match watch_once(&id, &settings, &*on_instances).await {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(e) => {
                if reachable {
                    tracing::warn!(upstream = %id, error = %e, "the service registry cannot be reached: keeping the last instances");
                }
                reachable = false;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        }
        reachable = true;
    }
}

async fn watch_once(
    id: &str,
    settings: &EtcdDiscoveryConfig,
    on_instances: &OnInstances,
) -> Result<(), etcd_client::Error> {
    let client = connect(settings).await?;
    let (revision, listed) = list_prefix(&client, &settings.prefix).await?;
    let mut values: BTreeMap<String, Vec<u8>> = listed
        .into_iter()
        .map(|(key, value)| (String::from_utf8_lossy(&key).into_owned(), value))
        .collect();
    on_instances(id, instances(id, &values));
    let mut stream = watch_prefix(&client, &settings.prefix, revision + 1).await?;
    while let Some(response) = stream.message().await? {
        if response.canceled() || response.compact_revision() > 0 {
            return Ok(());
        }
        if response.events().is_empty() {
            continue;
        }
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            match event.event_type() {
                EventType::Put => {
                    values.insert(key, kv.value().to_vec());
                }
                EventType::Delete => {
                    values.remove(&key);
                }
            }
        }
        on_instances(id, instances(id, &values));
    }
    Err(etcd_client::Error::WatchError(
        "the watch stream ended".into(),
    ))
}

/// The targets the registered values make, in key order; a value that is not an instance is logged and
/// left out.
pub fn instances(upstream: &str, values: &BTreeMap<String, Vec<u8>>) -> Vec<TargetConfig> {
    values
        .iter()
        .filter_map(|(key, value)| match instance(value) {
            Ok(target) => Some(target),
            Err(reason) => {
                tracing::error!(%upstream, %key, "registered instance left out: {reason}");
                None
            }
        })
        .collect()
}

/// One registered value: `{"address": "ip:port", "weight": N, "priority": N, "metadata": {...}}`.
fn instance(value: &[u8]) -> Result<TargetConfig, String> {
    let value: Value = serde_json::from_slice(value).map_err(|e| format!("not JSON: {e}"))?;
    let address = value["address"]
        .as_str()
        .ok_or("no \"address\"")?
        .to_string();
    address
        .parse::<SocketAddr>()
        .map_err(|_| format!("{address:?} is not ip:port"))?;
    let number =
        |field: &str, default: u64, range: std::ops::RangeInclusive<u64>| match &value[field] {
            Value::Null => Ok(default),
            other => other
                .as_u64()
                .filter(|n| range.contains(n))
                .ok_or(format!("{field} must be a whole number in {range:?}")),
        };
    Ok(TargetConfig {
        address,
        weight: u32::try_from(number("weight", 1, 1..=MAX_WEIGHT)?).unwrap_or(1),
        priority: u32::try_from(number("priority", 0, 0..=u64::from(u32::MAX))?).unwrap_or(0),
    })
}

/// Keeps `key` = `value` in the registry with a lease of `ttl`, renewed a few times per `ttl`, until
/// `stop` completes; then revokes the lease, so the instance goes away at once. When etcd cannot be
/// reached the key is put again (with a new lease) once it can.
pub async fn register(
    settings: &EtcdDiscoveryConfig,
    key: &str,
    value: &str,
    ttl: Duration,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let ttl_secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
    let mut backoff = Duration::from_millis(100);
    loop {
        let kept = async {
            let mut client = connect(settings).await?;
            let lease = client.lease_grant(ttl_secs, None).await?.id();
            client
                .put(key, value, Some(PutOptions::new().with_lease(lease)))
                .await?;
            tracing::info!(%key, lease, "registered");
            let (mut keeper, mut answers) = client.lease_keep_alive(lease).await?;
            Ok::<_, etcd_client::Error>((client, lease, async move {
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    keeper.keep_alive().await?;
                    if answers.message().await?.is_none_or(|a| a.ttl() <= 0) {
                        return Err(etcd_client::Error::LeaseKeepAliveError(
                            "the lease expired".into(),
                        ));
                    }
                }
            }))
        };
        let outcome = tokio::select! {
            kept = kept => kept,
            () = &mut stop => return,
        };
        match outcome {
            Ok((mut client, lease, renewing)) => {
                backoff = Duration::from_millis(100);
                tokio::select! {
                    result = renewing => {
                        let e: etcd_client::Error = match result { Err(e) => e, Ok(()) => continue };
                        tracing::warn!(%key, error = %e, "the registration lapsed: registering again");
                    }
                    () = &mut stop => {
                        if let Err(e) = client.lease_revoke(lease).await {
                            tracing::warn!(%key, error = %e, "the lease could not be revoked: it expires by itself");
                        }
                        tracing::info!(%key, "unregistered");
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(%key, error = %e, "cannot register yet");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = &mut stop => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn each_value_is_an_instance_and_the_bad_ones_are_left_out() {
        let targets = instances(
            "users",
            &values(&[
                ("/s/a", r#"{"address": "10.0.0.1:80"}"#),
                (
                    "/s/b",
                    r#"{"address": "10.0.0.2:80", "weight": 5, "priority": 1, "metadata": {"zone": "a"}}"#,
                ),
                ("/s/c", r#"{"address": "users.internal:80"}"#),
                ("/s/d", r#"{"address": "10.0.0.4:80", "weight": 0}"#),
                ("/s/e", "not json"),
                ("/s/f", r#"{"weight": 2}"#),
            ]),
        );
        let listed: Vec<(&str, u32, u32)> = targets
            .iter()
            .map(|t| (t.address.as_str(), t.weight, t.priority))
            .collect();
        assert_eq!(listed, [("10.0.0.1:80", 1, 0), ("10.0.0.2:80", 5, 1)]);
    }
}
