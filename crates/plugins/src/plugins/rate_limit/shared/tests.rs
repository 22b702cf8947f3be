//! Shared limiters against a store simulated in memory, on a simulated clock: the fleet's
//! arithmetic without sockets or timing (the real Redis is in the binary's tests).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use floodgate_counter_store::{Batch, Command, RedisConfig, Replies};

use super::sync::{apply, plan, Synced};
use super::*;

const SECOND: u64 = 1_000_000_000;
const MILLI: u64 = 1_000_000;

/// Runs a batch on `store` as Redis would (without expiry).
fn simulate(batch: &Batch, store: &mut HashMap<String, u64>) -> Replies {
    let mut replies = Vec::new();
    for command in batch.commands() {
        match command {
            Command::Add { key, by } => {
                let value = store.entry(key.clone()).or_default();
                *value += by;
                replies.push(*value);
            }
            Command::Expire { .. } => {}
            Command::Heartbeat { .. } => replies.push(3),
        }
    }
    Replies::from_numbers(replies)
}

struct Gateway {
    shared: Arc<Shared>,
    book: HashMap<crate::key_table::SlotId, Synced>,
    /// When its syncs happen within each interval.
    phase: u64,
    admitted: Vec<u64>,
}

fn gateway(limit: u64, on_failure: OnStoreFailure, phase: u64) -> Gateway {
    let settings = Settings {
        redis: RedisConfig::at_url("redis://127.0.0.1:1"),
        sync_interval: Duration::from_millis(100),
        on_failure,
        namespace: "{test:route:a}".into(),
        fleet_key: "test:gateways".into(),
    };
    let window = SlidingWindow::new(limit, SECOND).unwrap();
    let stats = Arc::new(PluginStats::default());
    let shared = Arc::new(Shared::new(window, 1024, settings, stats));
    shared.status.set_fleet(3);
    Gateway {
        shared,
        book: HashMap::new(),
        phase,
        admitted: Vec::new(),
    }
}

/// Three gateways offered `per_gateway` requests a second each (0: none) for `seconds`, one key,
/// syncing every 100ms at staggered moments; each gateway's admission times.
fn run_fleet(limit: u64, per_gateway: [u64; 3], starts: [u64; 3], seconds: u64) -> Vec<Vec<u64>> {
    let mut store = HashMap::new();
    let mut fleet: Vec<Gateway> = [0, 37, 71]
        .into_iter()
        .map(|phase| gateway(limit, OnStoreFailure::Local, phase * MILLI))
        .collect();
    let start = 1_000 * SECOND;
    let step: Vec<u64> = per_gateway.iter().map(|&r| SECOND / r.max(1)).collect();
    // Requests evenly spaced, each gateway's shifted a little from the others'.
    let mut next: Vec<u64> = (0..3)
        .map(|i| match per_gateway[i] {
            0 => u64::MAX,
            _ => start + starts[i] * SECOND + step[i] * i as u64 / 3,
        })
        .collect();
    let mut now = start;
    while now < start + seconds * SECOND {
        for (i, g) in fleet.iter_mut().enumerate() {
            while next[i] <= now {
                if g.shared.check(42, next[i]).allowed {
                    g.admitted.push(next[i] - start);
                }
                next[i] += step[i];
            }
            if (now - start) % (100 * MILLI) == g.phase {
                let (batch, pending) = plan(&g.shared, &mut g.book, now);
                let replies = simulate(&batch, &mut store);
                apply(&mut g.book, &g.shared, &pending, &replies);
            }
        }
        now += MILLI / 10;
    }
    fleet.into_iter().map(|g| g.admitted).collect()
}

/// Each gateway's admissions in each whole second from `from` to `to`.
fn per_second(runs: &[Vec<u64>], from: u64, to: u64) -> Vec<Vec<usize>> {
    (from..to)
        .map(|s| {
            let in_second = |t: &&u64| **t >= s * SECOND && **t < (s + 1) * SECOND;
            runs.iter()
                .map(|r| r.iter().filter(in_second).count())
                .collect()
        })
        .collect()
}

#[test]
fn three_gateways_at_three_times_the_limit_admit_the_limit() {
    let seconds = per_second(&run_fleet(300, [300, 300, 300], [0; 3], 8), 2, 8);
    let total: usize = seconds.iter().flatten().sum();
    // Six seconds of 300: within 2% (the sliding window's own estimate included).
    assert!((1764..=1836).contains(&total), "{total}: {seconds:?}");
    for per in &seconds {
        assert!(
            per.iter().all(|&n| n >= 80),
            "a gateway was starved: {seconds:?}"
        );
    }
}

#[test]
fn uneven_traffic_is_admitted_at_the_limit_and_a_light_gateway_is_served_whole() {
    // One gateway sees 40 a second, the others 600 each: the light one keeps all of its 40.
    let seconds = per_second(&run_fleet(300, [40, 600, 600], [0; 3], 8), 2, 8);
    let total: usize = seconds.iter().flatten().sum();
    assert!((1764..=1836).contains(&total), "{total}: {seconds:?}");
    for per in &seconds {
        assert!(per[0] >= 39, "the light gateway was refused: {seconds:?}");
    }
}

#[test]
fn a_gateway_whose_traffic_starts_late_gets_its_part_within_a_window() {
    // The first gateway gets nothing for 4 seconds, then as much as the others.
    let seconds = per_second(&run_fleet(300, [300, 300, 300], [4, 0, 0], 10), 2, 10);
    let total: usize = seconds.iter().flatten().sum();
    // Eight seconds of 300, within 3%: the newcomer's floor share overlaps the others' for a window.
    assert!((2328..=2472).contains(&total), "{total}: {seconds:?}");
    for per in &seconds[3..] {
        assert!(per[0] >= 80, "the newcomer was starved: {seconds:?}");
    }
}
