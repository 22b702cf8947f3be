//! examples/api-gateway.yaml, run as written (addresses pointed at test servers): the web app's
//! preflight is answered at the gateway, a request without a token or with a token of an unknown
//! client is refused, a valid token reaches the service as a consumer id without the token, and each
//! consumer has its own rate limit (the partner's higher). Each refusal is followed by a request the
//! gateway serves.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use floodgate_testkit::jwt::{jwks, now, EcKey, JwksServer};
use floodgate_testkit::{MockUpstream, Proto, TestGateway, TestResponse};
use http::Method;
use serde_json::json;

const APP: &str = "https://app.example.com";

/// The example, its addresses pointed at the test's servers.
fn example(orders: &MockUpstream, catalog: &MockUpstream, jwks: &JwksServer) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/api-gateway.yaml");
    let text = std::fs::read_to_string(&path).expect("example");
    let replaced = text
        .replace("\"0.0.0.0:8080\"", "\"127.0.0.1:0\"")
        .replace("\"127.0.0.1:9180\"", "\"127.0.0.1:0\"")
        .replace("path: \"-\"", "path: \"/dev/null\"")
        .replace("10.0.1.10:8000", &orders.address())
        .replace("10.0.1.11:8000", &orders.address())
        .replace("10.0.2.10:8000", &catalog.address())
        .replace("https://id.example.com/.well-known/jwks.json", &jwks.url());
    assert_ne!(text, replaced);
    replaced
}

async fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> TestResponse {
    floodgate_testkit::request(addr, Proto::H1, method, path, headers).await
}

fn token(key: &EcKey, sub: &str) -> String {
    key.token(json!({
        "sub": sub, "iss": "https://id.example.com/", "aud": "orders-api", "exp": now() + 600,
    }))
}

#[tokio::test]
async fn the_api_gateway_example_authenticates_limits_and_answers_cors() {
    let orders = MockUpstream::http("orders").await;
    let catalog = MockUpstream::http("catalog").await;
    let key = EcKey::new("k1");
    let idp = JwksServer::start(jwks(&[&key])).await;
    let gw = TestGateway::start(&example(&orders, &catalog, &idp));
    let addr = gw.addr("public");

    // The preflight never reaches the service.
    let preflight = request(
        addr,
        Method::OPTIONS,
        "/orders/7",
        &[("origin", APP), ("access-control-request-method", "POST")],
    )
    .await;
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        preflight.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(preflight.header("access-control-max-age"), Some("600"));
    assert_eq!(orders.requests(), 0);

    // No token: 401, and the browser may still read the refusal.
    let missing = request(addr, Method::GET, "/orders/7", &[("origin", APP)]).await;
    assert_eq!(missing.status, 401);
    assert_eq!(
        missing.header("www-authenticate"),
        Some("Bearer realm=\"floodgate\"")
    );
    assert_eq!(missing.header("access-control-allow-origin"), Some(APP));

    // A valid token of a client the gateway does not know.
    let stranger = token(&key, "someone-else");
    let refused = request(
        addr,
        Method::GET,
        "/orders/7",
        &[("authorization", &format!("Bearer {stranger}"))],
    )
    .await;
    assert_eq!(refused.status, 401);
    assert_eq!(orders.requests(), 0);

    // The web app's token: the service sees the consumer, not the token.
    let web = token(&key, "web-app");
    let ok = request(
        addr,
        Method::GET,
        "/orders/7",
        &[("authorization", &format!("Bearer {web}")), ("origin", APP)],
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let seen = ok.json();
    assert_eq!(seen["headers"]["x-consumer-id"], "web-app");
    assert!(seen["headers"].get("authorization").is_none(), "{seen}");
    assert_eq!(ok.header("access-control-allow-origin"), Some(APP));
    assert!(ok.header("ratelimit-policy").is_some());

    // Each consumer has its own bucket: the web app's (burst 40, 20/s) runs out, the partner's
    // (burst 1000) does not.
    let partner = token(&key, "partner-premium");
    let started = Instant::now();
    let (mut web_ok, mut web_limited, mut partner_ok) = (0u64, 0u64, 0u64);
    for _ in 0..100 {
        let r = request(
            addr,
            Method::GET,
            "/orders",
            &[("authorization", &format!("Bearer {web}"))],
        )
        .await;
        match r.status.as_u16() {
            200 => web_ok += 1,
            429 => {
                web_limited += 1;
                assert!(r.header("retry-after").is_some());
            }
            other => panic!("unexpected {other}"),
        }
        let r = request(
            addr,
            Method::GET,
            "/orders",
            &[("authorization", &format!("Bearer {partner}"))],
        )
        .await;
        assert_eq!(r.status, 200, "the partner's limit is far higher");
        partner_ok += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    // The one successful request above took a token too.
    let allowed = 40.0 + 20.0 * elapsed.ceil() - 1.0;
    assert!(
        web_ok as f64 <= allowed,
        "{web_ok} admitted in {elapsed:.2}s"
    );
    assert_eq!(web_ok + web_limited, 100);
    assert_eq!(partner_ok, 100);

    // Still serving: the catalog is anonymous, limited per address.
    let catalog_ok = request(addr, Method::GET, "/catalog/books", &[]).await;
    assert_eq!(catalog_ok.status, 200);
    assert_eq!(catalog_ok.json()["upstream"], "catalog");
    assert_eq!(
        request(addr, Method::GET, "/healthz", &[]).await.text(),
        "ok\n"
    );
}
