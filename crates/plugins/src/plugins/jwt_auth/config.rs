//! `plugins.jwt-auth`: the configuration and its checks.

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use floodgate_config::{ByteSize, FieldError, HumanDuration};
use http::{header, HeaderName, Uri};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde::Deserialize;

use super::jwks::{self, JwksSource};
use super::keys::{self, KeySet, VerifyKey};
use super::token::TokenSources;
use crate::build_ctx::BuildCtx;
use crate::query::{ParamName, Separators};

/// `plugins.jwt-auth`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtAuthConfig {
    /// The algorithms a token may be signed with (`HS256`, `HS384`, `HS512`, `RS256`, `RS384`,
    /// `RS512`, `PS256`, `PS384`, `PS512`, `ES256`, `ES384`, `EdDSA`). Required; a token whose
    /// header names another is refused, and `none` is never accepted.
    pub algorithms: Vec<String>,
    /// The shared secret of the `HS*` algorithms (at least 32 bytes).
    #[serde(default)]
    pub secret: Option<String>,
    /// `secret` is base64 (standard alphabet, padded) rather than the bytes themselves. Default `false`.
    #[serde(default)]
    pub secret_base64: bool,
    /// A public key in PEM (RSA, EC P-256/P-384 or Ed25519) for the other algorithms.
    #[serde(default)]
    pub public_key: Option<String>,
    /// A file holding such a PEM public key, read when the configuration is loaded.
    #[serde(default)]
    pub public_key_file: Option<String>,
    /// A JWKS URL (`http` or `https`) whose signing keys are fetched in the background.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// How often the JWKS is fetched again. Default `5m`.
    #[serde(default = "default_refresh")]
    pub jwks_refresh_interval: HumanDuration,
    /// The least time between two early fetches caused by tokens naming an unknown `kid`. Default `10s`.
    #[serde(default = "default_min_refetch")]
    pub jwks_min_refetch_interval: HumanDuration,
    /// The most one JWKS fetch may take. Default `5s`.
    #[serde(default = "default_timeout")]
    pub jwks_timeout: HumanDuration,
    /// The largest JWKS document accepted. Default `256KiB`.
    #[serde(default = "default_max_size")]
    pub jwks_max_size: ByteSize,
    /// Accepted issuers (`iss`): one or a list; when set, a token must carry one of them.
    #[serde(default)]
    pub issuer: Option<OneOrMany>,
    /// Accepted audiences (`aud`): one or a list; when set, a token must name one of them.
    #[serde(default)]
    pub audience: Option<OneOrMany>,
    /// Clock skew allowed when checking `exp` and `nbf`. Default `0s`.
    #[serde(default = "default_leeway")]
    pub leeway: HumanDuration,
    /// Claims a token must carry (any non-null value). Default `[exp]`; `[]` accepts tokens that
    /// never expire.
    #[serde(default = "default_required")]
    pub required_claims: Vec<String>,
    /// The header the token is read from; `Authorization` takes `Bearer <token>`, another header the
    /// token itself. `""` turns headers off. Default `authorization`.
    #[serde(default = "default_header")]
    pub header: String,
    /// A cookie the token is read from when the header has none.
    #[serde(default)]
    pub cookie: Option<String>,
    /// A query parameter the token is read from when neither the header nor the cookie has one.
    #[serde(default)]
    pub query: Option<String>,
    /// What the query is split into parameters on: `"&"`, or `"&;"` for an upstream that also splits
    /// on `;` (old Python `parse_qs`, Perl CGI), so a token after a `;` is read and hidden too.
    /// Default `"&"`.
    #[serde(default = "default_separators")]
    pub query_separators: String,
    /// A claim whose value is a consumer's id (e.g. `sub`), making that consumer the request's.
    #[serde(default)]
    pub consumer_claim: Option<String>,
    /// The claim whose value names a consumer's own credential (`consumers[].credentials.jwt-auth.key`):
    /// such a token is verified with that credential's key and is that consumer's. Default `iss`, as
    /// Kong's `key_claim_name`.
    #[serde(default = "default_key_claim")]
    pub key_claim: String,
    /// Refuse a valid token whose `consumer_claim` names no consumer. Default `false` (the request
    /// goes on without a consumer).
    #[serde(default)]
    pub consumer_required: bool,
    /// Claims forwarded to the upstream: claim name -> header name. A client's own field of that
    /// name is always removed.
    #[serde(default)]
    pub forward_claims: BTreeMap<String, String>,
    /// Remove the token (its header, cookie and query parameter) before forwarding. Default `false`.
    #[serde(default)]
    pub hide_credentials: bool,
}

/// One string or a list of them.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single value.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl OneOrMany {
    fn values(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(v) => vec![v.as_str()],
            OneOrMany::Many(vs) => vs.iter().map(String::as_str).collect(),
        }
    }
}

