//! Keeping a set of hosts resolved: each is asked again when its answer is due, and every change
//! is handed on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::join_all;

use crate::records::{HostRecords, Resolution};
use crate::resolver::{Answer, NameResolver, ResolveError};

/// Hosts by name, each with its last answer.
pub type Hosts = BTreeMap<Arc<str>, HostRecords>;

/// Resolves, all at once, the hosts of `hosts` that `pick` chooses; `heard` is told each result.
/// Whether any host's addresses changed.
pub async fn refresh(
    resolver: &NameResolver,
    hosts: &mut Hosts,
    pick: impl Fn(&HostRecords) -> bool,
    heard: &mut impl FnMut(&str, &Result<Answer, ResolveError>),
) -> bool {
    let chosen: Vec<Arc<str>> = hosts
        .iter()
        .filter(|(_, records)| pick(records))
        .map(|(host, _)| host.clone())
        .collect();
    let results = join_all(chosen.iter().map(|host| resolver.resolve(host))).await;
    let now = Instant::now();
    let bounds = resolver.bounds();
    let mut changed = false;
    for (host, result) in chosen.iter().zip(results) {
        heard(host, &result);
        if let Some(records) = hosts.get_mut(host) {
            changed |= records.record(&result, &bounds, now) == Resolution::Changed;
        }
    }
    changed
}

/// Keeps `hosts` resolved for as long as the future runs (it never ends by itself): each host is
/// asked again when its answer is due, `heard` is told every result and `changed` is handed the
/// hosts after each change of any host's addresses.
pub async fn follow(
    resolver: Arc<NameResolver>,
    mut hosts: Hosts,
    mut heard: impl FnMut(&str, &Result<Answer, ResolveError>),
    mut changed: impl FnMut(&Hosts),
) {
    loop {
        let Some(next) = hosts.values().map(HostRecords::due).min() else {
            return std::future::pending().await;
        };
        tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
        let now = Instant::now();
        if refresh(&resolver, &mut hosts, |r| r.due() <= now, &mut heard).await {
            changed(&hosts);
        }
    }
}
