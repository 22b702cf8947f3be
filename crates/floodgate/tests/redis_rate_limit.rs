//! `rate-limit` with `policy: redis`: one limit for a fleet of real gateway processes sharing a real
//! Redis. Three gateways at three times the limit admit the limit (within 5%) with at most one
//! Redis command per 20 requests; with Redis gone each `on_store_failure` does what it says, and
//! Redis returning makes the limit the fleet's again.

use std::time::Duration;

use floodgate_testkit::load::{paced, Sent};
use floodgate_testkit::{get, Floodgate, MockUpstream, TestRedis};

const BIN: &str = env!("CARGO_BIN_EXE_floodgate");

/// A gateway whose `/` is limited to `limit` per second for the whole fleet.
fn config(
    upstream: &str,
    redis_url: &str,
    limit: u64,
    on_failure: &str,
) -> impl Fn(std::net::SocketAddr, std::net::SocketAddr) -> String {
    let (upstream, redis_url) = (upstream.to_string(), redis_url.to_string());
    let on_failure = on_failure.to_string();
    move |listener, admin| {
        format!(
            r#"
workers: 1
listeners: [{{ name: main, address: "{listener}" }}]
admin: {{ address: "{admin}" }}
upstreams: [{{ id: app, targets: [{{ address: "{upstream}" }}] }}]
routes:
  - id: app
    paths: ["/*"]
    upstream: app
    plugins:
      rate-limit:
        algorithm: sliding_window
        limit: {limit}
        window: 1s
        key: route
        policy: redis
        redis: {{ url: "{redis_url}", timeout: 300ms }}
        on_store_failure: {on_failure}
"#
        )
    }
}

async fn fleet(
    upstream: &MockUpstream,
    redis: &TestRedis,
    limit: u64,
    on_failure: &str,
) -> Vec<Floodgate> {
    let mut gateways = Vec::new();
    for _ in 0..3 {
        gateways.push(
            Floodgate::start(
                BIN,
                config(&upstream.address(), &redis.url(), limit, on_failure),
            )
            .await,
        );
    }
    gateways
}

/// Runs `per_second` requests a second at each gateway for `seconds`; every gateway's outcomes.
async fn load(gateways: &[Floodgate], per_second: u32, seconds: u64) -> Vec<Vec<Sent>> {
    let runs: Vec<_> = gateways
        .iter()
        .map(|g| {
            tokio::spawn(paced(
                g.listener,
                "/",
                per_second,
                Duration::from_secs(seconds),
            ))
        })
        .collect();
    let mut outcomes = Vec::new();
    for run in runs {
        outcomes.push(run.await.expect("load"));
    }
    outcomes
}

/// Requests answered `status` among those sent in `[from, to)` seconds.
fn count(runs: &[Vec<Sent>], status: u16, from: u64, to: u64) -> usize {
    let (from, to) = (Duration::from_secs(from), Duration::from_secs(to));
    runs.iter()
        .flatten()
        .filter(|s| s.at >= from && s.at < to && s.status.map(|s| s.as_u16()) == Some(status))
        .count()
}

