use std::time::{Duration, Instant};

use floodgate_config::{
    FailureRatioConfig, HealthChecksConfig, HumanDuration, PassiveHealthConfig, UpstreamConfig,
};
use floodgate_observe::{EjectionReason, Metrics};

use super::*;
use crate::balancer::fixtures::upstream;

fn checked(targets: usize, passive: PassiveHealthConfig, panic_threshold: u8) -> UpstreamConfig {
    let list: Vec<(String, u32)> = (0..targets).map(|i| (format!("t{i}:80"), 1)).collect();
    let list: Vec<(&str, u32)> = list.iter().map(|(a, w)| (a.as_str(), *w)).collect();
    let mut config = upstream(floodgate_config::Balancer::RoundRobin, &list);
    config.health_checks = HealthChecksConfig {
        active: None,
        passive: Some(passive),
        panic_threshold,
        failover_threshold: 70,
    };
    config
}

fn health(config: &UpstreamConfig, metrics: &Metrics) -> (UpstreamHealth, HealthStates) {
    let mut next = HealthStates::new();
    let health = UpstreamHealth::new(
        config,
        &config.targets,
        &HealthStates::new(),
        &mut next,
        metrics,
    );
    (health, next)
}

fn in_service(health: &UpstreamHealth) -> Vec<usize> {
    let eligible = health.eligible();
    (0..health.targets.len())
        .filter(|&i| health.allows(&eligible, i))
        .collect()
}

fn fail(health: &UpstreamHealth, index: usize, times: usize, result: AttemptResult, at: Instant) {
    for _ in 0..times {
        health.report(index, result, Millis::of(at));
    }
}

#[test]
fn consecutive_5xx_eject_and_a_success_in_between_starts_the_count_again() {
    let metrics = Metrics::new(1);
    let passive = PassiveHealthConfig {
        consecutive_5xx: 3,
        max_ejected_percent: 50,
        ..PassiveHealthConfig::default()
    };
    let (health, _) = health(&checked(4, passive, 0), &metrics);
    let now = Instant::now();
    fail(&health, 1, 2, AttemptResult::Status(500), now);
    health.report(1, AttemptResult::Status(200), Millis::of(now));
    fail(&health, 1, 2, AttemptResult::Status(503), now);
    assert_eq!(in_service(&health), [0, 1, 2, 3]);
    health.report(1, AttemptResult::Status(500), Millis::of(now));
    assert_eq!(in_service(&health), [0, 2, 3]);
    let target = metrics.target("test", "t1:80");
    assert!(!target.healthy());
    assert_eq!(target.ejections(EjectionReason::Consecutive5xx), 1);
}

#[test]
fn gateway_failures_eject_on_their_own_count() {
    let metrics = Metrics::new(1);
    let passive = PassiveHealthConfig {
        consecutive_5xx: 0,
        consecutive_gateway_errors: 2,
        max_ejected_percent: 50,
        ..PassiveHealthConfig::default()
    };
    let (health, _) = health(&checked(2, passive, 0), &metrics);
    // A 500 is not a gateway error: it neither counts nor, with consecutive_5xx off, ejects.
    fail(&health, 0, 5, AttemptResult::Status(500), Instant::now());
    assert_eq!(in_service(&health), [0, 1]);
    fail(&health, 0, 2, AttemptResult::GatewayFailure, Instant::now());
    assert_eq!(in_service(&health), [1]);
    assert_eq!(
        metrics
            .target("test", "t0:80")
            .ejections(EjectionReason::ConsecutiveGatewayErrors),
        1
    );
}

#[test]
fn an_ejection_ends_by_itself_and_the_next_one_lasts_longer() {
    let metrics = Metrics::new(1);
    let passive = PassiveHealthConfig {
        consecutive_5xx: 1,
        base_ejection_time: HumanDuration::from_secs(10),
        max_ejection_time: HumanDuration::from_secs(15),
        max_ejected_percent: 100,
        ..PassiveHealthConfig::default()
    };
    let (health, _) = health(&checked(2, passive, 0), &metrics);
    let start = Instant::now();
    health.report(0, AttemptResult::GatewayFailure, Millis::of(start));
    let target = &health.targets[0];
    let at = |secs| Millis::of(start + Duration::from_secs(secs));
    assert!(!target.in_service(at(9), "test", "t0:80"));
    assert!(target.in_service(at(10), "test", "t0:80"));
    assert!(metrics.target("test", "t0:80").healthy());
    // Second ejection: twice the base, capped at the maximum.
    health.report(
        0,
        AttemptResult::GatewayFailure,
        Millis::of(start + Duration::from_secs(11)),
    );
    assert!(!target.in_service(at(25), "test", "t0:80"));
    assert!(target.in_service(at(26), "test", "t0:80"));
    assert_eq!(target.status(at(26)).ejections, 2);
}

