//! The sync task of a shared limiter: every `sync_interval`, one pipelined batch that adds this
//! gateway's new admissions to the store and reads the fleet's totals back.

use std::collections::{HashMap, HashSet};
use std::sync::{OnceLock, Weak};
use std::time::Duration;

use floodgate_counter_store::{Batch, Replies, Reply, Store};
use tokio::time::MissedTickBehavior;

use super::view::{Seen, SHARE_ONE};
use super::{unix_nanos, Shared};
use crate::key_table::SlotId;

/// How often the fleet's size is read and this gateway's presence recorded (for the floor of its
/// share, and its part of the limit while the store is away).
const HEARTBEAT: Duration = Duration::from_secs(2);
/// A gateway not seen for this long is no longer counted in the fleet.
const HEARTBEAT_STALE: Duration = Duration::from_secs(7);

/// What the task remembers of one key between syncs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Synced {
    key: u64,
    /// The window `sent` counts.
    window: u64,
    /// This gateway's admissions in `window` already added to the store.
    sent: u64,
    /// Whether `window`'s counter has been given its expiry.
    expiring: bool,
    /// The view last written.
    seen: Seen,
}

/// The replies one key waits for.
pub(super) struct Pending {
    slot: SlotId,
    /// The key's hash (0 for the overflow slot's shared counter).
    key: u64,
    window: u64,
    /// This gateway's counts when the batch was made: in `window - 1` and `window`.
    mine: (u64, u64),
    /// `(reply, known)`: the previous window's total, or the others' count already known for it.
    previous: PreviousCount,
    current: Reply,
    expiring: bool,
}

enum PreviousCount {
    Total(Reply),
    Others(u64),
}