/// The sum over gateways of one metric's value.
async fn metric_sum(gateways: &[Floodgate], name: &str) -> u64 {
    let mut sum = 0;
    for g in gateways {
        let text = g.metrics().await;
        sum += text
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>();
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_hold_one_limit_at_three_times_overload() {
    let redis = TestRedis::start_with_password("s3cret").await;
    let upstream = MockUpstream::http("app").await;
    let gateways = fleet(&upstream, &redis, 500, "local").await;
    let operations = "floodgate_rate_limit_store_operations_total";
    let reported_before = metric_sum(&gateways, operations).await;
    let commands_before = redis.commands_processed().await;
    // 500 a second offered at each of three gateways: three times the fleet's limit of 500.
    let runs = load(&gateways, 500, 7).await;
    let commands = redis.commands_processed().await - commands_before;
    let reported = metric_sum(&gateways, operations).await - reported_before;
    let sent: usize = runs.iter().map(Vec::len).sum();
    let failed = runs.iter().flatten().filter(|s| s.status.is_none()).count();
    assert_eq!(failed, 0, "requests without a response");
    // Past the first two seconds (the fleet finding its shares), each second admits the limit:
    // 2,500 over five seconds, within 5%.
    let admitted = count(&runs, 200, 2, 7);
    let refused = count(&runs, 429, 2, 7);
    let per_gateway: Vec<usize> = runs
        .iter()
        .map(|run| count(std::slice::from_ref(run), 200, 2, 7))
        .collect();
    assert!(
        (2375..=2625).contains(&admitted),
        "admitted {admitted} {per_gateway:?} (refused {refused}) of {sent}"
    );
    // The figures, for the record (`--no-capture` shows them).
    println!(
        "admitted {admitted} {per_gateway:?} of {sent} sent; Redis ran {commands} commands, the gateways sent {reported}"
    );
    // Each gateway took part: none was starved by the others' counts.
    assert!(per_gateway.iter().all(|&n| n > 500), "{per_gateway:?}");
    // At most one Redis command per 20 requests, as Redis counts them and as the gateways do.
    assert!(
        commands * 20 <= sent as u64,
        "{commands} Redis commands for {sent} requests"
    );
    assert!(
        reported > 0 && reported * 20 <= sent as u64,
        "gateways sent {reported} commands for {sent} requests"
    );
    // The counters are the fleet's, under the route's hash tag, and expire.
    let keys = redis.keys("{floodgate:rate-limit:route:app}:*").await;
    assert!(!keys.is_empty());
    assert_eq!(
        metric_sum(&gateways, "floodgate_rate_limit_fleet_gateways").await,
        9
    );
}

/// Three routes limited to 60 a minute per `x-client`, one per `on_store_failure`.
fn failure_config(
    upstream: &str,
    redis_url: &str,
) -> impl Fn(std::net::SocketAddr, std::net::SocketAddr) -> String {
    let (upstream, redis_url) = (upstream.to_string(), redis_url.to_string());
    move |listener, admin| {
        let route = |policy: &str| {
            format!(
                r#"
  - id: {policy}
    paths: ["/{policy}"]
    upstream: app
    plugins:
      rate-limit:
        algorithm: sliding_window
        limit: 60
        window: 60s
        key: "header:x-client"
        policy: redis
        redis: {{ url: "{redis_url}", timeout: 200ms }}
        on_store_failure: {policy}
"#
            )
        };
        format!(
            r#"
workers: 1
listeners: [{{ name: main, address: "{listener}" }}]
admin: {{ address: "{admin}" }}
upstreams: [{{ id: app, targets: [{{ address: "{upstream}" }}] }}]
routes:{}{}{}"#,
            route("fail_open"),
            route("fail_closed"),
            route("local")
        )
    }
}

/// Sends `n` requests to `path` as client `client`; the statuses, in order.
async fn burst(gateway: &Floodgate, path: &str, client: &str, n: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..n {
        let req = http::Request::get(path)
            .header("host", "app")
            .header("x-client", client)
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request");
        let res = floodgate_testkit::send(gateway.listener, floodgate_testkit::Proto::H1, req)
            .await
            .expect("response");
        statuses.push(res.status.as_u16());
    }
    statuses
}

fn admitted(statuses: &[u16]) -> usize {
    statuses.iter().filter(|&&s| s == 200).count()
}

/// Waits until every gateway's `metric` reads `value`, sending a request to each route meanwhile
/// (a limiter syncs, and finds its store gone or back, only for keys in use).
async fn until_metric(gateways: &[Floodgate], metric: &str, value: u64) {
    let line = format!("{metric} {value}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut all = true;
        for g in gateways {
            for path in ["/fail_open", "/fail_closed", "/local"] {
                burst(g, path, "poll", 1).await;
            }
            all &= g.metrics().await.lines().any(|l| l == line);
        }
        if all {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{line} never read");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_gone_each_policy_does_what_it_says_and_redis_back_restores_the_fleet_limit() {
    let mut redis = TestRedis::start().await;
    let upstream = MockUpstream::http("app").await;
    let mut gateways = Vec::new();
    for _ in 0..3 {
        gateways
            .push(Floodgate::start(BIN, failure_config(&upstream.address(), &redis.url())).await);
    }
    // Every gateway has counted the fleet (heartbeats every 2s, each limiter its own): once one has
    // seen all three, every limiter has after one more heartbeat.
    until_metric(&gateways, "floodgate_rate_limit_fleet_gateways", 3).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;

    redis.kill();
    until_metric(&gateways, "floodgate_rate_limit_store_unreachable", 3).await;
    let g = &gateways[0];
    // fail_open: every request passes, well past the limit.
    assert_eq!(admitted(&burst(g, "/fail_open", "a", 80).await), 80);
    // fail_closed: every request is refused with 503 and a JSON body naming why.
    let req = http::Request::get("/fail_closed")
        .header("host", "app")
        .header("x-client", "a")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request");
    let res = floodgate_testkit::send(g.listener, floodgate_testkit::Proto::H1, req)
        .await
        .expect("response");
    assert_eq!(res.status, 503);
    assert_eq!(res.header("retry-after"), Some("1"));
    assert_eq!(res.json()["error"], "rate limit store unavailable");
    // local: this gateway holds its third of the limit, 20 of 60.
    let statuses = burst(g, "/local", "a", 30).await;
    assert_eq!(admitted(&statuses), 20, "{statuses:?}");
    assert!(statuses[20..].iter().all(|&s| s == 429), "{statuses:?}");
    // One log line per limiter when the store went away, not one per failed sync.
    let log = g.log();
    assert_eq!(
        log.matches("rate-limit store unreachable").count(),
        3,
        "{log}"
    );

    redis.resume().await;
    until_metric(&gateways, "floodgate_rate_limit_store_unreachable", 0).await;
    assert_eq!(
        g.log().matches("rate-limit store reachable again").count(),
        3
    );
    // The fleet's limit again: one gateway may take more than its third of a client's 60 (all it
    // could while Redis was away), and the fleet together no more than the 60.
    assert_eq!(admitted(&burst(&gateways[1], "/local", "b", 1).await), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut first = 0;
    for _ in 0..50 {
        first += admitted(&burst(&gateways[0], "/local", "b", 1).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        (21..=59).contains(&first),
        "the first gateway admitted {first}"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = admitted(&burst(&gateways[1], "/local", "b", 50).await);
    assert!(1 + first + second <= 60, "admitted 1 + {first} + {second}");
    // Nothing was lost meanwhile: the gateways still serve.
    for g in &mut gateways {
        assert_eq!(
            get(g.listener, "/fail_open").await.expect("request").status,
            200
        );
    }
}
