//! `limit-conn`: concurrent requests per key. A request takes a slot of its key's count in the
//! `request` phase and gives it back when its response has ended ([`Held`] dropped with its context).
//!
//! The counts live in the same lock-free, bounded [`KeyTable`] as the rate limiter's: one counter per
//! key, reclaimed for another key once it is back at zero.

use std::sync::Arc;

use floodgate_config::FieldError;
use http::StatusCode;
use serde::Deserialize;

use crate::answer::Answer;
use crate::build_ctx::BuildCtx;
use crate::context::RequestCtx;
use crate::heads::RequestHead;
use crate::policy::NoCredential;
use crate::policy::{Flow, Policy};

use super::rate_limit::key::{KeyConfig, LimitKey};
use crate::key_table::{Held, KeyTable, MAX_SLOTS};

/// The largest `max`.
const MAX_CONCURRENT: u64 = 1 << 32;

/// `plugins.limit-conn`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitConnConfig {
    /// Requests of one key in progress at once. Required.
    pub max: u64,
    /// What is counted separately: `consumer`, `client_ip`, `route`, `header:<name>`, or a list of
    /// them combined. Default `client_ip`.
    #[serde(default)]
    pub key: KeyConfig,
    /// Status of the answer past `max`: 503 or 429. Default 503.
    #[serde(default = "default_status")]
    pub status: u16,
    /// Keys tracked at once (rounded up to a power of two; 16 bytes each). Default 65536.
    #[serde(default = "super::rate_limit::default_max_keys")]
    pub max_keys: usize,
    /// Run before the authentication plugins, so refused requests hold a slot too. Default `true`
    /// unless the key names the consumer (known only after authentication) or the limit is a
    /// consumer's own; `true` is then an error.
    #[serde(default)]
    pub before_authentication: Option<bool>,
}

/// Where `limit-conn` runs when its key does not need the consumer: before every authentication
/// plugin, just after a `rate-limit` placed there.
const PRIORITY_BEFORE_AUTHENTICATION: u16 = 2582;

fn default_status() -> u16 {
    503
}

/// The built plugin.
pub struct LimitConn {
    /// [`PRIORITY_BEFORE_AUTHENTICATION`] or [`Policy::PRIORITY`].
    priority: u16,
    max: u64,
    key: LimitKey,
    status: StatusCode,
    table: Arc<KeyTable>,
}

impl Policy for LimitConn {
    const NAME: &'static str = "limit-conn";
    const PRIORITY: u16 = 1002;
    type Config = LimitConnConfig;
    type Credential = NoCredential;

    fn build(config: LimitConnConfig, cx: &mut BuildCtx<'_>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        if !(1..=MAX_CONCURRENT).contains(&config.max) {
            errors.push(cx.error("max", format!("must be between 1 and {MAX_CONCURRENT}")));
        }
        let status = match config.status {
            429 => StatusCode::TOO_MANY_REQUESTS,
            503 => StatusCode::SERVICE_UNAVAILABLE,
            _ => {
                errors.push(cx.error("status", "must be 503 or 429"));
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        if !(1..=MAX_SLOTS).contains(&config.max_keys) {
            errors.push(cx.error("max_keys", format!("must be between 1 and {MAX_SLOTS}")));
        }
        let key = LimitKey::parse(&config.key, cx)
            .map_err(|e| errors.extend(e))
            .ok();
        let placement = (PRIORITY_BEFORE_AUTHENTICATION, Self::PRIORITY);
        let priority = key
            .as_ref()
            .and_then(|key| key.priority(config.before_authentication, cx, placement, &mut errors));
        let (Some(key), Some(priority), true) = (key, priority, errors.is_empty()) else {
            return Err(errors);
        };
        let stats = cx.stats.clone();
        let table = cx.state("table", || KeyTable::new(config.max_keys, stats));
        Ok(Self {
            priority,
            max: config.max,
            key,
            status,
            table,
        })
    }

    fn priority(&self) -> u16 {
        self.priority
    }

    fn request(&self, req: &mut RequestHead<'_>, ctx: &mut RequestCtx) -> Flow {
        let hash = self.key.hash(self.table.hasher(), req, ctx);
        match self.acquire(hash) {
            Some(held) => {
                ctx.held.push(held);
                Flow::Continue
            }
            None => Flow::Respond(Answer::error(
                self.status,
                "too many concurrent requests",
                "too_many_connections",
            )),
        }
    }
}

impl LimitConn {
    /// A slot of key `hash`'s count, if it is below `max`.
    fn acquire(&self, hash: u64) -> Option<Held> {
        let max = self.max;
        let (slot, taken) = self.table.update(
            hash,
            |count| count == 0,
            |count| {
                if count < max {
                    (Some(count + 1), true)
                } else {
                    (None, false)
                }
            },
        );
        taken.then(|| Held::new(self.table.clone(), slot))
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use floodgate_config::Config;
    use http::{HeaderMap, HeaderValue, Method, Uri};
    use serde_json::{json, Value};

    use super::*;
    use crate::stats::PluginStats;
    use crate::{build_plugins, PluginSet, StateStore};

    const BASE: &str = r#"
listeners: [{ name: l, address: "127.0.0.1:1" }]
upstreams: [{ id: u, targets: [{ address: "127.0.0.1:2" }] }]
routes: [{ id: r, paths: ["/*"], upstream: u }]
"#;

    fn config(limit_conn: Value) -> Config {
        let mut config = floodgate_config::parse_yaml(BASE).expect("the base configuration");
        std::sync::Arc::make_mut(&mut config.routes[0])
            .plugins
            .insert("limit-conn".to_string(), limit_conn);
        config
    }

    fn build(limit_conn: Value) -> Result<PluginSet, Vec<FieldError>> {
        build_plugins(
            &config(limit_conn),
            &StateStore::new(),
            None,
            &Arc::new(PluginStats::default()),
        )
    }

    fn send(set: &PluginSet, client: &str) -> (Option<Answer>, Box<RequestCtx>) {
        let chain = set.routes[0].as_ref().expect("a chain");
        let uri = Uri::from_static("/x");
        let ip: IpAddr = client.parse().expect("an address");
        let mut headers = HeaderMap::new();
        let mut ctx = chain.start(ip, HeaderValue::from_static("id"), 0, false, "/x");
        let mut head = RequestHead {
            method: &Method::GET,
            uri: &uri,
            headers: &mut headers,
        };
        (chain.request(&mut head, &mut ctx), ctx)
    }

    #[test]
    fn configuration_errors_name_their_field() {
        let at = "routes[0].plugins.limit-conn";
        let paths = |v: Value| match build(v) {
            Ok(_) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.path).collect::<Vec<_>>(),
        };
        assert_eq!(paths(json!({ "max": 0 })), [format!("{at}.max")]);
        assert_eq!(
            paths(json!({ "max": 1, "status": 500 })),
            [format!("{at}.status")]
        );
        assert_eq!(
            paths(json!({ "max": 1, "key": "nope" })),
            [format!("{at}.key")]
        );
        assert_eq!(paths(json!({})), [at.to_string()]);
        assert!(paths(json!({ "max": 1, "status": 429, "key": ["route", "consumer"] })).is_empty());
    }