#[test]
fn no_more_than_the_ejected_share_leaves_service_but_always_one_may() {
    let metrics = Metrics::new(1);
    let passive = PassiveHealthConfig {
        consecutive_5xx: 1,
        max_ejected_percent: 10,
        ..PassiveHealthConfig::default()
    };
    let (health, _) = health(&checked(3, passive, 0), &metrics);
    let now = Instant::now();
    for index in 0..3 {
        health.report(index, AttemptResult::Status(500), Millis::of(now));
    }
    assert_eq!(in_service(&health), [1, 2]);
}

#[test]
fn below_the_panic_threshold_every_target_is_eligible() {
    let metrics = Metrics::new(1);
    let passive = PassiveHealthConfig {
        consecutive_5xx: 1,
        max_ejected_percent: 100,
        ..PassiveHealthConfig::default()
    };
    let (health, _) = health(&checked(4, passive, 50), &metrics);
    let now = Instant::now();
    health.report(0, AttemptResult::Status(500), Millis::of(now));
    health.report(1, AttemptResult::Status(500), Millis::of(now));
    // Two of four in service: 50%, not below the threshold.
    assert_eq!(in_service(&health), [2, 3]);
    health.report(2, AttemptResult::Status(500), Millis::of(now));
    assert_eq!(in_service(&health), [0, 1, 2, 3]);
}

#[test]
fn a_failure_ratio_over_an_interval_ejects() {
    let metrics = Metrics::new(1);
    let passive = PassiveHealthConfig {
        consecutive_5xx: 0,
        consecutive_gateway_errors: 0,
        failure_ratio: Some(FailureRatioConfig {
            threshold: 0.5,
            minimum_requests: 10,
            interval: HumanDuration::from_secs(10),
        }),
        max_ejected_percent: 50,
        ..PassiveHealthConfig::default()
    };
    let (health, _) = health(&checked(2, passive, 0), &metrics);
    let start = Instant::now() + Duration::from_secs(20);
    // Interval 1: 6 of 12 failed (judged when the next interval starts).
    for i in 0..12 {
        let result = if i % 2 == 0 {
            AttemptResult::Status(502)
        } else {
            AttemptResult::Status(200)
        };
        health.report(0, result, Millis::of(start));
        // Target 1: only 4 failures of 12, below the ratio.
        let result = if i % 3 == 0 {
            AttemptResult::Status(500)
        } else {
            AttemptResult::Status(200)
        };
        health.report(1, result, Millis::of(start));
    }
    assert_eq!(in_service(&health), [0, 1]);
    let later = start + Duration::from_secs(10);
    health.report(1, AttemptResult::Status(200), Millis::of(later));
    health.report(0, AttemptResult::Status(200), Millis::of(later));
    assert_eq!(in_service(&health), [1]);
    assert_eq!(
        metrics
            .target("test", "t0:80")
            .ejections(EjectionReason::FailureRatio),
        1
    );
}

#[test]
fn a_new_snapshot_keeps_the_state_of_the_targets_it_keeps() {
    let metrics = Metrics::new(1);
    let passive = PassiveHealthConfig {
        consecutive_5xx: 1,
        max_ejected_percent: 100,
        ..PassiveHealthConfig::default()
    };
    let config = checked(2, passive.clone(), 0);
    let (first, states) = health(&config, &metrics);
    first.report(1, AttemptResult::Status(500), Millis::of(Instant::now()));
    // The reload drops t0 and adds t2; t1 stays ejected.
    let mut reloaded = checked(3, passive, 0);
    reloaded.targets.remove(0);
    let mut next = HealthStates::new();
    let second = UpstreamHealth::new(&reloaded, &reloaded.targets, &states, &mut next, &metrics);
    assert_eq!(in_service(&second), [1]);
    assert_eq!(next.len(), 2);
}

#[test]
fn without_a_passive_check_nothing_is_ever_ejected() {
    let metrics = Metrics::new(1);
    let config = upstream(floodgate_config::Balancer::RoundRobin, &[("a:1", 1)]);
    let (health, _) = health(&config, &metrics);
    assert!(!health.is_checked());
    fail(
        &health,
        0,
        100,
        AttemptResult::GatewayFailure,
        Instant::now(),
    );
    assert_eq!(in_service(&health), [0]);
}

