//! `traffic-split`: sends a route's requests to other upstreams by weight, and matching requests
//! (a header, a cookie, a query parameter, a consumer) to chosen ones: canary releases, blue/green
//! switches and header colouring (APISIX's plugin and nouns: `rules`, `match`, `weighted_upstreams`,
//! `upstream_id`, `weight`).
//!
//! It runs after authentication (priority 966), so a rule may name consumers. The choice is a random
//! draw by weight from the worker's own generator, or, with `sticky`, a hash of the client's key, so
//! one user stays on one side on every gateway (the hash has no random seed: it must agree across
//! processes, and it indexes no table an attacker could flood).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use floodgate_config::FieldError;
use http::{header, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use crate::build_ctx::BuildCtx;
use crate::context::RequestCtx;
use crate::heads::RequestHead;
use crate::policy::{Flow, NoCredential, Policy};
use crate::query::{ParamName, Separators};

/// `plugins.traffic-split`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrafficSplitConfig {
    /// Tried in order: the first whose `match` holds (or that has none) picks the upstream. A request
    /// no rule takes goes to the route's own upstream.
    pub rules: Vec<SplitRuleConfig>,
    /// Keeps a client on one side: the weighted choice becomes a hash of this key. Absent: a random
    /// draw per request.
    #[serde(default)]
    pub sticky: Option<StickyConfig>,
}

/// One rule.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitRuleConfig {
    /// The rule applies when any of these holds; each holds when all of its conditions do. Empty:
    /// always.
    #[serde(default, rename = "match")]
    pub matches: Vec<MatchConfig>,
    /// Where the rule sends requests, by weight.
    pub weighted_upstreams: Vec<WeightedUpstreamConfig>,
}

/// Conditions that must all hold.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// Request fields with exactly these values (names case-insensitive).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Cookies with exactly these values.
    #[serde(default)]
    pub cookies: BTreeMap<String, String>,
    /// Query parameters with exactly these raw values.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// The consumer an authentication plugin named is one of these.
    #[serde(default)]
    pub consumers: Vec<String>,
}

/// An upstream and its share.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightedUpstreamConfig {
    /// The upstream's id; absent: the route's own upstream.
    #[serde(default)]
    pub upstream_id: Option<String>,
    /// Relative share, 0 to 10000.
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

/// What keeps a client on one side.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StickyConfig {
    /// `header`, `cookie`, `consumer` or `client_ip`.
    pub hash_on: StickyOn,
    /// The header or cookie name, for `header` and `cookie`.
    #[serde(default)]
    pub key: Option<String>,
}

/// The key stickiness hashes.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StickyOn {
    /// A request field's value.
    Header,
    /// A cookie's value.
    Cookie,
    /// The consumer's id.
    Consumer,
    /// The client's address.
    ClientIp,
}

const MAX_WEIGHT: u32 = 10_000;

/// The built plugin.
pub struct TrafficSplit {
    rules: Vec<Rule>,
    sticky: Option<Sticky>,
}

struct Rule {
    matches: Vec<Match>,
    /// Upstream ids (`None`: the route's) with the running total of weights up to each.
    choices: Vec<(Option<Arc<str>>, u32)>,
    total: u32,
}

struct Match {
    headers: Vec<(HeaderName, HeaderValue)>,
    cookies: Vec<(ParamName, String)>,
    query: Vec<(ParamName, String)>,
    consumers: BTreeSet<String>,
}

enum Sticky {
    Header(HeaderName),
    Cookie(ParamName),
    Consumer,
    ClientIp,
}

impl Policy for TrafficSplit {
    const NAME: &'static str = "traffic-split";
    const PRIORITY: u16 = 966;
    type Config = TrafficSplitConfig;
    type Credential = NoCredential;

