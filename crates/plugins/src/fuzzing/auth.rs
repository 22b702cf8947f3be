//! Properties of credentials: bearer tokens through a built `jwt-auth`, `Authorization: Basic` through
//! a built `basic-auth`, JWKS documents.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm as Argon2Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use floodgate_config::parse_yaml;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use jsonwebtoken::{Algorithm, AlgorithmFamily};
use ring::{hmac, signature};
use serde_json::{json, Map, Value};

use crate::chain::Chain;
use crate::context::RequestCtx;
use crate::heads::RequestHead;
use crate::plugins::basic_auth::{basic_credentials, Presented};
use crate::plugins::jwt_auth::{crypto, keys::KeySet};
use crate::{build_plugins, Answer, StateStore};

/// The `HS256` secret of the `jwt-auth` instance; the committed corpus holds tokens signed with it.
const JWT_SECRET: &str = "fuzzing-secret-of-at-least-32-bytes!";

/// The `key` of a consumer's own jwt-auth credential, named by a token's `iss`, and its secret.
const PARTNER_KEY: &str = "partner-key";
const PARTNER_SECRET: &str = "partner-secret-of-at-least-32-bytes!";

/// The P-256 public key of its `ES256` tokens (`tests/fixtures/jwt_auth/ec256_public.pem`, whose
/// private key signed the corpus's `ES256` tokens).
const ES256_PUBLIC_PEM: &str = include_str!("../../tests/fixtures/jwt_auth/ec256_public.pem");

/// The claim `jwt-auth` forwards, and the field it goes in.
const FORWARDED: &str = "x-jwt-sub";

/// A route carrying one plugin with `plugin` as its configuration, built as a snapshot builds it.
fn chain(name: &str, plugin: Value, consumers: Value) -> Arc<Chain> {
    let mut config = parse_yaml(
        r#"
listeners: [{ name: l, address: "127.0.0.1:1" }]
upstreams: [{ id: u, targets: [{ address: "127.0.0.1:2" }] }]
routes: [{ id: r, paths: ["/*"], upstream: u }]
"#,
    )
    .expect("the base configuration");
    std::sync::Arc::make_mut(&mut config.routes[0])
        .plugins
        .insert(name.to_string(), plugin);
    config.consumers = serde_json::from_value(consumers).expect("the consumers");
    let set = build_plugins(&config, &StateStore::new(), None, &Arc::default())
        .unwrap_or_else(|e| panic!("the {name} configuration: {e:?}"));
    set.routes[0].clone().expect("the route's chain")
}

/// Runs a `GET /` with `headers` through the `request` phase of `chain`.
fn request(chain: &Arc<Chain>, headers: &mut HeaderMap) -> (Option<Answer>, Box<RequestCtx>) {
    let uri = Uri::from_static("/");
    let mut ctx = chain.start(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        HeaderValue::from_static("fuzz"),
        0,
        false,
        "/",
    );
    let answer = chain.request(
        &mut RequestHead {
            method: &Method::GET,
            uri: &uri,
            headers,
        },
        &mut ctx,
    );
    (answer, ctx)
}

fn assert_401(answer: &Answer) {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.headers.contains_key(header::WWW_AUTHENTICATE));
}

