//! The plugin as a route runs it: configuration errors, answers and headers, keys, state kept across
//! rebuilds, and exactness under threads.

use std::net::IpAddr;
use std::sync::Arc;

use floodgate_config::{Config, FieldError};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use serde_json::{json, Value};

use super::*;
use crate::stats::PluginStats;
use crate::{build_plugins, PluginSet, StateStore};

const BASE: &str = r#"
listeners: [{ name: l, address: "127.0.0.1:1" }]
upstreams: [{ id: u, targets: [{ address: "127.0.0.1:2" }] }]
routes:
  - { id: r, paths: ["/*"], upstream: u }
  - { id: other, paths: ["/other/*"], upstream: u }
"#;

const SECOND: u64 = NANOS_PER_SECOND;

fn config(plugins: Value, consumers: Value) -> Config {
    let mut config = floodgate_config::parse_yaml(BASE).expect("the base configuration");
    if let Value::Object(map) = plugins {
        std::sync::Arc::make_mut(&mut config.routes[0]).plugins = map.into_iter().collect();
    }
    config.consumers = serde_json::from_value(consumers).expect("consumers");
    config
}

fn build_with(config: &Config, previous: &StateStore) -> Result<PluginSet, Vec<FieldError>> {
    build_plugins(config, previous, None, &Arc::new(PluginStats::default()))
}

fn build(rate_limit: Value) -> PluginSet {
    build_with(
        &config(json!({ "rate-limit": rate_limit }), json!([])),
        &StateStore::new(),
    )
    .expect("a valid configuration")
}

fn errors(rate_limit: Value) -> Vec<String> {
    match build_with(
        &config(json!({ "rate-limit": rate_limit }), json!([])),
        &StateStore::new(),
    ) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.into_iter().map(|e| e.path).collect(),
    }
}

struct Sent {
    answer: Option<Answer>,
    ctx: Box<RequestCtx>,
}

fn send(set: &PluginSet, client: &str, headers: &[(&'static str, &'static str)]) -> Sent {
    let chain = set.routes[0].as_ref().expect("the route has a chain");
    let uri = Uri::from_static("/x");
    let ip: IpAddr = client.parse().expect("an address");
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(*name, HeaderValue::from_static(value));
    }
    let mut ctx = chain.start(ip, HeaderValue::from_static("id"), 0, false, "/x");
    let mut head = RequestHead {
        method: &Method::GET,
        uri: &uri,
        headers: &mut map,
    };
    let answer = chain.request(&mut head, &mut ctx);
    Sent { answer, ctx }
}

fn header<'a>(sent: &'a Sent, name: &HeaderName) -> Option<&'a str> {
    match &sent.answer {
        Some(answer) => answer.headers.get(name).and_then(|v| v.to_str().ok()),
        None => sent
            .ctx
            .response_headers
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.to_str().ok()),
    }
}

fn allowed(set: &PluginSet, client: &str, headers: &[(&'static str, &'static str)]) -> bool {
    send(set, client, headers).answer.is_none()
}

