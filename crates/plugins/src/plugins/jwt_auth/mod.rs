//! `jwt-auth`: a signed JSON Web Token (RFC 7519) as the credential, checked against configured keys
//! or a JWKS URL, its claims naming the consumer and forwarded upstream.
//!
//! - `config`: `plugins.jwt-auth`.
//! - `credential`: a consumer's own key (`consumers[].credentials.jwt-auth`).
//! - `keys`: the keys tokens are checked with.
//! - `jwks`: the background fetch of a JWKS URL.
//! - `cache`: the per-worker cache of verified tokens.
//! - `numeric_date`: `exp` and `nbf` as the validator reads them, and the lifetime the cache keeps.
//! - `token`: where a request carries its token.
//! - `crypto`: the signature algorithms, on `ring`.

mod cache;
pub mod config;
pub mod credential;
pub(crate) mod crypto;
mod jwks;
pub(crate) mod keys;
pub(crate) mod numeric_date;
#[cfg(test)]
mod tests;
pub(crate) mod token;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use floodgate_config::FieldError;
use http::uri::PathAndQuery;
use http::{header, HeaderName, HeaderValue, StatusCode};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use crate::answer::Answer;
use crate::build_ctx::BuildCtx;
use crate::consumer::Consumer;
use crate::context::RequestCtx;
use crate::copies::ConflictingCopies;
use crate::heads::{RequestHead, UpstreamRequest};
use crate::policy::{Flow, Policy};

use self::cache::Verified;
use self::config::JwtAuthConfig;
use self::credential::{ByKey, JwtCredential};
use self::jwks::JwksKeys;
use self::keys::KeySet;
use self::numeric_date::Lifetime;
use self::token::TokenSources;

/// The built plugin.
pub struct JwtAuth {
    /// Tells this instance's cache entries from other instances' in a worker's shared cache.
    instance: u64,
    /// The accepted algorithms, each with its claim checks.
    validations: Vec<(Algorithm, Validation)>,
    /// Keys from the configuration (`secret`, `public_key`, `public_key_file`).
    configured: KeySet,
    /// Keys from `jwks_url`.
    jwks: Option<Arc<JwksKeys>>,
    /// Claims a token must carry besides what the validations require.
    required_claims: Box<[Box<str>]>,
    sources: TokenSources,
    consumer_claim: Option<Box<str>>,
    consumer_required: bool,
    consumers: HashMap<Arc<str>, Arc<Consumer>>,
    /// The consumers' own credentials, by the key a token names in `key_claim`.
    credentials: ByKey,
    key_claim: Box<str>,
    /// Claim name and the upstream header it is forwarded in.
    forward: Box<[(Box<str>, HeaderName)]>,
    hide: bool,
    leeway: u64,
}

static INSTANCES: AtomicU64 = AtomicU64::new(1);

impl Policy for JwtAuth {
    const NAME: &'static str = "jwt-auth";
    const PRIORITY: u16 = 2510;
    const AUTHENTICATES: bool = true;
    type Config = JwtAuthConfig;
    type Credential = JwtCredential;

    fn check_credential(credential: &JwtCredential, at: &str) -> Vec<FieldError> {
        credential.check(at)
    }

    fn build(config: JwtAuthConfig, cx: &mut BuildCtx<'_>) -> Result<Self, Vec<FieldError>> {
        crypto::install();
        let credentials = credential::by_key(cx.consumers)?;
        let families: Vec<_> = credentials
            .values()
            .flat_map(|(_, keys)| keys.families())
            .collect();
        let built = config::check(&config, cx, &families)?;
        let jwks = match built.jwks {
            Some(source) => {
                let keys = cx.state("jwks", || {
                    JwksKeys::new(config.jwks_min_refetch_interval.get())
                });
                if let Some(runtime) = &cx.runtime {
                    keys.start(
                        runtime,
                        source,
                        config.jwks_refresh_interval.get(),
                        cx.stats.clone(),
                    );
                }
                Some(keys)
            }
            None => None,
        };
        let consumers = if config.consumer_claim.is_some() {
            cx.consumers
                .iter()
                .map(|c| (c.id.clone(), c.clone()))
                .collect()
        } else {
            HashMap::new()
        };
        Ok(Self {
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
            validations: built.validations,
            configured: built.configured,
            jwks,
            required_claims: config
                .required_claims
                .iter()
                .map(|c| c.as_str().into())
                .collect(),
            sources: built.sources,
            consumer_claim: config.consumer_claim.map(Into::into),
            consumer_required: config.consumer_required,
            consumers,
            credentials,
            key_claim: config.key_claim.as_str().into(),
            forward: built.forward,
            hide: config.hide_credentials,
            leeway: config.leeway.get().as_secs(),
        })
    }

