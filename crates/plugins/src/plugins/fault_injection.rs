//! `fault-injection`: answer a share of requests with a chosen error, or hold them for a while before
//! they go on, to see how clients and services behave when an upstream fails or slows down (APISIX's
//! plugin of the same name, Envoy's fault filter).
//!
//! It runs after authentication and the limits (priority 800), so an injected fault never lets a
//! request past a check, and what is injected is what an upstream failure would look like to a
//! client that got that far. The share is drawn per request from the worker's own random generator:
//! no lock, no shared counter.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use floodgate_config::{FieldError, HumanDuration};
use http::{HeaderName, HeaderValue, StatusCode};
use serde::Deserialize;

use crate::answer::Answer;
use crate::build_ctx::BuildCtx;
use crate::context::RequestCtx;
use crate::heads::RequestHead;
use crate::policy::{Flow, NoCredential, Policy};

/// `plugins.fault-injection`. At least one of `abort` and `delay` must be given.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultInjectionConfig {
    /// Answers a share of requests with an error instead of forwarding them.
    #[serde(default)]
    pub abort: Option<AbortConfig>,
    /// Holds a share of requests before they go on (or are aborted).
    #[serde(default)]
    pub delay: Option<DelayConfig>,
    /// Request fields that must all be present with exactly these values for any fault to be
    /// injected (names are case-insensitive). Empty: every request may get one.
    #[serde(default)]
    pub match_headers: BTreeMap<String, String>,
}

/// `abort`: the error answered.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AbortConfig {
    /// The status answered, 200 to 599.
    pub status: u16,
    /// The body answered; absent: the gateway's JSON error body (`fault injected`).
    #[serde(default)]
    pub body: Option<String>,
    /// Percentage of requests aborted, 0 to 100.
    pub percentage: f64,
}

/// `delay`: how long requests are held.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DelayConfig {
    /// How long a delayed request waits (at most 1 minute).
    pub duration: HumanDuration,
    /// Percentage of requests delayed, 0 to 100.
    pub percentage: f64,
}

/// The built plugin.
pub struct FaultInjection {
    stats: std::sync::Arc<floodgate_observe::PluginStats>,
    abort: Option<(StatusCode, Option<Bytes>, f64)>,
    delay: Option<(Duration, f64)>,
    match_headers: Vec<(HeaderName, HeaderValue)>,
}

const MAX_DELAY: Duration = Duration::from_secs(60);

impl Policy for FaultInjection {
    const NAME: &'static str = "fault-injection";
    const PRIORITY: u16 = 800;
    type Config = FaultInjectionConfig;
    type Credential = NoCredential;

