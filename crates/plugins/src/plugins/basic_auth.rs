//! `basic-auth`: a consumer's username and password in `Authorization: Basic` (RFC 7617), checked
//! against the bcrypt or Argon2 hash the consumer's credential holds.
//!
//! Those hashes are slow on purpose, and the `request` phase runs synchronously on a worker's thread,
//! so a verification stalls the worker's other connections for as long as it takes. Moving it to a
//! blocking pool would need an asynchronous phase; instead the cost is bounded at build (hashes above
//! [`MAX_BCRYPT_COST`] or the Argon2 limits are refused, and docs/plugins.md (basic-auth) recommends far
//! lower costs), and a per-worker cache remembers pairs that verified, so a client pays the hash once
//! per `cache_ttl` and worker, not per request.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHashString, PasswordVerifier};
use argon2::{Argon2, Params};
use base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT;
use base64::Engine;
use floodgate_config::{FieldError, HumanDuration};
use http::{header, HeaderValue, StatusCode};
use ring::digest::{Context, SHA256};
use serde::Deserialize;

use crate::answer::Answer;
use crate::authorization::credentials;
use crate::build_ctx::BuildCtx;
use crate::consumer::Consumer;
use crate::context::RequestCtx;
use crate::heads::RequestHead;
use crate::policy::{Flow, Policy};

/// The highest bcrypt cost accepted: at cost 12 one verification already takes on the order of a
/// quarter of a second of a worker's time (each step doubles it).
pub const MAX_BCRYPT_COST: u32 = 12;
/// The most memory (KiB) an Argon2 hash may ask for: each verification allocates it.
pub const MAX_ARGON2_MEMORY_KIB: u32 = 64 * 1024;
/// The most passes an Argon2 hash may ask for.
pub const MAX_ARGON2_PASSES: u32 = 8;
/// Verified pairs a worker remembers at most, all instances together. Only pairs that verified get in,
/// so a client cannot fill it without valid credentials.
const CACHE_CAPACITY: usize = 4096;
/// The longest `Authorization` value decoded: no real username and password needs more.
const MAX_ENCODED_LEN: usize = 4096;

/// `plugins.basic-auth`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthConfig {
    /// The realm named in the challenge, `WWW-Authenticate: Basic realm="<realm>"`. Printable ASCII
    /// without `"` or `\`. Default `floodgate`.
    #[serde(default = "default_realm")]
    pub realm: String,
    /// Remove the `Authorization` field before forwarding. Default `false`.
    #[serde(default)]
    pub hide_credentials: bool,
    /// How long a worker remembers a username and password that verified, so the client's next
    /// requests skip the slow hash; `0s` verifies every request. Default `60s`.
    #[serde(default = "default_cache_ttl")]
    pub cache_ttl: HumanDuration,
}

fn default_realm() -> String {
    "floodgate".to_string()
}

fn default_cache_ttl() -> HumanDuration {
    HumanDuration::from_secs(60)
}

/// `consumers[].credentials.basic-auth`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicCredential {
    /// The username (not empty, no `:`), unique among consumers.
    pub username: String,
    /// The password's hash: bcrypt (`$2b$`, `$2a$` or `$2y$`, as `htpasswd -B` writes) or an Argon2
    /// PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`; `$argon2i$` too).
    pub password_hash: String,
}

/// The built plugin: users by name, each with the parsed hash and the consumer it names.
pub struct BasicAuth {
    /// Tells this instance's cache entries from any other's (another route, an older snapshot whose
    /// consumers may have had other passwords).
    instance: u64,
    challenge: HeaderValue,
    hide: bool,
    cache_ttl: Option<Duration>,
    users: HashMap<Box<[u8]>, User>,
    /// Verified against for an unknown username, so that answering it costs what a wrong password
    /// costs and the time does not tell which usernames exist.
    decoy: Option<Arc<StoredHash>>,
}

struct User {
    hash: Arc<StoredHash>,
    consumer: Arc<Consumer>,
}

static INSTANCES: AtomicU64 = AtomicU64::new(0);

impl Policy for BasicAuth {
    const NAME: &'static str = "basic-auth";
    const PRIORITY: u16 = 2520;
    const AUTHENTICATES: bool = true;
    type Config = BasicAuthConfig;
    type Credential = BasicCredential;

