//! The plugin chain as a whole: a plugin's answer is a whole response and is counted, global plugins
//! run on every route and a route's own replaces them, the identified consumer reaches the access log,
//! the client address follows the `real_ip` rules (and cannot be chosen by an untrusted client), and
//! plugin configuration mistakes are reported with their field path without touching the running
//! configuration. Each refusal is followed by a request the gateway serves.

use std::net::SocketAddr;
use std::time::Duration;

use floodgate_testkit::{
    eventually, json_lines, request, MockUpstream, Proto, TestGateway, TestResponse,
};
use http::Method;
use serde_json::Value;

const CONSUMERS: &str = r#"consumers:
  - id: alice
    credentials: { key-auth: { key: "alice-key-123" } }
  - id: bob
    credentials: { key-auth: { key: "bob-key-4567" } }"#;

fn config(backend: &MockUpstream, top: &str, routes: &str) -> String {
    format!(
        r#"workers: 1
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
upstreams:
  - id: backend
    targets: [{{ address: "{backend}" }}]
{top}
routes:
{routes}
"#,
        backend = backend.address()
    )
}

async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> TestResponse {
    request(addr, Proto::H1, Method::GET, path, headers).await
}

#[tokio::test]
async fn a_plugins_answer_is_a_whole_response_and_the_gateway_serves_on() {
    let backend = MockUpstream::http("b").await;
    let yaml = config(
        &backend,
        CONSUMERS,
        "  - { id: api, paths: [\"/*\"], upstream: backend, plugins: { key-auth: {} } }",
    );
    let gw = TestGateway::start(&yaml);
    let addr = gw.addr("main");

    let missing = get(addr, "/x", &[]).await;
    assert_eq!(missing.status, 401);
    assert_eq!(
        missing.header("www-authenticate"),
        Some("Key realm=\"floodgate\"")
    );
    assert_eq!(missing.header("content-type"), Some("application/json"));
    let body = missing.json();
    assert_eq!(body["error"], "missing API key");
    assert_eq!(
        body["request_id"].as_str(),
        missing.header("x-request-id"),
        "the error body names the request id the response carries"
    );

    let wrong = get(addr, "/x", &[("apikey", "not-a-key-at-all")]).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["error"], "invalid API key");
    assert_eq!(
        backend.requests(),
        0,
        "nothing refused reached the upstream"
    );

    let ok = get(addr, "/x", &[("apikey", "alice-key-123")]).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(backend.requests(), 1);

    let text = gw.metrics.render();
    for line in [
        r#"floodgate_plugin_rejections_total{route="api",plugin="key-auth",reason="missing_credentials"} 1"#,
        r#"floodgate_plugin_rejections_total{route="api",plugin="key-auth",reason="invalid_credentials"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
}