    fn request(&self, req: &mut RequestHead<'_>, ctx: &mut RequestCtx) -> Flow {
        let (found, twinned) = self.sources.find_and_twins(req.headers, req.uri.query());
        let token = match found {
            Ok(Some(token)) => token,
            Ok(None) => return Flow::Respond(missing_token()),
            Err(ConflictingCopies) => return Flow::Respond(invalid_token("conflicting_tokens")),
        };
        let now = unix_now();
        let generation = self.jwks.as_ref().map_or(0, |j| j.keys.load().generation);
        let key = cache::key_of(self.instance, token);
        let verified = match cache::lookup(&key, token, generation, now) {
            Some(verified) => verified,
            None => match self.verify(token) {
                Ok((verified, lifetime)) => {
                    let verified = Arc::new(verified);
                    cache::remember(key, token, generation, lifetime, verified.clone(), now);
                    verified
                }
                Err(reason) => return Flow::Respond(invalid_token(reason)),
            },
        };
        ctx.consumer = verified.consumer.clone();
        // A client's own field of a forwarded claim's name, or of a name an upstream reads the same
        // (`x_user` for `x-user`), must never reach the upstream as if the gateway had set it.
        for (_, name) in self.forward.iter() {
            floodgate_http1::remove_with_twins(req.headers, name);
        }
        if self.hide {
            self.sources.hide(req.headers);
        } else if twinned {
            self.sources.remove_twins(req.headers);
        }
        for (name, value) in &verified.forwarded {
            req.headers.insert(name.clone(), value.clone());
        }
        Flow::Continue
    }

    fn upstream_request(&self, req: &mut UpstreamRequest<'_>, _ctx: &RequestCtx) {
        let Some(name) = self.sources.query.as_ref().filter(|_| self.hide) else {
            return;
        };
        if let Some(path) = name.without(req.path.as_str()) {
            if let Ok(path) = PathAndQuery::try_from(path) {
                *req.path = path;
            }
        }
    }
}

impl JwtAuth {
    /// The consumer credential `token` names in its `key_claim`, read before any signature is checked
    /// (only to choose the key: nothing of it is trusted until that key verifies the token).
    fn credential_of(&self, token: &str) -> Option<&(Arc<Consumer>, KeySet)> {
        if self.credentials.is_empty() {
            return None;
        }
        let claims: Map<String, Value> =
            jsonwebtoken::dangerous::insecure_decode_claims(token).ok()?;
        let key = claims.get(&*self.key_claim)?.as_str()?;
        self.credentials.get(key)
    }