#[test]
fn probes_take_a_target_out_after_the_unhealthy_threshold_and_back_after_the_healthy_one() {
    let metrics = Metrics::new(1);
    let mut config = upstream(
        floodgate_config::Balancer::RoundRobin,
        &[("a:1", 1), ("b:1", 1)],
    );
    config.health_checks.active = Some(floodgate_config::ActiveHealthConfig::default());
    config.health_checks.panic_threshold = 0;
    let (health, _) = health(&config, &metrics);
    assert!(health.is_checked() && !health.is_passive());
    let (upstream, address, target) = health.target(1).unwrap();
    let probe = |passed| target.record_probe(passed, Millis::now(), (2, 3), upstream, address);
    probe(false);
    probe(false);
    probe(true);
    probe(false);
    probe(false);
    assert_eq!(
        in_service(&health),
        [0, 1],
        "two failures in a row are not three"
    );
    probe(false);
    assert_eq!(in_service(&health), [0]);
    assert!(!metrics.target("test", "b:1").healthy());
    probe(true);
    assert_eq!(in_service(&health), [0]);
    probe(true);
    assert_eq!(in_service(&health), [0, 1]);
    assert!(metrics.target("test", "b:1").healthy());
    let status = target.status(Millis::now());
    assert!(!status.probed_down);
    assert!(status.last_probe.is_some_and(|(_, passed)| passed));
}

#[test]
fn a_lower_priority_level_joins_only_while_the_first_has_too_few_in_service() {
    let metrics = Metrics::new(1);
    let passive = PassiveHealthConfig {
        consecutive_5xx: 1,
        max_ejected_percent: 100,
        ..PassiveHealthConfig::default()
    };
    let mut config = checked(4, passive, 0);
    // Targets 0-2 first; 3 the backup.
    config.targets[3].priority = 1;
    let (health, _) = health(&config, &metrics);
    assert_eq!(in_service(&health), [0, 1, 2]);
    assert_eq!(health.priority(3), 1);
    let now = Millis::now();
    // One of three out: 67% in service, under the 70% failover threshold, so the backup joins.
    health.report(0, AttemptResult::Status(500), now);
    assert_eq!(in_service(&health), [1, 2, 3]);
}

#[test]
fn a_ramping_target_is_admitted_by_its_share_and_fully_after_the_window() {
    let metrics = Metrics::new(1);
    let mut config = upstream(
        floodgate_config::Balancer::Random,
        &[("a:1", 1), ("b:1", 1)],
    );
    config.slow_start = Some(floodgate_config::SlowStartConfig {
        window: HumanDuration::from_secs(10),
        aggression: 1.0,
        min_weight_percent: 10,
    });
    // A reload: `previous` knows `a`, so `b` is new and ramps.
    let (first, states) = health(&config, &metrics);
    assert!(
        first.ramping().is_none(),
        "the first configuration does not ramp"
    );
    let mut next = HealthStates::new();
    let mut reloaded = config.clone();
    reloaded.targets[1].address = "c:1".into();
    let mut kept = HealthStates::new();
    kept.insert(
        (Arc::from("test"), Arc::from("a:1")),
        states[&(Arc::from("test"), Arc::from("a:1"))].clone(),
    );
    let second = UpstreamHealth::new(&reloaded, &reloaded.targets, &kept, &mut next, &metrics);
    let admission = second.admission().expect("c ramps");
    let admitted = (0..2000).filter(|_| second.admits(1, &admission)).count();
    // About 10% (the floor) at the start.
    assert!((100..320).contains(&admitted), "{admitted}");
    assert_eq!(
        (0..100).filter(|_| second.admits(0, &admission)).count(),
        100
    );
    let later = Admission {
        now: admission.now.map(|now| Millis(now.0 + 10_000)),
        max_headroom: None,
    };
    assert!(second.admits(1, &later));
    assert!(
        second.admission().is_none(),
        "past its window, nothing ramps"
    );
}

#[test]
fn a_loaded_target_keeps_a_share_by_its_headroom_and_never_none() {
    let metrics = Metrics::new(1);
    let mut config = upstream(
        floodgate_config::Balancer::Random,
        &[("a:1", 1), ("b:1", 1)],
    );
    config.load_reports = Some(floodgate_config::LoadReportsConfig {
        period: HumanDuration::from_secs(1),
        min_weight_percent: 10,
    });
    let (health, _) = health(&config, &metrics);
    assert!(health.reads_load_reports());
    // One report of full load moves `a` half way: it keeps half its share.
    health.load_report(0, 1.0, Nanos::now());
    let admission = health.admission().unwrap();
    let a = (0..4000).filter(|_| health.admits(0, &admission)).count();
    assert!((1700..2300).contains(&a), "{a}");
    // However loaded, never below the floor.
    for i in 1..20u64 {
        health.load_report(0, 1.0, Nanos(Nanos::now().0 + i * 2_000_000_000));
    }
    let admission = health.admission().unwrap();
    let a = (0..4000).filter(|_| health.admits(0, &admission)).count();
    assert!((250..600).contains(&a), "{a}");
    assert_eq!(
        (0..100).filter(|_| health.admits(1, &admission)).count(),
        100
    );
}
