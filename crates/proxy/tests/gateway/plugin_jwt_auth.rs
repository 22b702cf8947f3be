//! jwt-auth through the gateway: a valid token reaches the upstream with its forwarded claims, every
//! refusal is a 401 with the RFC 6750 challenge and the JSON error body, and keys published at a JWKS
//! URL (served here by a real HTTP server) rotate without a reload. Each refusal is followed by a
//! request the gateway serves.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use floodgate_testkit::jwt::{b64, hs256, jwks, now, EcKey, JwksServer};
use floodgate_testkit::{eventually, request, MockUpstream, Proto, TestGateway, TestResponse};
use http::Method;
use serde_json::{json, Value};

const SECRET: &str = "a-secret-of-at-least-thirty-two-bytes!";
const MISSING: &str = "Bearer realm=\"floodgate\"";
const INVALID: &str = "Bearer realm=\"floodgate\", error=\"invalid_token\"";

fn config(backend: &MockUpstream, top: &str, plugin: &Value) -> String {
    format!(
        r#"workers: 1
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
upstreams:
  - id: backend
    targets: [{{ address: "{backend}" }}]
{top}
routes:
  - {{ id: api, paths: ["/*"], upstream: backend, plugins: {{ jwt-auth: {plugin} }} }}
"#,
        backend = backend.address()
    )
}

async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> TestResponse {
    request(addr, Proto::H1, Method::GET, path, headers).await
}

async fn with_token(addr: SocketAddr, token: &str) -> TestResponse {
    get(addr, "/x", &[("authorization", &format!("Bearer {token}"))]).await
}

fn assert_refused(response: &TestResponse, challenge: &str, message: &str) {
    assert_eq!(response.status, 401);
    assert_eq!(response.header("www-authenticate"), Some(challenge));
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body = response.json();
    assert_eq!(body["error"], message);
    assert_eq!(body["request_id"].as_str(), response.header("x-request-id"));
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(2),
        "nothing beyond the message and the request id"
    );
}