#[test]
fn configuration_errors_name_their_field() {
    let at = "routes[0].plugins.rate-limit";
    assert_eq!(
        errors(json!({ "rate": 10, "policy": "redis" })),
        [format!("{at}.policy"), format!("{at}.redis")]
    );
    let window = json!({ "algorithm": "sliding_window", "limit": 5, "window": "1s" });
    let with = |extra: serde_json::Value| {
        let mut config = window.clone();
        for (k, v) in extra.as_object().expect("an object") {
            config[k] = v.clone();
        }
        errors(config)
    };
    assert_eq!(
        with(json!({ "redis": { "url": "redis://127.0.0.1" } })),
        [format!("{at}.redis")]
    );
    assert_eq!(
        with(json!({ "on_store_failure": "local" })),
        [format!("{at}.on_store_failure")]
    );
    assert_eq!(
        with(json!({ "policy": "redis", "redis": { "url": "http://127.0.0.1" } })),
        [format!("{at}.redis.url")]
    );
    assert_eq!(
        with(json!({ "policy": "redis", "redis": {} })),
        [format!("{at}.redis")]
    );
    assert_eq!(
        with(
            json!({ "policy": "redis", "redis": { "url": "redis://h", "cluster": ["redis://h"] } })
        ),
        [format!("{at}.redis")]
    );
    assert_eq!(
        with(json!({ "policy": "redis", "sync_interval": "1s", "redis": { "url": "redis://h" } })),
        [format!("{at}.sync_interval")]
    );
    assert!(
        with(json!({ "policy": "redis", "redis": { "url": "redis://:pw@h:6379/2" } })).is_empty()
    );
    assert_eq!(
        errors(json!({ "rate": 10, "window": "1s" })),
        [format!("{at}.window")]
    );
    assert_eq!(errors(json!({ "burst": 3 })), [format!("{at}.rate")]);
    assert_eq!(errors(json!({ "rate": 0 })), [format!("{at}.rate")]);
    assert_eq!(
        errors(json!({ "algorithm": "sliding_window", "limit": 5 })),
        [format!("{at}.window")]
    );
    assert_eq!(
        errors(json!({ "algorithm": "sliding_window", "limit": 5, "window": "1s", "rate": 1 })),
        [format!("{at}.rate")]
    );
    assert_eq!(
        errors(json!({ "rate": 1, "key": ["client_ip", "cookie"] })),
        [format!("{at}.key[1]")]
    );
    assert_eq!(
        errors(json!({ "rate": 1, "max_keys": 0 })),
        [format!("{at}.max_keys")]
    );
    assert_eq!(
        errors(json!({ "rate": 1, "bogus": 0 })),
        [format!("{at}.bogus")]
    );
    assert!(errors(json!({ "rate": 1, "key": ["consumer", "header:X-User", "route"] })).is_empty());
}

#[test]
fn a_token_bucket_admits_its_burst_then_answers_429_with_headers() {
    let set = build(json!({ "rate": 1, "period": "1m", "burst": 3 }));
    for remaining in ["2", "1", "0"] {
        let sent = send(&set, "192.0.2.1", &[]);
        assert!(sent.answer.is_none());
        assert_eq!(
            header(&sent, &RATELIMIT_POLICY),
            Some("\"default\";q=1;w=60")
        );
        let expected = format!("\"default\";r={remaining};t=");
        assert!(header(&sent, &RATELIMIT).is_some_and(|v| v.starts_with(&expected)));
    }
    let refused = send(&set, "192.0.2.1", &[]);
    let answer = refused.answer.as_ref().expect("refused");
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.error, Some("rate limit exceeded"));
    assert_eq!(answer.reason, "rate_limited");
    let retry: u64 = header(&refused, &header::RETRY_AFTER)
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((59..=60).contains(&retry), "{retry}");
    assert_eq!(
        header(&refused, &RATELIMIT_POLICY),
        Some("\"default\";q=1;w=60")
    );
    assert!(header(&refused, &RATELIMIT).is_some_and(|v| v.starts_with("\"default\";r=0;t=")));
    assert_eq!(
        refused.ctx.rejection.map(|r| r.reason),
        Some("rate_limited")
    );
    // Another client has its own bucket.
    assert!(allowed(&set, "192.0.2.2", &[]));
}

#[test]
fn headers_can_be_turned_off_but_retry_after_stays() {
    let set = build(json!({ "rate": 1, "period": "1h", "headers": false }));
    let first = send(&set, "192.0.2.1", &[]);
    assert!(first.answer.is_none());
    assert!(first.ctx.response_headers.is_empty());
    let refused = send(&set, "192.0.2.1", &[]);
    assert!(header(&refused, &header::RETRY_AFTER).is_some());
    assert!(header(&refused, &RATELIMIT).is_none());
}

