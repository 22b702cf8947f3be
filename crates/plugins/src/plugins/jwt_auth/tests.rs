//! jwt-auth through a built chain: each algorithm family, the `none` and algorithm-confusion attacks,
//! time and issuer/audience claims, the consumer, forwarded claims, hidden credentials and the cache.

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use floodgate_config::{parse_yaml, FieldError};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::keys::KeySet;
use crate::answer::Answer;
use crate::build::build_plugins;
use crate::chain::Chain;
use crate::context::RequestCtx;
use crate::heads::{RequestHead, UpstreamRequest};
use crate::state::StateStore;
use crate::stats::PluginStats;

thread_local! {
    static VERIFICATIONS: Cell<u64> = const { Cell::new(0) };
}

/// Counts signature verifications on the calling thread (each test runs on its own).
pub fn count_verification() {
    VERIFICATIONS.with(|c| c.set(c.get() + 1));
}

fn verifications() -> u64 {
    VERIFICATIONS.with(Cell::get)
}

const SECRET: &str = "a-secret-of-at-least-thirty-two-bytes!";

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/jwt_auth/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn now() -> i64 {
    i64::try_from(super::unix_now()).unwrap()
}

/// A chain with one route whose only plugin is jwt-auth configured as `plugin`.
fn chain(plugin: Value) -> Result<Arc<Chain>, Vec<FieldError>> {
    chain_with(plugin, "")
}

fn chain_with(plugin: Value, consumers: &str) -> Result<Arc<Chain>, Vec<FieldError>> {
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

struct Outcome {
    answer: Option<Answer>,
    headers: HeaderMap,
    ctx: Box<RequestCtx>,
}

fn request(chain: &Arc<Chain>, uri: &str, fields: &[(&str, &str)]) -> Outcome {
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

fn bearer(chain: &Arc<Chain>, token: &str) -> Outcome {
    request(
        chain,
        "/x",
        &[("authorization", &format!("Bearer {token}"))],
    )
}

/// The metric reason of a refusal, after checking it is the one 401 every refused token gets.
fn refused(outcome: Outcome) -> &'static str {
    let answer = outcome.answer.expect("refused");
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.error, Some("invalid token"));
    assert_eq!(
        answer.headers.get("www-authenticate").unwrap(),
        "Bearer realm=\"floodgate\", error=\"invalid_token\""
    );
    answer.reason
}

fn accepted(outcome: &Outcome) {
    if let Some(answer) = &outcome.answer {
        panic!("refused: {}", answer.reason);
    }
}

fn hs(secret: &[u8]) -> EncodingKey {
    EncodingKey::from_secret(secret).unwrap()
}

fn token(alg: Algorithm, key: &EncodingKey, claims: Value) -> String {
    encode(&Header::new(alg), &claims, key).unwrap()
}

fn valid_claims() -> Value {
    json!({ "sub": "alice", "exp": now() + 600 })
}

fn hmac_config(alg: &str) -> Value {
    json!({ "algorithms": [alg], "secret": SECRET })
}

#[test]
fn each_hmac_algorithm_accepts_its_secret_and_refuses_another() {
    super::crypto::install();
    for (name, alg) in [
        ("HS256", Algorithm::HS256),
        ("HS384", Algorithm::HS384),
        ("HS512", Algorithm::HS512),
    ] {
        let chain = chain(hmac_config(name)).unwrap();
        let good = hs(SECRET.as_bytes());
        accepted(&bearer(&chain, &token(alg, &good, valid_claims())));
        let other = hs(b"another-secret-of-thirty-two-bytes-long");
        assert_eq!(
            refused(bearer(&chain, &token(alg, &other, valid_claims()))),
            "invalid_signature"
        );
    }
}

#[test]
fn each_rsa_algorithm_accepts_its_key_and_refuses_another() {
    super::crypto::install();
    let signer = EncodingKey::from_rsa_pem(fixture("rsa_private.pem").as_bytes()).unwrap();
    let stranger = EncodingKey::from_rsa_pem(fixture("rsa2_private.pem").as_bytes()).unwrap();
    for alg in [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ] {
        let chain = chain(json!({
            "algorithms": [format!("{alg:?}")],
            "public_key": fixture("rsa_public.pem"),
        }))
        .unwrap();
        accepted(&bearer(&chain, &token(alg, &signer, valid_claims())));
        assert_eq!(
            refused(bearer(&chain, &token(alg, &stranger, valid_claims()))),
            "invalid_signature"
        );
    }
}

