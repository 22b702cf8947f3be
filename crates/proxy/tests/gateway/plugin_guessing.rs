//! Password and key guessing against a running gateway: a `rate-limit` keyed by client address runs
//! before authentication, so refused logins count against it and guesses past it get 429 without
//! their password being checked; `auth-failure-limit` refuses an address that has had its credentials
//! refused too often, before any authentication plugin looks at it. Over HTTP/1.1 and HTTP/2.

use floodgate_testkit::{request_to_host, MockUpstream, Proto, TestGateway, TestResponse};
use http::Method;
use serde_json::json;

/// bcrypt (cost 4) of `open sesame`.
const ALICE_HASH: &str = "$2b$04$FObG2QawZah0hG41E76/h.s9m0VVSIW0GYtrUcksL.EJlevKUPA4C";
const ALICE: &str = "Basic YWxpY2U6b3BlbiBzZXNhbWU="; // alice:open sesame
const ALICE_WRONG: &str = "Basic YWxpY2U6c2VzYW1l"; // alice:sesame

fn config(backend: &MockUpstream) -> String {
    format!(
        r#"
workers: 1
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
upstreams:
  - id: backend
    targets: [{{ address: "{backend}" }}]
routes:
  - {{ id: open, paths: ["/*"], upstream: backend }}
  - id: limited
    hosts: ["limited.test"]
    paths: ["/*"]
    upstream: backend
    plugins:
      basic-auth: {{}}
      rate-limit: {{ rate: 5, period: 1h }}
  - id: after-auth
    hosts: ["after-auth.test"]
    paths: ["/*"]
    upstream: backend
    plugins:
      basic-auth: {{}}
      rate-limit: {{ rate: 5, period: 1h, before_authentication: false }}
  - id: guarded
    hosts: ["guarded.test"]
    paths: ["/*"]
    upstream: backend
    plugins:
      key-auth: {{}}
      auth-failure-limit: {{ max_failures: 3, period: 1h }}
consumers:
  - id: alice
    credentials:
      basic-auth: {{ username: alice, password_hash: '{ALICE_HASH}' }}
      key-auth: {{ key: alice-key-0001 }}
"#,
        backend = backend.address(),
    )
}

async fn get(gw: &TestGateway, proto: Proto, host: &str, headers: &[(&str, &str)]) -> TestResponse {
    request_to_host(gw.addr("main"), proto, Method::GET, host, "/r", headers).await
}

/// The value of the metric line starting with `prefix`, 0 when there is none.
fn counted(gw: &TestGateway, prefix: &str) -> u64 {
    gw.metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
        .unwrap_or(0)
}

async fn assert_still_serves(gw: &TestGateway, proto: Proto) {
    let res = get(gw, proto, "open.test", &[]).await;
    assert_eq!(res.status, 200, "follow-up failed: {}", res.text());
}

#[tokio::test]
async fn password_guessing_on_a_limited_route_gets_429_without_being_checked() {
    for proto in [Proto::H1, Proto::H2c] {
        let backend = MockUpstream::http("backend").await;
        let gw = TestGateway::start(&config(&backend));
        let statuses: Vec<u16> = {
            let mut statuses = Vec::new();
            for _ in 0..15 {
                let res = get(
                    &gw,
                    proto.clone(),
                    "limited.test",
                    &[("authorization", ALICE_WRONG)],
                )
                .await;
                statuses.push(res.status.as_u16());
                if res.status == 429 {
                    assert!(
                        res.header("retry-after").is_some(),
                        "a 429 says when to retry"
                    );
                    let id = res.header("x-request-id").expect("x-request-id");
                    assert_eq!(
                        res.json(),
                        json!({"error": "rate limit exceeded", "request_id": id})
                    );
                }
            }
            statuses
        };
        let mut expected = vec![401; 5];
        expected.extend([429; 10]);
        assert_eq!(statuses, expected, "{proto:?}");
        // basic-auth saw five requests: the other ten never reached a password check.
        let basic = r#"floodgate_plugin_rejections_total{route="limited",plugin="basic-auth",reason="invalid_credentials"}"#;
        let limiter = r#"floodgate_plugin_rejections_total{route="limited",plugin="rate-limit",reason="rate_limited"}"#;
        assert_eq!(counted(&gw, basic), 5, "{proto:?}");
        assert_eq!(counted(&gw, limiter), 10, "{proto:?}");
        // The right password from the same address is limited too: the budget is the address's.
        let res = get(
            &gw,
            proto.clone(),
            "limited.test",
            &[("authorization", ALICE)],
        )
        .await;
        assert_eq!(res.status, 429);
        assert_eq!(backend.requests(), 0, "nothing was forwarded");
        assert_still_serves(&gw, proto).await;
    }
}

#[tokio::test]
async fn a_limit_told_to_run_after_authentication_counts_only_authenticated_requests() {
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&config(&backend));
    for _ in 0..8 {
        let res = get(
            &gw,
            Proto::H1,
            "after-auth.test",
            &[("authorization", ALICE_WRONG)],
        )
        .await;
        assert_eq!(res.status, 401);
    }
    let statuses: Vec<u16> = {
        let mut statuses = Vec::new();
        for _ in 0..6 {
            let res = get(
                &gw,
                Proto::H1,
                "after-auth.test",
                &[("authorization", ALICE)],
            )
            .await;
            statuses.push(res.status.as_u16());
        }
        statuses
    };
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
    assert_eq!(backend.requests(), 5);
    assert_still_serves(&gw, Proto::H1).await;
}

#[tokio::test]
async fn an_address_with_too_many_refused_keys_is_refused_before_its_key_is_checked() {
    for proto in [Proto::H1, Proto::H2c] {
        let backend = MockUpstream::http("backend").await;
        let gw = TestGateway::start(&config(&backend));
        // Requests without a key and with the right one cost nothing.
        for _ in 0..4 {
            assert_eq!(
                get(&gw, proto.clone(), "guarded.test", &[]).await.status,
                401
            );
            let res = get(
                &gw,
                proto.clone(),
                "guarded.test",
                &[("apikey", "alice-key-0001")],
            )
            .await;
            assert_eq!(res.status, 200, "{proto:?}");
        }
        for _ in 0..3 {
            let res = get(
                &gw,
                proto.clone(),
                "guarded.test",
                &[("apikey", "guessed-key-01")],
            )
            .await;
            assert_eq!(res.status, 401, "{proto:?}");
        }
        // The budget is spent: even the right key gets 429, and key-auth sees nothing more.
        for key in ["guessed-key-02", "alice-key-0001"] {
            let res = get(&gw, proto.clone(), "guarded.test", &[("apikey", key)]).await;
            assert_eq!(res.status, 429, "{proto:?}");
            assert!(res.header("retry-after").is_some());
            let id = res.header("x-request-id").expect("x-request-id");
            assert_eq!(
                res.json(),
                json!({"error": "too many failed authentications", "request_id": id})
            );
        }
        let refused = r#"floodgate_plugin_rejections_total{route="guarded",plugin="key-auth",reason="invalid_credentials"}"#;
        let limited = r#"floodgate_plugin_rejections_total{route="guarded",plugin="auth-failure-limit",reason="too_many_auth_failures"}"#;
        assert_eq!(counted(&gw, refused), 3, "{proto:?}");
        assert_eq!(counted(&gw, limited), 2, "{proto:?}");
        assert_eq!(backend.requests(), 4, "only the right keys were forwarded");
        assert_still_serves(&gw, proto).await;
    }
}