    fn build(config: TrafficSplitConfig, cx: &mut BuildCtx<'_>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        if config.rules.is_empty() {
            errors.push(cx.error("rules", "at least one rule is required"));
        }
        let mut rules = Vec::with_capacity(config.rules.len());
        for (r, rule) in config.rules.iter().enumerate() {
            let at = format!("rules[{r}]");
            let mut matches = Vec::new();
            for (m, conditions) in rule.matches.iter().enumerate() {
                matches.push(build_match(
                    conditions,
                    &format!("{at}.match[{m}]"),
                    cx,
                    &mut errors,
                ));
            }
            let mut choices = Vec::new();
            let mut total = 0u32;
            for (w, weighted) in rule.weighted_upstreams.iter().enumerate() {
                let field = format!("{at}.weighted_upstreams[{w}]");
                if weighted.weight > MAX_WEIGHT {
                    errors.push(cx.error(
                        &format!("{field}.weight"),
                        format!("must be between 0 and {MAX_WEIGHT}"),
                    ));
                }
                if let Some(id) = &weighted.upstream_id {
                    if !cx.upstream_ids.contains(id.as_str()) {
                        errors.push(cx.error(
                            &format!("{field}.upstream_id"),
                            format!("no upstream with id {id:?}"),
                        ));
                    }
                }
                total = total.saturating_add(weighted.weight);
                choices.push((weighted.upstream_id.as_deref().map(Arc::from), total));
            }
            if total == 0 {
                errors.push(cx.error(
                    &format!("{at}.weighted_upstreams"),
                    "the weights add up to 0: at least one must be above 0",
                ));
            }
            rules.push(Rule {
                matches,
                choices,
                total,
            });
        }
        let sticky = config.sticky.as_ref().and_then(|sticky| {
            let key = sticky.key.as_deref().filter(|k| !k.is_empty());
            match (sticky.hash_on, key) {
                (StickyOn::Header, Some(name)) => match HeaderName::from_bytes(name.as_bytes()) {
                    Ok(name) => Some(Sticky::Header(name)),
                    Err(_) => {
                        errors.push(cx.error("sticky.key", "is not a header name"));
                        None
                    }
                },
                (StickyOn::Cookie, Some(name)) => {
                    Some(Sticky::Cookie(ParamName::new(name, Separators::Ampersand)))
                }
                (StickyOn::Header | StickyOn::Cookie, None) => {
                    errors.push(cx.error(
                        "sticky.key",
                        "required when hash_on is header or cookie: the header or cookie name",
                    ));
                    None
                }
                (StickyOn::Consumer, _) => Some(Sticky::Consumer),
                (StickyOn::ClientIp, _) => Some(Sticky::ClientIp),
            }
        });
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self { rules, sticky })
    }

    fn request(&self, req: &mut RequestHead<'_>, ctx: &mut RequestCtx) -> Flow {
        let query = req.uri.query();
        let Some(rule) = self.rules.iter().find(|rule| {
            rule.matches.is_empty()
                || rule
                    .matches
                    .iter()
                    .any(|m| m.holds(req.headers, query, ctx))
        }) else {
            return Flow::Continue;
        };
        let point = match self.sticky_hash(req.headers, ctx) {
            Some(hash) => (hash % u64::from(rule.total)) as u32,
            None => fastrand::u32(0..rule.total),
        };
        let chosen = rule
            .choices
            .iter()
            .find(|(_, upto)| point < *upto)
            .and_then(|(id, _)| id.clone());
        ctx.upstream = chosen;
        Flow::Continue
    }
}

impl TrafficSplit {
    /// The sticky key's hash, when stickiness is on and the request has the key.
    fn sticky_hash(&self, headers: &HeaderMap, ctx: &RequestCtx) -> Option<u64> {
        let hash = |bytes: &[u8]| xxhash_rust::xxh3::xxh3_64(bytes);
        match self.sticky.as_ref()? {
            Sticky::Header(name) => headers.get(name).map(|v| hash(v.as_bytes())),
            Sticky::Cookie(name) => cookie(headers, name).map(|v| hash(v.as_bytes())),
            Sticky::Consumer => ctx.consumer_id().map(|id| hash(id.as_bytes())),
            Sticky::ClientIp => Some(match ctx.client_ip {
                IpAddr::V4(ip) => hash(&ip.octets()),
                IpAddr::V6(ip) => hash(&ip.octets()),
            }),
        }
    }
}

impl Match {
    fn holds(&self, headers: &HeaderMap, query: Option<&str>, ctx: &RequestCtx) -> bool {
        self.headers
            .iter()
            .all(|(name, value)| headers.get(name) == Some(value))
            && self
                .cookies
                .iter()
                .all(|(name, value)| cookie(headers, name) == Some(value.as_str()))
            && self
                .query
                .iter()
                .all(|(name, value)| name.param(query) == Some(value.as_str()))
            && (self.consumers.is_empty()
                || ctx
                    .consumer_id()
                    .is_some_and(|id| self.consumers.contains(&**id)))
    }
}

