//! The `cors` plugin through a running gateway: a preflight is answered at the gateway with exactly
//! the CORS fields and never reaches the upstream; an actual request from an allowed origin gets
//! `Access-Control-Allow-Origin` and a `Vary` that keeps the upstream's; a disallowed origin gets no
//! CORS fields, and its preflight a 403. Each answer is followed by a request the gateway serves.

use std::net::SocketAddr;

use floodgate_testkit::{Proto, Reply, ScriptedUpstream, TestGateway, TestResponse};
use http::Method;

const UPSTREAM_REPLY: &[u8] =
    b"HTTP/1.1 200 OK\r\nVary: Accept-Encoding\r\nContent-Length: 2\r\n\r\nok";

const CORS: &str = r#"cors: { allow_origins: ["https://app.example", "https://*.example.com"], allow_origin_regex: ['https://[a-z]+\.example\.org'], allow_headers: [X-Token, Content-Type], expose_headers: [X-Trace], allow_credentials: true, max_age: 1h }"#;

fn gateway(upstream: &ScriptedUpstream, plugins: &str, top: &str) -> TestGateway {
    TestGateway::start(&format!(
        r#"workers: 1
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
{top}
upstreams:
  - id: backend
    targets: [{{ address: "{}" }}]
routes:
  - {{ id: api, paths: ["/*"], upstream: backend, plugins: {{ {plugins} }} }}
"#,
        upstream.address()
    ))
}

async fn request(
    addr: SocketAddr,
    proto: Proto,
    method: Method,
    headers: &[(&str, &str)],
) -> TestResponse {
    floodgate_testkit::request(addr, proto, method, "/items?x=1", headers).await
}

/// Every `access-control-*` and `vary` field of a response, in order.
fn cors_fields(response: &TestResponse) -> Vec<(String, String)> {
    response
        .headers
        .iter()
        .filter(|(n, _)| n.as_str().starts_with("access-control-") || n.as_str() == "vary")
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

async fn still_serves(addr: SocketAddr, upstream: &mut ScriptedUpstream) {
    let ok = request(addr, Proto::H1, Method::GET, &[]).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.text(), "ok");
    assert_eq!(upstream.next_request().await.target(), "/items?x=1");
}

#[tokio::test]
async fn a_preflight_is_answered_at_the_gateway_with_exactly_the_cors_fields() {
    let mut upstream = ScriptedUpstream::start(|_| Reply::new(UPSTREAM_REPLY)).await;
    let gw = gateway(&upstream, CORS, "");
    let addr = gw.addr("main");
    for proto in [Proto::H1, Proto::H2c] {
        let preflight = request(
            addr,
            proto.clone(),
            Method::OPTIONS,
            &[
                ("origin", "https://shop.example.com"),
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", "x-token, content-type"),
            ],
        )
        .await;
        assert_eq!(preflight.status, 204, "{proto:?}");
        assert!(preflight.body.is_empty());
        assert_eq!(
            cors_fields(&preflight),
            pairs(&[
                ("access-control-allow-origin", "https://shop.example.com"),
                (
                    "access-control-allow-methods",
                    "GET, HEAD, POST, PUT, PATCH, DELETE"
                ),
                ("access-control-allow-headers", "x-token, content-type"),
                ("access-control-allow-credentials", "true"),
                ("access-control-max-age", "3600"),
                (
                    "vary",
                    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
                ),
            ]),
            "{proto:?}"
        );
        assert!(preflight.header("x-request-id").is_some());
    }
    assert!(
        upstream.requests_so_far().is_empty(),
        "the upstream never sees a preflight"
    );
    still_serves(addr, &mut upstream).await;
    let text = gw.metrics.render();
    let line =
        r#"floodgate_plugin_rejections_total{route="api",plugin="cors",reason="preflight"} 2"#;
    assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
}

#[tokio::test]
async fn an_allowed_origin_gets_allow_origin_and_the_upstreams_vary_is_kept() {
    let mut upstream = ScriptedUpstream::start(|_| Reply::new(UPSTREAM_REPLY)).await;
    let gw = gateway(&upstream, CORS, "");
    let addr = gw.addr("main");
    for (proto, origin) in [
        (Proto::H1, "https://app.example"),
        (Proto::H2c, "https://api.example.org"),
    ] {
        let actual = request(addr, proto, Method::POST, &[("origin", origin)]).await;
        assert_eq!(actual.status, 200);
        assert_eq!(actual.text(), "ok");
        assert_eq!(
            cors_fields(&actual),
            pairs(&[
                ("access-control-allow-origin", origin),
                ("access-control-allow-credentials", "true"),
                ("access-control-expose-headers", "x-trace"),
                ("vary", "Accept-Encoding"),
                ("vary", "Origin"),
            ])
        );
        let seen = upstream.next_request().await;
        assert!(seen.head.starts_with("POST /items?x=1 "));
        assert_eq!(seen.header("origin"), Some(origin));
    }
    still_serves(addr, &mut upstream).await;
}