/// Bearer tokens: the input is the whole `Authorization` value, sent to a `jwt-auth` that accepts
/// `HS256` with a secret and `ES256` with a public key and forwards `sub`. Nothing panics; anything
/// refused is the one 401; anything accepted is a token an independent check (signature by `ring`
/// over the token's own bytes with the key its `alg` names, then an `exp` not passed) accepts, so the
/// fuzzer cannot make a token the keys did not sign; the forwarded `sub` is the token's, never the
/// client's own field.
pub fn jwt_token(data: &[u8]) {
    static CHAIN: OnceLock<Arc<Chain>> = OnceLock::new();
    let chain = CHAIN.get_or_init(|| {
        chain(
            "jwt-auth",
            json!({
                "algorithms": ["HS256", "ES256"],
                "secret": JWT_SECRET,
                "public_key": ES256_PUBLIC_PEM,
                "forward_claims": { "sub": FORWARDED },
            }),
            json!([{ "id": "partner", "credentials": { "jwt-auth": { "key": PARTNER_KEY, "secret": PARTNER_SECRET } } }]),
        )
    });
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, value);
    headers.insert(
        HeaderName::from_static(FORWARDED),
        HeaderValue::from_static("spoofed"),
    );
    let (answer, ctx) = request(chain, &mut headers);
    if let Some(answer) = answer {
        assert_401(&answer);
        return;
    }
    let Some(claims) = reference_jwt(data) else {
        panic!("a token no key signed was accepted");
    };
    let names_partner = claims.get("iss").and_then(Value::as_str) == Some(PARTNER_KEY);
    assert_eq!(
        ctx.consumer_id().map(|id| &**id),
        names_partner.then_some("partner"),
        "the consumer is the credential's the token names, and only that"
    );
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .and_then(|s| HeaderValue::from_str(s).ok());
    let forwarded = headers.get(FORWARDED);
    assert_ne!(forwarded, Some(&HeaderValue::from_static("spoofed")));
    if let Some(sub) = sub {
        assert_eq!(forwarded, Some(&sub), "the token's sub goes on");
    }
}

/// The claims of a `Bearer` token in `value` that is signed by the fuzzing keys and not expired
/// (RFC 6750 §2.1, RFC 7515 §5.2, RFC 7519 §4.1.4).
fn reference_jwt(value: &[u8]) -> Option<Map<String, Value>> {
    let value = std::str::from_utf8(value).ok()?.trim_matches([' ', '\t']);
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim_matches([' ', '\t']);
    let parts: Vec<&str> = token.split('.').collect();
    let [head, payload, signature] = parts[..] else {
        return None;
    };
    let head: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(head).ok()?).ok()?;
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    let signed = &token[..token.len() - parts[2].len() - 1];
    let claims: Map<String, Value> =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    // A token naming the consumer's credential is signed by its secret, and by nothing else.
    let names_partner = claims.get("iss").and_then(Value::as_str) == Some(PARTNER_KEY);
    let secret = if names_partner {
        PARTNER_SECRET
    } else {
        JWT_SECRET
    };
    match head.get("alg")?.as_str()? {
        "HS256" => hmac::verify(
            &hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
            signed.as_bytes(),
            &signature,
        )
        .ok()?,
        "ES256" if !names_partner => {
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, es256_point())
                .verify(signed.as_bytes(), &signature)
                .ok()?
        }
        _ => return None,
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let exp = claims.get("exp")?.as_f64()?;
    (exp >= now as f64).then_some(claims)
}

/// The uncompressed point of the `ES256` key: the last 65 bytes of its P-256 SubjectPublicKeyInfo.
fn es256_point() -> &'static [u8] {
    static POINT: OnceLock<Vec<u8>> = OnceLock::new();
    POINT.get_or_init(|| {
        let body: String = ES256_PUBLIC_PEM
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let der = STANDARD.decode(body).expect("the PEM's base64");
        assert_eq!(der.len(), 91, "a P-256 SubjectPublicKeyInfo");
        der[26..].to_vec()
    })
}

/// The users of the `basic-auth` instance: consumer id, username, password.
const BASIC_USERS: [(&str, &str, &str); 2] =
    [("alice", "alice", "wonderland"), ("bob", "bob", "builder")];

