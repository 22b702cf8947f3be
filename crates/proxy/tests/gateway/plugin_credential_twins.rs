//! A credential header's twins (its name with `_` and `-` swapped, which CGI, WSGI, Rack and PHP read
//! as the same `HTTP_*` variable) are copies of the credential: checked against it, and never
//! forwarded. key-auth and jwt-auth, over HTTP/1.1 and h2c; after each refusal the gateway serves the
//! next request.
//!
//! Routes are told apart by host: `key.test` reads `x-api-key`, `key-under.test` reads `x_api_key`,
//! `key-hidden.test` hides `x-api-key`; `jwt.test` reads `x-token` and forwards `sub` as `x-user`,
//! `jwt-hidden.test` hides it.

use floodgate_testkit::jwt::{b64, hs256, now};
use floodgate_testkit::{request, MockUpstream, Proto, TestGateway, TestResponse};
use http::Method;
use serde_json::{json, Value};

const SECRET: &str = "a-secret-of-at-least-thirty-two-bytes!";
const ALICE: &str = "alice-key-0001";
const BOB: &str = "bob-key-0002";

fn config(backend: &MockUpstream) -> String {
    format!(
        r#"workers: 1
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
upstreams:
  - id: backend
    targets: [{{ address: "{backend}" }}]
consumers:
  - {{ id: alice, credentials: {{ key-auth: {{ key: "{ALICE}" }} }} }}
  - {{ id: bob, credentials: {{ key-auth: {{ key: "{BOB}" }} }} }}
routes:
  - {{ id: open, paths: ["/*"], upstream: backend }}
  - id: key
    hosts: ["key.test"]
    paths: ["/*"]
    upstream: backend
    plugins: {{ key-auth: {{ header: x-api-key, query: "" }} }}
  - id: key-under
    hosts: ["key-under.test"]
    paths: ["/*"]
    upstream: backend
    plugins: {{ key-auth: {{ header: x_api_key, query: "" }} }}
  - id: key-hidden
    hosts: ["key-hidden.test"]
    paths: ["/*"]
    upstream: backend
    plugins: {{ key-auth: {{ header: x-api-key, query: "", hide_credentials: true }} }}
  - id: jwt
    hosts: ["jwt.test"]
    paths: ["/*"]
    upstream: backend
    plugins: {{ jwt-auth: {{ algorithms: [HS256], secret: "{SECRET}", header: x-token, forward_claims: {{ sub: x-user }} }} }}
  - id: jwt-hidden
    hosts: ["jwt-hidden.test"]
    paths: ["/*"]
    upstream: backend
    plugins: {{ jwt-auth: {{ algorithms: [HS256], secret: "{SECRET}", header: x-token, hide_credentials: true }} }}
"#,
        backend = backend.address()
    )
}

async fn get(gw: &TestGateway, proto: &Proto, host: &str, fields: &[(&str, &str)]) -> TestResponse {
    let target = match proto {
        // HTTP/2 names the host in `:authority`.
        Proto::H2c => format!("http://{host}/p"),
        _ => "/p".to_string(),
    };
    let mut with_host = fields.to_vec();
    if !matches!(proto, Proto::H2c) {
        with_host.push(("host", host));
    }
    request(
        gw.addr("main"),
        proto.clone(),
        Method::GET,
        &target,
        &with_host,
    )
    .await
}

/// The request fields the upstream received, by name (repeated lines joined with `, `).
fn forwarded(response: &TestResponse) -> Value {
    assert_eq!(response.status, 200, "{}", response.text());
    let seen = response.json();
    assert_eq!(seen["uri"], "/p");
    seen["headers"].clone()
}

fn assert_conflict(response: &TestResponse, error: &str) {
    assert_eq!(response.status, 401, "{}", response.text());
    assert_eq!(response.json()["error"], error);
}

async fn assert_still_serves(gw: &TestGateway, proto: &Proto) {
    let open = get(gw, proto, "open.test", &[]).await;
    assert_eq!(forwarded(&open)["x-forwarded-host"], "open.test");
}

