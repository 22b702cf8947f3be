//! Methods and the routes that gate them: a method-override field cannot carry a request past the
//! route its overriding method would have met (`method_override`), and `HEAD` follows a GET-only
//! route rather than slipping to a broader one without its authentication. Over HTTP/1.1 and HTTP/2,
//! with the exact status and the exact fields the upstream received.

use floodgate_testkit::{request_to_host, MockUpstream, Proto, TestGateway, TestResponse};
use http::Method;
use serde_json::{json, Value};

const KEY: &str = "alice-key-0001";

fn config(open: &MockUpstream, guarded: &MockUpstream) -> String {
    format!(
        r#"
workers: 1
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
upstreams:
  - {{ id: open, targets: [{{ address: "{open}" }}] }}
  - {{ id: guarded, targets: [{{ address: "{guarded}" }}] }}
routes:
  - {{ id: catch-all, paths: ["/*"], upstream: open }}
  - {{ id: items-post, paths: ["/items/*"], methods: [POST], upstream: open }}
  - id: items-delete
    paths: ["/items/*"]
    methods: [DELETE]
    upstream: guarded
    plugins: {{ key-auth: {{}} }}
  - {{ id: strict-post, paths: ["/strict/*"], methods: [POST], upstream: open, method_override: reject }}
  - {{ id: legacy-post, paths: ["/legacy/*"], methods: [POST], upstream: open, method_override: allow }}
  - id: docs-read
    paths: ["/docs/*"]
    methods: [GET]
    upstream: guarded
    plugins: {{ key-auth: {{}} }}
consumers:
  - {{ id: alice, credentials: {{ key-auth: {{ key: {KEY} }} }} }}
"#,
        open = open.address(),
        guarded = guarded.address(),
    )
}

struct Setup {
    open: MockUpstream,
    guarded: MockUpstream,
    gw: TestGateway,
}

async fn start() -> Setup {
    let open = MockUpstream::http("open").await;
    let guarded = MockUpstream::http("guarded").await;
    let gw = TestGateway::start(&config(&open, &guarded));
    Setup { open, guarded, gw }
}

