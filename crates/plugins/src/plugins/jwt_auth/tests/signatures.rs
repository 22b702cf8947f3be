//! Signatures: each algorithm family, the `none` and algorithm-confusion attacks, JWKS documents.

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;

use super::*;
use crate::plugins::jwt_auth::keys::KeySet;

#[test]
fn each_hmac_algorithm_accepts_its_secret_and_refuses_another() {
    install();
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
    install();
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
    install();
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
    install();
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
    install();
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
    install();
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
    install();
    let chain =
        chain(json!({ "algorithms": ["RS256"], "public_key": fixture("rsa_public.pem") })).unwrap();
    assert_eq!(
        refused(bearer(&chain, &confused_token())),
        "disallowed_algorithm"
    );
}

#[test]
fn algorithm_confusion_is_refused_when_hs256_is_listed_too() {
    install();
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
    install();
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
    install();
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
    let (enc_only, unknown_only) = (enc.clone(), unknown.clone());
    let document = json!({ "keys": [rsa_jwk, ec_jwk, enc, unknown] }).to_string();
    let set = KeySet::from_jwks(document.as_bytes()).unwrap();
    assert!(set.has_kid("rsa") && set.has_kid("ec"));
    assert!(!set.has_kid("enc") && !set.has_kid("new"));
    assert!(KeySet::from_jwks(b"{\"nokeys\":1}").is_err());
    let only_unusable = json!({ "keys": [enc_only, unknown_only] }).to_string();
    assert!(
        KeySet::from_jwks(only_unusable.as_bytes()).is_err(),
        "no usable key: a failed fetch"
    );
    assert!(KeySet::from_jwks(b"<html>").is_err());
}

#[test]
fn a_jwks_never_supplies_an_hmac_secret() {
    install();
    // Published where anyone can read it, an `oct` key would let anyone sign HS256 tokens.
    let oct = json!({ "kty": "oct", "kid": "s", "alg": "HS256", "k": b64(SECRET.as_bytes()) });
    let document = json!({ "keys": [oct] }).to_string();
    assert!(KeySet::from_jwks(document.as_bytes()).is_err());
}
