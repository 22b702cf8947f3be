//! A credential's query parameter and cookie under every name an upstream framework reads as theirs
//! (PHP: `api.key`, `api key`, `api[key`, ` api_key`, `api_key[]`; ASP.NET Core: `API_KEY`) are
//! copies of the credential: checked against it, and all hidden by `hide_credentials`. With
//! `query_separators: "&;"`, a parameter after a `;` is one too. key-auth and jwt-auth, over HTTP/1.1
//! and h2c; after each refusal the gateway serves the next request.
//!
//! Routes are told apart by host: `key.test` and `key-semi.test` (with `;`) read and hide `api_key`;
//! `jwt.test` and `jwt-semi.test` read and hide `access_token` and the cookie `jwt_token`.

use floodgate_testkit::jwt::{hs256, now};
use floodgate_testkit::{request, MockUpstream, Proto, TestGateway, TestResponse};
use http::Method;
use serde_json::{json, Value};

const SECRET: &str = "a-secret-of-at-least-thirty-two-bytes!";
const ALICE: &str = "alice-key-0001";
const BOB: &str = "bob-key-0002";

/// Names PHP (and, for the case, ASP.NET Core) reads as `api_key`, as a client writes them.
const SPELLINGS: [&str; 10] = [
    "api.key",
    "api+key",
    "api%20key",
    "api[key",
    "+api_key",
    "%20api_key",
    "api_key[]",
    "api_key[0]",
    "API_KEY",
    "Api.Key",
];

fn config(backend: &MockUpstream) -> String {
    let jwt = format!(
        r#"algorithms: [HS256], secret: "{SECRET}", query: access_token, cookie: jwt_token, hide_credentials: true"#
    );
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
    plugins: {{ key-auth: {{ query: api_key, hide_credentials: true }} }}
  - id: key-semi
    hosts: ["key-semi.test"]
    paths: ["/*"]
    upstream: backend
    plugins: {{ key-auth: {{ query: api_key, hide_credentials: true, query_separators: "&;" }} }}
  - id: jwt
    hosts: ["jwt.test"]
    paths: ["/*"]
    upstream: backend
    plugins: {{ jwt-auth: {{ {jwt} }} }}
  - id: jwt-semi
    hosts: ["jwt-semi.test"]
    paths: ["/*"]
    upstream: backend
    plugins: {{ jwt-auth: {{ {jwt}, query_separators: "&;" }} }}
"#,
        backend = backend.address()
    )
}