    #[test]
    fn past_max_requests_are_refused_until_one_ends() {
        let set = build(json!({ "max": 2 })).expect("valid");
        let (a, first) = send(&set, "192.0.2.1");
        let (b, second) = send(&set, "192.0.2.1");
        assert!(a.is_none() && b.is_none());
        assert_eq!(first.held.len(), 1);
        let (refused, ctx) = send(&set, "192.0.2.1");
        let answer = refused.expect("refused");
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.error, Some("too many concurrent requests"));
        assert_eq!(answer.reason, "too_many_connections");
        assert!(ctx.held.is_empty());
        let chain = set.routes[0].as_ref().expect("a chain");
        chain.finish(ctx, StatusCode::SERVICE_UNAVAILABLE);
        // Another client is counted apart.
        assert!(send(&set, "192.0.2.2").0.is_none());
        // The first request ends: its slot is free again.
        chain.finish(first, StatusCode::OK);
        let (again, _third) = send(&set, "192.0.2.1");
        assert!(again.is_none());
        drop(second);
    }

    #[test]
    fn the_status_may_be_429() {
        let set = build(json!({ "max": 1, "status": 429 })).expect("valid");
        let (_, _held) = send(&set, "192.0.2.1");
        let (refused, _) = send(&set, "192.0.2.1");
        assert_eq!(
            refused.map(|a| a.status),
            Some(StatusCode::TOO_MANY_REQUESTS)
        );
    }

    #[test]
    fn threads_never_hold_more_than_max() {
        let stats = Arc::new(PluginStats::default());
        let plugin = LimitConn {
            priority: LimitConn::PRIORITY,
            max: 5,
            key: LimitKey::parse_parts(&KeyConfig::default()).expect("key"),
            status: StatusCode::SERVICE_UNAVAILABLE,
            table: Arc::new(KeyTable::new(64, stats)),
        };
        // Each thread takes as many as it can and keeps them until all have tried: exactly `max`.
        let all_tried = std::sync::Barrier::new(4);
        let taken: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let (plugin, all_tried) = (&plugin, &all_tried);
                    s.spawn(move || {
                        let held: Vec<Held> = (0..100).filter_map(|_| plugin.acquire(9)).collect();
                        all_tried.wait();
                        held.len()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        });
        assert_eq!(taken, 5);
        // All were given back.
        let held: Vec<Held> = (0..10).filter_map(|_| plugin.acquire(9)).collect();
        assert_eq!(held.len(), 5);
    }

    #[test]
    fn a_full_table_shares_the_overflow_count_and_reuses_finished_keys() {
        let stats = Arc::new(PluginStats::default());
        let plugin = LimitConn {
            priority: LimitConn::PRIORITY,
            max: 1,
            key: LimitKey::parse_parts(&KeyConfig::default()).expect("key"),
            status: StatusCode::SERVICE_UNAVAILABLE,
            table: Arc::new(KeyTable::new(1, stats.clone())),
        };
        let one = plugin.acquire(1).expect("key 1");
        // No room for key 2: it takes the overflow count, which key 3 then finds used.
        let two = plugin.acquire(2).expect("key 2 in overflow");
        assert!(plugin.acquire(3).is_none());
        drop(two);
        drop(one);
        // Key 1 has ended: key 3 takes its slot.
        let _three = plugin.acquire(3).expect("key 3");
        assert!(plugin.acquire(4).is_some());
        assert_eq!(
            stats
                .rate_limit_keys
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }
}