async fn request(
    gw: &TestGateway,
    proto: Proto,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> TestResponse {
    request_to_host(gw.addr("main"), proto, method, "gw.test", path, headers).await
}

/// A `POST` of `path` with `headers`.
async fn post(
    gw: &TestGateway,
    proto: Proto,
    path: &str,
    headers: &[(&str, &str)],
) -> TestResponse {
    request(gw, proto, Method::POST, path, headers).await
}

/// The fields the upstream echoed, by name.
fn upstream_fields(res: &TestResponse) -> Value {
    res.json()["headers"].clone()
}

async fn assert_still_serves(gw: &TestGateway, proto: Proto) {
    let res = request(gw, proto, Method::GET, "/after", &[]).await;
    assert_eq!(res.status, 200, "follow-up failed: {}", res.text());
    assert_eq!(
        res.json()["uri"].as_str().map(|u| u.ends_with("/after")),
        Some(true)
    );
}

#[tokio::test]
async fn an_override_naming_a_method_routed_elsewhere_is_dropped_in_every_spelling() {
    let Setup {
        open: _open,
        guarded,
        gw,
    } = start().await;
    for proto in [Proto::H1, Proto::H2c] {
        for (name, value) in [
            ("x-http-method-override", "DELETE"),
            ("x-http-method", "DELETE"),
            ("x-method-override", "DELETE"),
            ("x_http_method_override", "DELETE"),
            ("X_HTTP_Method", "DELETE"),
            ("x-http-method-override", "delete"),
            ("x-http-method-override", " Delete "),
            ("x-http-method-override", "POST, DELETE"),
            ("x-method-override", "PUT"),
            ("x-method-override", "NOT A METHOD"),
        ] {
            let res = post(
                &gw,
                proto.clone(),
                "/items/1",
                &[(name, value), ("x-other", "kept")],
            )
            .await;
            assert_eq!(res.status, 200, "{proto:?} {name}: {value}");
            let fields = upstream_fields(&res);
            assert_eq!(res.json()["method"], "POST");
            assert_eq!(
                fields[name.to_ascii_lowercase()],
                Value::Null,
                "{proto:?} {name}: {value}"
            );
            assert_eq!(fields["x-other"], "kept");
        }
        // Two override fields: both go, whichever named the other route.
        let res = post(
            &gw,
            proto.clone(),
            "/items/1",
            &[("x-http-method", "POST"), ("x-method-override", "DELETE")],
        )
        .await;
        assert_eq!(res.status, 200);
        let fields = upstream_fields(&res);
        assert_eq!(fields["x-http-method"], Value::Null);
        assert_eq!(fields["x-method-override"], Value::Null);
        assert_still_serves(&gw, proto).await;
    }
    assert_eq!(
        guarded.requests(),
        0,
        "the guarded route's upstream saw nothing"
    );
}

#[tokio::test]
async fn an_override_naming_a_method_of_the_same_route_is_kept() {
    let Setup {
        open: _open,
        guarded: _guarded,
        gw,
    } = start().await;
    for proto in [Proto::H1, Proto::H2c] {
        let res = post(
            &gw,
            proto.clone(),
            "/items/1",
            &[("x-http-method-override", "POST")],
        )
        .await;
        assert_eq!(res.status, 200);
        assert_eq!(upstream_fields(&res)["x-http-method-override"], "POST");
        // On the catch-all, every method is routed there: an override is the upstream's business.
        let res = post(&gw, proto.clone(), "/other", &[("x-http-method", "PATCH")]).await;
        assert_eq!(res.status, 200);
        assert_eq!(upstream_fields(&res)["x-http-method"], "PATCH");
        assert_still_serves(&gw, proto).await;
    }
}

#[tokio::test]
async fn a_route_may_refuse_such_an_override_or_allow_it() {
    let Setup {
        open,
        guarded: _guarded,
        gw,
    } = start().await;
    for proto in [Proto::H1, Proto::H2c] {
        let before = open.requests();
        let res = post(
            &gw,
            proto.clone(),
            "/strict/x",
            &[("x_http_method_override", "DELETE")],
        )
        .await;
        assert_eq!(res.status, 400);
        let id = res.header("x-request-id").expect("x-request-id");
        assert_eq!(
            res.json(),
            json!({"error": "method override not allowed", "request_id": id})
        );
        assert_eq!(open.requests(), before, "nothing was forwarded");
        let res = post(
            &gw,
            proto.clone(),
            "/legacy/x",
            &[("x-http-method-override", "DELETE")],
        )
        .await;
        assert_eq!(res.status, 200);
        assert_eq!(upstream_fields(&res)["x-http-method-override"], "DELETE");
        assert_still_serves(&gw, proto).await;
    }
}

#[tokio::test]
async fn head_follows_a_get_only_route_and_meets_its_authentication() {
    let Setup { open, guarded, gw } = start().await;
    for proto in [Proto::H1, Proto::H2c] {
        let (open_before, guarded_before) = (open.requests(), guarded.requests());
        let res = request(&gw, proto.clone(), Method::HEAD, "/docs/secret", &[]).await;
        assert_eq!(res.status, 401, "{proto:?}");
        assert!(res.body.is_empty(), "a HEAD answer has no body");
        assert_eq!(
            res.header("www-authenticate"),
            Some("Key realm=\"floodgate\"")
        );
        assert_eq!(
            (open.requests(), guarded.requests()),
            (open_before, guarded_before),
            "nothing was forwarded"
        );
        let res = request(
            &gw,
            proto.clone(),
            Method::HEAD,
            "/docs/secret",
            &[("apikey", KEY)],
        )
        .await;
        assert_eq!(res.status, 200);
        assert!(res.body.is_empty());
        assert_eq!(
            guarded.requests(),
            guarded_before + 1,
            "the GET route's upstream served it"
        );
        // Other methods are not the GET route's: they go on to the catch-all, as configured.
        let res = request(&gw, proto.clone(), Method::POST, "/docs/secret", &[]).await;
        assert_eq!(res.status, 200);
        assert_eq!(res.json()["upstream"], "open");
        assert_still_serves(&gw, proto).await;
    }
}

#[tokio::test]
async fn a_method_query_parameter_is_held_to_the_same_rule() {
    let Setup {
        open: _open,
        guarded,
        gw,
    } = start().await;
    for proto in [Proto::H1, Proto::H2c] {
        for (target, forwarded) in [
            ("/items/1?_method=DELETE", "/items/1"),
            ("/items/1?a=1&_method=delete&b=2", "/items/1?a=1&b=2"),
            ("/items/1?a=1&%5Fmethod=DELETE", "/items/1?a=1"),
            ("/items/1?_m%65thod=DEL%45TE&b", "/items/1?b"),
            ("/items/1?.method=DELETE", "/items/1"),
            ("/items/1?_METHOD=DELETE&_method=POST", "/items/1"),
            // Same route: kept as sent.
            ("/items/1?_method=POST&x=1", "/items/1?_method=POST&x=1"),
            // Not the parameter at all.
            (
                "/items/1?methods=DELETE&x_method=DELETE",
                "/items/1?methods=DELETE&x_method=DELETE",
            ),
        ] {
            let res = request(&gw, proto.clone(), Method::POST, target, &[]).await;
            assert_eq!(res.status, 200, "{proto:?} {target}");
            assert_eq!(res.json()["uri"], forwarded, "{proto:?} {target}");
        }
        let res = post(&gw, proto.clone(), "/strict/x?_method=DELETE", &[]).await;
        assert_eq!(res.status, 400, "{proto:?}");
        let res = post(&gw, proto.clone(), "/legacy/x?_method=DELETE", &[]).await;
        assert_eq!(res.status, 200);
        assert_eq!(res.json()["uri"], "/legacy/x?_method=DELETE");
        assert_still_serves(&gw, proto).await;
    }
    assert_eq!(
        guarded.requests(),
        0,
        "the guarded route's upstream saw nothing"
    );
}