fn rejections(gw: &TestGateway, route: &str, plugin: &str, reason: &str) -> String {
    let line = format!(
        "floodgate_plugin_rejections_total{{route=\"{route}\",plugin=\"{plugin}\",reason=\"{reason}\"}}"
    );
    gw.metrics
        .render()
        .lines()
        .find(|l| l.starts_with(&line))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn key_auth_reads_a_twin_of_its_header_as_a_copy_and_never_forwards_it() {
    let backend = MockUpstream::http("b").await;
    let gw = TestGateway::start(&config(&backend));
    for proto in [Proto::H1, Proto::H2c] {
        for twin in ["x_api_key", "x_api-key", "x-api_key"] {
            let same = get(
                &gw,
                &proto,
                "key.test",
                &[("x-api-key", ALICE), (twin, ALICE)],
            )
            .await;
            let seen = forwarded(&same);
            assert_eq!(seen["x-api-key"], ALICE, "{proto:?} {twin}");
            assert_eq!(
                seen[twin],
                Value::Null,
                "{proto:?}: {twin} forwarded: {seen}"
            );

            let before = backend.requests();
            let differing = get(
                &gw,
                &proto,
                "key.test",
                &[("x-api-key", ALICE), (twin, BOB)],
            )
            .await;
            assert_conflict(&differing, "invalid API key");
            assert_eq!(backend.requests(), before, "nothing refused was forwarded");

            // Alone, the twin is the key: an upstream reading `HTTP_X_API_KEY` sees it as the header.
            let alone = get(&gw, &proto, "key.test", &[(twin, BOB)]).await;
            let seen = forwarded(&alone);
            assert_eq!(seen["x-api-key"], Value::Null);
            assert_eq!(
                seen[twin],
                Value::Null,
                "{proto:?}: {twin} forwarded: {seen}"
            );
            assert_still_serves(&gw, &proto).await;
        }
    }
    assert_eq!(
        rejections(&gw, "key", "key-auth", "conflicting_credentials"),
        "floodgate_plugin_rejections_total{route=\"key\",plugin=\"key-auth\",reason=\"conflicting_credentials\"} 6"
    );
}

#[tokio::test]
async fn key_auth_configured_with_underscores_has_the_dashed_twin() {
    let backend = MockUpstream::http("b").await;
    let gw = TestGateway::start(&config(&backend));
    for proto in [Proto::H1, Proto::H2c] {
        let same = get(
            &gw,
            &proto,
            "key-under.test",
            &[("x_api_key", BOB), ("x-api-key", BOB)],
        )
        .await;
        let seen = forwarded(&same);
        assert_eq!(seen["x_api_key"], BOB);
        assert_eq!(seen["x-api-key"], Value::Null, "{seen}");
        let differing = get(
            &gw,
            &proto,
            "key-under.test",
            &[("x_api_key", BOB), ("x-api-key", ALICE)],
        )
        .await;
        assert_conflict(&differing, "invalid API key");
        assert_still_serves(&gw, &proto).await;
    }
}

#[tokio::test]
async fn key_auth_hide_credentials_removes_every_spelling_of_the_header() {
    let backend = MockUpstream::http("b").await;
    let gw = TestGateway::start(&config(&backend));
    for proto in [Proto::H1, Proto::H2c] {
        let fields = [
            ("x-api-key", ALICE),
            ("x_api_key", ALICE),
            ("x_api-key", ALICE),
            ("x-api_key", ALICE),
            ("x-other", "kept"),
        ];
        let seen = forwarded(&get(&gw, &proto, "key-hidden.test", &fields).await);
        for spelling in ["x-api-key", "x_api_key", "x_api-key", "x-api_key"] {
            assert_eq!(
                seen[spelling],
                Value::Null,
                "{proto:?}: {spelling} in {seen}"
            );
        }
        assert_eq!(seen["x-other"], "kept");
        let differing = get(
            &gw,
            &proto,
            "key-hidden.test",
            &[("x-api-key", ALICE), ("x_api-key", BOB)],
        )
        .await;
        assert_conflict(&differing, "invalid API key");
        assert_still_serves(&gw, &proto).await;
    }
}

fn unsigned(claims: Value) -> String {
    format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    )
}

#[tokio::test]
async fn jwt_auth_reads_a_twin_of_its_header_as_a_copy_and_never_forwards_it() {
    let backend = MockUpstream::http("b").await;
    let gw = TestGateway::start(&config(&backend));
    let alice = hs256(SECRET, json!({ "sub": "alice", "exp": now() + 600 }));
    let admin = unsigned(json!({ "sub": "admin", "exp": now() + 600 }));
    for proto in [Proto::H1, Proto::H2c] {
        {
            let twin = "x_token";
            let same = get(
                &gw,
                &proto,
                "jwt.test",
                &[("x-token", &alice), (twin, &alice)],
            )
            .await;
            let seen = forwarded(&same);
            assert_eq!(seen["x-token"], alice.as_str());
            assert_eq!(seen["x_token"], Value::Null, "{proto:?}: {seen}");
            assert_eq!(seen["x-user"], "alice");

            let before = backend.requests();
            let forged = get(
                &gw,
                &proto,
                "jwt.test",
                &[("x-token", &alice), (twin, &admin)],
            )
            .await;
            assert_conflict(&forged, "invalid token");
            assert_eq!(backend.requests(), before, "nothing refused was forwarded");

            let alone = get(
                &gw,
                &proto,
                "jwt.test",
                &[(twin, &format!("Bearer {alice}"))],
            )
            .await;
            let seen = forwarded(&alone);
            assert_eq!(seen["x-user"], "alice");
            assert_eq!(seen["x-token"], Value::Null);
            assert_eq!(seen["x_token"], Value::Null, "{proto:?}: {seen}");
            assert_still_serves(&gw, &proto).await;
        }
    }
    assert_eq!(
        rejections(&gw, "jwt", "jwt-auth", "conflicting_tokens"),
        "floodgate_plugin_rejections_total{route=\"jwt\",plugin=\"jwt-auth\",reason=\"conflicting_tokens\"} 2"
    );
}

#[tokio::test]
async fn jwt_auth_hide_credentials_removes_every_spelling_of_the_header() {
    let backend = MockUpstream::http("b").await;
    let gw = TestGateway::start(&config(&backend));
    let alice = hs256(SECRET, json!({ "sub": "alice", "exp": now() + 600 }));
    for proto in [Proto::H1, Proto::H2c] {
        let fields = [("x-token", alice.as_str()), ("x_token", alice.as_str())];
        let seen = forwarded(&get(&gw, &proto, "jwt-hidden.test", &fields).await);
        assert_eq!(seen["x-token"], Value::Null, "{seen}");
        assert_eq!(seen["x_token"], Value::Null, "{seen}");
        let other = hs256(SECRET, json!({ "sub": "bob", "exp": now() + 600 }));
        let differing = get(
            &gw,
            &proto,
            "jwt-hidden.test",
            &[("x-token", &alice), ("x_token", &other)],
        )
        .await;
        assert_conflict(&differing, "invalid token");
        assert_still_serves(&gw, &proto).await;
    }
}