/// Sends the request until `ok` holds for its response; a safety net of 10 s, not a timing assertion.
async fn until(what: &str, mut attempt: impl AsyncFnMut() -> bool) {
    for _ in 0..500 {
        if attempt().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_valid_token_reaches_the_upstream_with_its_claim_and_without_a_spoofed_one() {
    let backend = MockUpstream::http("b").await;
    let plugin = json!({
        "algorithms": ["HS256"], "secret": SECRET,
        "forward_claims": { "sub": "x-user" },
    });
    let gw = TestGateway::start(&config(&backend, "", &plugin));
    let addr = gw.addr("main");
    let token = hs256(SECRET, json!({ "sub": "alice", "exp": now() + 600 }));
    let response = get(
        addr,
        "/x",
        &[
            ("authorization", &format!("Bearer {token}")),
            ("x-user", "mallory"),
            // An upstream reading `HTTP_X_USER` would take this one for the gateway's.
            ("x_user", "mallory"),
        ],
    )
    .await;
    assert_eq!(response.status, 200);
    let seen = response.json();
    assert_eq!(seen["headers"]["x-user"], "alice");
    assert!(seen["headers"].get("x_user").is_none(), "{seen}");
    assert_eq!(
        seen["headers"]["authorization"],
        format!("Bearer {token}"),
        "kept without hide_credentials"
    );
}

#[tokio::test]
async fn missing_invalid_and_expired_tokens_are_401_and_the_gateway_serves_on() {
    let backend = MockUpstream::http("b").await;
    let plugin = json!({ "algorithms": ["HS256"], "secret": SECRET });
    let gw = TestGateway::start(&config(&backend, "", &plugin));
    let addr = gw.addr("main");

    let missing = get(addr, "/x", &[]).await;
    assert_refused(&missing, MISSING, "missing bearer token");
    let basic = get(addr, "/x", &[("authorization", "Basic dXNlcjpwdw==")]).await;
    assert_refused(&basic, MISSING, "missing bearer token");

    let garbage = with_token(addr, "not.a.token").await;
    assert_refused(&garbage, INVALID, "invalid token");
    let forged = hs256(
        "another-secret-of-thirty-two-bytes-long",
        json!({ "sub": "alice", "exp": now() + 600 }),
    );
    assert_refused(&with_token(addr, &forged).await, INVALID, "invalid token");
    let expired = hs256(SECRET, json!({ "sub": "alice", "exp": now() - 60 }));
    assert_refused(&with_token(addr, &expired).await, INVALID, "invalid token");
    // A valid token beside a different one: an upstream might read the other, so neither passes.
    let valid = hs256(SECRET, json!({ "sub": "alice", "exp": now() + 600 }));
    let two = get(
        addr,
        "/x",
        &[
            ("authorization", &format!("Bearer {valid}")),
            ("authorization", &format!("Bearer {expired}")),
        ],
    )
    .await;
    assert_refused(&two, INVALID, "invalid token");
    let unsigned = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(json!({ "sub": "alice", "exp": now() + 600 })
            .to_string()
            .as_bytes())
    );
    assert_refused(&with_token(addr, &unsigned).await, INVALID, "invalid token");
    assert_eq!(backend.requests(), 0, "nothing refused was forwarded");

    let valid = hs256(SECRET, json!({ "sub": "alice", "exp": now() + 600 }));
    assert_eq!(with_token(addr, &valid).await.status, 200);
    assert_eq!(backend.requests(), 1);

    let metrics = gw.metrics.render();
    for reason in [
        "missing_token\"} 2",
        "invalid_token\"} 2",
        "invalid_signature\"} 1",
        "expired_token\"} 1",
    ] {
        let line = format!(
            "floodgate_plugin_rejections_total{{route=\"api\",plugin=\"jwt-auth\",reason=\"{reason}"
        );
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
}

#[tokio::test]
async fn an_unknown_consumer_is_401_when_one_is_required() {
    let backend = MockUpstream::http("b").await;
    let plugin = json!({
        "algorithms": ["HS256"], "secret": SECRET,
        "consumer_claim": "sub", "consumer_required": true,
    });
    let gw = TestGateway::start(&config(&backend, "consumers: [{ id: alice }]", &plugin));
    let addr = gw.addr("main");
    let carol = hs256(SECRET, json!({ "sub": "carol", "exp": now() + 600 }));
    assert_refused(&with_token(addr, &carol).await, INVALID, "invalid token");
    let alice = hs256(SECRET, json!({ "sub": "alice", "exp": now() + 600 }));
    assert_eq!(with_token(addr, &alice).await.status, 200);
}

#[tokio::test]
async fn hidden_credentials_do_not_reach_the_upstream() {
    let backend = MockUpstream::http("b").await;
    let plugin = json!({
        "algorithms": ["HS256"], "secret": SECRET,
        "query": "access_token", "cookie": "jwt", "hide_credentials": true,
    });
    let gw = TestGateway::start(&config(&backend, "", &plugin));
    let addr = gw.addr("main");
    let token = hs256(SECRET, json!({ "sub": "alice", "exp": now() + 600 }));

    let by_query = get(addr, &format!("/x?a=1&access_token={token}"), &[]).await;
    assert_eq!(by_query.status, 200);
    assert_eq!(by_query.json()["uri"], "/x?a=1");
    // Every spelling an upstream decodes to `access_token` goes (a different token under one of
    // them would be refused).
    let spelled = get(
        addr,
        &format!("/x?access%5Ftoken={token}&a=1&access_token={token}&%61ccess_token={token}"),
        &[],
    )
    .await;
    assert_eq!(spelled.status, 200);
    assert_eq!(spelled.json()["uri"], "/x?a=1");

    let by_cookie = get(
        addr,
        "/x",
        &[("cookie", &format!("theme=dark; jwt={token}"))],
    )
    .await;
    assert_eq!(by_cookie.status, 200);
    assert_eq!(by_cookie.json()["headers"]["cookie"], "theme=dark");
    // Whitespace before `=` still names the cookie, as upstream parsers that trim it read it.
    let spaced = get(
        addr,
        "/x",
        &[("cookie", &format!("jwt ={token}; theme=dark"))],
    )
    .await;
    assert_eq!(spaced.status, 200);
    assert_eq!(spaced.json()["headers"]["cookie"], "theme=dark");

    let by_header = with_token(addr, &token).await;
    assert_eq!(by_header.status, 200);
    assert!(by_header.json()["headers"].get("authorization").is_none());
}

fn jwks_plugin(server: &JwksServer, refresh: &str) -> Value {
    json!({
        "algorithms": ["ES256"],
        "jwks_url": server.url(),
        "jwks_refresh_interval": refresh,
        "jwks_min_refetch_interval": "0s",
        "forward_claims": { "sub": "x-user" },
    })
}

#[tokio::test]
async fn a_key_added_to_the_jwks_is_fetched_when_a_token_names_it() {
    let backend = MockUpstream::http("b").await;
    let (k1, k2) = (EcKey::new("k1"), EcKey::new("k2"));
    let server = JwksServer::start(jwks(&[&k1])).await;
    // A refresh interval far beyond the test: only a token's unknown kid makes it fetch again.
    let gw = TestGateway::start(&config(&backend, "", &jwks_plugin(&server, "1h")));
    let addr = gw.addr("main");
    let fetches = || gw.metrics.plugins.jwks_fetches.load(Ordering::SeqCst);
    eventually("the first JWKS fetch", || fetches() >= 1).await;

    let claims = json!({ "sub": "alice", "exp": now() + 600 });
    let first = with_token(addr, &k1.token(claims.clone())).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.json()["headers"]["x-user"], "alice");

    server.serve(jwks(&[&k1, &k2]));
    let rotated = k2.token(claims.clone());
    // The first token naming k2 is refused (its key is not known yet) and asks for a fetch.
    assert_refused(&with_token(addr, &rotated).await, INVALID, "invalid token");
    until("the new key", async || {
        with_token(addr, &rotated).await.status == 200
    })
    .await;
    assert_eq!(gw.metrics.plugins.jwks_failures.load(Ordering::SeqCst), 0);
    assert!(server.requests() >= 2);
}

#[tokio::test]
async fn a_key_removed_from_the_jwks_is_refused_after_the_refresh() {
    let backend = MockUpstream::http("b").await;
    let (k1, k2) = (EcKey::new("k1"), EcKey::new("k2"));
    let server = JwksServer::start(jwks(&[&k1, &k2])).await;
    let gw = TestGateway::start(&config(&backend, "", &jwks_plugin(&server, "100ms")));
    let addr = gw.addr("main");
    let fetches = || gw.metrics.plugins.jwks_fetches.load(Ordering::SeqCst);
    eventually("the first JWKS fetch", || fetches() >= 1).await;

    let old = k1.token(json!({ "sub": "alice", "exp": now() + 600 }));
    assert_eq!(with_token(addr, &old).await.status, 200, "k1 is published");
    server.serve(jwks(&[&k2]));
    // Cached as verified, the token is still refused once the set without k1 is fetched.
    until("k1's removal", async || {
        with_token(addr, &old).await.status == 401
    })
    .await;
    assert_refused(&with_token(addr, &old).await, INVALID, "invalid token");
    let current = k2.token(json!({ "sub": "bob", "exp": now() + 600 }));
    assert_eq!(with_token(addr, &current).await.status, 200);
}

#[tokio::test]
async fn a_failing_jwks_fetch_keeps_the_last_good_keys() {
    let backend = MockUpstream::http("b").await;
    let k1 = EcKey::new("k1");
    let server = JwksServer::start(jwks(&[&k1])).await;
    let gw = TestGateway::start(&config(&backend, "", &jwks_plugin(&server, "100ms")));
    let addr = gw.addr("main");
    let stats = gw.metrics.plugins.clone();
    eventually("the first JWKS fetch", || {
        stats.jwks_fetches.load(Ordering::SeqCst) >= 1
    })
    .await;

    server.serve(None);
    let failures_before = stats.jwks_failures.load(Ordering::SeqCst);
    eventually("two failed fetches", || {
        stats.jwks_failures.load(Ordering::SeqCst) >= failures_before + 2
    })
    .await;
    // A token never seen before (so not cached) is checked against the kept keys.
    let fresh = k1.token(json!({ "sub": "carol", "exp": now() + 600 }));
    let response = with_token(addr, &fresh).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["headers"]["x-user"], "carol");
    assert!(gw
        .metrics
        .render()
        .contains("floodgate_jwks_fetches_total{result=\"error\"}"));
}