#[test]
fn a_sliding_window_admits_its_limit() {
    let set = build(json!({ "algorithm": "sliding_window", "limit": 2, "window": "1h" }));
    assert!(allowed(&set, "192.0.2.1", &[]));
    let second = send(&set, "192.0.2.1", &[]);
    assert_eq!(
        header(&second, &RATELIMIT_POLICY),
        Some("\"default\";q=2;w=3600")
    );
    let refused = send(&set, "192.0.2.1", &[]);
    assert_eq!(
        refused.answer.map(|a| a.status),
        Some(StatusCode::TOO_MANY_REQUESTS)
    );
}

#[test]
fn a_header_key_falls_back_to_the_client_address() {
    let set = build(json!({ "rate": 1, "period": "1h", "key": "header:X-User" }));
    assert!(allowed(&set, "192.0.2.1", &[("x-user", "alice")]));
    assert!(!allowed(&set, "192.0.2.9", &[("x-user", "alice")]));
    assert!(allowed(&set, "192.0.2.1", &[("x-user", "bob")]));
    // No header: the address is the key, separate from any header value.
    assert!(allowed(&set, "192.0.2.1", &[]));
    assert!(!allowed(&set, "192.0.2.1", &[]));
    assert!(allowed(&set, "192.0.2.2", &[]));
}

#[test]
fn combined_keys_count_each_combination() {
    let set = build(json!({ "rate": 1, "period": "1h", "key": ["client_ip", "header:X-User"] }));
    assert!(allowed(&set, "192.0.2.1", &[("x-user", "a")]));
    assert!(allowed(&set, "192.0.2.2", &[("x-user", "a")]));
    assert!(allowed(&set, "192.0.2.1", &[("x-user", "b")]));
    assert!(!allowed(&set, "192.0.2.1", &[("x-user", "a")]));
}

#[test]
fn counters_survive_an_unrelated_rebuild_and_reset_when_the_config_changes() {
    let limit = json!({ "rate-limit": { "rate": 1, "period": "1h", "burst": 2 } });
    let first = build_with(&config(limit.clone(), json!([])), &StateStore::new()).expect("valid");
    assert!(allowed(&first, "192.0.2.1", &[]));
    assert!(allowed(&first, "192.0.2.1", &[]));
    // Another route changes: the same counters, still empty for this client.
    let mut edited = config(limit, json!([]));
    std::sync::Arc::make_mut(&mut edited.routes[1]).paths = vec!["/elsewhere/*".to_string()];
    let second = build_with(&edited, &first.states).expect("valid");
    assert!(!allowed(&second, "192.0.2.1", &[]));
    // Its own configuration changes: fresh counters.
    let changed = json!({ "rate-limit": { "rate": 1, "period": "1h", "burst": 3 } });
    let third = build_with(&config(changed, json!([])), &second.states).expect("valid");
    assert!(allowed(&third, "192.0.2.1", &[]));
}

#[test]
fn a_consumer_carries_its_own_limit_keyed_by_consumer() {
    let plugins = json!({
        "key-auth": {},
        "rate-limit": { "rate": 1, "period": "1h", "burst": 1, "key": "consumer" },
    });
    let consumers = json!([
        { "id": "gold", "credentials": { "key-auth": { "key": "gold-key-123" } },
          "plugins": { "rate-limit": { "rate": 1, "period": "1h", "burst": 3, "key": "consumer" } } },
        { "id": "basic", "credentials": { "key-auth": { "key": "basic-key-123" } } },
    ]);
    let set = build_with(&config(plugins, consumers), &StateStore::new()).expect("valid");
    // The consumer is the key, whatever address it comes from.
    assert!(allowed(&set, "192.0.2.1", &[("apikey", "basic-key-123")]));
    assert!(!allowed(&set, "192.0.2.2", &[("apikey", "basic-key-123")]));
    let gold: Vec<bool> = (0..4)
        .map(|_| allowed(&set, "192.0.2.3", &[("apikey", "gold-key-123")]))
        .collect();
    assert_eq!(gold, [true, true, true, false]);
}