#[test]
fn ecdsa_and_eddsa_accept_their_keys() {
    super::crypto::install();
    for (alg, private, public, other) in [
        (
            Algorithm::ES256,
            "ec256_private.pem",
            "ec256_public.pem",
            "ec384_public.pem",
        ),
        (
            Algorithm::ES384,
            "ec384_private.pem",
            "ec384_public.pem",
            "ec256_public.pem",
        ),
        (
            Algorithm::EdDSA,
            "ed25519_private.pem",
            "ed25519_public.pem",
            "ec256_public.pem",
        ),
    ] {
        let signer = if alg == Algorithm::EdDSA {
            EncodingKey::from_ed_pem(fixture(private).as_bytes()).unwrap()
        } else {
            EncodingKey::from_ec_pem(fixture(private).as_bytes()).unwrap()
        };
        let jwt = token(alg, &signer, valid_claims());
        let right =
            chain(json!({ "algorithms": [format!("{alg:?}")], "public_key": fixture(public) }))
                .unwrap();
        accepted(&bearer(&right, &jwt));
        // A key of another curve or type does not check it. (ES384 with a P-256 key: same family,
        // wrong curve; EdDSA with an EC key: the configuration itself is refused.)
        match chain(json!({ "algorithms": [format!("{alg:?}")], "public_key": fixture(other) })) {
            Ok(wrong) => assert_eq!(refused(bearer(&wrong, &jwt)), "invalid_signature"),
            Err(errors) => assert!(
                errors[0].message.contains("needs a public key"),
                "{errors:?}"
            ),
        }
    }
}