fn default_refresh() -> HumanDuration {
    HumanDuration::from_secs(300)
}

fn default_min_refetch() -> HumanDuration {
    HumanDuration::from_secs(10)
}

fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(5)
}

fn default_max_size() -> ByteSize {
    ByteSize(256 * 1024)
}

fn default_leeway() -> HumanDuration {
    HumanDuration::from_secs(0)
}

fn default_required() -> Vec<String> {
    vec!["exp".to_string()]
}

fn default_separators() -> String {
    "&".to_string()
}

fn default_key_claim() -> String {
    "iss".to_string()
}

fn default_header() -> String {
    "authorization".to_string()
}

/// A secret shorter than this is refused: RFC 7518 §3.2 asks for at least the hash's size, and
/// HS256's is 32 bytes.
const MIN_SECRET: usize = 32;

/// What the checks built from a configuration.
pub struct Checked {
    pub validations: Vec<(Algorithm, Validation)>,
    pub configured: KeySet,
    pub jwks: Option<JwksSource>,
    pub sources: TokenSources,
    pub forward: Box<[(Box<str>, HeaderName)]>,
}

/// Checks `config`, reporting every problem with its field.
/// `credential_families` are the algorithm families the consumers' own credentials have keys for.
pub fn check(
    config: &JwtAuthConfig,
    cx: &BuildCtx<'_>,
    credential_families: &[AlgorithmFamily],
) -> Result<Checked, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut algorithms = Vec::new();
    if config.algorithms.is_empty() {
        errors.push(cx.error("algorithms", "list at least one algorithm"));
    }
    for (i, name) in config.algorithms.iter().enumerate() {
        match Algorithm::from_str(name) {
            Ok(alg) => algorithms.push(alg),
            Err(_) if name.eq_ignore_ascii_case("none") => errors.push(cx.error(
                &format!("algorithms[{i}]"),
                "unsigned tokens (\"none\") are never accepted",
            )),
            Err(_) => errors.push(cx.error(
                &format!("algorithms[{i}]"),
                format!("unknown algorithm {name:?} (known: HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)"),
            )),
        }
    }

    let mut configured = Vec::new();
    if let Some(secret) = &config.secret {
        let key = if config.secret_base64 {
            DecodingKey::from_base64_secret(secret).map_err(|_| "is not valid base64")
        } else {
            DecodingKey::from_secret(secret.as_bytes()).map_err(|_| "must not be empty")
        };
        match key {
            Ok(key) if key.try_get_as_bytes().map_or(0, <[u8]>::len) >= MIN_SECRET => {
                configured.push(VerifyKey {
                    kid: None,
                    alg: None,
                    key,
                });
            }
            Ok(_) => {
                errors.push(cx.error("secret", format!("must be at least {MIN_SECRET} bytes")))
            }
            Err(message) => errors.push(cx.error("secret", message)),
        }
    }
    let pem = match (&config.public_key, &config.public_key_file) {
        (Some(_), Some(_)) => {
            errors.push(cx.error(
                "public_key_file",
                "give either public_key or public_key_file",
            ));
            None
        }
        (Some(text), None) => Some(("public_key", text.clone().into_bytes())),
        (None, Some(file)) => match std::fs::read(file) {
            Ok(bytes) => Some(("public_key_file", bytes)),
            Err(e) => {
                errors.push(cx.error("public_key_file", format!("{file:?}: {e}")));
                None
            }
        },
        (None, None) => None,
    };
    if let Some((field, bytes)) = pem {
        if String::from_utf8_lossy(&bytes).contains("PRIVATE KEY") {
            errors.push(cx.error(field, "is a private key; give the public key"));
        } else {
            match keys::public_key_from_pem(&bytes) {
                Ok(key) => configured.push(VerifyKey {
                    kid: None,
                    alg: None,
                    key,
                }),
                Err(message) => errors.push(cx.error(field, message)),
            }
        }
    }

    let jwks = config
        .jwks_url
        .as_deref()
        .and_then(|url| match jwks_source(url, config, cx) {
            Ok(source) => Some(source),
            Err(message) => {
                errors.push(cx.error("jwks_url", message));
                None
            }
        });
    if configured.is_empty()
        && config.jwks_url.is_none()
        && credential_families.is_empty()
        && errors.is_empty()
    {
        errors.push(cx.error(
            "",
            "give a key: secret, public_key, public_key_file or jwks_url, or consumers jwt-auth credentials",
        ));
    }
    // Each algorithm needs a key of its family, unless a JWKS may bring one: an algorithm accepted
    // without a matching key is a configuration mistake, and an HS* algorithm with only a public key
    // configured is the shape of the algorithm-confusion attack.
    if config.jwks_url.is_none() && errors.is_empty() {
        for (i, alg) in algorithms.iter().enumerate() {
            if !configured.iter().any(|k| k.key.family() == alg.family())
                && !credential_families.contains(&alg.family())
            {
                let needs = if alg.family() == AlgorithmFamily::Hmac {
                    "secret"
                } else {
                    "a public key of its type"
                };
                errors.push(cx.error(
                    &format!("algorithms[{i}]"),
                    format!("{alg:?} needs {needs}"),
                ));
            }
        }
    }

    let header = if config.header.is_empty() {
        None
    } else {
        match HeaderName::from_bytes(config.header.as_bytes()) {
            Ok(name) => Some(name),
            Err(_) => {
                errors.push(cx.error(
                    "header",
                    format!("{:?} is not a header name", config.header),
                ));
                None
            }
        }
    };
    if header.is_none() && config.cookie.is_none() && config.query.is_none() && errors.is_empty() {
        errors.push(cx.error("header", "give at least one of header, cookie or query"));
    }
    let separators = Separators::parse(&config.query_separators).unwrap_or_else(|e| {
        errors.push(cx.error("query_separators", e));
        Separators::default()
    });
    for (field, value) in [("cookie", &config.cookie), ("query", &config.query)] {
        match value.as_deref() {
            Some("") => errors.push(cx.error(field, "must not be empty")),
            Some(name) => {
                if let Err(e) = ParamName::configured(name, separators) {
                    errors.push(cx.error(field, e));
                }
            }
            None => {}
        }
    }

    let mut forward = Vec::new();
    for (claim, name) in &config.forward_claims {
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(name) if name == header::HOST || Some(&name) == header.as_ref() => {
                errors.push(cx.error(
                    &format!("forward_claims.{claim}"),
                    format!("{name} cannot carry a claim"),
                ))
            }
            Ok(name) => forward.push((claim.as_str().into(), name)),
            Err(_) => errors.push(cx.error(
                &format!("forward_claims.{claim}"),
                format!("{name:?} is not a header name"),
            )),
        }
    }
    for (field, values) in [("issuer", &config.issuer), ("audience", &config.audience)] {
        if values.as_ref().is_some_and(|v| v.values().is_empty()) {
            errors.push(cx.error(field, "list at least one value, or leave it out"));
        }
    }
    if config.jwks_refresh_interval.get().is_zero() {
        errors.push(cx.error("jwks_refresh_interval", "must be more than 0s"));
    }
    if config.key_claim.is_empty() {
        errors.push(cx.error("key_claim", "must not be empty"));
    }
    if config.consumer_required && config.consumer_claim.is_none() {
        errors.push(cx.error("consumer_required", "needs consumer_claim"));
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    let validations = algorithms
        .iter()
        .map(|alg| (*alg, validation(*alg, config)))
        .collect();
    Ok(Checked {
        validations,
        configured: KeySet::new(configured),
        jwks,
        sources: TokenSources::new(
            header,
            config.cookie.as_deref(),
            config.query.as_deref(),
            separators,
        ),
        forward: forward.into_boxed_slice(),
    })
}

