//! The keys tokens are checked with: configured ones (a secret, a PEM public key) and JWKS documents.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde_json::Value;

/// At most this many keys are tried for one token without a `kid`, so a large key set cannot turn
/// one request into many signature checks.
const MAX_TRIES: usize = 8;

/// One verification key, with what a JWK said it may be used for.
pub struct VerifyKey {
    /// The key's id (`kid`); `None` for a configured key or a JWK without one.
    pub kid: Option<Box<str>>,
    /// The one algorithm the JWK allows (`alg`); `None`: any of its family.
    pub alg: Option<Algorithm>,
    /// The key.
    pub key: DecodingKey,
}

/// A set of keys, with a generation that changes whenever the set is replaced; verified tokens are
/// cached per generation, so a removed key stops a cached token as soon as the set changes.
pub struct KeySet {
    /// Unique to this set in the process.
    pub generation: u64,
    keys: Vec<VerifyKey>,
}

static GENERATIONS: AtomicU64 = AtomicU64::new(1);

impl KeySet {
    /// A set of `keys` with a new generation.
    pub fn new(keys: Vec<VerifyKey>) -> Self {
        Self {
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
            keys,
        }
    }

    /// The keys a token signed with `alg` (and naming `kid`) may be checked with: those of the
    /// algorithm's family that the JWK allows for it, with the token's `kid` or no `kid` at all.
    pub fn candidates<'a>(
        &'a self,
        alg: Algorithm,
        kid: Option<&'a str>,
    ) -> impl Iterator<Item = &'a DecodingKey> + 'a {
        self.keys
            .iter()
            .filter(move |k| {
                k.key.family() == alg.family()
                    && k.alg.is_none_or(|a| a == alg)
                    && match (kid, k.kid.as_deref()) {
                        (Some(want), Some(have)) => want == have,
                        _ => true,
                    }
            })
            .map(|k| &k.key)
            .take(MAX_TRIES)
    }

    /// The algorithm families the set has keys for.
    pub fn families(&self) -> impl Iterator<Item = jsonwebtoken::AlgorithmFamily> + '_ {
        self.keys.iter().map(|k| k.key.family())
    }

    /// Whether a key has id `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The signing keys of a JWKS document (RFC 7517 §5). Keys that are not for signatures, of a type
    /// or curve not supported, or malformed are skipped (an issuer may publish encryption keys or
    /// newer key types beside ours); a document that is not a key set, or has no usable key, is an
    /// error.
    pub fn from_jwks(document: &[u8]) -> Result<KeySet, String> {
        let value: Value =
            serde_json::from_slice(document).map_err(|e| format!("not JSON: {e}"))?;
        let Some(list) = value.get("keys").and_then(Value::as_array) else {
            return Err("no \"keys\" array".into());
        };
        let keys: Vec<VerifyKey> = list.iter().filter_map(jwk_key).collect();
        // An issuer that briefly publishes no usable key is far likelier than one revoking every
        // key at once: such a document is a failed fetch, and the last good set stays.
        if keys.is_empty() {
            return Err("no usable signing key".into());
        }
        Ok(KeySet::new(keys))
    }
}

fn jwk_key(value: &Value) -> Option<VerifyKey> {
    let jwk: Jwk = serde_json::from_value(value.clone()).ok()?;
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    // `alg` is read as text: a JWK may name an encryption algorithm, which is not one of ours.
    let alg = match value.get("alg").and_then(Value::as_str) {
        Some(name) => Some(Algorithm::from_str(name).ok()?),
        None => None,
    };
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    // A JWKS URL serves what anyone may read: a symmetric (`oct`) key there is a secret published,
    // and honouring it would let whoever fetched it sign tokens.
    if key.family() == AlgorithmFamily::Hmac {
        return None;
    }
    if alg.is_some_and(|a| a.family() != key.family()) {
        return None;
    }
    if key.family() == AlgorithmFamily::Ed
        && value.get("crv").and_then(Value::as_str) != Some("Ed25519")
    {
        return None;
    }
    Some(VerifyKey {
        kid: jwk.common.key_id.map(Into::into),
        alg,
        key,
    })
}

/// A public key in PEM (SubjectPublicKeyInfo, or PKCS#1 for RSA): RSA, EC (P-256, P-384) or Ed25519.
pub fn public_key_from_pem(pem: &[u8]) -> Result<DecodingKey, String> {
    DecodingKey::from_rsa_pem(pem)
        .or_else(|_| DecodingKey::from_ec_pem(pem))
        .or_else(|_| DecodingKey::from_ed_pem(pem))
        .map_err(|_| "not a PEM RSA, EC or Ed25519 public key".to_string())
}
