//! basic-auth and key-auth between a real client and a real upstream: each 401 with its exact challenge
//! and JSON body (and nothing forwarded), each success forwarded with or without the credential as
//! `hide_credentials` says, and the gateway serving the next request after each.
//!
//! Routes are told apart by host. The consumer `doorstep` authenticates but carries its own
//! `ip-restriction` denying loopback: its 403 proves the gateway identified the consumer and ran the
//! consumer's plugins.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use floodgate_testkit::{eventually, send, MockUpstream, Proto, TestGateway, TestResponse};
use http::Request;
use http_body_util::Full;
use serde_json::{json, Value};

/// Safety net for anything that waits on the network; no test relies on it for its outcome.
const SAFETY: Duration = Duration::from_secs(20);

/// bcrypt (cost 4) of `open sesame`.
const ALICE_HASH: &str = "$2b$04$FObG2QawZah0hG41E76/h.s9m0VVSIW0GYtrUcksL.EJlevKUPA4C";
/// Argon2id (m=256 KiB, t=1) of `correct horse`.
const BOB_HASH: &str =
    "$argon2id$v=19$m=256,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$RzbQ8BOKmwB/Rs14QaU0WHFf8kBHxdxnhDtPeb88GYA";

fn config(backend: &MockUpstream, access_log: &Path) -> String {
    format!(
        r#"
workers: 1
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
access_log: {{ path: {access_log:?} }}
upstreams:
  - id: backend
    targets: [{{ address: "{backend}" }}]
routes:
  - {{ id: open, paths: ["/*"], upstream: backend }}
  - id: basic
    hosts: ["basic.test"]
    paths: ["/*"]
    upstream: backend
    plugins: {{ basic-auth: {{ realm: "staff" }} }}
  - id: basic-hidden
    hosts: ["basic-hidden.test"]
    paths: ["/*"]
    upstream: backend
    plugins: {{ basic-auth: {{ hide_credentials: true }} }}
  - id: key
    hosts: ["key.test"]
    paths: ["/*"]
    upstream: backend
    plugins: {{ key-auth: {{}} }}
  - id: key-hidden
    hosts: ["key-hidden.test"]
    paths: ["/*"]
    upstream: backend
    plugins: {{ key-auth: {{ hide_credentials: true }} }}
  - id: key-header
    hosts: ["key-header.test"]
    paths: ["/*"]
    upstream: backend
    plugins: {{ key-auth: {{ header: x-api-key, hide_credentials: true }} }}
consumers:
  - id: alice
    credentials:
      basic-auth: {{ username: alice, password_hash: '{ALICE_HASH}' }}
      key-auth: {{ key: alice-key-0001 }}
  - id: bob
    credentials:
      basic-auth: {{ username: bob, password_hash: '{BOB_HASH}' }}
  - id: doorstep
    credentials:
      basic-auth: {{ username: doorstep, password_hash: '{ALICE_HASH}' }}
      key-auth: {{ key: doorstep-key-01 }}
    plugins:
      ip-restriction: {{ deny: ["127.0.0.0/8", "::1"] }}
"#,
        backend = backend.address(),
        access_log = access_log.display().to_string(),
    )
}

/// The mock upstream, the gateway, and the directory of its access log (`access.log`); a test binds
/// every field, since a dropped upstream stops answering.
struct Setup {
    backend: MockUpstream,
    gw: TestGateway,
    logs: tempfile::TempDir,
}

async fn start() -> Setup {
    let backend = MockUpstream::http("backend").await;
    let logs = tempfile::tempdir().expect("a temporary directory");
    let gw = TestGateway::start(&config(&backend, &logs.path().join("access.log")));
    Setup { backend, gw, logs }
}

