//! Claims and what a verified token grants: time, issuer and audience, the consumer, forwarded
//! claims, hidden credentials, the cache, and configuration mistakes.

use http::uri::PathAndQuery;
use http::{HeaderValue, Method, StatusCode};
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

use super::*;
use crate::heads::UpstreamRequest;

#[test]
fn exp_and_nbf_are_checked_with_the_leeway() {
    install();
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
    install();
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
    install();
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
    install();
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
    install();
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
    install();
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
    install();
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
    let errors = chain(json!({ "algorithms": ["HS256"], "secret": SECRET, "issuer": [] }))
        .err()
        .unwrap();
    assert_eq!(errors[0].path, "routes[0].plugins.jwt-auth.issuer");
    let errors = chain(json!({ "algorithms": ["ES256"], "jwks_url": "http://idp/keys", "jwks_refresh_interval": "0s" }))
        .err()
        .unwrap();
    assert_eq!(
        errors[0].path,
        "routes[0].plugins.jwt-auth.jwks_refresh_interval"
    );
    let errors =
        chain(json!({ "algorithms": ["HS256"], "secret": SECRET, "query_separators": ";" }))
            .err()
            .unwrap();
    assert_eq!(
        errors[0].path,
        "routes[0].plugins.jwt-auth.query_separators"
    );
    assert_eq!(errors[0].message, "\";\" is not \"&\" or \"&;\"");
    let errors = chain(json!({ "algorithms": ["HS256"], "secret": SECRET, "cookie": "[x]" }))
        .err()
        .unwrap();
    assert_eq!(errors[0].path, "routes[0].plugins.jwt-auth.cookie");
    let errors = chain(json!({ "algorithms": ["HS256"], "secret": SECRET, "colour": "red" }))
        .err()
        .unwrap();
    assert!(errors[0].message.contains("unknown field"), "{errors:?}");
}

#[test]
fn only_tokens_that_could_be_guesses_count_as_refused_credentials() {
    install();
    let key = hs(SECRET.as_bytes());
    let chain = chain(hmac_config("HS256")).unwrap();
    let refusal = |token: &str| {
        let answer = bearer(&chain, token).answer.expect("refused");
        (answer.reason, answer.credentials_refused)
    };
    let forged = token(
        Algorithm::HS256,
        &hs(b"not-the-secret-at-all-0123456789"),
        valid_claims(),
    );
    assert_eq!(refusal(&forged), ("invalid_signature", true));
    assert_eq!(refusal("not.a.token"), ("invalid_token", true));
    let other_alg = token(Algorithm::HS512, &key, valid_claims());
    assert_eq!(refusal(&other_alg), ("disallowed_algorithm", true));
    // Signed by the key: issued to someone, and a client retrying it is no guesser.
    let expired = token(Algorithm::HS256, &key, json!({ "exp": now() - 30 }));
    assert_eq!(refusal(&expired), ("expired_token", false));
    let early = token(
        Algorithm::HS256,
        &key,
        json!({ "exp": now() + 600, "nbf": now() + 30 }),
    );
    assert_eq!(refusal(&early), ("token_not_yet_valid", false));
    // No token at all is no guess either.
    let missing = request(&chain, "/x", &[]).answer.expect("refused");
    assert!(!missing.credentials_refused);
}
