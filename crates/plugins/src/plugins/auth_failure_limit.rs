//! `auth-failure-limit`: refused authentications per client address. Once an address has had its
//! credentials refused `max_failures` times, its requests are answered 429 before any authentication
//! plugin looks at them, so password and key guessing stops costing a hash per attempt and stops
//! getting answers, until the budget refills over `period`.
//!
//! Only refusals of credentials a request presented count (a wrong password, a bad token, copies that
//! differ), never a request that carried none: a browser's first request to a `basic-auth` route
//! carries none and gets the challenge. A request that passes authentication leaves the count as it is.
//!
//! The budget is a token bucket (the same GCRA and lock-free [`KeyTable`] as `rate-limit`): the
//! `request` phase only reads it, the `log` phase takes a token when an authentication plugin refused
//! the request's credentials, going into debt if others took the last ones meanwhile. IPv6 clients
//! are counted by their /64, the block one subscriber is given, so rotating addresses within it buys
//! no fresh budget.

use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use floodgate_config::{FieldError, HumanDuration};
use http::{header, HeaderValue, StatusCode};
use serde::Deserialize;

use crate::answer::Answer;
use crate::build_ctx::{BuildCtx, Scope};
use crate::context::RequestCtx;
use crate::heads::RequestHead;
use crate::key_table::{KeyTable, MAX_SLOTS};
use crate::policy::{Flow, NoCredential, Policy};

use super::rate_limit::gcra::Gcra;
use super::rate_limit::{now_nanos, seconds_up};

/// `plugins.auth-failure-limit`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthFailureLimitConfig {
    /// Refused authentications one client address may have per `period`; past them its requests get
    /// 429 until the budget refills (evenly over `period`). Required, at least 1.
    pub max_failures: u64,
    /// The period `max_failures` is counted over. Default `10m`.
    #[serde(default = "default_period")]
    pub period: HumanDuration,
    /// Client addresses tracked at once (rounded up to a power of two; 16 bytes each). Default 65536.
    #[serde(default = "super::rate_limit::default_max_keys")]
    pub max_keys: usize,
}

fn default_period() -> HumanDuration {
    HumanDuration::from_secs(600)
}

/// The built plugin.
pub struct AuthFailureLimit {
    budget: Gcra,
    table: Arc<KeyTable>,
}

impl Policy for AuthFailureLimit {
    const NAME: &'static str = "auth-failure-limit";
    // After `rate-limit` and `limit-conn` placed before authentication, just before the first
    // authentication plugin.
    const PRIORITY: u16 = 2550;
    type Config = AuthFailureLimitConfig;
    type Credential = NoCredential;

    fn build(
        config: AuthFailureLimitConfig,
        cx: &mut BuildCtx<'_>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        if matches!(cx.scope, Scope::Consumer { .. }) {
            errors.push(cx.error(
                "",
                "a consumer's own plugins run after authentication, too late to refuse a guess",
            ));
        }
        if !(1..=MAX_SLOTS).contains(&config.max_keys) {
            errors.push(cx.error("max_keys", format!("must be between 1 and {MAX_SLOTS}")));
        }
        let period = u64::try_from(config.period.get().as_nanos()).unwrap_or(u64::MAX);
        let budget = if config.max_failures == 0 {
            errors.push(cx.error("max_failures", "must be at least 1"));
            None
        } else {
            let budget = Gcra::new(config.max_failures, period, config.max_failures);
            if budget.is_none() {
                errors.push(cx.error(
                    "max_failures",
                    "max_failures and period must give at least 1ns per failure and a period under 146 years",
                ));
            }
            budget
        };
        let (Some(budget), true) = (budget, errors.is_empty()) else {
            return Err(errors);
        };
        let stats = cx.stats.clone();
        let table = cx.state("table", || KeyTable::new(config.max_keys, stats));
        Ok(Self { budget, table })
    }

    fn request(&self, _req: &mut RequestHead<'_>, ctx: &mut RequestCtx) -> Flow {
        let hash = self.key(ctx);
        let now = now_nanos();
        let budget = self.budget;
        // Read only: a request that then passes authentication costs the address nothing.
        let (_, verdict) = self.table.update(
            hash,
            |s| Gcra::is_idle(s, now),
            |s| (None, budget.decide(s, now).1),
        );
        if verdict.allowed {
            return Flow::Continue;
        }
        let retry = seconds_up(verdict.retry_nanos).max(1);
        Flow::Respond(
            Answer::error(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed authentications",
                "too_many_auth_failures",
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from(retry)),
        )
    }

    fn log(&self, ctx: &mut RequestCtx, _status: StatusCode) {
        if !ctx.rejection.is_some_and(|r| r.credentials_refused) {
            return;
        }
        let hash = self.key(ctx);
        let now = now_nanos();
        let budget = self.budget;
        // Charged even past an empty budget: guesses that passed the check together (many
        // connections or streams at once) each cost their share of the period, so concurrency only
        // spends the address's future budget early, never adds to it.
        self.table.update(
            hash,
            |s| Gcra::is_idle(s, now),
            |s| (Some(budget.charge(s, now)), ()),
        );
    }
}

