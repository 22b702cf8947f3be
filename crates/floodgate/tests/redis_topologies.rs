//! `rate-limit` with `policy: redis` on Redis topologies beyond one plain server: a real Redis
//! over TLS, a real Redis Cluster of three masters, and a master found through a real Sentinel. Each admits its limit, syncs its counts into the store, and its counter is where
//! the topology says it is.

use std::time::Duration;

use floodgate_testkit::{
    get, Floodgate, MockUpstream, TestRedis, TestRedisCluster, TestRedisSentinel,
};

const BIN: &str = env!("CARGO_BIN_EXE_floodgate");

/// The key pattern of route `app`'s counters (under the default `key_prefix`).
const COUNTERS: &str = "{floodgate:rate-limit:route:app}:*";

/// A gateway whose `/` is limited to 5 a minute for the route, its counts in the store `redis`
/// (the inside of the plugin's `redis` block).
async fn gateway(upstream: &MockUpstream, redis: String) -> Floodgate {
    let target = upstream.address();
    Floodgate::start(BIN, move |listener, admin| {
        format!(
            r#"
workers: 1
listeners: [{{ name: main, address: "{listener}" }}]
admin: {{ address: "{admin}" }}
upstreams: [{{ id: app, targets: [{{ address: "{target}" }}] }}]
routes:
  - id: app
    paths: ["/*"]
    upstream: app
    plugins:
      rate-limit:
        algorithm: sliding_window
        limit: 5
        window: 60s
        key: route
        policy: redis
        redis: {{ {redis} }}
"#
        )
    })
    .await
}

/// Sends 8 requests 50 ms apart; their statuses, in order.
async fn eight_requests(gateway: &Floodgate) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(
            get(gateway.listener, "/")
                .await
                .expect("request")
                .status
                .as_u16(),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    statuses
}

/// Waits until the gateway has synced with its store, then past its next heartbeat (every 2 s; its
/// batch carries the fleet's sorted set alongside the active counter), and checks that no sync
/// failed and the store never counted as unreachable.
async fn until_synced(gateway: &Floodgate, what: &str) {
    let synced = "floodgate_rate_limit_store_syncs_total{result=\"ok\"} ";
    gateway
        .poll(what, || async {
            gateway
                .metrics()
                .await
                .lines()
                .any(|l| l.starts_with(synced) && !l.ends_with(" 0"))
        })
        .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let metrics = gateway.metrics().await;
    for expected in [
        "floodgate_rate_limit_store_unreachable 0",
        "floodgate_rate_limit_store_syncs_total{result=\"error\"} 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == expected),
            "{expected} not read:\n{metrics}\nlog:\n{}",
            gateway.log()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limiter_reaches_redis_over_tls() {
    let redis = TestRedis::start_tls().await;
    let upstream = MockUpstream::http("app").await;
    let url = redis.tls_url().expect("a TLS port");
    let ca = redis
        .certs()
        .expect("certificates")
        .cert_path
        .display()
        .to_string();
    let gateway = gateway(
        &upstream,
        format!("url: \"{url}\", tls: {{ ca: \"{ca}\" }}"),
    )
    .await;
    assert_eq!(
        eight_requests(&gateway).await,
        [200, 200, 200, 200, 200, 429, 429, 429]
    );
    until_synced(&gateway, "a sync over TLS").await;
    // The counter is in Redis (read over its plain port).
    assert!(!redis.keys(COUNTERS).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limiter_syncs_through_a_redis_cluster() {
    let cluster = TestRedisCluster::start(3).await;
    let upstream = MockUpstream::http("app").await;
    let nodes: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let gateway = gateway(&upstream, format!("cluster: [{}]", nodes.join(", "))).await;
    assert_eq!(
        eight_requests(&gateway).await,
        [200, 200, 200, 200, 200, 429, 429, 429]
    );
    until_synced(&gateway, "a sync with the cluster").await;
    // The counter is in the cluster, on the node owning the route's hash tag.
    let keys = cluster.keys(COUNTERS).await;
    assert!(!keys.is_empty(), "no counter; log:\n{}", gateway.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limiter_finds_its_master_through_sentinel() {
    let sentinel = TestRedisSentinel::start().await;
    let upstream = MockUpstream::http("app").await;
    let commands_before = sentinel.master_commands_processed().await;
    let gateway = gateway(
        &upstream,
        format!(
            "sentinel: {{ urls: [\"{}\"], master: {} }}",
            sentinel.sentinel_url(),
            TestRedisSentinel::MASTER_NAME
        ),
    )
    .await;
    assert_eq!(
        eight_requests(&gateway).await,
        [200, 200, 200, 200, 200, 429, 429, 429]
    );
    until_synced(&gateway, "a sync with the master the sentinel names").await;
    // The sentinel's own PINGs reach the master too: the counter on the master is what shows the
    // gateway's INCRBY went there.
    let commands = sentinel.master_commands_processed().await - commands_before;
    assert!(commands > 1, "the master ran {commands} commands");
    let keys = sentinel.master_keys(COUNTERS).await;
    assert!(
        !keys.is_empty(),
        "no counter on the master {}; log:\n{}",
        sentinel.master_address(),
        gateway.log()
    );
}