#[tokio::test]
async fn a_disallowed_origin_gets_no_cors_fields_and_its_preflight_is_refused() {
    let mut upstream = ScriptedUpstream::start(|_| Reply::new(UPSTREAM_REPLY)).await;
    let gw = gateway(&upstream, CORS, "");
    let addr = gw.addr("main");

    for origin in [
        "https://evil.example.com.attacker.net",
        "https://app.example.attacker.net",
        "http://app.example",
        "null",
    ] {
        let actual = request(addr, Proto::H1, Method::GET, &[("origin", origin)]).await;
        assert_eq!(actual.status, 200, "forwarded all the same: {origin}");
        assert_eq!(
            cors_fields(&actual),
            pairs(&[("vary", "Accept-Encoding"), ("vary", "Origin")]),
            "{origin}"
        );
        upstream.next_request().await;

        let preflight = request(
            addr,
            Proto::H1,
            Method::OPTIONS,
            &[("origin", origin), ("access-control-request-method", "GET")],
        )
        .await;
        assert_eq!(preflight.status, 403, "{origin}");
        assert_eq!(preflight.header("content-type"), Some("application/json"));
        assert_eq!(
            preflight.json()["error"],
            "cross-origin request not allowed"
        );
        assert_eq!(cors_fields(&preflight), Vec::new(), "{origin}");
    }
    // An allowed origin asking for a method or header field the route does not allow.
    let config = r#"cors: { allow_origins: ["https://app.example"], allow_methods: [GET, PUT], allow_headers: [X-Token] }"#;
    let gw2 = gateway(&upstream, config, "");
    for asked in [
        vec![("access-control-request-method", "DELETE")],
        vec![
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "x-token, x-admin"),
        ],
    ] {
        let mut fields = vec![("origin", "https://app.example")];
        fields.extend(asked.iter().copied());
        let refused = request(gw2.addr("main"), Proto::H1, Method::OPTIONS, &fields).await;
        assert_eq!(refused.status, 403, "{asked:?}");
    }
    assert!(upstream.requests_so_far().is_empty());
    still_serves(addr, &mut upstream).await;
    still_serves(gw2.addr("main"), &mut upstream).await;
    let text = gw.metrics.render();
    let line = r#"floodgate_plugin_rejections_total{route="api",plugin="cors",reason="preflight_refused"} 4"#;
    assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
}

#[tokio::test]
async fn a_refusal_by_a_later_plugin_carries_the_cors_fields_so_the_page_can_read_it() {
    let mut upstream = ScriptedUpstream::start(|_| Reply::new(UPSTREAM_REPLY)).await;
    let consumers =
        r#"consumers: [{ id: alice, credentials: { key-auth: { key: "alice-key-123" } } }]"#;
    let gw = gateway(&upstream, &format!("{CORS}, key-auth: {{}}"), consumers);
    let addr = gw.addr("main");
    let refused = request(
        addr,
        Proto::H1,
        Method::GET,
        &[("origin", "https://app.example")],
    )
    .await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        cors_fields(&refused),
        pairs(&[
            ("access-control-allow-origin", "https://app.example"),
            ("access-control-allow-credentials", "true"),
            ("access-control-expose-headers", "x-trace"),
            ("vary", "Origin"),
        ])
    );
    // The preflight runs before authentication: a browser sends it without credentials.
    let preflight = request(
        addr,
        Proto::H1,
        Method::OPTIONS,
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "GET"),
        ],
    )
    .await;
    assert_eq!(preflight.status, 204);
    let ok = request(
        addr,
        Proto::H1,
        Method::GET,
        &[
            ("origin", "https://app.example"),
            ("apikey", "alice-key-123"),
        ],
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    upstream.next_request().await;
}

#[tokio::test]
async fn any_origin_sends_a_star_on_every_response_and_no_vary() {
    let mut upstream = ScriptedUpstream::start(|_| {
        Reply::new(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..])
    })
    .await;
    let gw = gateway(&upstream, r#"cors: { allow_origins: ["*"] }"#, "");
    let addr = gw.addr("main");
    for headers in [vec![("origin", "https://any.example")], vec![]] {
        let response = request(addr, Proto::H1, Method::GET, &headers).await;
        assert_eq!(response.status, 200);
        assert_eq!(
            cors_fields(&response),
            pairs(&[("access-control-allow-origin", "*")])
        );
        upstream.next_request().await;
    }
}