impl AuthFailureLimit {
    /// The client address's key in the table: an IPv4 address, or an IPv6 address's /64.
    fn key(&self, ctx: &RequestCtx) -> u64 {
        self.table.hasher().hash_one(subscriber(ctx.client_ip))
    }
}

/// The address block one client is counted by: an IPv4 address itself, an IPv6 address's /64.
fn subscriber(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use http::StatusCode;
    use serde_json::{json, Value};

    use crate::plugins::test_chain::{build_with, request_on};
    use crate::PluginSet;

    const GUESSER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    fn key_auth_route(limit: Value) -> PluginSet {
        build_with(
            json!({
                "key-auth": {},
                "auth-failure-limit": limit,
            }),
            vec![json!({"id": "alice", "credentials": {"key-auth": {"key": "alice-key-0001"}}})],
        )
        .expect("valid")
    }

    fn status(set: &PluginSet, client: IpAddr, key: Option<&str>) -> StatusCode {
        let headers: Vec<(&str, &str)> = key.map(|k| ("apikey", k)).into_iter().collect();
        let outcome = request_on(set, client, &headers, "/");
        let status = outcome.answer.as_ref().map_or(StatusCode::OK, |a| a.status);
        outcome.finish(set, status);
        status
    }

    #[test]
    fn refused_credentials_use_up_the_budget_then_the_address_is_refused_before_checking() {
        let set = key_auth_route(json!({"max_failures": 3, "period": "1h"}));
        for _ in 0..3 {
            assert_eq!(
                status(&set, GUESSER, Some("wrong-key-000")),
                StatusCode::UNAUTHORIZED
            );
        }
        // The right key too: the address is refused before its key is looked at.
        assert_eq!(
            status(&set, GUESSER, Some("alice-key-0001")),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(status(&set, OTHER, Some("alice-key-0001")), StatusCode::OK);
        assert_eq!(
            status(&set, OTHER, Some("wrong-key-000")),
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn requests_without_credentials_and_passing_ones_cost_nothing() {
        let set = key_auth_route(json!({"max_failures": 1, "period": "1h"}));
        for _ in 0..5 {
            assert_eq!(status(&set, GUESSER, None), StatusCode::UNAUTHORIZED);
            assert_eq!(
                status(&set, GUESSER, Some("alice-key-0001")),
                StatusCode::OK
            );
        }
        assert_eq!(
            status(&set, GUESSER, Some("wrong-key-000")),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(status(&set, GUESSER, None), StatusCode::TOO_MANY_REQUESTS);
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let set = key_auth_route(json!({"max_failures": 1, "period": "1h"}));
        let first: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(
            status(&set, first, Some("wrong-key-000")),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(&set, same_64, Some("wrong-key-000")),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            status(&set, other_64, Some("wrong-key-000")),
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn bad_configurations_name_their_field() {
        let errors = |limit: Value| {
            build_with(json!({"auth-failure-limit": limit}), Vec::new())
                .err()
                .expect("refused")
                .into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            errors(json!({"max_failures": 0})),
            ["routes[0].plugins.auth-failure-limit.max_failures: must be at least 1"]
        );
        assert_eq!(
            errors(json!({"max_failures": 5, "max_keys": 0})),
            [format!(
                "routes[0].plugins.auth-failure-limit.max_keys: must be between 1 and {}",
                crate::key_table::MAX_SLOTS
            )]
        );
        assert!(errors(json!({"period": "1m"}))[0].contains("max_failures"));
    }
}