    fn build(config: FaultInjectionConfig, cx: &mut BuildCtx<'_>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        if config.abort.is_none() && config.delay.is_none() {
            errors.push(cx.error("", "give `abort` or `delay` (or both)"));
        }
        let share = |value: f64, field: &str, errors: &mut Vec<FieldError>| {
            if !(0.0..=100.0).contains(&value) {
                errors.push(cx.error(field, "must be a percentage, 0 to 100"));
            }
            value / 100.0
        };
        let abort = config.abort.as_ref().map(|abort| {
            let status = StatusCode::from_u16(abort.status)
                .ok()
                .filter(|s| (200..=599).contains(&s.as_u16()));
            if status.is_none() {
                errors.push(cx.error("abort.status", "must be a status code, 200 to 599"));
            }
            let share = share(abort.percentage, "abort.percentage", &mut errors);
            (
                status.unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                abort.body.clone().map(Bytes::from),
                share,
            )
        });
        let delay = config.delay.as_ref().map(|delay| {
            if delay.duration.get() > MAX_DELAY {
                errors.push(cx.error("delay.duration", "must be at most 1m"));
            }
            let share = share(delay.percentage, "delay.percentage", &mut errors);
            (delay.duration.get(), share)
        });
        let mut match_headers = Vec::new();
        for (name, value) in &config.match_headers {
            match (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                (Ok(name), Ok(value)) => match_headers.push((name, value)),
                _ => errors.push(cx.error(
                    &format!("match_headers.{name}"),
                    "is not a valid header field",
                )),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            stats: cx.stats.clone(),
            abort,
            delay,
            match_headers,
        })
    }

    fn request(&self, req: &mut RequestHead<'_>, ctx: &mut RequestCtx) -> Flow {
        let matches = self
            .match_headers
            .iter()
            .all(|(name, value)| req.headers.get(name) == Some(value));
        if !matches {
            return Flow::Continue;
        }
        if let Some((duration, share)) = self.delay {
            if drawn(share) {
                ctx.delay = Some(duration);
                self.stats
                    .fault_delays
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        if let Some((status, body, share)) = &self.abort {
            if drawn(*share) {
                let answer = match body {
                    Some(body) => Answer {
                        body: body.clone(),
                        ..Answer::empty(*status, "fault_abort")
                    },
                    None => Answer::error(*status, "fault injected", "fault_abort"),
                };
                return Flow::Respond(answer);
            }
        }
        Flow::Continue
    }
}

/// Whether this request falls in a share (0 to 1) of requests.
fn drawn(share: f64) -> bool {
    share >= 1.0 || (share > 0.0 && fastrand::f64() < share)
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::plugins::test_chain::{build_route, request_on};

    const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn an_abort_for_every_request_answers_with_its_status_and_body() {
        let set = build_route(
            "fault-injection",
            serde_json::json!({ "abort": { "status": 418, "body": "teapot", "percentage": 100 } }),
            vec![],
        )
        .unwrap();
        let answer = request_on(&set, CLIENT, &[], "/").answer.expect("aborted");
        assert_eq!(answer.status, StatusCode::IM_A_TEAPOT);
        assert_eq!(answer.body, "teapot");
        assert_eq!(answer.reason, "fault_abort");
    }

    #[test]
    fn faults_hit_only_requests_with_the_matching_fields() {
        let set = build_route(
            "fault-injection",
            serde_json::json!({
                "abort": { "status": 503, "percentage": 100 },
                "delay": { "duration": "10ms", "percentage": 100 },
                "match_headers": { "x-chaos": "on" },
            }),
            vec![],
        )
        .unwrap();
        let plain = request_on(&set, CLIENT, &[], "/");
        assert!(plain.answer.is_none());
        assert_eq!(plain.ctx.delay, None);
        let chaos = request_on(&set, CLIENT, &[("x-chaos", "on")], "/");
        let answer = chaos.answer.expect("aborted");
        assert_eq!(answer.error, Some("fault injected"));
        assert_eq!(chaos.ctx.delay, Some(Duration::from_millis(10)));
    }

    #[test]
    fn the_shares_hold_over_many_requests() {
        let set = build_route(
            "fault-injection",
            serde_json::json!({ "abort": { "status": 500, "percentage": 25 } }),
            vec![],
        )
        .unwrap();
        let aborted = (0..4000)
            .filter(|_| request_on(&set, CLIENT, &[], "/").answer.is_some())
            .count();
        assert!((800..1200).contains(&aborted), "{aborted} of 4000");
    }

    #[test]
    fn bad_settings_name_their_fields() {
        let errors = build_route(
            "fault-injection",
            serde_json::json!({
                "abort": { "status": 99, "percentage": 120 },
                "delay": { "duration": "2m", "percentage": -1 },
                "match_headers": { "bad name": "x" },
            }),
            vec![],
        )
        .err()
        .unwrap();
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let at = "routes[0].plugins.fault-injection";
        assert_eq!(
            errors,
            [
                format!("{at}.abort.status: must be a status code, 200 to 599"),
                format!("{at}.abort.percentage: must be a percentage, 0 to 100"),
                format!("{at}.delay.duration: must be at most 1m"),
                format!("{at}.delay.percentage: must be a percentage, 0 to 100"),
                format!("{at}.match_headers.bad name: is not a valid header field"),
            ]
        );
        assert!(build_route("fault-injection", serde_json::json!({}), vec![]).is_err());
    }
}