    /// Verifies `token`: what it grants and for how long, or the metric reason it is refused for.
    fn verify(&self, token: &[u8]) -> Result<(Verified, Lifetime), &'static str> {
        #[cfg(test)]
        tests::count_verification();
        let token = std::str::from_utf8(token).map_err(|_| "invalid_token")?;
        // `alg: none` is no algorithm jsonwebtoken knows: such a header does not parse.
        let header = jsonwebtoken::decode_header(token).map_err(|_| "invalid_token")?;
        let Some((_, validation)) = self.validations.iter().find(|(a, _)| *a == header.alg) else {
            return Err("disallowed_algorithm");
        };
        let kid = header.kid.as_deref();
        let fetched = self.jwks.as_ref().map(|j| j.keys.load_full());
        if let (Some(jwks), Some(fetched), Some(kid)) = (&self.jwks, &fetched, kid) {
            if !fetched.has_kid(kid) {
                jwks.request_refetch();
            }
        }
        // A token naming a consumer's credential is checked with that credential's key alone, and is
        // that consumer's; any other with the plugin's own keys.
        let credential = self.credential_of(token);
        let own = credential.map(|(_, keys)| keys.candidates(header.alg, kid));
        let shared = credential.is_none().then(|| {
            self.configured.candidates(header.alg, kid).chain(
                fetched
                    .iter()
                    .flat_map(|set| set.candidates(header.alg, kid)),
            )
        });
        let candidates = own
            .into_iter()
            .flatten()
            .chain(shared.into_iter().flatten());
        let mut outcome = Err("unknown_key");
        for key in candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(token, key, validation) {
                Ok(data) => {
                    outcome = Ok(data.claims);
                    break;
                }
                // Another key may have signed it.
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::InvalidSignature | ErrorKind::InvalidKeyFormat
                    ) =>
                {
                    outcome = Err("invalid_signature");
                }
                // The signature was good (it is checked first): the claims are not.
                Err(e) => return Err(reason_of(e.kind())),
            }
        }
        let claims = outcome?;
        if self
            .required_claims
            .iter()
            .any(|c| claims.get(&**c).is_none_or(Value::is_null))
        {
            return Err("invalid_claims");
        }
        let consumer = match &self.consumer_claim {
            _ if credential.is_some() => credential.map(|(consumer, _)| consumer.clone()),
            Some(claim) => {
                let found = claims
                    .get(&**claim)
                    .and_then(Value::as_str)
                    .and_then(|id| self.consumers.get(id))
                    .cloned();
                if found.is_none() && self.consumer_required {
                    return Err("unknown_consumer");
                }
                found
            }
            None => None,
        };
        let forwarded = self
            .forward
            .iter()
            .filter_map(|(claim, name)| Some((name.clone(), claim_value(claims.get(&**claim)?)?)))
            .collect();
        // The validator checks both time claims (`validate_exp`, `validate_nbf`) and refuses either
        // malformed; were one to get here all the same, it is no reason to cache a token for ever.
        let lifetime = Lifetime::of(&claims, self.leeway).ok_or("invalid_claims")?;
        Ok((
            Verified {
                consumer,
                forwarded,
            },
            lifetime,
        ))
    }
}

/// A claim as a header value: a string as it is (UTF-8 bytes included), anything else as compact
/// JSON; `None` when it is null or cannot be a field value (control characters).
fn claim_value(value: &Value) -> Option<HeaderValue> {
    match value {
        Value::Null => None,
        Value::String(s) => HeaderValue::from_bytes(s.as_bytes()).ok(),
        other => HeaderValue::from_bytes(other.to_string().as_bytes()).ok(),
    }
}

fn reason_of(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ExpiredSignature => "expired_token",
        ErrorKind::ImmatureSignature => "token_not_yet_valid",
        ErrorKind::InvalidIssuer
        | ErrorKind::InvalidAudience
        | ErrorKind::InvalidSubject
        | ErrorKind::MissingRequiredClaim(_)
        | ErrorKind::InvalidClaimFormat(_) => "invalid_claims",
        _ => "invalid_token",
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// RFC 6750 §3.1: a request without credentials gets the challenge without an error code.
fn missing_token() -> Answer {
    Answer::error(
        StatusCode::UNAUTHORIZED,
        "missing bearer token",
        "missing_token",
    )
    .with_header(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"floodgate\""),
    )
}

/// Every refused token gets the same answer; only the metric reason tells the causes apart.
fn invalid_token(reason: &'static str) -> Answer {
    let answer = Answer::error(StatusCode::UNAUTHORIZED, "invalid token", reason).with_header(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"floodgate\", error=\"invalid_token\""),
    );
    // What `auth-failure-limit` counts: a token that could be a guess or a forgery. A token whose
    // signature verified (expired, not yet valid, wrong claims or consumer) was issued to someone, and
    // one signed with a key not yet fetched may be a key rotation in progress: a client retrying such
    // a token, or everyone behind its address, must not be locked out for it.
    match reason {
        "invalid_token" | "disallowed_algorithm" | "invalid_signature" | "conflicting_tokens" => {
            answer.refusing_credentials()
        }
        _ => answer,
    }
}
