//! `proxy-mirror`: copies a share of a route's requests to a shadow upstream, whose answers are
//! dropped (APISIX's plugin; nginx's `mirror`, Envoy's `request_mirror_policies`). The proxy sends
//! each copy from a task of its own, after the real request has gone: a slow, failing or dead mirror
//! never delays or fails a client's request, and at most `max_in_flight` copies per worker wait on it
//! (the rest are dropped and counted).
//!
//! Runs after authentication (priority 1010), so only requests that passed every check are copied.

use floodgate_config::FieldError;
use serde::Deserialize;

use crate::build_ctx::BuildCtx;
use crate::context::{MirrorTo, RequestCtx};
use crate::heads::RequestHead;
use crate::policy::{Flow, NoCredential, Policy};

/// `plugins.proxy-mirror`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxyMirrorConfig {
    /// The upstream the copies go to.
    pub upstream_id: String,
    /// Percentage of requests copied, 0 to 100.
    #[serde(default = "default_percentage")]
    pub percentage: f64,
    /// Most copies each worker has waiting on the mirror at once; past it copies are dropped.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u32,
}

fn default_percentage() -> f64 {
    100.0
}

fn default_max_in_flight() -> u32 {
    64
}

/// The built plugin.
pub struct ProxyMirror {
    to: MirrorTo,
    share: f64,
}

impl Policy for ProxyMirror {
    const NAME: &'static str = "proxy-mirror";
    const PRIORITY: u16 = 1010;
    type Config = ProxyMirrorConfig;
    type Credential = NoCredential;

    fn build(config: ProxyMirrorConfig, cx: &mut BuildCtx<'_>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        if !cx.upstream_ids.contains(config.upstream_id.as_str()) {
            errors.push(cx.error(
                "upstream_id",
                format!("no upstream with id {:?}", config.upstream_id),
            ));
        }
        if !(0.0..=100.0).contains(&config.percentage) {
            errors.push(cx.error("percentage", "must be a percentage, 0 to 100"));
        }
        if config.max_in_flight == 0 {
            errors.push(cx.error("max_in_flight", "must be at least 1"));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            to: MirrorTo {
                upstream: config.upstream_id.as_str().into(),
                max_in_flight: config.max_in_flight,
            },
            share: config.percentage / 100.0,
        })
    }

    fn request(&self, _req: &mut RequestHead<'_>, ctx: &mut RequestCtx) -> Flow {
        if self.share >= 1.0 || (self.share > 0.0 && fastrand::f64() < self.share) {
            ctx.mirror = Some(self.to.clone());
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use crate::plugins::test_chain::{build_route, request_on};

    const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn a_share_of_requests_is_marked_for_the_mirror() {
        let set = build_route(
            "proxy-mirror",
            serde_json::json!({ "upstream_id": "u", "percentage": 50, "max_in_flight": 3 }),
            vec![],
        )
        .unwrap();
        let marked: Vec<_> = (0..2000)
            .filter_map(|_| request_on(&set, CLIENT, &[], "/").ctx.mirror)
            .collect();
        assert!((800..1200).contains(&marked.len()), "{}", marked.len());
        assert!(marked
            .iter()
            .all(|m| &*m.upstream == "u" && m.max_in_flight == 3));
    }

    #[test]
    fn bad_settings_name_their_fields() {
        let errors = build_route(
            "proxy-mirror",
            serde_json::json!({ "upstream_id": "shadow", "percentage": 101, "max_in_flight": 0 }),
            vec![],
        )
        .err()
        .unwrap();
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let at = "routes[0].plugins.proxy-mirror";
        assert_eq!(
            errors,
            [
                format!("{at}.upstream_id: no upstream with id \"shadow\""),
                format!("{at}.percentage: must be a percentage, 0 to 100"),
                format!("{at}.max_in_flight: must be at least 1"),
            ]
        );
    }
}
