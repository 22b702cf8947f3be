//! jwt-auth through a built chain.
//!
//! - `signatures`: each algorithm family, the `none` and algorithm-confusion attacks, JWKS documents.
//! - `claims`: time and issuer/audience claims, the consumer, forwarded claims, hidden credentials, the
//!   cache and configuration mistakes.

mod claims;
mod credentials;
mod signatures;

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use floodgate_config::{parse_yaml, FieldError};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::answer::Answer;
use crate::build::build_plugins;
use crate::chain::Chain;
use crate::context::RequestCtx;
use crate::heads::RequestHead;
use crate::state::StateStore;
use crate::stats::PluginStats;

thread_local! {
    static VERIFICATIONS: Cell<u64> = const { Cell::new(0) };
}

/// Counts signature verifications on the calling thread (each test runs on its own).
pub fn count_verification() {
    VERIFICATIONS.with(|c| c.set(c.get() + 1));
}

pub(super) fn verifications() -> u64 {
    VERIFICATIONS.with(Cell::get)
}

pub(super) const SECRET: &str = "a-secret-of-at-least-thirty-two-bytes!";

pub(super) fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/jwt_auth/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub(super) fn now() -> i64 {
    i64::try_from(super::unix_now()).unwrap()
}

/// A chain with one route whose only plugin is jwt-auth configured as `plugin`.
pub(super) fn chain(plugin: Value) -> Result<Arc<Chain>, Vec<FieldError>> {
    chain_with(plugin, "")
}

pub(super) fn chain_with(plugin: Value, consumers: &str) -> Result<Arc<Chain>, Vec<FieldError>> {
    let yaml = format!(
        r#"listeners: [{{ name: main, address: "127.0.0.1:0" }}]
upstreams: [{{ id: b, targets: [{{ address: "127.0.0.1:1" }}] }}]
{consumers}
routes:
  - {{ id: r, paths: ["/*"], upstream: b, plugins: {{ jwt-auth: {plugin} }} }}
"#
    );
    let config = parse_yaml(&yaml).map_err(|e| vec![FieldError::new("", e.to_string())])?;
    let set = build_plugins(
        &config,
        &StateStore::new(),
        None,
        &Arc::new(PluginStats::default()),
    )?;
    Ok(set.routes[0].clone().expect("a chain"))
}

pub(super) struct Outcome {
    pub(super) answer: Option<Answer>,
    pub(super) headers: HeaderMap,
    pub(super) ctx: Box<RequestCtx>,
}

pub(super) fn request(chain: &Arc<Chain>, uri: &str, fields: &[(&str, &str)]) -> Outcome {
    let uri: Uri = uri.parse().unwrap();
    let mut headers = HeaderMap::new();
    for (name, value) in fields {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let mut ctx = chain.start(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        HeaderValue::from_static("req-1"),
        0,
        false,
        uri.path(),
    );
    let answer = chain.request(
        &mut RequestHead {
            method: &Method::GET,
            uri: &uri,
            headers: &mut headers,
        },
        &mut ctx,
    );
    Outcome {
        answer,
        headers,
        ctx,
    }
}

pub(super) fn bearer(chain: &Arc<Chain>, token: &str) -> Outcome {
    request(
        chain,
        "/x",
        &[("authorization", &format!("Bearer {token}"))],
    )
}

/// The metric reason of a refusal, after checking it is the one 401 every refused token gets.
pub(super) fn refused(outcome: Outcome) -> &'static str {
    let answer = outcome.answer.expect("refused");
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.error, Some("invalid token"));
    assert_eq!(
        answer.headers.get("www-authenticate").unwrap(),
        "Bearer realm=\"floodgate\", error=\"invalid_token\""
    );
    answer.reason
}

pub(super) fn accepted(outcome: &Outcome) {
    if let Some(answer) = &outcome.answer {
        panic!("refused: {}", answer.reason);
    }
}

pub(super) fn hs(secret: &[u8]) -> EncodingKey {
    EncodingKey::from_secret(secret).unwrap()
}

pub(super) fn token(alg: Algorithm, key: &EncodingKey, claims: Value) -> String {
    encode(&Header::new(alg), &claims, key).unwrap()
}

pub(super) fn valid_claims() -> Value {
    json!({ "sub": "alice", "exp": now() + 600 })
}

pub(super) fn hmac_config(alg: &str) -> Value {
    json!({ "algorithms": [alg], "secret": SECRET })
}

/// Installs the crypto provider tokens are signed with before any build does.
pub(super) fn install() {
    super::crypto::install();
}