/// The claim checks of tokens signed with `alg`: one algorithm per validation, as jsonwebtoken checks
/// every listed algorithm against the key's family.
fn validation(alg: Algorithm, config: &JwtAuthConfig) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = config.leeway.get().as_secs();
    v.validate_exp = true;
    v.validate_nbf = true;
    // Presence of the configured `required_claims` is checked by the plugin; `iss` and `aud` must be
    // present when they are checked, or a token without them would pass.
    let mut required = HashSet::new();
    if let Some(issuer) = &config.issuer {
        v.set_issuer(&issuer.values());
        required.insert("iss".to_string());
    }
    match &config.audience {
        Some(audience) => {
            v.set_audience(&audience.values());
            required.insert("aud".to_string());
        }
        None => v.validate_aud = false,
    }
    v.required_spec_claims = required;
    v
}

fn jwks_source(url: &str, config: &JwtAuthConfig, cx: &BuildCtx<'_>) -> Result<JwksSource, String> {
    let uri: Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
    if uri.host().is_none() {
        return Err(format!("{url:?} has no host"));
    }
    let tls = match uri.scheme_str() {
        Some("http") => None,
        // Root certificates are read only when the plugin will fetch, not when only validating.
        Some("https") if cx.runtime.is_some() => Some(jwks::tls_config()?),
        Some("https") => None,
        _ => return Err(format!("{url:?} is not an http or https URL")),
    };
    Ok(JwksSource {
        uri,
        tls,
        timeout: config.jwks_timeout.get().max(Duration::from_millis(1)),
        max_size: usize::try_from(config.jwks_max_size.get()).unwrap_or(usize::MAX),
    })
}