/// Runs until the limiter's state is dropped (its configuration replaced).
pub(super) async fn run(shared: Weak<Shared>) {
    let Some(settings) = shared.upgrade().map(|s| s.settings.clone()) else {
        return;
    };
    let mut ticker = tokio::time::interval(settings.sync_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut store: Option<Store> = None;
    let mut book: HashMap<SlotId, Synced> = HashMap::new();
    let mut next_heartbeat = tokio::time::Instant::now();
    loop {
        ticker.tick().await;
        let Some(limiter) = shared.upgrade() else {
            return;
        };
        let now = unix_nanos();
        let (mut batch, pending) = plan(&limiter, &mut book, now);
        let heartbeat = (tokio::time::Instant::now() >= next_heartbeat).then(|| {
            next_heartbeat = tokio::time::Instant::now() + HEARTBEAT;
            let now_millis = now / 1_000_000;
            let stale = u64::try_from(HEARTBEAT_STALE.as_millis()).unwrap_or(u64::MAX);
            batch.heartbeat(
                &settings.fleet_key,
                gateway_id(),
                now_millis,
                now_millis.saturating_sub(stale),
            )
        });
        if batch.is_empty() && store.is_some() {
            continue;
        }
        // Only the batch's round trip is awaited holding the state: dropping a replaced
        // configuration waits at most one timeout for the task to let go.
        drop(limiter);
        let outcome = tokio::time::timeout(settings.redis.timeout.0, async {
            if store.is_none() {
                store = Some(Store::connect(&settings.redis).await?);
            }
            let connection = store.as_mut().expect("connected just above");
            let sent = batch.command_count();
            connection.run(&batch).await.map(|replies| (replies, sent))
        })
        .await;
        let Some(limiter) = shared.upgrade() else {
            return;
        };
        match outcome {
            Ok(Ok((replies, sent))) => {
                limiter.status.sent(sent);
                if let Some(fleet) = heartbeat {
                    limiter.status.set_fleet(replies.get(fleet));
                }
                apply(&mut book, &limiter, &pending, &replies);
                if limiter.status.synced() {
                    tracing::warn!(
                        scope = %settings.namespace,
                        "rate-limit store reachable again; the limit is the fleet's again"
                    );
                }
            }
            failure => {
                store = None;
                let reason = match failure {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {:?}", settings.redis.timeout.0),
                };
                if limiter.status.failed() {
                    tracing::warn!(
                        scope = %settings.namespace,
                        policy = ?settings.on_failure,
                        fleet = limiter.status.fleet(),
                        "rate-limit store unreachable: {reason}"
                    );
                }
            }
        }
    }
}

/// The batch for the keys requested lately, and what each waits for.
pub(super) fn plan(
    shared: &Shared,
    book: &mut HashMap<SlotId, Synced>,
    now: u64,
) -> (Batch, Vec<Pending>) {
    let w = &shared.window;
    let window_nanos = w.window_nanos();
    let number = now / window_nanos;
    let expire_millis = 2 * window_nanos.div_ceil(1_000_000) + 1_000;
    let mut batch = Batch::new();
    let mut pending = Vec::new();
    let mut active = HashSet::new();
    let into_window = now - number * window_nanos;
    let interval = u64::try_from(shared.settings.sync_interval.as_nanos()).unwrap_or(u64::MAX);
    shared.table.for_each_taken(|slot, key, state| {
        let (mine_previous, mine_current) = w.own_counts(state, number);
        let requested = shared.views.get(slot).requested_in();
        if mine_previous + mine_current == 0 && requested + 1 < number {
            return;
        }
        active.insert(slot);
        let known = book.get(&slot).filter(|s| s.key == key).copied();
        let name = |n: u64| counter_name(&shared.settings.namespace, slot, key, n);
        let previous = match known {
            // The window turned since the last sync: what of the old one is unsent goes now.
            Some(s) if s.window + 1 == number => {
                let unsent = mine_previous.saturating_sub(s.sent);
                let reply = batch.add(&name(number - 1), unsent);
                if unsent > 0 && !s.expiring {
                    batch.expire(&name(number - 1), expire_millis);
                }
                PreviousCount::Total(reply)
            }
            // One sync later, every gateway has sent its tail of the previous window: its total is
            // read once more, final this time.
            Some(s) if s.window == number && (interval..2 * interval).contains(&into_window) => {
                PreviousCount::Total(batch.add(&name(number - 1), 0))
            }
            Some(s) if s.window == number => PreviousCount::Others(u64::from(s.seen.previous)),
            // New to this task (or idle for a while): the previous window is read once.
            _ => {
                let reply = batch.add(&name(number - 1), mine_previous);
                if mine_previous > 0 {
                    batch.expire(&name(number - 1), expire_millis);
                }
                PreviousCount::Total(reply)
            }
        };
        let (sent, was_expiring) = match known {
            Some(s) if s.window == number => (s.sent, s.expiring),
            _ => (0, false),
        };
        let delta = mine_current.saturating_sub(sent);
        let current = batch.add(&name(number), delta);
        if delta > 0 && !was_expiring {
            batch.expire(&name(number), expire_millis);
        }
        pending.push(Pending {
            slot,
            key,
            window: number,
            mine: (mine_previous, mine_current),
            previous,
            current,
            expiring: was_expiring || delta > 0,
        });
    });
    // Keys no longer requested are forgotten; they start over if they come back.
    book.retain(|slot, _| active.contains(slot));
    (batch, pending)
}

/// Writes what the replies say into the views and the book.
pub(super) fn apply(
    book: &mut HashMap<SlotId, Synced>,
    shared: &Shared,
    pending: &[Pending],
    replies: &Replies,
) {
    let fleet_size = shared.status.fleet();
    for p in pending {
        let others_previous = match p.previous {
            PreviousCount::Total(reply) => replies.get(reply).saturating_sub(p.mine.0),
            PreviousCount::Others(n) => n,
        };
        let others_current = replies.get(p.current).saturating_sub(p.mine.1);
        // This gateway's part of the fleet's admissions over the previous window and this one,
        // at least one over the fleet's size.
        let mine = u128::from(p.mine.0 + p.mine.1);
        let fleet = mine + u128::from(others_previous + others_current);
        let one = u128::from(SHARE_ONE);
        let part = (mine * one).checked_div(fleet).unwrap_or(one);
        let floor = one / u128::from(fleet_size.max(1));
        let share = u32::try_from(part.max(floor).clamp(1, one)).unwrap_or(SHARE_ONE);
        // The others send their admissions at their own moments, on average half an interval before
        // this sync: what they admitted since is presumed alongside what this gateway admitted
        // since then (about halfway between its last sync's count and this one's).
        let last_sent = book
            .get(&p.slot)
            .filter(|s| s.key == p.key && s.window == p.window)
            .map_or(0, |s| s.sent);
        let mine_then = (last_sent + p.mine.1) / 2;
        let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        let seen = Seen {
            key: p.key,
            window: p.window,
            previous: clamp(others_previous),
            current: clamp(others_current),
            mine: clamp(mine_then),
            share,
        };
        shared.views.get(p.slot).write(&seen);
        book.insert(
            p.slot,
            Synced {
                key: p.key,
                window: p.window,
                sent: p.mine.1,
                expiring: p.expiring,
                seen,
            },
        );
    }
}

/// `<namespace>:<key hash>:<window>`; the overflow slot's keys share `overflow`.
fn counter_name(namespace: &str, slot: SlotId, key: u64, window: u64) -> String {
    match slot {
        SlotId::Own(_) => format!("{namespace}:{key:016x}:{window}"),
        SlotId::Overflow => format!("{namespace}:overflow:{window}"),
    }
}

/// This process's name in the fleet's sorted set: random, chosen once.
fn gateway_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| format!("{:016x}", fastrand::u64(..)))
}
