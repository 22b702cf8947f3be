//! `ip-restriction`: answer 403 to clients whose address is denied, or not allowed.
//!
//! The address is [`RequestCtx::client_ip`], the one the `real_ip` rules settled on, so a client can
//! name another address only through a proxy the configuration trusts. The lists are merged into
//! sorted ranges once per snapshot ([`CidrSet`]); a request costs two binary searches at most.

use floodgate_config::FieldError;
use http::StatusCode;
use serde::Deserialize;

use crate::answer::Answer;
use crate::build_ctx::BuildCtx;
use crate::cidr::CidrSet;
use crate::context::RequestCtx;
use crate::heads::RequestHead;
use crate::policy::NoCredential;
use crate::policy::{Flow, Policy};

/// `plugins.ip-restriction`. At least one of the two lists must be given.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IpRestrictionConfig {
    /// Networks (`10.0.0.0/8`, `2001:db8::/32`) or single addresses whose clients may pass; when not
    /// empty, every other client is refused. Default empty.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Networks or single addresses whose clients are refused, even when `allow` holds them too.
    /// Default empty.
    #[serde(default)]
    pub deny: Vec<String>,
}

/// The built plugin.
pub struct IpRestriction {
    allow: CidrSet,
    deny: CidrSet,
}

impl Policy for IpRestriction {
    const NAME: &'static str = "ip-restriction";
    const PRIORITY: u16 = 3000;
    type Config = IpRestrictionConfig;
    type Credential = NoCredential;

    fn build(config: IpRestrictionConfig, cx: &mut BuildCtx<'_>) -> Result<Self, Vec<FieldError>> {
        if config.allow.is_empty() && config.deny.is_empty() {
            return Err(vec![cx.error(
                "",
                "give `allow` or `deny` (or both): with neither the plugin would let every client in",
            )]);
        }
        let allow = networks(&config.allow, "allow", cx);
        let deny = networks(&config.deny, "deny", cx);
        match (allow, deny) {
            (Ok(allow), Ok(deny)) => Ok(Self { allow, deny }),
            (allow, deny) => Err([allow.err(), deny.err()]
                .into_iter()
                .flatten()
                .flatten()
                .collect()),
        }
    }

    fn request(&self, _req: &mut RequestHead<'_>, ctx: &mut RequestCtx) -> Flow {
        let ip = ctx.client_ip;
        // Deny first, so a network carved out of an allowed one stays out (nginx's and APISIX's rule).
        if self.deny.contains(ip) || (!self.allow.is_empty() && !self.allow.contains(ip)) {
            return Flow::Respond(Answer::error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "ip_denied",
            ));
        }
        Flow::Continue
    }
}