/// The consumers of the access log's lines so far, in order (`null` where none was named).
fn logged_consumers(logs: &tempfile::TempDir) -> Vec<Value> {
    std::fs::read_to_string(logs.path().join("access.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .map(|entry| entry["consumer"].clone())
        .collect()
}

async fn get(gw: &TestGateway, host: &str, path: &str, headers: &[(&str, &str)]) -> TestResponse {
    let mut req = Request::get(path).header("host", host);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(Full::new(Bytes::new())).unwrap();
    tokio::time::timeout(SAFETY, send(gw.addr("main"), Proto::H1, req))
        .await
        .expect("request did not finish")
        .expect("request failed")
}

/// `Authorization` values: `Basic` and the base64 of the `username:password` named.
const ALICE: &str = "Basic YWxpY2U6b3BlbiBzZXNhbWU="; // alice:open sesame
const ALICE_WRONG: &str = "Basic YWxpY2U6c2VzYW1l"; // alice:sesame
const ALICE_PREFIX: &str = "Basic YWxpY2U6b3Blbg=="; // alice:open
const CAROL: &str = "Basic Y2Fyb2w6b3BlbiBzZXNhbWU="; // carol:open sesame (no such user)
const NO_COLON: &str = "Basic YWxpY2U="; // alice
const BOB: &str = "Basic Ym9iOmNvcnJlY3QgaG9yc2U="; // bob:correct horse
const DOORSTEP: &str = "Basic ZG9vcnN0ZXA6b3BlbiBzZXNhbWU="; // doorstep:open sesame

/// The gateway's own 401: the challenge, JSON content type and exactly
/// `{"error": message, "request_id": <the response's x-request-id>}`.
fn assert_401(res: &TestResponse, challenge: &str, message: &str) {
    assert_eq!(res.status, 401, "body: {}", res.text());
    assert_eq!(res.header("www-authenticate"), Some(challenge));
    assert_eq!(res.header("content-type"), Some("application/json"));
    let id = res.header("x-request-id").expect("x-request-id on error");
    assert_eq!(res.json(), json!({"error": message, "request_id": id}));
}

/// The next request, on a route without plugins, is proxied as usual.
async fn assert_still_serves(gw: &TestGateway) {
    let res = get(gw, "open.test", "/after", &[]).await;
    assert_eq!(res.status, 200, "follow-up failed: {}", res.text());
    assert_eq!(res.json()["uri"], "/after");
}

#[tokio::test]
async fn basic_auth_without_credentials_is_401_with_the_realm() {
    let Setup {
        backend,
        gw,
        logs: _logs,
    } = start().await;
    let res = get(&gw, "basic.test", "/r", &[]).await;
    assert_401(&res, "Basic realm=\"staff\"", "missing credentials");
    let res = get(
        &gw,
        "basic-hidden.test",
        "/r",
        &[("authorization", "Bearer x.y.z")],
    )
    .await;
    assert_401(&res, "Basic realm=\"floodgate\"", "missing credentials");
    assert_eq!(backend.requests(), 0, "nothing was forwarded");
    assert_still_serves(&gw).await;
    let text = gw.metrics.render();
    let line = r#"floodgate_plugin_rejections_total{route="basic",plugin="basic-auth",reason="missing_credentials"} 1"#;
    assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
}

#[tokio::test]
async fn basic_auth_wrong_unknown_or_malformed_credentials_are_401() {
    let Setup {
        backend,
        gw,
        logs: _logs,
    } = start().await;
    for value in [
        ALICE_WRONG,
        CAROL,
        NO_COLON,
        "Basic !!!",
        "Basic",
        "Basic  ",
    ] {
        let res = get(&gw, "basic.test", "/r", &[("authorization", value)]).await;
        assert_401(&res, "Basic realm=\"staff\"", "invalid credentials");
    }
    assert_eq!(backend.requests(), 0, "nothing was forwarded");
    assert_still_serves(&gw).await;
}

#[tokio::test]
async fn basic_auth_right_passwords_reach_the_upstream() {
    let Setup {
        backend: _backend,
        gw,
        logs,
    } = start().await;
    // Twice: the second is answered from the worker's cache of verified pairs.
    for _ in 0..2 {
        let res = get(&gw, "basic.test", "/r?x=1", &[("authorization", ALICE)]).await;
        assert_eq!(res.status, 200, "{}", res.text());
        let echo = res.json();
        assert_eq!(echo["uri"], "/r?x=1");
        assert_eq!(echo["headers"]["authorization"], ALICE, "kept: not hidden");
    }
    let res = get(&gw, "basic-hidden.test", "/r", &[("authorization", BOB)]).await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert!(
        res.json()["headers"].get("authorization").is_none(),
        "hidden"
    );
    // A wrong password after a right one is still refused.
    let res = get(&gw, "basic.test", "/r", &[("authorization", ALICE_PREFIX)]).await;
    assert_401(&res, "Basic realm=\"staff\"", "invalid credentials");
    assert_still_serves(&gw).await;
    eventually("five access log lines", || {
        logged_consumers(&logs).len() == 5
    })
    .await;
    assert_eq!(
        logged_consumers(&logs),
        [
            json!("alice"),
            json!("alice"),
            json!("bob"),
            Value::Null,
            Value::Null
        ],
        "the refused request and the follow-up name no consumer"
    );
}

#[tokio::test]
async fn basic_auth_names_the_consumer_whose_own_plugins_then_run() {
    let Setup {
        backend,
        gw,
        logs: _logs,
    } = start().await;
    let res = get(&gw, "basic.test", "/r", &[("authorization", DOORSTEP)]).await;
    assert_eq!(res.status, 403, "{}", res.text());
    assert_eq!(res.json()["error"], "forbidden");
    assert_eq!(backend.requests(), 0);
    assert_still_serves(&gw).await;
}

#[tokio::test]
async fn key_auth_missing_and_wrong_keys_are_401() {
    let Setup {
        backend,
        gw,
        logs: _logs,
    } = start().await;
    let res = get(&gw, "key.test", "/k", &[]).await;
    assert_401(&res, "Key realm=\"floodgate\"", "missing API key");
    let res = get(&gw, "key.test", "/k", &[("apikey", "alice-key-0002")]).await;
    assert_401(&res, "Key realm=\"floodgate\"", "invalid API key");
    let res = get(&gw, "key.test", "/k?apikey=alice-key-000", &[]).await;
    assert_401(&res, "Key realm=\"floodgate\"", "invalid API key");
    // A right key beside a different one: the upstream might read the other, so neither passes.
    let res = get(
        &gw,
        "key.test",
        "/k?apikey=forged-key-01",
        &[("apikey", "alice-key-0001")],
    )
    .await;
    assert_401(&res, "Key realm=\"floodgate\"", "invalid API key");
    let res = get(
        &gw,
        "key.test",
        "/k",
        &[("apikey", "alice-key-0001"), ("apikey", "forged-key-01")],
    )
    .await;
    assert_401(&res, "Key realm=\"floodgate\"", "invalid API key");
    assert_eq!(backend.requests(), 0, "nothing was forwarded");
    assert_still_serves(&gw).await;
}

#[tokio::test]
async fn key_auth_right_keys_reach_the_upstream_hidden_or_not() {
    let Setup {
        backend: _backend,
        gw,
        logs: _logs,
    } = start().await;
    let res = get(&gw, "key.test", "/k?apikey=alice-key-0001&x=1", &[]).await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(
        res.json()["uri"],
        "/k?apikey=alice-key-0001&x=1",
        "kept: not hidden"
    );
    let res = get(&gw, "key.test", "/k", &[("apikey", "alice-key-0001")]).await;
    assert_eq!(res.json()["headers"]["apikey"], "alice-key-0001");

    let res = get(
        &gw,
        "key-hidden.test",
        "/k",
        &[("apikey", "alice-key-0001")],
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert!(
        res.json()["headers"].get("apikey").is_none(),
        "header hidden"
    );
    let res = get(
        &gw,
        "key-hidden.test",
        "/k?a=1&apikey=alice-key-0001&b=2",
        &[],
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["uri"], "/k?a=1&b=2", "query parameter hidden");
    let res = get(&gw, "key-hidden.test", "/k?apikey=alice-key-0001", &[]).await;
    assert_eq!(res.json()["uri"], "/k");
    // A name spelled with escapes is the same parameter to an upstream that decodes names: every
    // spelling is hidden (a different key under one would be refused, see above).
    let res = get(
        &gw,
        "key-hidden.test",
        "/k?apikey=alice-key-0001&api%6Bey=alice-key-0001&%61pikey=alice-key-0001&x=1",
        &[],
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(
        res.json()["uri"],
        "/k?x=1",
        "every spelling of the parameter hidden"
    );
    // A hidden key field goes with its underscore spelling, which an upstream reading `HTTP_X_API_KEY`
    // would take for the key the gateway checked; being a copy of the key, a different key under it
    // is refused.
    let res = get(
        &gw,
        "key-header.test",
        "/k",
        &[("x-api-key", "alice-key-0001"), ("x_api_key", "forged")],
    )
    .await;
    assert_eq!(res.status, 401, "{}", res.text());
    let res = get(
        &gw,
        "key-header.test",
        "/k",
        &[
            ("x-api-key", "alice-key-0001"),
            ("x_api_key", "alice-key-0001"),
        ],
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let seen = res.json();
    assert!(seen["headers"].get("x-api-key").is_none(), "{seen}");
    assert!(seen["headers"].get("x_api_key").is_none(), "{seen}");
    // And an escaped name is read as the key: a wrong key so spelled is refused, a right one accepted.
    let res = get(&gw, "key.test", "/k?api%6Bey=wrong-key-00001", &[]).await;
    assert_eq!(res.status, 401, "{}", res.text());
    let res = get(&gw, "key.test", "/k?api%6Bey=alice-key-0001", &[]).await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_still_serves(&gw).await;
}

#[tokio::test]
async fn key_auth_names_the_consumer_whose_own_plugins_then_run() {
    let Setup {
        backend,
        gw,
        logs: _logs,
    } = start().await;
    let res = get(&gw, "key.test", "/k", &[("apikey", "doorstep-key-01")]).await;
    assert_eq!(res.status, 403, "{}", res.text());
    assert_eq!(res.json()["error"], "forbidden");
    assert_eq!(backend.requests(), 0);
    assert_still_serves(&gw).await;
}
