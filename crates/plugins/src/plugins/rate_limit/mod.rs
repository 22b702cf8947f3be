//! `rate-limit`: requests per key over time, as a token bucket (GCRA) or a sliding window, exact
//! across every worker of the process and without a lock on the request path.
//!
//! Each instance keeps its counters in a [`KeyTable`] obtained through [`BuildCtx::state`], so they
//! survive a reload that leaves the plugin's scope and configuration as they were.

pub(crate) mod gcra;
pub(crate) mod key;
mod shared;
mod sliding_window;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use floodgate_config::{FieldError, HumanDuration};
use http::{header, HeaderName, HeaderValue, StatusCode};
use serde::Deserialize;

use crate::answer::Answer;
use crate::build_ctx::BuildCtx;
use crate::context::RequestCtx;
use crate::heads::RequestHead;
use crate::policy::NoCredential;
use crate::policy::{Flow, Policy};

use crate::build_ctx::Scope;
use crate::key_table::{self, KeyTable};
use floodgate_counter_store::RedisConfig;
use gcra::Gcra;
pub use key::KeyConfig;
use key::LimitKey;
pub use shared::OnStoreFailure;
use shared::Shared;
use sliding_window::SlidingWindow;

/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers): the quota and its window.
pub(crate) static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`: what is left of the quota and when it is whole again.
pub(crate) static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// The default of `max_keys`.
pub(crate) const DEFAULT_MAX_KEYS: usize = 65_536;

/// `plugins.rate-limit`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// `token_bucket` (default) or `sliding_window`.
    #[serde(default)]
    pub algorithm: Algorithm,
    /// Token bucket: tokens added per `period` (the sustained rate). Required for `token_bucket`.
    pub rate: Option<u64>,
    /// Token bucket: the period `rate` is counted over. Default `1s`.
    pub period: Option<HumanDuration>,
    /// Token bucket: the bucket's size, the most requests admitted at once. Default `rate`.
    pub burst: Option<u64>,
    /// Sliding window: requests admitted per `window`. Required for `sliding_window`.
    pub limit: Option<u64>,
    /// Sliding window: the window's length. Required for `sliding_window`.
    pub window: Option<HumanDuration>,
    /// What is counted separately: `consumer`, `client_ip`, `route`, `header:<name>`, or a list of
    /// them combined. Default `client_ip`.
    #[serde(default)]
    pub key: KeyConfig,
    /// Keys tracked at once (rounded up to a power of two; 16 bytes each). Default 65536.
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
    /// Run before the authentication plugins, so refused requests are counted too. Default `true`
    /// unless the key names the consumer (known only after authentication) or the limit is a
    /// consumer's own; `true` is then an error.
    #[serde(default)]
    pub before_authentication: Option<bool>,
    /// Send `RateLimit-Policy` and `RateLimit` on every response of the route. Default `true`.
    #[serde(default = "default_true")]
    pub headers: bool,
    /// Where the counters live: `local` (this process, default) or `redis` (one limit for every
    /// gateway configured alike, kept in Redis; needs `algorithm: sliding_window` and `redis`).
    #[serde(default)]
    pub policy: CounterPolicy,
    /// `policy: redis`: the store.
    #[serde(default)]
    pub redis: Option<RedisConfig>,
    /// `policy: redis`: how often this gateway adds its admissions to the store and reads the
    /// fleet's; at most one round trip per interval for all keys. Default `100ms`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub sync_interval: Option<HumanDuration>,
    /// `policy: redis`: what happens while the store is unreachable: `local` (default; each gateway
    /// holds the limit divided by the gateways last seen), `fail_open` or `fail_closed` (503).
    #[serde(default)]
    pub on_store_failure: Option<OnStoreFailure>,
}

/// Where a rate limit's counters live.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CounterPolicy {
    /// In this process.
    #[default]
    Local,
    /// In Redis, shared by the gateways.
    Redis,
}

/// How a rate is kept.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// `rate` per `period`, up to `burst` at once.
    #[default]
    TokenBucket,
    /// `limit` per sliding `window`.
    SlidingWindow,
}

pub(crate) fn default_max_keys() -> usize {
    DEFAULT_MAX_KEYS
}

fn default_true() -> bool {
    true
}

/// What a limiter decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// Whether the request is admitted.
    pub allowed: bool,
    /// Requests still admitted right after this one.
    pub remaining: u64,
    /// Nanoseconds until the quota is whole again.
    pub reset_nanos: u64,
    /// Refused: nanoseconds until a request would be admitted.
    pub retry_nanos: u64,
}

#[derive(Debug, Clone, Copy)]
enum Limiter {
    TokenBucket(Gcra),
    SlidingWindow(SlidingWindow),
}

/// Where `rate-limit` runs when its key does not need the consumer: before every authentication
/// plugin (and after `redirect`, `ip-restriction` and `cors`).
pub(crate) const PRIORITY_BEFORE_AUTHENTICATION: u16 = 2583;

/// The built plugin.
pub struct RateLimit {
    /// [`PRIORITY_BEFORE_AUTHENTICATION`] or [`Policy::PRIORITY`].
    priority: u16,
    limiter: Limiter,
    key: LimitKey,
    table: Arc<KeyTable>,
    /// `RateLimit-Policy`, made once; `None` when `headers: false`.
    policy_header: Option<HeaderValue>,
    /// `policy: redis`: the counts shared with the fleet (`table` is its table).
    shared: Option<Arc<Shared>>,
}

impl Policy for RateLimit {
    const NAME: &'static str = "rate-limit";
    // Keyed by consumer: after authentication (the consumer is known). Either way before limit-conn
    // (a refused request holds no connection slot).
    const PRIORITY: u16 = 1003;
    type Config = RateLimitConfig;
    type Credential = NoCredential;

    fn build(config: RateLimitConfig, cx: &mut BuildCtx<'_>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        check_policy(&config, cx, &mut errors);
        if !(1..=key_table::MAX_SLOTS).contains(&config.max_keys) {
            errors.push(cx.error(
                "max_keys",
                format!("must be between 1 and {}", key_table::MAX_SLOTS),
            ));
        }
        let key = LimitKey::parse(&config.key, cx)
            .map_err(|e| errors.extend(e))
            .ok();
        let placement = (PRIORITY_BEFORE_AUTHENTICATION, Self::PRIORITY);
        let priority = key
            .as_ref()
            .and_then(|key| key.priority(config.before_authentication, cx, placement, &mut errors));
        let limiter = limiter(&config, cx).map_err(|e| errors.extend(e)).ok();
        let (Some(key), Some(priority), Some((limiter, quota, per)), true) =
            (key, priority, limiter, errors.is_empty())
        else {
            return Err(errors);
        };
        let stats = cx.stats.clone();
        let (table, shared) = match (&limiter, config.redis) {
            (Limiter::SlidingWindow(window), Some(redis))
                if config.policy == CounterPolicy::Redis =>
            {
                let namespace = namespace(&redis.key_prefix, cx.scope);
                let settings = shared::Settings {
                    // Under the limiter's hash tag: a Cluster takes a pipeline within one slot only.
                    fleet_key: format!("{namespace}:gateways"),
                    namespace,
                    redis,
                    sync_interval: config
                        .sync_interval
                        .map_or(DEFAULT_SYNC_INTERVAL, |d| d.get()),
                    on_failure: config.on_store_failure.unwrap_or_default(),
                };
                let (window, max_keys) = (*window, config.max_keys);
                let shared = cx.state("shared", || Shared::new(window, max_keys, settings, stats));
                if let Some(runtime) = &cx.runtime {
                    shared.start(runtime);
                }
                (shared.table.clone(), Some(shared))
            }
            _ => (
                cx.state("table", || KeyTable::new(config.max_keys, stats)),
                None,
            ),
        };
        Ok(Self {
            priority,
            limiter,
            key,
            table,
            policy_header: config.headers.then(|| policy_header(quota, per)),
            shared,
        })
    }

    fn priority(&self) -> u16 {
        self.priority
    }

    fn request(&self, req: &mut RequestHead<'_>, ctx: &mut RequestCtx) -> Flow {
        let hash = self.key.hash(self.table.hasher(), req, ctx);
        let verdict = match &self.shared {
            None => self.check(hash, now_nanos()),
            Some(shared) if shared.refuses_all() => {
                return Flow::Respond(
                    Answer::error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "rate limit store unavailable",
                        "rate_limit_store_unavailable",
                    )
                    .with_header(header::RETRY_AFTER, HeaderValue::from_static("1")),
                );
            }
            Some(shared) => shared.check(hash, shared::unix_nanos()),
        };
        if verdict.allowed {
            if let Some(policy) = &self.policy_header {
                ctx.response_headers
                    .push((RATELIMIT_POLICY.clone(), policy.clone()));
                ctx.response_headers
                    .push((RATELIMIT.clone(), ratelimit_header(&verdict)));
            }
            return Flow::Continue;
        }
        let retry = seconds_up(verdict.retry_nanos).max(1);
        let mut answer = Answer::error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate limit exceeded",
            "rate_limited",
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from(retry));
        if let Some(policy) = &self.policy_header {
            answer = answer
                .with_header(RATELIMIT_POLICY.clone(), policy.clone())
                .with_header(RATELIMIT.clone(), ratelimit_header(&verdict));
        }
        Flow::Respond(answer)
    }
}

impl RateLimit {
    /// The verdict for the key hashed to `hash` at `now`, recorded in the table.
    fn check(&self, hash: u64, now: u64) -> Verdict {
        match self.limiter {
            Limiter::TokenBucket(g) => {
                self.table
                    .update(hash, |s| Gcra::is_idle(s, now), |s| g.decide(s, now))
                    .1
            }
            Limiter::SlidingWindow(w) => {
                self.table
                    .update(hash, |s| w.is_idle(s, now), |s| w.decide(s, now))
                    .1
            }
        }
    }
}

/// The default of `sync_interval`.
const DEFAULT_SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// The fields of `policy: redis` hold together, and are absent without it.
fn check_policy(config: &RateLimitConfig, cx: &BuildCtx<'_>, errors: &mut Vec<FieldError>) {
    let redis_fields = [
        ("redis", config.redis.is_some()),
        ("sync_interval", config.sync_interval.is_some()),
        ("on_store_failure", config.on_store_failure.is_some()),
    ];
    if config.policy == CounterPolicy::Local {
        for (field, set) in redis_fields {
            if set {
                errors.push(cx.error(field, "only with policy redis"));
            }
        }
        return;
    }
    if config.algorithm != Algorithm::SlidingWindow {
        errors.push(cx.error(
            "policy",
            "redis counts need algorithm sliding_window (a token bucket cannot be summed across gateways)",
        ));
    }
    match &config.redis {
        None => errors.push(cx.error("redis", "required by policy redis")),
        Some(redis) => {
            for (field, message) in redis.problems() {
                let at = if field.is_empty() {
                    "redis".to_string()
                } else {
                    format!("redis.{field}")
                };
                errors.push(cx.error(&at, message));
            }
        }
    }
    if let Some(interval) = config.sync_interval {
        let window = config.window.map(|w| w.get());
        if interval.get() < std::time::Duration::from_millis(10) {
            errors.push(cx.error("sync_interval", "must be at least 10ms"));
        } else if window.is_some_and(|w| interval.get() >= w) {
            errors.push(cx.error("sync_interval", "must be shorter than window"));
        }
    }
}

/// `{<key_prefix>:<scope>}`: braces make it the Cluster hash tag, so they are kept out of ids.
fn namespace(prefix: &str, scope: Scope<'_>) -> String {
    let scope = match scope {
        Scope::Global => "global".to_string(),
        Scope::Route { id, .. } => format!("route:{id}"),
        Scope::Consumer { id } => format!("consumer:{id}"),
    };
    format!("{{{prefix}:{}}}", scope.replace(['{', '}'], "_"))
}

/// The limiter of a configuration, with its quota and the nanoseconds it is given per, for
/// `RateLimit-Policy`.
fn limiter(
    config: &RateLimitConfig,
    cx: &BuildCtx<'_>,
) -> Result<(Limiter, u64, u64), Vec<FieldError>> {
    let nanos = |d: HumanDuration| u64::try_from(d.get().as_nanos()).unwrap_or(u64::MAX);
    let mut errors = Vec::new();
    // Each field with whether it is set, and whether the algorithm takes it.
    let token_bucket = config.algorithm == Algorithm::TokenBucket;
    let fields = [
        ("rate", config.rate.is_some(), token_bucket),
        ("period", config.period.is_some(), token_bucket),
        ("burst", config.burst.is_some(), token_bucket),
        ("limit", config.limit.is_some(), !token_bucket),
        ("window", config.window.is_some(), !token_bucket),
    ];
    let required: &[&str] = if token_bucket {
        &["rate"]
    } else {
        &["limit", "window"]
    };
    let algorithm = match config.algorithm {
        Algorithm::TokenBucket => "token_bucket",
        Algorithm::SlidingWindow => "sliding_window",
    };
    for (field, set, taken) in fields {
        if set && !taken {
            errors.push(cx.error(field, format!("not a field of algorithm {algorithm}")));
        }
        if !set && required.contains(&field) {
            errors.push(cx.error(field, format!("required by algorithm {algorithm}")));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    match config.algorithm {
        Algorithm::TokenBucket => {
            let rate = config.rate.unwrap_or(0);
            let period = config.period.map_or(NANOS_PER_SECOND, nanos);
            let burst = config.burst.unwrap_or(rate);
            if rate == 0 {
                return Err(vec![cx.error("rate", "must be at least 1")]);
            }
            if burst == 0 {
                return Err(vec![cx.error("burst", "must be at least 1")]);
            }
            match Gcra::new(rate, period, burst) {
                Some(g) => Ok((Limiter::TokenBucket(g), rate, period)),
                None => Err(vec![cx.error(
                    "rate",
                    "rate, period and burst must give at least 1ns per token and a bucket under 146 years",
                )]),
            }
        }
        Algorithm::SlidingWindow => {
            let limit = config.limit.unwrap_or(0);
            let window = config.window.map_or(0, nanos);
            if !(1..=sliding_window::MAX_LIMIT).contains(&limit) {
                return Err(vec![cx.error(
                    "limit",
                    format!("must be between 1 and {}", sliding_window::MAX_LIMIT),
                )]);
            }
            if window < 1_000_000 {
                return Err(vec![cx.error("window", "must be at least 1ms")]);
            }
            match SlidingWindow::new(limit, window) {
                Some(w) => Ok((Limiter::SlidingWindow(w), limit, window)),
                None => Err(vec![cx.error("limit", "out of range")]),
            }
        }
    }
}

/// `"default";q=<quota>;w=<seconds>`: the window is given in whole seconds (at least one), and the
/// quota scaled to it, so `5` per `500ms` reads `q=10;w=1`.
fn policy_header(quota: u64, per_nanos: u64) -> HeaderValue {
    let window = seconds_up(per_nanos).max(1);
    let scaled = u128::from(quota) * u128::from(window) * u128::from(NANOS_PER_SECOND)
        / u128::from(per_nanos.max(1));
    let text = format!("\"default\";q={scaled};w={window}");
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("\"default\""))
}

/// `"default";r=<remaining>;t=<seconds until the quota is whole>`.
///
/// Written by hand into a buffer on the stack: it is made for every response of the route, and
/// `format!` cost about 700 instructions of the plugin's 1,250 per request.
fn ratelimit_header(verdict: &Verdict) -> HeaderValue {
    const START: &[u8] = b"\"default\";r=";
    let mut out = [0u8; 64];
    out[..START.len()].copy_from_slice(START);
    let mut len = START.len();
    len += write_decimal(&mut out[len..], verdict.remaining);
    out[len..len + 3].copy_from_slice(b";t=");
    len += 3;
    len += write_decimal(&mut out[len..], seconds_up(verdict.reset_nanos));
    HeaderValue::from_bytes(&out[..len]).unwrap_or(HeaderValue::from_static("\"default\""))
}

/// Writes `n` in decimal at the start of `out` (at least 20 bytes long); returns how many bytes.
fn write_decimal(out: &mut [u8], n: u64) -> usize {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n).as_bytes();
    out[..digits.len()].copy_from_slice(digits);
    digits.len()
}

pub(crate) fn seconds_up(nanos: u64) -> u64 {
    nanos.div_ceil(NANOS_PER_SECOND)
}

/// Nanoseconds since the process's first look at the clock: the one time base of every limiter,
/// whose states outlive snapshots. Monotonic; 0 is before any request.
pub(crate) fn now_nanos() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    // Starts past zero, so a fresh state (0) is always in the past.
    u64::try_from(epoch.elapsed().as_nanos())
        .unwrap_or(u64::MAX)
        .saturating_add(NANOS_PER_SECOND)
}

#[cfg(test)]
mod tests;