/// The set of `list`, or an error naming each entry that is not a network (`allow[3]`).
fn networks(list: &[String], field: &str, cx: &BuildCtx<'_>) -> Result<CidrSet, Vec<FieldError>> {
    CidrSet::parse(list.iter().map(String::as_str)).map_err(|_| {
        // Parsed again one by one only on failure, to name every bad entry and not just the first.
        list.iter()
            .enumerate()
            .filter_map(|(i, text)| {
                CidrSet::parse([text.as_str()])
                    .err()
                    .map(|e| cx.error(&format!("{field}[{i}]"), e.to_string()))
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::plugins::test_chain::{build_route, request_on};

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn deny_wins_over_allow_and_allow_shuts_out_everyone_else() {
        let set = build_route(
            "ip-restriction",
            serde_json::json!({
                "allow": ["10.0.0.0/8", "2001:db8::/32"],
                "deny": ["10.9.0.0/16"],
            }),
            vec![],
        )
        .unwrap();
        let answer = |addr: &str| request_on(&set, ip(addr), &[], "/").answer;
        assert!(answer("10.1.2.3").is_none());
        assert!(answer("2001:db8::7").is_none());
        assert!(
            answer("::ffff:10.1.2.3").is_none(),
            "a mapped IPv4 client is IPv4"
        );
        for refused in ["10.9.1.1", "192.0.2.1", "2001:db9::1"] {
            let answer = answer(refused).expect(refused);
            assert_eq!(answer.status, StatusCode::FORBIDDEN);
            assert_eq!(answer.error, Some("forbidden"));
            assert_eq!(answer.reason, "ip_denied");
        }
    }

    #[test]
    fn ipv4_mapped_entries_match_ipv4_clients() {
        let deny = build_route(
            "ip-restriction",
            serde_json::json!({"deny": ["::ffff:127.0.0.1", "::ffff:10.0.0.0/104"]}),
            vec![],
        )
        .unwrap();
        for denied in ["127.0.0.1", "::ffff:127.0.0.1", "10.3.2.1"] {
            assert!(
                request_on(&deny, ip(denied), &[], "/").answer.is_some(),
                "{denied}"
            );
        }
        assert!(request_on(&deny, ip("127.0.0.2"), &[], "/")
            .answer
            .is_none());
        let allow = build_route(
            "ip-restriction",
            serde_json::json!({"allow": ["::ffff:0:0/96"]}),
            vec![],
        )
        .unwrap();
        assert!(request_on(&allow, ip("192.0.2.1"), &[], "/")
            .answer
            .is_none());
        assert!(request_on(&allow, ip("::1"), &[], "/").answer.is_some());
    }

    #[test]
    fn deny_alone_lets_everyone_else_in() {
        let set = build_route(
            "ip-restriction",
            serde_json::json!({"deny": ["192.0.2.0/24", "::1"]}),
            vec![],
        )
        .unwrap();
        assert!(request_on(&set, ip("192.0.2.200"), &[], "/")
            .answer
            .is_some());
        assert!(request_on(&set, ip("::1"), &[], "/").answer.is_some());
        assert!(request_on(&set, ip("198.51.100.1"), &[], "/")
            .answer
            .is_none());
        assert!(request_on(&set, ip("::2"), &[], "/").answer.is_none());
    }

    #[test]
    fn a_consumers_own_restriction_applies_once_it_is_identified() {
        let consumer = serde_json::json!({
            "id": "office",
            "credentials": {"key-auth": {"key": "office-key-01"}},
            "plugins": {"ip-restriction": {"allow": ["10.0.0.0/8"]}},
        });
        let set = build_route("key-auth", serde_json::json!({}), vec![consumer]).unwrap();
        let key = [("apikey", "office-key-01")];
        assert!(request_on(&set, ip("10.1.1.1"), &key, "/").answer.is_none());
        let outside = request_on(&set, ip("192.0.2.1"), &key, "/").answer.unwrap();
        assert_eq!(outside.reason, "ip_denied");
    }

    #[test]
    fn fifty_thousand_entries_build_and_match() {
        // Every other /24 from 1.0.0.0 on: nothing merges, so the set keeps 50,000 ranges.
        let deny: Vec<String> = (0..50_000u32)
            .map(|i| i * 2)
            .map(|j| format!("{}.{}.{}.0/24", 1 + j / 65536, (j / 256) % 256, j % 256))
            .collect();
        let set = build_route("ip-restriction", serde_json::json!({"deny": deny}), vec![]).unwrap();
        assert!(request_on(&set, ip("1.0.0.9"), &[], "/").answer.is_some());
        assert!(
            request_on(&set, ip("2.134.158.1"), &[], "/")
                .answer
                .is_some(),
            "the last"
        );
        assert!(request_on(&set, ip("1.0.1.9"), &[], "/").answer.is_none());
        assert!(request_on(&set, ip("2.134.159.1"), &[], "/")
            .answer
            .is_none());
        assert!(request_on(&set, ip("9.9.9.9"), &[], "/").answer.is_none());
    }

    #[test]
    fn errors_name_every_bad_entry_and_an_empty_config_is_refused() {
        let errors = build_route(
            "ip-restriction",
            serde_json::json!({"allow": ["10.0.0.0/8", "10.0.0.0/33"], "deny": ["x", "::1", "1.2.3"]}),
            vec![],
        )
        .err()
        .unwrap();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "routes[0].plugins.ip-restriction.allow[1]",
                "routes[0].plugins.ip-restriction.deny[0]",
                "routes[0].plugins.ip-restriction.deny[2]",
            ]
        );
        let errors = build_route(
            "ip-restriction",
            serde_json::json!({"allow": ["::ffff:0:0/96", "::ffff:0:0/90"]}),
            vec![],
        )
        .err()
        .unwrap();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "routes[0].plugins.ip-restriction.allow[1]");
        assert!(
            errors[0].message.contains("IPv4-mapped"),
            "{}",
            errors[0].message
        );
        let errors = build_route("ip-restriction", serde_json::json!({}), vec![])
            .err()
            .unwrap();
        assert_eq!(errors[0].path, "routes[0].plugins.ip-restriction");
        let errors = build_route("ip-restriction", serde_json::json!({"allowed": []}), vec![]);
        assert!(errors.err().unwrap()[0].message.contains("unknown field"));
    }
}
