//! Consumers' own jwt-auth credentials: a token naming one in `key_claim` is verified with that key alone
//! and is that consumer's; the credentials' configuration mistakes name their field.

use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;

use super::*;

const ALICE_SECRET: &str = "alice-secret-of-at-least-32-bytes!!";
const BOB_SECRET: &str = "bob-secret-of-at-least-32-bytes!!!!";

fn consumers() -> String {
    format!(
        r#"consumers:
  - {{ id: alice, credentials: {{ jwt-auth: {{ key: alice-key, secret: "{ALICE_SECRET}" }} }} }}
  - {{ id: bob, credentials: {{ jwt-auth: {{ key: bob-key, secret: "{BOB_SECRET}" }} }} }}
  - id: carol
    credentials:
      jwt-auth:
        key: carol-key
        public_key: |
{}
"#,
        fixture("rsa_public.pem")
            .lines()
            .map(|l| format!("          {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

#[test]
fn a_token_naming_a_credential_is_verified_with_its_key_and_is_its_consumers() {
    install();
    let chain = chain_with(json!({ "algorithms": ["HS256", "RS256"] }), &consumers()).unwrap();
    let exp = now() + 600;
    let alice = bearer(
        &chain,
        &token(
            Algorithm::HS256,
            &hs(ALICE_SECRET.as_bytes()),
            json!({ "iss": "alice-key", "exp": exp }),
        ),
    );
    accepted(&alice);
    assert_eq!(alice.ctx.consumer_id().map(|id| &**id), Some("alice"));

    let rsa = EncodingKey::from_rsa_pem(fixture("rsa_private.pem").as_bytes()).unwrap();
    let carol = bearer(
        &chain,
        &token(
            Algorithm::RS256,
            &rsa,
            json!({ "iss": "carol-key", "exp": exp }),
        ),
    );
    accepted(&carol);
    assert_eq!(carol.ctx.consumer_id().map(|id| &**id), Some("carol"));

    // Bob's key cannot speak for alice, nor alice's for bob.
    let forged = token(
        Algorithm::HS256,
        &hs(BOB_SECRET.as_bytes()),
        json!({ "iss": "alice-key", "exp": exp }),
    );
    assert_eq!(refused(bearer(&chain, &forged)), "invalid_signature");
    // A key no consumer has, with no key of the plugin's own to fall back on.
    let unknown = token(
        Algorithm::HS256,
        &hs(ALICE_SECRET.as_bytes()),
        json!({ "iss": "dave-key", "exp": exp }),
    );
    assert_eq!(refused(bearer(&chain, &unknown)), "unknown_key");
    let unnamed = token(
        Algorithm::HS256,
        &hs(ALICE_SECRET.as_bytes()),
        json!({ "exp": exp }),
    );
    assert_eq!(refused(bearer(&chain, &unnamed)), "unknown_key");
    // The credential's consumer is checked like any token: an expired one is refused.
    let expired = token(
        Algorithm::HS256,
        &hs(ALICE_SECRET.as_bytes()),
        json!({ "iss": "alice-key", "exp": now() - 600 }),
    );
    assert_eq!(refused(bearer(&chain, &expired)), "expired_token");
}

#[test]
fn the_plugins_own_key_signs_for_no_consumer_credential() {
    install();
    let chain = chain_with(
        json!({ "algorithms": ["HS256"], "secret": SECRET, "consumer_claim": "sub" }),
        &consumers(),
    )
    .unwrap();
    let exp = now() + 600;
    // An identity provider's token, signed with the plugin's secret, names the consumer by `sub`.
    let idp = bearer(
        &chain,
        &token(
            Algorithm::HS256,
            &hs(SECRET.as_bytes()),
            json!({ "iss": "https://idp.example.com", "sub": "bob", "exp": exp }),
        ),
    );
    accepted(&idp);
    assert_eq!(idp.ctx.consumer_id().map(|id| &**id), Some("bob"));
    // A token naming alice's credential is checked with alice's key only: the plugin's own secret does
    // not make it alice's, and its `sub` does not make it bob's.
    let borrowed = token(
        Algorithm::HS256,
        &hs(SECRET.as_bytes()),
        json!({ "iss": "alice-key", "sub": "bob", "exp": exp }),
    );
    assert_eq!(refused(bearer(&chain, &borrowed)), "invalid_signature");
    let alice = bearer(
        &chain,
        &token(
            Algorithm::HS256,
            &hs(ALICE_SECRET.as_bytes()),
            json!({ "iss": "alice-key", "sub": "bob", "exp": exp }),
        ),
    );
    accepted(&alice);
    assert_eq!(alice.ctx.consumer_id().map(|id| &**id), Some("alice"));
}

#[test]
fn key_claim_chooses_the_claim_that_names_the_credential() {
    install();
    let chain = chain_with(
        json!({ "algorithms": ["HS256"], "key_claim": "key" }),
        &consumers(),
    )
    .unwrap();
    let bob = bearer(
        &chain,
        &token(
            Algorithm::HS256,
            &hs(BOB_SECRET.as_bytes()),
            json!({ "key": "bob-key", "iss": "alice-key", "exp": now() + 600 }),
        ),
    );
    accepted(&bob);
    assert_eq!(bob.ctx.consumer_id().map(|id| &**id), Some("bob"));
}

#[test]
fn credential_mistakes_name_their_field() {
    install();
    let cases = [
        (
            "consumers: [{ id: a, credentials: { jwt-auth: { key: k } } }]",
            "consumers[0].credentials.jwt-auth.secret",
            "give a secret or a public_key",
        ),
        (
            "consumers: [{ id: a, credentials: { jwt-auth: { key: k, secret: short } } }]",
            "consumers[0].credentials.jwt-auth.secret",
            "must be at least 32 bytes",
        ),
        (
            "consumers: [{ id: a, credentials: { jwt-auth: { key: \"\", secret: \"alice-secret-of-at-least-32-bytes!!\" } } }]",
            "consumers[0].credentials.jwt-auth.key",
            "must not be empty",
        ),
        (
            "consumers: [{ id: a, credentials: { jwt-auth: { key: k, secret: \"alice-secret-of-at-least-32-bytes!!\" } } }, { id: b, credentials: { jwt-auth: { key: k, secret: \"bob-secret-of-at-least-32-bytes!!!!\" } } }]",
            "consumers[1].credentials.jwt-auth.key",
            "already the key of consumer \"a\"",
        ),
    ];
    for (consumers, path, message) in cases {
        let errors = chain_with(json!({ "algorithms": ["HS256"] }), consumers)
            .err()
            .unwrap();
        assert!(
            errors
                .iter()
                .any(|e| e.path == path && e.message.contains(message)),
            "{consumers}: {errors:?}"
        );
    }
    // Without keys of its own or consumers' credentials, the plugin has nothing to verify with.
    let errors = chain(json!({ "algorithms": ["HS256"] })).err().unwrap();
    assert!(
        errors[0]
            .message
            .contains("or consumers jwt-auth credentials"),
        "{errors:?}"
    );
    // An algorithm no key can verify is still refused: RS256 with only HMAC credentials.
    let errors = chain_with(
        json!({ "algorithms": ["HS256", "RS256"] }),
        "consumers: [{ id: a, credentials: { jwt-auth: { key: k, secret: \"alice-secret-of-at-least-32-bytes!!\" } } }]",
    )
    .err()
    .unwrap();
    assert!(
        errors.iter().any(|e| e.path.ends_with("algorithms[1]")),
        "{errors:?}"
    );
}