#[test]
fn policy_headers_scale_the_quota_to_whole_seconds() {
    assert_eq!(policy_header(100, SECOND), "\"default\";q=100;w=1");
    assert_eq!(policy_header(5, SECOND / 2), "\"default\";q=10;w=1");
    assert_eq!(policy_header(3, 90 * SECOND), "\"default\";q=3;w=90");
    assert_eq!(
        policy_header(10, 1500 * SECOND / 1000),
        "\"default\";q=13;w=2"
    );
    let verdict = Verdict {
        allowed: true,
        remaining: 4,
        reset_nanos: SECOND + 1,
        retry_nanos: 0,
    };
    assert_eq!(ratelimit_header(&verdict), "\"default\";r=4;t=2");
    for n in [0, 9, 10, 1234567890, u64::MAX] {
        let mut out = [0u8; 20];
        let len = write_decimal(&mut out, n);
        assert_eq!(&out[..len], n.to_string().as_bytes());
    }
}

/// Four threads hammering one key at one instant: exactly the bucket's worth is admitted.
fn hammer(limiter: Limiter, expected: usize) {
    let stats = Arc::new(PluginStats::default());
    let plugin = RateLimit {
        priority: RateLimit::PRIORITY,
        limiter,
        key: LimitKey::parse_parts(&KeyConfig::default()).expect("key"),
        table: Arc::new(KeyTable::new(1024, stats)),
        policy_header: None,
        shared: None,
    };
    let now = 50 * SECOND;
    let admitted: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let plugin = &plugin;
                s.spawn(move || (0..2000).filter(|_| plugin.check(7, now).allowed).count())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    assert_eq!(admitted, expected);
}

#[test]
fn threads_share_one_exact_bucket_per_key() {
    hammer(
        Limiter::TokenBucket(Gcra::new(10, SECOND, 777).expect("gcra")),
        777,
    );
    hammer(
        Limiter::SlidingWindow(SlidingWindow::new(1234, SECOND).expect("window")),
        1234,
    );
}

#[test]
fn an_idle_key_gives_its_slot_to_a_new_one_in_a_full_table() {
    let plugin = RateLimit {
        priority: RateLimit::PRIORITY,
        limiter: Limiter::TokenBucket(Gcra::new(1, SECOND, 2).expect("gcra")),
        key: LimitKey::parse_parts(&KeyConfig::default()).expect("key"),
        table: Arc::new(KeyTable::new(1, Arc::new(PluginStats::default()))),
        policy_header: None,
        shared: None,
    };
    let t = 10 * SECOND;
    assert!(plugin.check(1, t).allowed);
    // Key 2 finds key 1's slot busy (its bucket not full) and shares the overflow slot.
    assert!(plugin.check(2, t).allowed);
    assert!(plugin.check(3, t).allowed);
    assert!(!plugin.check(4, t).allowed);
    // A second on, key 1's bucket is full again: key 5 takes its slot, with a full bucket.
    assert!(plugin.check(5, t + SECOND).allowed);
    assert!(plugin.check(5, t + SECOND).allowed);
    assert!(!plugin.check(5, t + SECOND).allowed);
    assert_eq!(plugin.table.used(), 1);
}

#[test]
fn the_clock_starts_after_zero_and_runs_forward() {
    let a = now_nanos();
    let b = now_nanos();
    assert!(a >= SECOND && b >= a);
}

