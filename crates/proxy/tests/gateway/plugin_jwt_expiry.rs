//! A cached token stops working when it expires, whether its `exp` is an integer or a fractional
//! NumericDate (RFC 7519 §2), on the same kept-alive HTTP/1.1 connection and the same h2c connection
//! that first carried it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use floodgate_testkit::jwt::{hs256, now};
use floodgate_testkit::{KeptConnection, MockUpstream, Proto, TestGateway};
use serde_json::{json, Value};

const SECRET: &str = "a-secret-of-at-least-thirty-two-bytes!";

fn config(backend: &MockUpstream) -> String {
    format!(
        r#"workers: 1
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
upstreams:
  - id: backend
    targets: [{{ address: "{backend}" }}]
routes:
  - id: api
    paths: ["/*"]
    upstream: backend
    plugins: {{ jwt-auth: {{ algorithms: [HS256], secret: "{SECRET}", leeway: 0s }} }}
"#,
        backend = backend.address()
    )
}

fn unix_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// Sleeps until the whole second after `last_valid` has begun: the first second in which the
/// validator refuses a token whose `exp` reads as `last_valid`.
async fn sleep_past(last_valid: u64) {
    let past = (last_valid + 1) as f64 + 0.05;
    let wait = past - unix_seconds();
    if wait > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    }
}

/// Sends `token` on one connection: accepted (and cached) while valid, refused once `exp` (read as
/// `last_valid`) has passed, and a fresh token is served on the same connection after that.
///
/// `lifetime` gives the `exp` claim and the second it reads as; it is asked once the gateway and the
/// connection are up, so their start-up never eats into the token's life.
async fn expires_on_one_connection(proto: Proto, lifetime: fn() -> (Value, u64)) {
    let backend = MockUpstream::http("b").await;
    let gw = TestGateway::start(&config(&backend));
    let mut conn = KeptConnection::open(gw.addr("main"), proto.clone()).await;
    let (exp, last_valid) = lifetime();
    let token = hs256(SECRET, json!({ "sub": "alice", "exp": exp }));
    let bearer = format!("Bearer {token}");

    for _ in 0..2 {
        let accepted = conn.get("/x", &[("authorization", &bearer)]).await;
        assert_eq!(accepted.status, 200, "{proto:?}: {}", accepted.text());
        let seen = accepted.json();
        assert_eq!(seen["uri"], "/x");
        assert_eq!(seen["headers"]["authorization"], bearer);
    }
    assert_eq!(backend.requests(), 2);

    sleep_past(last_valid).await;
    let expired = conn.get("/x", &[("authorization", &bearer)]).await;
    assert_eq!(
        expired.status, 401,
        "{proto:?}: an expired token from the cache"
    );
    assert_eq!(expired.json()["error"], "invalid token");
    assert_eq!(backend.requests(), 2, "nothing refused was forwarded");
    let metrics = gw.metrics.render();
    let line = "floodgate_plugin_rejections_total{route=\"api\",plugin=\"jwt-auth\",reason=\"expired_token\"} 1";
    assert!(metrics.contains(line), "{line} in\n{metrics}");

    let fresh = hs256(SECRET, json!({ "sub": "bob", "exp": now() + 600 }));
    let next = conn
        .get("/y", &[("authorization", &format!("Bearer {fresh}"))])
        .await;
    assert_eq!(next.status, 200);
    assert_eq!(next.json()["uri"], "/y");
    assert_eq!(backend.requests(), 3);
}

/// A fractional `exp` about 2.5 s ahead (time for two requests on a loaded machine), and the second
/// the validator rounds it to.
fn fractional_exp() -> (Value, u64) {
    let exp = unix_seconds() + 2.5;
    let exp = if exp.fract() == 0.0 { exp + 0.25 } else { exp };
    (json!(exp), exp.round() as u64)
}

/// An integer `exp` 2 s ahead.
fn integer_exp() -> (Value, u64) {
    let exp = now() + 2;
    (json!(exp), exp)
}

#[tokio::test]
async fn a_cached_token_with_a_fractional_exp_expires_over_http1() {
    expires_on_one_connection(Proto::H1, fractional_exp).await;
}

#[tokio::test]
async fn a_cached_token_with_a_fractional_exp_expires_over_h2c() {
    expires_on_one_connection(Proto::H2c, fractional_exp).await;
}

#[tokio::test]
async fn a_cached_token_with_an_integer_exp_expires_over_http1_and_h2c() {
    for proto in [Proto::H1, Proto::H2c] {
        expires_on_one_connection(proto, integer_exp).await;
    }
}
