use std::net::{IpAddr, Ipv4Addr};

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Version};
use serde_json::{json, Value};

use super::*;
use crate::plugins::test_chain::{build_route, request_on, Outcome};
use crate::PluginSet;

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn bcrypt_hash(password: &str) -> String {
    bcrypt::hash_with_salt(password, 4, [7; 16])
        .unwrap()
        .to_string()
}

fn argon2_hash(password: &str) -> String {
    let params = Params::new(256, 1, 1, None).unwrap();
    let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

fn consumer(id: &str, username: &str, hash: &str) -> Value {
    json!({"id": id, "credentials": {"basic-auth": {"username": username, "password_hash": hash}}})
}

fn alice_and_bob(config: Value) -> PluginSet {
    build_route(
        "basic-auth",
        config,
        vec![
            consumer("alice", "alice", &bcrypt_hash("wonderland")),
            consumer("bob", "bob", &argon2_hash("builder")),
        ],
    )
    .unwrap()
}

fn basic(user_pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

fn send(set: &PluginSet, authorization: &[&str]) -> Outcome {
    let headers: Vec<(&str, &str)> = authorization
        .iter()
        .map(|v| ("authorization", *v))
        .collect();
    request_on(set, CLIENT, &headers, "/")
}

fn assert_401(outcome: &Outcome, reason: &str, challenge: &str) {
    let answer = outcome.answer.as_ref().expect("answered");
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.reason, reason);
    assert_eq!(
        answer.headers.get(header::WWW_AUTHENTICATE).unwrap(),
        challenge
    );
    assert!(outcome.ctx.consumer.is_none());
}

fn cached_pairs() -> usize {
    VERIFIED.with(|cache| cache.borrow().entries.len())
}

#[test]
fn no_basic_credentials_is_401_missing_with_the_challenge() {
    let set = alice_and_bob(json!({}));
    assert_401(
        &send(&set, &[]),
        "missing_credentials",
        "Basic realm=\"floodgate\"",
    );
    let bearer = send(&set, &["Bearer abc.def"]);
    assert_401(&bearer, "missing_credentials", "Basic realm=\"floodgate\"");
    assert_eq!(bearer.answer.unwrap().error, Some("missing credentials"));
    let set = alice_and_bob(json!({"realm": "staff only"}));
    assert_401(
        &send(&set, &[]),
        "missing_credentials",
        "Basic realm=\"staff only\"",
    );
}

#[test]
fn bcrypt_and_argon2_passwords_name_their_consumer() {
    let set = alice_and_bob(json!({}));
    let alice = send(&set, &[&basic("alice:wonderland")]);
    assert!(alice.answer.is_none());
    assert_eq!(alice.ctx.consumer_id().map(|id| &**id), Some("alice"));
    assert!(
        alice.headers.contains_key(header::AUTHORIZATION),
        "kept unless hidden"
    );
    let bob = send(&set, &[&basic("bob:builder")]);
    assert!(bob.answer.is_none());
    assert_eq!(bob.ctx.consumer_id().map(|id| &**id), Some("bob"));
}

#[test]
fn wrong_passwords_and_unknown_users_are_401_invalid() {
    let set = alice_and_bob(json!({}));
    for pair in [
        "alice:wrong",
        "bob:wonderland",
        "carol:wonderland",
        "alice:",
        ":wonderland",
    ] {
        let outcome = send(&set, &[&basic(pair)]);
        assert_401(&outcome, "invalid_credentials", "Basic realm=\"floodgate\"");
        assert_eq!(
            outcome.answer.unwrap().error,
            Some("invalid credentials"),
            "{pair}"
        );
    }
}

#[test]
fn malformed_credentials_are_401_invalid() {
    let set = alice_and_bob(json!({}));
    let no_colon = basic("alicewonderland");
    let too_long = format!("Basic {}", "QUFB".repeat(2000));
    for value in [
        "Basic",
        "Basic ",
        "Basic !!!notbase64",
        "Basic YQ=x",
        &no_colon,
        &too_long,
    ] {
        assert_401(
            &send(&set, &[value]),
            "invalid_credentials",
            "Basic realm=\"floodgate\"",
        );
    }
    let right = basic("alice:wonderland");
    let twice = send(&set, &[&right, &right]);
    assert_401(&twice, "invalid_credentials", "Basic realm=\"floodgate\"");
}

#[test]
fn the_scheme_is_case_insensitive_and_padding_optional() {
    let set = alice_and_bob(json!({}));
    // "bob:builder" is 11 bytes: its base64 ends in one '='.
    let padded = base64::engine::general_purpose::STANDARD.encode("bob:builder");
    assert!(padded.ends_with('='));
    for value in [
        format!("basic {padded}"),
        format!("BASIC  {}", padded.trim_end_matches('=')),
    ] {
        let outcome = send(&set, &[&value]);
        assert!(outcome.answer.is_none(), "{value}");
    }
}

#[test]
fn hide_credentials_removes_the_authorization_field() {
    let set = alice_and_bob(json!({"hide_credentials": true}));
    let outcome = send(&set, &[&basic("alice:wonderland")]);
    assert!(outcome.answer.is_none());
    assert!(!outcome.headers.contains_key(header::AUTHORIZATION));
}

#[test]
fn verified_pairs_are_cached_and_failures_are_not() {
    let set = alice_and_bob(json!({}));
    assert_eq!(cached_pairs(), 0);
    assert!(send(&set, &[&basic("alice:wrong")]).answer.is_some());
    assert!(send(&set, &[&basic("nobody:wrong")]).answer.is_some());
    assert_eq!(cached_pairs(), 0, "a failure is not remembered");
    for _ in 0..3 {
        let outcome = send(&set, &[&basic("alice:wonderland")]);
        assert_eq!(outcome.ctx.consumer_id().map(|id| &**id), Some("alice"));
    }
    assert_eq!(cached_pairs(), 1);
    // The pair is cached; another password for the same user still goes through the hash.
    assert!(send(&set, &[&basic("alice:wonderland2")]).answer.is_some());
    // Another instance (another route, the next snapshot) does not see this one's entries.
    let other = alice_and_bob(json!({}));
    assert!(send(&other, &[&basic("alice:wonderland")]).answer.is_none());
    assert_eq!(cached_pairs(), 2);
}

#[test]
fn a_zero_ttl_verifies_every_request() {
    let set = alice_and_bob(json!({"cache_ttl": "0s"}));
    assert!(send(&set, &[&basic("alice:wonderland")]).answer.is_none());
    assert_eq!(cached_pairs(), 0);
}

#[test]
fn cache_entries_expire_and_a_full_cache_makes_room() {
    let mut cache = VerifiedCache::default();
    let now = Instant::now();
    let id: Arc<str> = "alice".into();
    cache.insert([1; 32], id.clone(), now + Duration::from_secs(60), now);
    assert_eq!(cache.get(&[1; 32], now).as_deref(), Some("alice"));
    assert_eq!(cache.get(&[1; 32], now + Duration::from_secs(61)), None);
    assert!(
        cache.entries.is_empty(),
        "an expired entry is dropped when met"
    );

    let key = |i: usize, tag: u8| {
        let mut key = [tag; 32];
        key[..8].copy_from_slice(&(i as u64).to_le_bytes());
        key
    };
    let live = now + Duration::from_secs(60);
    for i in 0..CACHE_CAPACITY {
        let expires = if i % 2 == 0 { now } else { live };
        cache.insert(key(i, 0), id.clone(), expires, now);
    }
    cache.insert(key(0, 1), id.clone(), live, now);
    assert_eq!(
        cache.entries.len(),
        CACHE_CAPACITY / 2 + 1,
        "expired entries went first"
    );
    for i in 1..CACHE_CAPACITY / 2 {
        cache.insert(key(i, 1), id.clone(), live, now);
    }
    assert_eq!(cache.entries.len(), CACHE_CAPACITY);
    cache.insert(key(0, 2), id, live, now);
    assert_eq!(cache.entries.len(), 1, "full of live entries: started over");
}

fn build_errors(consumers: Vec<Value>, config: Value) -> Vec<(String, String)> {
    build_route("basic-auth", config, consumers)
        .err()
        .expect("refused")
        .into_iter()
        .map(|e| (e.path, e.message))
        .collect()
}

#[test]
fn bad_hashes_and_usernames_are_named_by_their_path() {
    let good = bcrypt_hash("pw");
    let argon = argon2_hash("pw");
    let cases = [
        ("not-a-hash".to_string(), "must be a bcrypt hash"),
        ("$2b$04$short".to_string(), "not a valid bcrypt hash"),
        (good.replacen("$2b$04$", "$2b$13$", 1), "bcrypt cost 13"),
        (good.replacen("$2b$", "$2x$", 1), "$2a$, $2b$ or $2y$"),
        (
            argon.replacen("$argon2id$", "$argon2d$", 1),
            "variant \"argon2d\"",
        ),
        (argon.replacen("m=256", "m=1048576", 1), "exceed"),
        (argon.replacen("t=1", "t=9", 1), "exceed"),
        (
            "$argon2id$v=19$m=256,t=1,p=1".to_string(),
            "no salt or no hash",
        ),
        (
            "$argon2id$v=19$m=256,t=1,p=1$!!!$!!!".to_string(),
            "not a valid Argon2 PHC string",
        ),
    ];
    for (hash, want) in cases {
        let errors = build_errors(vec![consumer("c", "c", &hash)], json!({}));
        assert_eq!(errors.len(), 1, "{hash}: {errors:?}");
        assert_eq!(
            errors[0].0,
            "consumers[0].credentials.basic-auth.password_hash"
        );
        assert!(errors[0].1.contains(want), "{hash}: {}", errors[0].1);
    }
    for username in ["", "a:b"] {
        let errors = build_errors(vec![consumer("c", username, &good)], json!({}));
        assert_eq!(errors[0].0, "consumers[0].credentials.basic-auth.username");
    }
    // $2y$ (htpasswd -B) and $2a$ verify like $2b$.
    for prefix in ["$2y$", "$2a$"] {
        let hash = good.replacen("$2b$", prefix, 1);
        let set = build_route("basic-auth", json!({}), vec![consumer("c", "c", &hash)]).unwrap();
        assert!(send(&set, &[&basic("c:pw")]).answer.is_none(), "{prefix}");
    }
}

#[test]
fn duplicate_usernames_and_bad_realms_are_refused() {
    let errors = build_errors(
        vec![
            consumer("a", "same", &bcrypt_hash("one")),
            consumer("b", "same", &bcrypt_hash("two")),
        ],
        json!({}),
    );
    assert_eq!(
        errors,
        [(
            "consumers[1].credentials.basic-auth.username".to_string(),
            "the same username is given to another consumer".to_string()
        )]
    );
    for realm in ["a\"b", "a\\b", "caf\u{e9}", "tab\there"] {
        let errors = build_errors(vec![], json!({"realm": realm}));
        assert_eq!(errors[0].0, "routes[0].plugins.basic-auth.realm", "{realm}");
    }
    let errors = build_errors(vec![], json!({"cache_ttl": "soon"}));
    assert_eq!(errors[0].0, "routes[0].plugins.basic-auth.cache_ttl");
}

#[test]
fn without_consumers_everyone_is_refused() {
    let set = build_route("basic-auth", json!({}), vec![]).unwrap();
    let outcome = send(&set, &[&basic("alice:wonderland")]);
    assert_401(&outcome, "invalid_credentials", "Basic realm=\"floodgate\"");
}

#[test]
fn the_cache_key_separates_username_from_password() {
    assert_ne!(cache_key(1, b"ab", b"c"), cache_key(1, b"a", b"bc"));
    assert_ne!(cache_key(1, b"a", b"b"), cache_key(2, b"a", b"b"));
}