#[tokio::test]
async fn global_plugins_run_on_every_route_and_a_routes_own_replaces_them() {
    let backend = MockUpstream::http("b").await;
    let top = format!("{CONSUMERS}\nglobal_plugins:\n  key-auth: {{}}");
    let routes = "  - { id: own, paths: [\"/own/*\"], upstream: backend, plugins: { key-auth: { header: x-key, query: \"\" } } }\n  \
                  - { id: plain, paths: [\"/*\"], upstream: backend }";
    let gw = TestGateway::start(&config(&backend, &top, routes));
    let addr = gw.addr("main");

    assert_eq!(get(addr, "/plain", &[]).await.status, 401);
    assert_eq!(
        get(addr, "/plain?apikey=bob-key-4567", &[]).await.status,
        200,
        "the global instance reads the query parameter"
    );
    assert_eq!(
        get(addr, "/own/x", &[("apikey", "bob-key-4567")])
            .await
            .status,
        401,
        "the route's own key-auth reads only x-key"
    );
    assert_eq!(
        get(addr, "/own/x?apikey=bob-key-4567", &[]).await.status,
        401
    );
    assert_eq!(
        get(addr, "/own/x", &[("x-key", "bob-key-4567")])
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn the_consumer_and_the_real_client_address_reach_the_access_log() {
    let backend = MockUpstream::http("b").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let top = format!(
        "{CONSUMERS}\naccess_log: {{ path: {:?} }}\nreal_ip: {{ trusted_proxies: [\"127.0.0.1\", \"10.0.0.0/8\"] }}",
        log.display().to_string()
    );
    let routes = "  - { id: api, paths: [\"/*\"], upstream: backend, plugins: { key-auth: {} } }";
    let gw = TestGateway::start(&config(&backend, &top, routes));
    let addr = gw.addr("main");

    // The client claims 6.6.6.6; the trusted proxies (the peer, then 10.1.1.1) saw 198.51.100.7.
    let ok = get(
        addr,
        "/a",
        &[
            ("apikey", "bob-key-4567"),
            ("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.1.1"),
        ],
    )
    .await;
    assert_eq!(ok.status, 200);
    eventually("an access log line", || !json_lines(&log).is_empty()).await;
    let lines = json_lines(&log);
    assert_eq!(lines[0]["consumer"], "bob");
    assert_eq!(lines[0]["client_ip"], "198.51.100.7");
    drop(gw);
}

#[tokio::test]
async fn a_spelling_of_the_real_ip_header_with_underscores_never_reaches_the_upstream() {
    let backend = MockUpstream::http("b").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let top = format!(
        "access_log: {{ path: {:?} }}\nreal_ip: {{ trusted_proxies: [\"127.0.0.1\"], header: x-real-ip }}",
        log.display().to_string()
    );
    let routes = "  - { id: api, paths: [\"/*\"], upstream: backend }";
    let gw = TestGateway::start(&config(&backend, &top, routes));
    let addr = gw.addr("main");
    for proto in [Proto::H1, Proto::H2c] {
        // The trusted peer wrote X-Real-IP; the client's own X_Real_IP rode along, which a PHP or
        // CGI upstream would read as the same HTTP_X_REAL_IP.
        let ok = request(
            addr,
            proto,
            Method::GET,
            "/a",
            &[
                ("x-real-ip", "198.51.100.7"),
                ("x_real_ip", "6.6.6.6"),
                ("x_tenant", "kept"),
            ],
        )
        .await;
        assert_eq!(ok.status, 200);
        let fields = &ok.json()["headers"];
        assert_eq!(fields["x-real-ip"], "198.51.100.7");
        assert_eq!(fields["x_real_ip"], Value::Null);
        assert_eq!(fields["x_tenant"], "kept");
    }
    eventually("two access log lines", || json_lines(&log).len() == 2).await;
    for line in json_lines(&log) {
        assert_eq!(line["client_ip"], "198.51.100.7");
    }
}

#[tokio::test]
async fn an_untrusted_peer_cannot_choose_its_address() {
    let backend = MockUpstream::http("b").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    // Trusts a network the test client is not in.
    let top = format!(
        "access_log: {{ path: {:?} }}\nreal_ip: {{ trusted_proxies: [\"10.0.0.0/8\"] }}",
        log.display().to_string()
    );
    let routes = "  - { id: api, paths: [\"/*\"], upstream: backend }";
    let gw = TestGateway::start(&config(&backend, &top, routes));
    let addr = gw.addr("main");
    let ok = get(addr, "/a", &[("x-forwarded-for", "198.51.100.7")]).await;
    assert_eq!(ok.status, 200);
    eventually("an access log line", || !json_lines(&log).is_empty()).await;
    let lines = json_lines(&log);
    assert_eq!(lines[0]["client_ip"], "127.0.0.1");
    assert_eq!(lines[0]["consumer"], Value::Null);
}

#[tokio::test]
async fn plugin_mistakes_name_their_field_and_a_bad_reload_changes_nothing() {
    let backend = MockUpstream::http("b").await;
    let cases = [
        (
            "",
            "plugins: { nope: {} }",
            "routes[0].plugins.nope: unknown plugin \"nope\"",
        ),
        (
            "",
            "plugins: { key-auth: { headr: x } }",
            "routes[0].plugins.key-auth.headr: unknown field `headr`",
        ),
        (
            "",
            "plugins: { key-auth: { header: \"bad header\" } }",
            "routes[0].plugins.key-auth.header: \"bad header\" is not a header name",
        ),
        (
            "consumers: [{ id: c, credentials: { key-auth: { key: short } } }]",
            "",
            "consumers[0].credentials.key-auth.key: must be at least 8 characters",
        ),
        (
            "consumers: [{ id: c, plugins: { key-auth: {} } }]",
            "",
            "consumers[0].plugins.key-auth: a consumer cannot carry an authentication plugin",
        ),
        (
            "consumers: [{ id: c }, { id: c }]",
            "",
            "consumers[1].id: duplicate consumer id \"c\"",
        ),
        (
            "real_ip: { trusted_proxies: [\"10.0.0.0/33\"] }",
            "",
            "real_ip.trusted_proxies[0]: \"10.0.0.0/33\" is not an IP network",
        ),
    ];
    let good = config(
        &backend,
        "",
        "  - { id: api, paths: [\"/*\"], upstream: backend }",
    );
    let mut gw = TestGateway::start(&good);
    let addr = gw.addr("main");
    for (top, route, expected) in cases {
        let extra = if route.is_empty() {
            String::new()
        } else {
            format!(", {route}")
        };
        let yaml = config(
            &backend,
            top,
            &format!("  - {{ id: api, paths: [\"/*\"], upstream: backend{extra} }}"),
        );
        let error = TestGateway::try_start(&yaml).err().expect("refused");
        assert!(error.contains(expected), "{expected}\nnot in\n{error}");
        let reload = gw.reload(&yaml).expect_err("reload refused");
        assert!(reload.contains(expected), "{reload}");
        assert_eq!(
            get(addr, "/still", &[]).await.status,
            200,
            "the running configuration still serves after: {expected}"
        );
    }
    // Reloads ran on this thread; give the gateway back to a blocking thread to stop.
    tokio::task::spawn_blocking(move || gw.shutdown(Duration::from_secs(1)))
        .await
        .unwrap();
}