#[test]
fn the_file_form_of_a_public_key_works() {
    super::crypto::install();
    let path = format!(
        "{}/tests/fixtures/jwt_auth/rsa_public.pem",
        env!("CARGO_MANIFEST_DIR")
    );
    let chain = chain(json!({ "algorithms": ["RS256"], "public_key_file": path })).unwrap();
    let signer = EncodingKey::from_rsa_pem(fixture("rsa_private.pem").as_bytes()).unwrap();
    accepted(&bearer(
        &chain,
        &token(Algorithm::RS256, &signer, valid_claims()),
    ));
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn an_unsigned_token_is_refused_whatever_the_configuration() {
    super::crypto::install();
    let claims = b64(valid_claims().to_string().as_bytes());
    let chain = chain(hmac_config("HS256")).unwrap();
    for alg in ["none", "None", "NONE"] {
        let header = b64(json!({ "alg": alg, "typ": "JWT" }).to_string().as_bytes());
        assert_eq!(
            refused(bearer(&chain, &format!("{header}.{claims}."))),
            "invalid_token"
        );
    }
    let errors = self::chain(json!({ "algorithms": ["none"], "secret": SECRET }))
        .err()
        .unwrap();
    assert_eq!(errors[0].path, "routes[0].plugins.jwt-auth.algorithms[0]");
    assert!(errors[0].message.contains("never accepted"));
}

#[test]
fn an_algorithm_not_listed_is_refused() {
    super::crypto::install();
    let chain =
        chain(json!({ "algorithms": ["RS256"], "public_key": fixture("rsa_public.pem") })).unwrap();
    let signer = EncodingKey::from_rsa_pem(fixture("rsa_private.pem").as_bytes()).unwrap();
    assert_eq!(
        refused(bearer(
            &chain,
            &token(Algorithm::RS512, &signer, valid_claims())
        )),
        "disallowed_algorithm"
    );
}

/// The classic confusion: an HS256 token whose HMAC secret is the RSA public key's PEM text, which
/// anyone has.
fn confused_token() -> String {
    let pem = fixture("rsa_public.pem");
    token(Algorithm::HS256, &hs(pem.as_bytes()), valid_claims())
}

#[test]
fn algorithm_confusion_is_refused_when_hs256_is_not_listed() {
    super::crypto::install();
    let chain =
        chain(json!({ "algorithms": ["RS256"], "public_key": fixture("rsa_public.pem") })).unwrap();
    assert_eq!(
        refused(bearer(&chain, &confused_token())),
        "disallowed_algorithm"
    );
}

#[test]
fn algorithm_confusion_is_refused_when_hs256_is_listed_too() {
    super::crypto::install();
    let chain = chain(json!({
        "algorithms": ["RS256", "HS256"],
        "public_key": fixture("rsa_public.pem"),
        "secret": SECRET,
    }))
    .unwrap();
    // The HMAC key is the configured secret, never the public key's bytes.
    assert_eq!(
        refused(bearer(&chain, &confused_token())),
        "invalid_signature"
    );
    // HS256 with only a public key configured is the attack's shape: refused when loading.
    let errors = self::chain(json!({
        "algorithms": ["RS256", "HS256"],
        "public_key": fixture("rsa_public.pem"),
    }))
    .err()
    .unwrap();
    assert_eq!(errors[0].path, "routes[0].plugins.jwt-auth.algorithms[1]");
    assert_eq!(errors[0].message, "HS256 needs secret");
}

#[test]
fn algorithm_confusion_is_refused_with_jwks_keys() {
    super::crypto::install();
    let private = EncodingKey::from_rsa_pem(fixture("rsa_private.pem").as_bytes()).unwrap();
    let mut jwk = Jwk::from_encoding_key(&private, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some("k1".into());
    let set = KeySet::from_jwks(json!({ "keys": [jwk] }).to_string().as_bytes()).unwrap();
    // An HS256 token naming the RSA key's kid finds no key it may be checked with.
    assert_eq!(set.candidates(Algorithm::HS256, Some("k1")).count(), 0);
    assert_eq!(set.candidates(Algorithm::RS256, Some("k1")).count(), 1);
    assert_eq!(
        set.candidates(Algorithm::RS384, Some("k1")).count(),
        0,
        "the JWK allows RS256 only"
    );
}

#[test]
fn jwks_documents_keep_signing_keys_and_skip_the_rest() {
    super::crypto::install();
    let rsa = EncodingKey::from_rsa_pem(fixture("rsa_private.pem").as_bytes()).unwrap();
    let ec = EncodingKey::from_ec_pem(fixture("ec256_private.pem").as_bytes()).unwrap();
    let mut rsa_jwk =
        serde_json::to_value(Jwk::from_encoding_key(&rsa, Algorithm::RS256).unwrap()).unwrap();
    rsa_jwk["kid"] = json!("rsa");
    let mut ec_jwk =
        serde_json::to_value(Jwk::from_encoding_key(&ec, Algorithm::ES256).unwrap()).unwrap();
    ec_jwk["kid"] = json!("ec");
    let mut enc = rsa_jwk.clone();
    enc["kid"] = json!("enc");
    enc["use"] = json!("enc");
    let unknown = json!({ "kty": "XYZ", "kid": "new" });
    let document = json!({ "keys": [rsa_jwk, ec_jwk, enc, unknown] }).to_string();
    let set = KeySet::from_jwks(document.as_bytes()).unwrap();
    assert!(set.has_kid("rsa") && set.has_kid("ec"));
    assert!(!set.has_kid("enc") && !set.has_kid("new"));
    assert!(KeySet::from_jwks(b"{\"nokeys\":1}").is_err());
    assert!(KeySet::from_jwks(b"<html>").is_err());
}

#[test]
fn exp_and_nbf_are_checked_with_the_leeway() {
    super::crypto::install();
    let key = hs(SECRET.as_bytes());
    let expired = token(Algorithm::HS256, &key, json!({ "exp": now() - 30 }));
    let early = token(
        Algorithm::HS256,
        &key,
        json!({ "exp": now() + 600, "nbf": now() + 30 }),
    );
    let strict = chain(hmac_config("HS256")).unwrap();
    assert_eq!(refused(bearer(&strict, &expired)), "expired_token");
    assert_eq!(refused(bearer(&strict, &early)), "token_not_yet_valid");
    let lenient =
        chain(json!({ "algorithms": ["HS256"], "secret": SECRET, "leeway": "60s" })).unwrap();
    accepted(&bearer(&lenient, &expired));
    accepted(&bearer(&lenient, &early));
}

#[test]
fn exp_is_required_unless_the_required_claims_say_otherwise() {
    super::crypto::install();
    let key = hs(SECRET.as_bytes());
    let forever = token(Algorithm::HS256, &key, json!({ "sub": "alice" }));
    assert_eq!(
        refused(bearer(&chain(hmac_config("HS256")).unwrap(), &forever)),
        "invalid_claims"
    );
    let open =
        chain(json!({ "algorithms": ["HS256"], "secret": SECRET, "required_claims": [] })).unwrap();
    accepted(&bearer(&open, &forever));
    let scoped = chain(
        json!({ "algorithms": ["HS256"], "secret": SECRET, "required_claims": ["exp", "scope"] }),
    )
    .unwrap();
    assert_eq!(
        refused(bearer(
            &scoped,
            &token(Algorithm::HS256, &key, valid_claims())
        )),
        "invalid_claims"
    );
}

#[test]
fn issuer_and_audience_must_match_and_be_present() {
    super::crypto::install();
    let key = hs(SECRET.as_bytes());
    let chain = chain(json!({
        "algorithms": ["HS256"],
        "secret": SECRET,
        "issuer": "https://idp.example",
        "audience": ["api", "admin"],
    }))
    .unwrap();
    let exp = now() + 600;
    let with = |claims: Value| token(Algorithm::HS256, &key, claims);
    accepted(&bearer(
        &chain,
        &with(json!({ "exp": exp, "iss": "https://idp.example", "aud": "api" })),
    ));
    accepted(&bearer(
        &chain,
        &with(json!({ "exp": exp, "iss": "https://idp.example", "aud": ["x", "admin"] })),
    ));
    for claims in [
        json!({ "exp": exp, "iss": "https://evil.example", "aud": "api" }),
        json!({ "exp": exp, "aud": "api" }),
        json!({ "exp": exp, "iss": "https://idp.example", "aud": "other" }),
        json!({ "exp": exp, "iss": "https://idp.example" }),
    ] {
        assert_eq!(
            refused(bearer(&chain, &with(claims.clone()))),
            "invalid_claims",
            "{claims}"
        );
    }
}

#[test]
fn a_missing_token_gets_the_challenge_without_an_error_code() {
    let chain = chain(hmac_config("HS256")).unwrap();
    for fields in [&[][..], &[("authorization", "Basic dXNlcjpwdw==")][..]] {
        let answer = request(&chain, "/x", fields).answer.expect("refused");
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.error, Some("missing bearer token"));
        assert_eq!(answer.reason, "missing_token");
        assert_eq!(
            answer.headers.get("www-authenticate").unwrap(),
            "Bearer realm=\"floodgate\""
        );
    }
    assert_eq!(refused(bearer(&chain, "not-a-jwt")), "invalid_token");
}

#[test]
fn the_consumer_claim_names_the_consumer() {
    super::crypto::install();
    let consumers = "consumers: [{ id: alice }, { id: bob }]";
    let key = hs(SECRET.as_bytes());
    let exp = now() + 600;
    let optional = chain_with(
        json!({ "algorithms": ["HS256"], "secret": SECRET, "consumer_claim": "sub" }),
        consumers,
    )
    .unwrap();
    let alice = bearer(
        &optional,
        &token(
            Algorithm::HS256,
            &key,
            json!({ "sub": "alice", "exp": exp }),
        ),
    );
    accepted(&alice);
    assert_eq!(alice.ctx.consumer_id().map(|id| &**id), Some("alice"));
    let stranger = bearer(
        &optional,
        &token(
            Algorithm::HS256,
            &key,
            json!({ "sub": "carol", "exp": exp }),
        ),
    );
    accepted(&stranger);
    assert!(stranger.ctx.consumer.is_none());

    let required = chain_with(
        json!({ "algorithms": ["HS256"], "secret": SECRET, "consumer_claim": "sub", "consumer_required": true }),
        consumers,
    )
    .unwrap();
    let carol = token(
        Algorithm::HS256,
        &key,
        json!({ "sub": "carol", "exp": exp }),
    );
    assert_eq!(refused(bearer(&required, &carol)), "unknown_consumer");
    let anonymous = token(Algorithm::HS256, &key, json!({ "exp": exp }));
    assert_eq!(refused(bearer(&required, &anonymous)), "unknown_consumer");
}

#[test]
fn forwarded_claims_replace_what_the_client_sent() {
    super::crypto::install();
    let chain = chain(json!({
        "algorithms": ["HS256"],
        "secret": SECRET,
        "forward_claims": {
            "sub": "x-user", "roles": "x-roles", "tenant": "x-tenant", "name": "x-name", "note": "x-note",
        },
    }))
    .unwrap();
    let key = hs(SECRET.as_bytes());
    let jwt = token(
        Algorithm::HS256,
        &key,
        json!({
            "sub": "alice", "roles": ["a", "b"], "name": "Zoë", "note": "a\r\nx-admin: 1",
            "exp": now() + 600,
        }),
    );
    let outcome = request(
        &chain,
        "/x",
        &[
            ("authorization", &format!("Bearer {jwt}")),
            ("x-user", "mallory"),
            ("x-tenant", "spoofed"),
        ],
    );
    accepted(&outcome);
    assert_eq!(outcome.headers.get("x-user").unwrap(), "alice");
    assert_eq!(outcome.headers.get_all("x-user").iter().count(), 1);
    assert_eq!(outcome.headers.get("x-roles").unwrap(), r#"["a","b"]"#);
    assert_eq!(
        outcome.headers.get("x-name").unwrap().as_bytes(),
        "Zoë".as_bytes()
    );
    assert!(
        outcome.headers.get("x-note").is_none(),
        "a claim with a line break is not forwarded"
    );
    assert!(
        outcome.headers.get("x-tenant").is_none(),
        "a claim the token lacks: no field at all"
    );
    assert!(
        outcome.headers.get("authorization").is_some(),
        "kept unless hide_credentials"
    );
}

#[test]
fn hidden_credentials_leave_no_token_upstream() {
    super::crypto::install();
    let chain = chain(json!({
        "algorithms": ["HS256"],
        "secret": SECRET,
        "cookie": "jwt",
        "query": "access_token",
        "hide_credentials": true,
    }))
    .unwrap();
    let jwt = token(Algorithm::HS256, &hs(SECRET.as_bytes()), valid_claims());
    let by_header = request(
        &chain,
        "/x",
        &[
            ("authorization", &format!("Bearer {jwt}")),
            ("cookie", "a=1"),
        ],
    );
    accepted(&by_header);
    assert!(by_header.headers.get("authorization").is_none());
    assert_eq!(by_header.headers.get("cookie").unwrap(), "a=1");

    let by_cookie = request(&chain, "/x", &[("cookie", &format!("a=1; jwt={jwt}"))]);
    accepted(&by_cookie);
    assert_eq!(by_cookie.headers.get("cookie").unwrap(), "a=1");

    let mut by_query = request(&chain, &format!("/x?b=2&access_token={jwt}"), &[]);
    accepted(&by_query);
    let mut path = PathAndQuery::from_maybe_shared(format!("/x?b=2&access_token={jwt}")).unwrap();
    let mut host = HeaderValue::from_static("up");
    chain.upstream_request(
        &mut UpstreamRequest {
            method: &Method::GET,
            headers: &mut by_query.headers,
            path: &mut path,
            host: &mut host,
        },
        &by_query.ctx,
    );
    assert_eq!(path.as_str(), "/x?b=2");
}

#[test]
fn a_cached_token_is_not_verified_again() {
    super::crypto::install();
    let chain = chain(json!({
        "algorithms": ["HS256"],
        "secret": SECRET,
        "forward_claims": { "sub": "x-user" },
    }))
    .unwrap();
    let jwt = token(Algorithm::HS256, &hs(SECRET.as_bytes()), valid_claims());
    let before = verifications();
    let first = bearer(&chain, &jwt);
    accepted(&first);
    let second = bearer(&chain, &jwt);
    accepted(&second);
    assert_eq!(verifications() - before, 1);
    assert_eq!(
        second.headers.get("x-user").unwrap(),
        "alice",
        "what the token grants is cached too"
    );

    // Another instance (another configuration) does not share the entry, and a refused token is
    // never cached.
    let other = self::chain(hmac_config("HS256")).unwrap();
    accepted(&bearer(&other, &jwt));
    assert_eq!(verifications() - before, 2);
    let bad = format!("{jwt}x");
    refused(bearer(&chain, &bad));
    refused(bearer(&chain, &bad));
    assert_eq!(verifications() - before, 4);
}

#[test]
fn configuration_mistakes_name_their_field() {
    let errors = chain(json!({ "algorithms": ["HS256"], "secret": "short" }))
        .err()
        .unwrap();
    assert_eq!(errors[0].path, "routes[0].plugins.jwt-auth.secret");
    let errors =
        chain(json!({ "algorithms": ["RS256"], "public_key": fixture("rsa_private.pem") }))
            .err()
            .unwrap();
    assert_eq!(errors[0].path, "routes[0].plugins.jwt-auth.public_key");
    assert_eq!(errors[0].message, "is a private key; give the public key");
    let errors = chain(json!({ "algorithms": ["RS256"] })).err().unwrap();
    assert!(errors[0].message.contains("give a key"));
    let errors = chain(json!({ "algorithms": ["RS256"], "jwks_url": "ftp://idp/keys" }))
        .err()
        .unwrap();
    assert_eq!(errors[0].path, "routes[0].plugins.jwt-auth.jwks_url");
    let errors = chain(json!({ "algorithms": ["HS256"], "secret": SECRET, "forward_claims": { "sub": "bad header" } }))
        .err()
        .unwrap();
    assert_eq!(
        errors[0].path,
        "routes[0].plugins.jwt-auth.forward_claims.sub"
    );
    let errors = chain(json!({ "algorithms": ["HS256"], "secret": SECRET, "colour": "red" }))
        .err()
        .unwrap();
    assert!(errors[0].message.contains("unknown field"), "{errors:?}");
}