/// `Authorization: Basic`: the input is the field's value. The parser never panics and what it reads
/// is a pair split at its first `:`; through a built `basic-auth` a request passes exactly when the
/// value is `Basic` and the base64 (RFC 4648 §4, padding optional, bits canonical) of a user's
/// `username:password`, naming that user's consumer; anything else is the 401 with the challenge.
pub fn basic_authorization(data: &[u8]) {
    match basic_credentials(data) {
        Presented::Pair { decoded, colon } => {
            assert_eq!(decoded.iter().position(|&b| b == b':'), Some(colon));
            assert_eq!(reference_basic(data).as_deref(), Some(&decoded[..]));
        }
        Presented::Malformed | Presented::Missing => {
            assert_eq!(reference_basic(data).filter(|d| d.contains(&b':')), None);
        }
    }

    static CHAIN: OnceLock<Arc<Chain>> = OnceLock::new();
    let chain = CHAIN.get_or_init(|| {
        // The smallest Argon2id cost: each refused attempt pays one verification.
        let params = Params::new(8, 1, 1, None).expect("Argon2 parameters");
        let argon2 = Argon2::new(Argon2Algorithm::Argon2id, Version::V0x13, params);
        let salt = SaltString::encode_b64(b"fuzzing-salt-16b").expect("a salt");
        let consumers: Vec<Value> = BASIC_USERS
            .iter()
            .map(|(id, username, password)| {
                let hash = argon2
                    .hash_password(password.as_bytes(), &salt)
                    .expect("a hash")
                    .to_string();
                json!({"id": id, "credentials": {"basic-auth": {"username": username, "password_hash": hash}}})
            })
            .collect();
        chain(
            "basic-auth",
            json!({"hide_credentials": true}),
            Value::Array(consumers),
        )
    });
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, value);
    let (answer, ctx) = request(chain, &mut headers);
    let want = reference_basic(data).and_then(|pair| {
        BASIC_USERS
            .iter()
            .find(|(_, user, password)| pair == format!("{user}:{password}").as_bytes())
    });
    match (answer, want) {
        (None, Some((id, _, _))) => {
            assert_eq!(ctx.consumer_id().map(|c| &**c), Some(*id));
            assert!(!headers.contains_key(header::AUTHORIZATION), "hidden");
        }
        (Some(answer), None) => assert_401(&answer),
        (None, None) => panic!("wrong credentials passed"),
        (Some(answer), Some(_)) => panic!("the right credentials were refused: {}", answer.reason),
    }
}

/// The decoded credentials of `Basic <base64>` (RFC 7617 §2; the scheme is case-insensitive, the
/// base64 may leave out its padding or some of it, but its bits must be canonical).
fn reference_basic(value: &[u8]) -> Option<Vec<u8>> {
    let space = value.iter().position(|&b| b == b' ')?;
    if !value[..space].eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let encoded = value[space + 1..].trim_ascii();
    let padding = encoded.iter().rev().take_while(|&&b| b == b'=').count();
    let body = &encoded[..encoded.len() - padding];
    // Padding may be left out, wholly or in part, but never runs past the last quantum of four.
    if padding > 0 && (body.len().is_multiple_of(4) || body.len() % 4 + padding > 4) {
        return None;
    }
    if body.is_empty() || body.len() % 4 == 1 || encoded.len() > 4096 {
        return None;
    }
    let mut out = Vec::new();
    let mut bits = 0u32;
    let mut count = 0;
    for &b in body {
        let sextet = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(sextet);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    // Canonical: the bits left over are zero.
    (bits == 0).then_some(out)
}

/// JWKS documents (what a `jwks_url` serves): parsing never panics; a document is usable only when it
/// is JSON with a `keys` array, and a key it yields for an algorithm is always of that algorithm's
/// family (an RSA or EC public key is never offered as an HMAC secret).
pub fn jwks_document(data: &[u8]) {
    crypto::install();
    let Ok(set) = KeySet::from_jwks(data) else {
        return;
    };
    let document: Value = serde_json::from_slice(data).expect("a usable document is JSON");
    assert!(document
        .get("keys")
        .and_then(Value::as_array)
        .is_some_and(|keys| !keys.is_empty()));
    for alg in [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ] {
        for key in set.candidates(alg, None) {
            assert_eq!(key.family(), alg.family(), "a key offered for {alg:?}");
            assert_ne!(
                key.family(),
                AlgorithmFamily::Hmac,
                "a JWKS never holds secrets"
            );
        }
    }
}