#[tokio::test]
async fn a_reload_keeps_the_fetched_keys_while_the_plugin_is_unchanged() {
    let backend = MockUpstream::http("b").await;
    let k1 = EcKey::new("k1");
    let server = JwksServer::start(jwks(&[&k1])).await;
    let plugin = jwks_plugin(&server, "1h");
    let mut gw = TestGateway::start(&config(&backend, "", &plugin));
    let addr = gw.addr("main");
    let stats = gw.metrics.plugins.clone();
    eventually("the first JWKS fetch", || {
        stats.jwks_fetches.load(Ordering::SeqCst) >= 1
    })
    .await;
    // From now on every fetch fails: only a key set carried across the reload has k1.
    server.serve(None);

    // An unrelated change: a consumer added.
    let consumers = "consumers: [{ id: alice }]";
    gw.reload(&config(&backend, consumers, &plugin))
        .expect("reload");
    let token = k1.token(json!({ "sub": "alice", "exp": now() + 600 }));
    assert_eq!(with_token(addr, &token).await.status, 200);

    // A changed plugin starts with a key set of its own, which cannot be fetched.
    let mut changed = plugin.clone();
    changed["forward_claims"] = json!({ "sub": "x-subject" });
    gw.reload(&config(&backend, consumers, &changed))
        .expect("reload");
    let fresh = k1.token(json!({ "sub": "bob", "exp": now() + 600 }));
    assert_refused(&with_token(addr, &fresh).await, INVALID, "invalid token");
    server.serve(jwks(&[&k1]));
    until("the changed plugin's keys", async || {
        with_token(addr, &fresh).await.status == 200
    })
    .await;
}