async fn get(
    gw: &TestGateway,
    proto: &Proto,
    host: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> TestResponse {
    let target = match proto {
        // HTTP/2 names the host in `:authority`.
        Proto::H2c => format!("http://{host}{path}"),
        _ => path.to_string(),
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

/// What the upstream received: its target, and its fields.
fn forwarded(response: &TestResponse) -> (String, Value) {
    assert_eq!(response.status, 200, "{}", response.text());
    let seen = response.json();
    (
        seen["uri"].as_str().expect("a target").to_string(),
        seen["headers"].clone(),
    )
}

fn assert_conflict(response: &TestResponse, error: &str) {
    assert_eq!(response.status, 401, "{}", response.text());
    assert_eq!(response.json()["error"], error);
}

async fn assert_still_serves(gw: &TestGateway, proto: &Proto) {
    let (uri, fields) = forwarded(&get(gw, proto, "open.test", "/next", &[]).await);
    assert_eq!(uri, "/next");
    assert_eq!(fields["x-forwarded-host"], "open.test");
}

#[tokio::test]
async fn key_auth_reads_and_hides_every_spelling_of_its_parameter() {
    let backend = MockUpstream::http("b").await;
    let gw = TestGateway::start(&config(&backend));
    for proto in [Proto::H1, Proto::H2c] {
        for spelling in SPELLINGS {
            let alone = get(
                &gw,
                &proto,
                "key.test",
                &format!("/p?x=1&{spelling}={BOB}&y=2"),
                &[],
            )
            .await;
            assert_eq!(forwarded(&alone).0, "/p?x=1&y=2", "{proto:?} {spelling}");

            let both = format!("/p?api_key={ALICE}&{spelling}={ALICE}&x=1");
            let same = get(&gw, &proto, "key.test", &both, &[]).await;
            assert_eq!(forwarded(&same).0, "/p?x=1", "{proto:?} {spelling}");

            let before = backend.requests();
            let differing = format!("/p?api_key={ALICE}&{spelling}={BOB}");
            let refused = get(&gw, &proto, "key.test", &differing, &[]).await;
            assert_conflict(&refused, "invalid API key");
            assert_eq!(backend.requests(), before, "nothing refused was forwarded");
            assert_still_serves(&gw, &proto).await;
        }
    }
}

#[tokio::test]
async fn key_auth_reads_a_parameter_after_a_semicolon_only_when_configured() {
    let backend = MockUpstream::http("b").await;
    let gw = TestGateway::start(&config(&backend));
    for proto in [Proto::H1, Proto::H2c] {
        // Split on `&` alone, `x=1;api_key=…` is one parameter named `x`: neither read nor hidden.
        let path = format!("/p?x=1;api_key={BOB}&api_key={ALICE}");
        let plain = get(&gw, &proto, "key.test", &path, &[]).await;
        assert_eq!(forwarded(&plain).0, format!("/p?x=1;api_key={BOB}"));

        let semi = get(&gw, &proto, "key-semi.test", &path, &[]).await;
        assert_conflict(&semi, "invalid API key");
        let same = format!("/p?x=1;api_key={ALICE}&y=2;API.KEY={ALICE};z");
        let hidden = get(&gw, &proto, "key-semi.test", &same, &[]).await;
        assert_eq!(forwarded(&hidden).0, "/p?x=1&y=2;z");
        assert_still_serves(&gw, &proto).await;
    }
}

#[tokio::test]
async fn jwt_auth_reads_and_hides_every_spelling_of_its_parameter_and_cookie() {
    let backend = MockUpstream::http("b").await;
    let gw = TestGateway::start(&config(&backend));
    let alice = hs256(SECRET, json!({ "sub": "alice", "exp": now() + 600 }));
    let other = hs256(SECRET, json!({ "sub": "bob", "exp": now() + 600 }));
    for proto in [Proto::H1, Proto::H2c] {
        for spelling in [
            "access.token",
            "access+token",
            "access%20token",
            "access[token",
            "+access_token",
            "access_token[]",
            "access_token[0]",
            "ACCESS_TOKEN",
            "Access.Token",
        ] {
            let query = get(
                &gw,
                &proto,
                "jwt.test",
                &format!("/p?{spelling}={alice}&x=1"),
                &[],
            )
            .await;
            assert_eq!(forwarded(&query).0, "/p?x=1", "{proto:?} {spelling}");
            let differing = format!("/p?access_token={alice}&{spelling}={other}");
            let refused = get(&gw, &proto, "jwt.test", &differing, &[]).await;
            assert_conflict(&refused, "invalid token");
        }
        for spelling in [
            "jwt.token",
            "jwt%2Etoken",
            "jwt+token",
            "JWT_TOKEN",
            "jwt[token",
            "jwt_token[]",
        ] {
            let cookie = format!("theme=dark; {spelling}={alice}; lang=en");
            let sent = get(&gw, &proto, "jwt.test", "/p", &[("cookie", &cookie)]).await;
            let (uri, fields) = forwarded(&sent);
            assert_eq!(uri, "/p");
            assert_eq!(
                fields["cookie"], "theme=dark; lang=en",
                "{proto:?} {spelling}"
            );
            let two = format!("jwt_token={alice}; {spelling}={other}");
            let refused = get(&gw, &proto, "jwt.test", "/p", &[("cookie", &two)]).await;
            assert_conflict(&refused, "invalid token");
        }
        assert_still_serves(&gw, &proto).await;
    }
}

#[tokio::test]
async fn jwt_auth_reads_a_parameter_after_a_semicolon_only_when_configured() {
    let backend = MockUpstream::http("b").await;
    let gw = TestGateway::start(&config(&backend));
    let alice = hs256(SECRET, json!({ "sub": "alice", "exp": now() + 600 }));
    let other = hs256(SECRET, json!({ "sub": "bob", "exp": now() + 600 }));
    for proto in [Proto::H1, Proto::H2c] {
        let path = format!("/p?x=1;access_token={other}&access_token={alice}");
        let plain = get(&gw, &proto, "jwt.test", &path, &[]).await;
        assert_eq!(forwarded(&plain).0, format!("/p?x=1;access_token={other}"));
        let semi = get(&gw, &proto, "jwt-semi.test", &path, &[]).await;
        assert_conflict(&semi, "invalid token");
        let same = format!("/p?x=1;access_token={alice}&y=2");
        let hidden = get(&gw, &proto, "jwt-semi.test", &same, &[]).await;
        assert_eq!(forwarded(&hidden).0, "/p?x=1&y=2");
        assert_still_serves(&gw, &proto).await;
    }
}
