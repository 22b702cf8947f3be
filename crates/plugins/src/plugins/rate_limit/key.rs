//! [`LimitKey`]: what a limiter counts by (`key:`), parsed once, hashed per request without allocating.

use std::hash::Hasher;
use std::net::IpAddr;

use floodgate_config::FieldError;
use http::HeaderName;
use serde::Deserialize;

use crate::build_ctx::{BuildCtx, Scope};
use crate::context::RequestCtx;
use crate::heads::RequestHead;

/// `key:` of a limiter: one key kind, or a list of them combined into one key.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum KeyConfig {
    /// `consumer`, `client_ip`, `route` or `header:<name>`.
    One(String),
    /// Several, each request's key being all of their values together.
    All(Vec<String>),
}

impl Default for KeyConfig {
    fn default() -> Self {
        Self::One("client_ip".to_string())
    }
}

#[derive(Debug)]
enum KeyPart {
    Consumer,
    ClientIp,
    Route,
    Header(HeaderName),
}

/// A parsed `key:`.
#[derive(Debug)]
pub(crate) struct LimitKey {
    parts: Box<[KeyPart]>,
}

impl LimitKey {
    /// Parses `key:`; errors name their field under the plugin (`key` or `key[i]`).
    pub(crate) fn parse(config: &KeyConfig, cx: &BuildCtx<'_>) -> Result<Self, Vec<FieldError>> {
        Self::parse_parts(config).map_err(|errors| {
            errors
                .into_iter()
                .map(|(field, message)| cx.error(&field, message))
                .collect()
        })
    }

    /// Parses `key:`; errors are (field, message).
    pub(crate) fn parse_parts(config: &KeyConfig) -> Result<Self, Vec<(String, String)>> {
        let texts: Vec<(String, &str)> = match config {
            KeyConfig::One(text) => vec![("key".to_string(), text.as_str())],
            KeyConfig::All(list) if list.is_empty() => {
                return Err(vec![(
                    "key".to_string(),
                    "name at least one key".to_string(),
                )]);
            }
            KeyConfig::All(list) => list
                .iter()
                .enumerate()
                .map(|(i, text)| (format!("key[{i}]"), text.as_str()))
                .collect(),
        };
        let mut parts = Vec::with_capacity(texts.len());
        let mut errors = Vec::new();
        for (field, text) in texts {
            match parse_part(text) {
                Ok(part) => parts.push(part),
                Err(message) => errors.push((field, message)),
            }
        }
        if errors.is_empty() {
            Ok(Self {
                parts: parts.into_boxed_slice(),
            })
        } else {
            Err(errors)
        }
    }

    /// Whether a part of the key is the consumer, which only authentication names.
    pub(crate) fn needs_consumer(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, KeyPart::Consumer))
    }

    /// The priority of a limit keyed by this key: `before` (ahead of every authentication plugin)
    /// unless the key needs the consumer, the limit is a consumer's own or replaced by one (which
    /// only authentication can tell), or the configuration's `before_authentication` (`asked`) says
    /// otherwise; then `after`.
    ///
    /// A limit keyed by address, route or header runs before authentication by default, as nginx
    /// runs `limit_req` before `auth_basic`: otherwise a refused login ends the chain before the limit
    /// counts it, and password guessing is never limited.
    /// A refusal of `asked` is added to `errors`, and gives `None`.
    pub(crate) fn priority(
        &self,
        asked: Option<bool>,
        cx: &BuildCtx<'_>,
        (before, after): (u16, u16),
        errors: &mut Vec<FieldError>,
    ) -> Option<u16> {
        let why_after = if matches!(cx.scope, Scope::Consumer { .. }) {
            Some("a consumer's own plugins run after authentication, which names the consumer")
        } else if self.needs_consumer() {
            Some("a key naming the consumer is known only after authentication")
        } else if cx.replaced_for_consumers {
            Some(
                "a consumer carries its own plugin of this name, which replaces this one only once \
                 authentication has named the consumer",
            )
        } else {
            None
        };
        match (why_after, asked) {
            (Some(why), Some(true)) => {
                errors.push(cx.error("before_authentication", why));
                None
            }
            (Some(_), _) | (None, Some(false)) => Some(after),
            (None, _) => Some(before),
        }
    }

    /// The request's key, hashed with `hasher`. A missing consumer or header counts as the client's
    /// address instead, so an unidentified client is limited on its own, never sharing one budget
    /// with every other unidentified client, nor escaping the limit.
    pub(crate) fn hash(
        &self,
        hasher: &impl std::hash::BuildHasher,
        req: &RequestHead<'_>,
        ctx: &RequestCtx,
    ) -> u64 {
        let mut h = hasher.build_hasher();
        for part in self.parts.iter() {
            match part {
                KeyPart::Consumer => match ctx.consumer_id() {
                    Some(id) => tagged(&mut h, 1, id.as_bytes()),
                    None => client_ip(&mut h, ctx),
                },
                KeyPart::ClientIp => client_ip(&mut h, ctx),
                KeyPart::Route => tagged(&mut h, 3, ctx.route.as_bytes()),
                KeyPart::Header(name) => match req.headers.get(name) {
                    Some(value) => tagged(&mut h, 4, value.as_bytes()),
                    None => client_ip(&mut h, ctx),
                },
            }
        }
        h.finish()
    }
}

fn parse_part(text: &str) -> Result<KeyPart, String> {
    match text {
        "consumer" => Ok(KeyPart::Consumer),
        "client_ip" => Ok(KeyPart::ClientIp),
        "route" => Ok(KeyPart::Route),
        _ => {
            let Some(name) = text.strip_prefix("header:") else {
                return Err(format!(
                    "{text:?} is not a key (consumer, client_ip, route or header:<name>)"
                ));
            };
            HeaderName::from_bytes(name.as_bytes())
                .map(KeyPart::Header)
                .map_err(|_| format!("{name:?} is not a header name"))
        }
    }
}

/// A part with its kind and length in front, so no two different keys feed the hasher the same bytes.
/// Kind and length go in one word: each `write` call costs the hasher as much as a short input.
fn tagged(h: &mut impl Hasher, tag: u8, bytes: &[u8]) {
    h.write_u64(u64::from(tag) << 56 | bytes.len() as u64);
    h.write(bytes);
}

/// The client's address as a part: kind, length and (for IPv4) the address in one word.
fn client_ip(h: &mut impl Hasher, ctx: &RequestCtx) {
    const KIND: u64 = 2 << 56;
    match ctx.client_ip {
        IpAddr::V4(ip) => h.write_u64(KIND | 4 << 32 | u64::from(ip.to_bits())),
        IpAddr::V6(ip) => {
            h.write_u64(KIND | 16 << 32);
            h.write_u128(ip.to_bits());
        }
    }
}
