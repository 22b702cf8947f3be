//! What applying a change costs the gateway, by the size of the configuration: the checks and the
//! snapshot build of a whole configuration against those of one route replaced and one inserted,
//! in process, without sockets or etcd (those are `bench/routes.sh`'s).
//!
//! ```text
//! cargo run --release -p floodgate-proxy --example apply_cost -- 1000 10000 100000
//! ```
//!
//! The routes mix the kinds a large deployment has, as `bench/routes.sh` does: 40% prefixes, 30% with
//! a parameter, 20% exact paths and 10% bound to a host. Each figure is the median of 5 runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use floodgate_config::Config;
use floodgate_observe::Metrics;
use floodgate_proxy::{BuildInputs, Snapshot};

fn yaml(routes: usize) -> String {
    let mut text = String::from(
        "workers: 1\n\
         listeners: [{ name: plain, address: \"127.0.0.1:18081\" }]\n\
         upstreams: [{ id: origin, targets: [{ address: \"127.0.0.1:18000\" }] }]\n\
         routes:\n  - { id: bench, paths: [\"/bench/*\"], upstream: origin }\n",
    );
    for i in 0..routes {
        text += &match i % 10 {
            0..=3 => format!("  - {{ id: p{i}, paths: [\"/svc{i}/*\"], upstream: origin }}\n"),
            4..=6 => format!(
                "  - {{ id: m{i}, paths: [\"/api/v{i}/users/{{id}}\"], upstream: origin }}\n"
            ),
            7 | 8 => format!("  - {{ id: e{i}, paths: [\"/exact/{i}\"], upstream: origin }}\n"),
            _ => format!(
                "  - {{ id: h{i}, hosts: [\"h{i}.example.com\"], paths: [\"/*\"], upstream: origin }}\n"
            ),
        };
    }
    text
}

fn inputs(previous: Option<&Snapshot>) -> BuildInputs<'_> {
    BuildInputs {
        previous,
        ..BuildInputs::validating()
    }
}

/// The median time of 5 runs of `run`.
fn median(mut run: impl FnMut() -> Duration) -> Duration {
    let mut times: Vec<Duration> = (0..5).map(|_| run()).collect();
    times.sort();
    times[2]
}

fn timed<T>(run: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let value = run();
    (start.elapsed(), value)
}

/// `config` with route `at` replaced by one with another path, or a new route inserted there.
fn changed(config: &Config, at: usize, insert: bool) -> Config {
    let mut next = config.clone();
    let mut route = (*next.routes[at]).clone();
    route.paths = vec!["/changed/{x}".into()];
    if insert {
        route.id = "inserted".into();
        next.routes.insert(at, Arc::new(route));
    } else {
        next.routes[at] = Arc::new(route);
    }
    next
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000]
    } else {
        sizes
    };
    let metrics = Metrics::new(1);
    println!("routes    whole: validate  build     one replaced: check  build     one inserted: check  build");
    for routes in sizes {
        let config =
            floodgate_config::parse_yaml(&yaml(routes)).expect("the generated configuration");
        let running = Snapshot::build(&config, &metrics, 1, None, inputs(None)).expect("builds");
        let reread =
            floodgate_config::parse_yaml(&yaml(routes)).expect("the generated configuration");
        let whole_check = median(|| timed(|| reread.validate().expect("valid")).0);
        let whole_build = median(|| {
            let (took, built) =
                timed(|| Snapshot::build(&reread, &metrics, 1, None, inputs(Some(&running))));
            drop(built);
            took
        });
        let mut figures = Vec::new();
        for insert in [false, true] {
            let next = changed(&config, routes / 2, insert);
            figures.push(median(|| {
                timed(|| next.validate_change(&config).expect("valid")).0
            }));
            figures.push(median(|| {
                let (took, built) =
                    timed(|| Snapshot::build(&next, &metrics, 1, None, inputs(Some(&running))));
                drop(built.expect("builds"));
                took
            }));
        }
        println!(
            "{routes:<9} {:>15.2?} {:>8.2?} {:>20.2?} {:>8.2?} {:>20.2?} {:>8.2?}",
            whole_check, whole_build, figures[0], figures[1], figures[2], figures[3]
        );
    }
}