    fn build(config: BasicAuthConfig, cx: &mut BuildCtx<'_>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let challenge = match challenge(&config.realm) {
            Some(value) => value,
            None => {
                errors.push(cx.error("realm", "must be printable ASCII without '\"' or '\\'"));
                HeaderValue::from_static("Basic")
            }
        };
        let mut users = HashMap::new();
        let mut decoy = None;
        for (i, consumer) in cx.consumers.iter().enumerate() {
            {
                let Some(c) = consumer.credential::<BasicCredential>(Self::NAME) else {
                    continue;
                };
                let at = format!("consumers[{i}].credentials.basic-auth");
                // Checked when the credential was parsed; a failure here is reported all the same.
                let hash = match StoredHash::parse(&c.password_hash) {
                    Ok(hash) => Arc::new(hash),
                    Err(message) => {
                        errors.push(FieldError::new(format!("{at}.password_hash"), message));
                        continue;
                    }
                };
                decoy.get_or_insert_with(|| hash.clone());
                let user = User {
                    hash,
                    consumer: consumer.clone(),
                };
                if users.insert(c.username.as_bytes().into(), user).is_some() {
                    errors.push(FieldError::new(
                        format!("{at}.username"),
                        "the same username is given to another consumer",
                    ));
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let ttl = config.cache_ttl.get();
        Ok(Self {
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
            challenge,
            hide: config.hide_credentials,
            cache_ttl: (!ttl.is_zero()).then_some(ttl),
            users,
            decoy,
        })
    }

    fn check_credential(credential: &BasicCredential, at: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if credential.username.is_empty() || credential.username.contains(':') {
            errors.push(FieldError::new(
                format!("{at}.username"),
                "must not be empty nor contain ':' (Basic credentials are username:password)",
            ));
        }
        if let Err(message) = StoredHash::parse(&credential.password_hash) {
            errors.push(FieldError::new(format!("{at}.password_hash"), message));
        }
        errors
    }

    fn request(&self, req: &mut RequestHead<'_>, ctx: &mut RequestCtx) -> Flow {
        let mut fields = req.headers.get_all(header::AUTHORIZATION).iter();
        let presented = match (fields.next(), fields.next()) {
            (None, _) => Presented::Missing,
            (Some(value), None) => basic_credentials(value.as_bytes()),
            // One request, one set of credentials (the field is not a list).
            (Some(_), Some(_)) => Presented::Malformed,
        };
        let (decoded, colon) = match presented {
            Presented::Pair { decoded, colon } => (decoded, colon),
            Presented::Missing => {
                return self.unauthorized("missing credentials", "missing_credentials")
            }
            Presented::Malformed => return self.refused(),
        };
        let (username, password) = (&decoded[..colon], &decoded[colon + 1..]);
        let Some(consumer) = self.authenticate(username, password) else {
            return self.refused();
        };
        ctx.consumer = Some(consumer);
        if self.hide {
            req.headers.remove(header::AUTHORIZATION);
        }
        Flow::Continue
    }
}

impl BasicAuth {
    /// The consumer `username` names when `password` is theirs.
    fn authenticate(&self, username: &[u8], password: &[u8]) -> Option<Arc<Consumer>> {
        let Some(user) = self.users.get(username) else {
            if let Some(decoy) = &self.decoy {
                // The outcome is ignored: only the time it takes matters.
                std::hint::black_box(decoy.verify(password));
            }
            return None;
        };
        let Some(ttl) = self.cache_ttl else {
            return user.hash.verify(password).then(|| user.consumer.clone());
        };
        let key = cache_key(self.instance, username, password);
        let now = Instant::now();
        let hit = VERIFIED.with(|cache| cache.borrow_mut().get(&key, now));
        if hit.as_ref() == Some(&user.consumer.id) {
            return Some(user.consumer.clone());
        }
        if !user.hash.verify(password) {
            // A failure is never remembered: the next attempt pays the hash again.
            return None;
        }
        VERIFIED.with(|cache| {
            cache
                .borrow_mut()
                .insert(key, user.consumer.id.clone(), now + ttl, now)
        });
        Some(user.consumer.clone())
    }

    fn unauthorized(&self, message: &'static str, reason: &'static str) -> Flow {
        Flow::Respond(self.challenge_answer(message, reason))
    }

    /// The answer to credentials presented and refused (malformed, unknown user, wrong password).
    fn refused(&self) -> Flow {
        Flow::Respond(
            self.challenge_answer("invalid credentials", "invalid_credentials")
                .refusing_credentials(),
        )
    }

    fn challenge_answer(&self, message: &'static str, reason: &'static str) -> Answer {
        Answer::error(StatusCode::UNAUTHORIZED, message, reason)
            .with_header(header::WWW_AUTHENTICATE, self.challenge.clone())
    }
}

/// `Basic realm="<realm>"`, or `None` when the realm cannot be a quoted string as it is.
fn challenge(realm: &str) -> Option<HeaderValue> {
    let plain = realm
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
    plain
        .then(|| HeaderValue::from_str(&format!("Basic realm=\"{realm}\"")).ok())
        .flatten()
}

/// What a request's `Authorization` field holds, for this plugin.
#[derive(Debug, PartialEq)]
pub(crate) enum Presented {
    /// No field, or another scheme's credentials (`Bearer ...`).
    Missing,
    /// Basic credentials that do not decode to `username:password`.
    Malformed,
    /// The decoded `username:password`, with the position of the first `:`.
    Pair { decoded: Vec<u8>, colon: usize },
}

/// Reads `Basic <base64(username:password)>`; the scheme is case-insensitive (RFC 9110 §11.1).
pub(crate) fn basic_credentials(value: &[u8]) -> Presented {
    let Some(encoded) = credentials(value, b"basic") else {
        return Presented::Missing;
    };
    if encoded.is_empty() || encoded.len() > MAX_ENCODED_LEN {
        return Presented::Malformed;
    }
    // Padding is optional on the wire in practice; a client that leaves it out is not refused for it.
    let Ok(decoded) = STANDARD_PAD_INDIFFERENT.decode(encoded) else {
        return Presented::Malformed;
    };
    match decoded.iter().position(|&b| b == b':') {
        Some(colon) => Presented::Pair { decoded, colon },
        None => Presented::Malformed,
    }
}

/// A password hash parsed and bounded once, at build.
enum StoredHash {
    Bcrypt(Box<str>),
    Argon2(PasswordHashString),
}

impl StoredHash {
    fn parse(text: &str) -> Result<Self, String> {
        if text.starts_with("$2") {
            let parts: bcrypt::HashParts = text
                .parse()
                .map_err(|e| format!("not a valid bcrypt hash: {e}"))?;
            // $2x$ marks hashes of a buggy implementation that this one would not reproduce.
            if !matches!(text.get(..4), Some("$2a$" | "$2b$" | "$2y$")) {
                return Err("bcrypt hashes must be $2a$, $2b$ or $2y$".to_string());
            }
            let cost = parts.get_cost();
            if !(4..=MAX_BCRYPT_COST).contains(&cost) {
                return Err(format!(
                    "bcrypt cost {cost} is outside 4..={MAX_BCRYPT_COST}: each verification runs on a \
                     worker's thread; hash again with a lower cost (see docs/plugins.md, basic-auth)"
                ));
            }
            return Ok(Self::Bcrypt(text.into()));
        }
        if text.starts_with("$argon2") {
            let hash = PasswordHashString::new(text)
                .map_err(|e| format!("not a valid Argon2 PHC string: {e}"))?;
            let parsed = hash.password_hash();
            // Argon2d's memory accesses depend on the password: it leaks through cache timing.
            if !matches!(parsed.algorithm.as_str(), "argon2id" | "argon2i") {
                return Err(format!(
                    "Argon2 variant {:?} is not accepted: use argon2id (or argon2i)",
                    parsed.algorithm.as_str()
                ));
            }
            if parsed.salt.is_none() || parsed.hash.is_none() {
                return Err("the Argon2 PHC string has no salt or no hash".to_string());
            }
            if let Some(version) = parsed.version {
                argon2::Version::try_from(version)
                    .map_err(|e| format!("unknown Argon2 version: {e}"))?;
            }
            let params =
                Params::try_from(&parsed).map_err(|e| format!("invalid Argon2 parameters: {e}"))?;
            if params.m_cost() > MAX_ARGON2_MEMORY_KIB || params.t_cost() > MAX_ARGON2_PASSES {
                return Err(format!(
                    "Argon2 parameters m={} t={} exceed m={MAX_ARGON2_MEMORY_KIB} t={MAX_ARGON2_PASSES}: \
                     each verification runs on a worker's thread (see docs/plugins.md, basic-auth)",
                    params.m_cost(),
                    params.t_cost()
                ));
            }
            return Ok(Self::Argon2(hash));
        }
        Err("must be a bcrypt hash ($2b$...) or an Argon2 PHC string ($argon2id$...)".to_string())
    }

    /// Whether `password` hashes to this hash; the comparison is constant-time in both crates.
    fn verify(&self, password: &[u8]) -> bool {
        match self {
            // bcrypt reads at most 72 bytes of a password, as every implementation does.
            Self::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            Self::Argon2(hash) => Argon2::default()
                .verify_password(password, &hash.password_hash())
                .is_ok(),
        }
    }
}

thread_local! {
    /// The worker's verified pairs. A worker is one thread, so no lock is needed.
    static VERIFIED: RefCell<VerifiedCache> = RefCell::new(VerifiedCache::default());
}

/// Digests of (instance, username, password) that verified, with the consumer they named and until
/// when they are trusted. The digest, not the password, is kept.
#[derive(Default)]
struct VerifiedCache {
    entries: HashMap<[u8; 32], (Arc<str>, Instant)>,
}

impl VerifiedCache {
    fn get(&mut self, key: &[u8; 32], now: Instant) -> Option<Arc<str>> {
        let (consumer, expires) = self.entries.get(key)?;
        if *expires > now {
            return Some(consumer.clone());
        }
        self.entries.remove(key);
        None
    }

    fn insert(&mut self, key: [u8; 32], consumer: Arc<str>, expires: Instant, now: Instant) {
        if self.entries.len() >= CACHE_CAPACITY {
            self.entries.retain(|_, (_, until)| *until > now);
            if self.entries.len() >= CACHE_CAPACITY {
                // Still full of live entries: start over rather than track recency on every hit.
                self.entries.clear();
            }
        }
        self.entries.insert(key, (consumer, expires));
    }
}

fn cache_key(instance: u64, username: &[u8], password: &[u8]) -> [u8; 32] {
    let mut context = Context::new(&SHA256);
    context.update(&instance.to_le_bytes());
    // The username's length keeps ("ab", "c") and ("a", "bc") apart.
    context.update(&(username.len() as u64).to_le_bytes());
    context.update(username);
    context.update(password);
    let mut out = [0; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

#[cfg(test)]
mod tests;