/// What answered each request: the rate limiter, the authentication plugin, or nobody.
fn answered_by(set: &PluginSet, client: &str, key: &'static str) -> Option<&'static str> {
    send(set, client, &[("apikey", key)])
        .ctx
        .rejection
        .map(|r| r.plugin)
}

#[test]
fn a_limit_not_keyed_by_consumer_counts_refused_logins_and_answers_before_authentication() {
    let plugins = json!({
        "key-auth": {},
        "rate-limit": { "rate": 2, "period": "1h" },
    });
    let consumers =
        json!([{ "id": "alice", "credentials": { "key-auth": { "key": "alice-key-123" } } }]);
    let set = build_with(&config(plugins, consumers), &StateStore::new()).expect("valid");
    let guesses: Vec<Option<&str>> = (0..4)
        .map(|_| answered_by(&set, "192.0.2.1", "guessed-key-1"))
        .collect();
    // Two guesses reach key-auth; past the limit, the limiter answers and the key is not looked at.
    assert_eq!(
        guesses,
        [
            Some("key-auth"),
            Some("key-auth"),
            Some("rate-limit"),
            Some("rate-limit")
        ]
    );
    assert_eq!(
        answered_by(&set, "192.0.2.1", "alice-key-123"),
        Some("rate-limit")
    );
    assert_eq!(answered_by(&set, "192.0.2.2", "alice-key-123"), None);
}

#[test]
fn a_limit_keyed_by_consumer_or_told_so_runs_after_authentication() {
    for limit in [
        json!({ "rate": 2, "period": "1h", "key": "consumer" }),
        json!({ "rate": 2, "period": "1h", "key": ["route", "consumer"] }),
        json!({ "rate": 2, "period": "1h", "before_authentication": false }),
    ] {
        let plugins = json!({ "key-auth": {}, "rate-limit": limit });
        let set = build_with(&config(plugins, json!([])), &StateStore::new()).expect("valid");
        let guesses: Vec<Option<&str>> = (0..4)
            .map(|_| answered_by(&set, "192.0.2.1", "guessed-key-1"))
            .collect();
        assert_eq!(guesses, [Some("key-auth"); 4], "{limit}");
    }
}

#[test]
fn before_authentication_cannot_be_asked_of_a_limit_that_needs_the_consumer() {
    let at = "routes[0].plugins.rate-limit.before_authentication";
    assert_eq!(
        errors(json!({ "rate": 1, "key": "consumer", "before_authentication": true })),
        [at]
    );
    let consumer_own = json!([{ "id": "c", "credentials": { "key-auth": { "key": "c-key-12345" } },
        "plugins": { "rate-limit": { "rate": 1, "before_authentication": true } } }]);
    let refused = build_with(
        &config(json!({ "key-auth": {} }), consumer_own),
        &StateStore::new(),
    )
    .err()
    .expect("refused");
    assert_eq!(
        refused[0].path,
        "consumers[0].plugins.rate-limit.before_authentication"
    );
}

#[test]
fn a_limit_some_consumer_replaces_runs_after_authentication_so_the_replacement_holds() {
    let plugins = json!({
        "key-auth": {},
        "rate-limit": { "rate": 1, "period": "1h" },
    });
    let consumers = json!([
        { "id": "gold", "credentials": { "key-auth": { "key": "gold-key-123" } },
          "plugins": { "rate-limit": { "rate": 3, "period": "1h", "key": "consumer" } } },
        { "id": "basic", "credentials": { "key-auth": { "key": "basic-key-123" } } },
    ]);
    let set = build_with(&config(plugins, consumers.clone()), &StateStore::new()).expect("valid");
    // One address: gold's own limit replaces the route's (3), basic has the route's (1).
    let gold: Vec<bool> = (0..4)
        .map(|_| allowed(&set, "192.0.2.1", &[("apikey", "gold-key-123")]))
        .collect();
    assert_eq!(gold, [true, true, true, false]);
    let basic: Vec<bool> = (0..2)
        .map(|_| allowed(&set, "192.0.2.2", &[("apikey", "basic-key-123")]))
        .collect();
    assert_eq!(basic, [true, false]);
    // Asking it to run first cannot be honoured: the consumer is not known yet.
    let asked = json!({
        "key-auth": {},
        "rate-limit": { "rate": 1, "period": "1h", "before_authentication": true },
    });
    let refused = build_with(&config(asked, consumers), &StateStore::new())
        .err()
        .expect("refused");
    assert_eq!(
        refused[0].path,
        "routes[0].plugins.rate-limit.before_authentication"
    );
}