/// The value of the first cookie named `name`.
fn cookie<'h>(headers: &'h HeaderMap, name: &ParamName) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            name.matches(key.trim_end())
                .then(|| value.trim_start().trim_matches('"'))
        })
}

fn build_match(
    conditions: &MatchConfig,
    at: &str,
    cx: &BuildCtx<'_>,
    errors: &mut Vec<FieldError>,
) -> Match {
    let mut headers = Vec::new();
    for (name, value) in &conditions.headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(name), Ok(value)) => headers.push((name, value)),
            _ => errors.push(cx.error(
                &format!("{at}.headers.{name}"),
                "is not a valid header field",
            )),
        }
    }
    let names = |map: &BTreeMap<String, String>| {
        map.iter()
            .map(|(name, value)| (ParamName::new(name, Separators::Ampersand), value.clone()))
            .collect()
    };
    Match {
        headers,
        cookies: names(&conditions.cookies),
        query: names(&conditions.query),
        consumers: conditions.consumers.iter().cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::plugins::test_chain::{build_route, request_on};

    const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn chosen(set: &crate::PluginSet, headers: &[(&str, &str)], path: &str) -> Option<String> {
        request_on(set, CLIENT, headers, path)
            .ctx
            .upstream
            .map(|id| id.to_string())
    }

    #[test]
    fn a_coloured_request_always_reaches_the_canary_and_others_split_by_weight() {
        let set = build_route(
            "traffic-split",
            serde_json::json!({ "rules": [
                { "match": [{ "headers": { "x-canary": "1" } }, { "query": { "canary": "yes" } }],
                  "weighted_upstreams": [{ "upstream_id": "u" }] },
                { "weighted_upstreams": [{ "upstream_id": "u", "weight": 1 }, { "weight": 3 }] },
            ]}),
            vec![],
        )
        .unwrap();
        for _ in 0..50 {
            assert_eq!(chosen(&set, &[("x-canary", "1")], "/"), Some("u".into()));
            assert_eq!(chosen(&set, &[], "/?canary=yes"), Some("u".into()));
        }
        let mut counts = BTreeMap::new();
        for _ in 0..4000 {
            *counts.entry(chosen(&set, &[], "/")).or_insert(0) += 1;
        }
        let canary = counts.get(&Some("u".to_string())).copied().unwrap_or(0);
        assert!((800..1200).contains(&canary), "{counts:?}");
    }

    #[test]
    fn stickiness_keeps_a_key_on_one_side() {
        let set = build_route(
            "traffic-split",
            serde_json::json!({
                "rules": [{ "weighted_upstreams": [{ "upstream_id": "u" }, { "weight": 1 }] }],
                "sticky": { "hash_on": "cookie", "key": "uid" },
            }),
            vec![],
        )
        .unwrap();
        let mut sides = BTreeSet::new();
        for user in 0..40 {
            let cookie = format!("uid={user}");
            let first = chosen(&set, &[("cookie", &cookie)], "/");
            for _ in 0..10 {
                assert_eq!(chosen(&set, &[("cookie", &cookie)], "/"), first);
            }
            sides.insert(first);
        }
        assert_eq!(sides.len(), 2, "both sides get some users");
    }

    #[test]
    fn bad_settings_name_their_fields() {
        let errors = build_route(
            "traffic-split",
            serde_json::json!({
                "rules": [
                    { "weighted_upstreams": [{ "upstream_id": "nowhere" }, { "weight": 0 }] },
                    { "weighted_upstreams": [{ "weight": 0 }] },
                ],
                "sticky": { "hash_on": "header" },
            }),
            vec![],
        )
        .err()
        .unwrap();
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let at = "routes[0].plugins.traffic-split";
        assert_eq!(
            errors,
            [
                format!("{at}.rules[0].weighted_upstreams[0].upstream_id: no upstream with id \"nowhere\""),
                format!("{at}.rules[1].weighted_upstreams: the weights add up to 0: at least one must be above 0"),
                format!("{at}.sticky.key: required when hash_on is header or cookie: the header or cookie name"),
            ]
        );
    }
}
