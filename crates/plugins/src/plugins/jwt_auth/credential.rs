//! `consumers[].credentials.jwt-auth`: a consumer's own signing key, so onboarding an API client is one
//! consumer with one credential (Kong's and APISIX's model). A token names the credential it was signed
//! with in a claim (`key_claim`, `iss` by default); it is verified with that credential's key alone, and
//! the request is that consumer's.

use std::collections::HashMap;
use std::sync::Arc;

use floodgate_config::FieldError;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;

use super::keys::{self, KeySet, VerifyKey};
use crate::consumer::{Consumer, Consumers};

/// `consumers[].credentials.jwt-auth`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtCredential {
    /// The value a token's `key_claim` carries to name this credential (unique across consumers).
    pub key: String,
    /// The shared secret of the `HS*` algorithms (at least 32 bytes).
    #[serde(default)]
    pub secret: Option<String>,
    /// `secret` is base64 (standard alphabet, padded) rather than the bytes themselves.
    #[serde(default)]
    pub secret_base64: bool,
    /// A public key in PEM (RSA, EC P-256/P-384 or Ed25519) for the other algorithms.
    #[serde(default)]
    pub public_key: Option<String>,
}

impl std::fmt::Debug for JwtCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches a debug line.
        f.debug_struct("JwtCredential")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// A secret shorter than this is refused (RFC 7518 §3.2: at least HS256's 32 bytes).
const MIN_SECRET: usize = 32;

impl JwtCredential {
    /// The credential's verification key, or the field at fault and why.
    pub fn verify_key(&self) -> Result<VerifyKey, (&'static str, String)> {
        let key = match (&self.secret, &self.public_key) {
            (Some(_), Some(_)) => {
                return Err(("public_key", "give either secret or public_key".into()))
            }
            (None, None) => return Err(("secret", "give a secret or a public_key".into())),
            (Some(secret), None) => {
                let key = if self.secret_base64 {
                    DecodingKey::from_base64_secret(secret)
                        .map_err(|_| ("secret", "is not valid base64".to_string()))?
                } else {
                    DecodingKey::from_secret(secret.as_bytes())
                        .map_err(|_| ("secret", "must not be empty".to_string()))?
                };
                if key.try_get_as_bytes().map_or(0, <[u8]>::len) < MIN_SECRET {
                    return Err(("secret", format!("must be at least {MIN_SECRET} bytes")));
                }
                key
            }
            (None, Some(pem)) => {
                if pem.contains("PRIVATE KEY") {
                    return Err(("public_key", "is a private key; give the public key".into()));
                }
                keys::public_key_from_pem(pem.as_bytes()).map_err(|m| ("public_key", m))?
            }
        };
        Ok(VerifyKey {
            kid: None,
            alg: None,
            key,
        })
    }

    /// Every problem of the credential at `at` (`consumers[2].credentials.jwt-auth`).
    pub fn check(&self, at: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.key.is_empty() {
            errors.push(FieldError::new(format!("{at}.key"), "must not be empty"));
        }
        if let Err((field, message)) = self.verify_key() {
            errors.push(FieldError::new(format!("{at}.{field}"), message));
        }
        errors
    }
}

/// The consumers' credentials by key: whose each is, and the key it verifies with.
pub type ByKey = HashMap<Box<str>, (Arc<Consumer>, KeySet)>;

/// Collects the consumers' jwt-auth credentials; a key used by two consumers is an error at the
/// second's.
pub fn by_key(consumers: &Consumers) -> Result<ByKey, Vec<FieldError>> {
    let mut found = ByKey::new();
    let mut errors = Vec::new();
    for consumer in consumers.iter() {
        let Some(credential) =
            consumer.credential::<JwtCredential>(<super::JwtAuth as crate::policy::Policy>::NAME)
        else {
            continue;
        };
        let at = format!("consumers[{}].credentials.jwt-auth.key", consumer.index);
        if let Some((other, _)) = found.get(credential.key.as_str()) {
            errors.push(FieldError::new(
                at,
                format!("already the key of consumer {:?}", other.id),
            ));
            continue;
        }
        // `check` already refused a credential without a usable key.
        if let Ok(key) = credential.verify_key() {
            found.insert(
                credential.key.as_str().into(),
                (consumer.clone(), KeySet::new(vec![key])),
            );
        }
    }
    if errors.is_empty() {
        Ok(found)
    } else {
        Err(errors)
    }
}
