//! The `headers`, `rewrite` and `redirect` plugins through a running gateway: what the upstream
//! receives (fields, path, `Host`) and what the client gets back (fields, redirects with their exact
//! `Location`). Each case is followed by a request the gateway serves.

use std::net::SocketAddr;

use floodgate_testkit::{
    raw_exchange, Proto, Reply, ScriptedRequest, ScriptedUpstream, TestGateway, TestResponse,
};
use http::Method;

const UPSTREAM_REPLY: &[u8] = b"HTTP/1.1 200 OK\r\nServer: upstream\r\nX-Powered-By: php\r\nVary: Accept\r\nX-Keep: 1\r\nContent-Length: 2\r\n\r\nok";

/// A gateway whose routes (YAML list items) go to `upstream`; `top` adds top-level fields.
fn gateway(upstream: &ScriptedUpstream, top: &str, routes: &[&str]) -> TestGateway {
    let mut yaml = format!(
        r#"workers: 1
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
{top}
upstreams:
  - id: backend
    targets: [{{ address: "{}" }}]
routes:
"#,
        upstream.address()
    );
    for route in routes {
        yaml.push_str(&format!("  - {{ upstream: backend, {route} }}\n"));
    }
    yaml.push_str("  - { id: plain, paths: [\"/plain\"], upstream: backend }\n");
    TestGateway::start(&yaml)
}

async fn get(
    addr: SocketAddr,
    proto: Proto,
    target: &str,
    headers: &[(&str, &str)],
) -> TestResponse {
    floodgate_testkit::request(addr, proto, Method::GET, target, headers).await
}

/// Every value of the header field `name` the upstream received.
fn values<'a>(seen: &'a ScriptedRequest, name: &str) -> Vec<&'a str> {
    seen.head
        .split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

fn response_values<'a>(response: &'a TestResponse, name: &str) -> Vec<&'a str> {
    response
        .headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

async fn still_serves(addr: SocketAddr, upstream: &mut ScriptedUpstream) {
    let ok = get(addr, Proto::H1, "/plain", &[]).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.text(), "ok");
    assert_eq!(upstream.next_request().await.target(), "/plain");
}

#[tokio::test]
async fn headers_changes_what_the_upstream_and_the_client_see() {
    let mut upstream = ScriptedUpstream::start(|_| Reply::new(UPSTREAM_REPLY)).await;
    let plugins = r#"headers: {
        request: { add: { X-Via: "gw-$route", X-Client: "$client_ip" }, set: { X-User: "user-${id}", X-Req: "$request_id", X-Consumer: "c=$consumer" }, remove: [X-Secret, Cookie] },
        response: { add: { Vary: Origin, X-Route: "$route/${id}" }, set: { Server: gateway }, remove: [X-Powered-By] } }"#;
    let gw = gateway(
        &upstream,
        "",
        &[&format!(
            "id: users, paths: [\"/users/{{id}}\"], plugins: {{ {plugins} }}"
        )],
    );
    let addr = gw.addr("main");
    for proto in [Proto::H1, Proto::H2c] {
        let response = get(
            addr,
            proto.clone(),
            "/users/42?q=1",
            &[
                ("x-user", "spoofed"),
                ("x-via", "client"),
                ("x-secret", "s3cret"),
                ("cookie", "a=b"),
                ("x-other", "kept"),
            ],
        )
        .await;
        assert_eq!(response.status, 200, "{proto:?}");
        let seen = upstream.next_request().await;
        assert_eq!(seen.target(), "/users/42?q=1");
        assert_eq!(values(&seen, "x-user"), ["user-42"]);
        assert_eq!(values(&seen, "x-via"), ["client", "gw-users"]);
        assert_eq!(values(&seen, "x-client"), ["127.0.0.1"]);
        assert_eq!(
            values(&seen, "x-req"),
            [response.header("x-request-id").unwrap()]
        );
        assert_eq!(values(&seen, "x-consumer"), ["c="]);
        assert_eq!(values(&seen, "x-other"), ["kept"]);
        assert!(values(&seen, "x-secret").is_empty() && values(&seen, "cookie").is_empty());

        assert_eq!(response_values(&response, "server"), ["gateway"]);
        assert_eq!(response_values(&response, "vary"), ["Accept", "Origin"]);
        assert_eq!(response_values(&response, "x-route"), ["users/42"]);
        assert_eq!(response_values(&response, "x-keep"), ["1"]);
        assert!(response.header("x-powered-by").is_none());
    }
    still_serves(addr, &mut upstream).await;
}

#[tokio::test]
async fn a_consumers_headers_replace_the_routes_and_name_it() {
    let mut upstream = ScriptedUpstream::start(|_| Reply::new(UPSTREAM_REPLY)).await;
    let consumers = r#"consumers:
  - { id: alice, credentials: { key-auth: { key: "alice-key-123" } }, plugins: { headers: { request: { set: { X-Plan: gold, X-Consumer: "$consumer" } } } } }
  - { id: bob, credentials: { key-auth: { key: "bob-key-4567" } } }"#;
    let gw = gateway(
        &upstream,
        consumers,
        &[
            r#"id: api, paths: ["/api/*"], plugins: { key-auth: { hide_credentials: true }, headers: { request: { set: { X-Plan: free } } } }"#,
        ],
    );
    let addr = gw.addr("main");
    for (key, plan, consumer) in [
        ("alice-key-123", "gold", Some("alice")),
        ("bob-key-4567", "free", None),
    ] {
        let response = get(addr, Proto::H1, "/api/x", &[("apikey", key)]).await;
        assert_eq!(response.status, 200);
        let seen = upstream.next_request().await;
        assert_eq!(values(&seen, "x-plan"), [plan]);
        assert_eq!(values(&seen, "x-consumer").first().copied(), consumer);
        assert!(values(&seen, "apikey").is_empty());
    }
    still_serves(addr, &mut upstream).await;
}

#[tokio::test]
async fn rewrite_changes_the_path_and_host_the_upstream_gets() {
    let mut upstream = ScriptedUpstream::start(|_| Reply::new(UPSTREAM_REPLY)).await;
    let gw = gateway(
        &upstream,
        "",
        &[
            r#"id: strip, paths: ["/api/*"], plugins: { rewrite: { strip_prefix: /api } }"#,
            r#"id: template, paths: ["/v1/users/{id}"], plugins: { rewrite: { path: '/users/${id}/profile' } }"#,
            r#"id: query, paths: ["/v1/teams/{team}"], plugins: { rewrite: { path: '/teams?name=${team}&by=$route' } }"#,
            r#"id: regex, paths: ["/old/*"], plugins: { rewrite: { regex: { pattern: '^/old/(\w+)/(?P<rest>.*)$', replacement: '/new/${rest}/$1' }, host: "backend.internal:8080" } }"#,
        ],
    );
    let addr = gw.addr("main");
    for (proto, target, path, host) in [
        (Proto::H1, "/api/users?page=2", "/users?page=2", None),
        (Proto::H2c, "/api/users/7", "/users/7", None),
        (
            Proto::H1,
            "/v1/users/42?full=1",
            "/users/42/profile?full=1",
            None,
        ),
        (
            Proto::H1,
            "/v1/teams/red?x=1",
            "/teams?name=red&by=query",
            None,
        ),
        (
            Proto::H1,
            "/old/a/b/c?q",
            "/new/b/c/a?q",
            Some("backend.internal:8080"),
        ),
        (
            Proto::H2c,
            "/old/z/y",
            "/new/y/z",
            Some("backend.internal:8080"),
        ),
    ] {
        let response = get(addr, proto, target, &[]).await;
        assert_eq!(response.status, 200, "{target}");
        let seen = upstream.next_request().await;
        assert_eq!(seen.target(), path, "{target}");
        if let Some(host) = host {
            assert_eq!(values(&seen, "host"), [host], "{target}");
        }
    }
    // A path the regex does not match is forwarded as it came.
    assert_eq!(get(addr, Proto::H1, "/old/x", &[]).await.status, 200);
    assert_eq!(upstream.next_request().await.target(), "/old/x");
    still_serves(addr, &mut upstream).await;
}

#[tokio::test]
async fn redirects_answer_with_their_status_and_exact_location() {
    let mut upstream = ScriptedUpstream::start(|_| Reply::new(UPSTREAM_REPLY)).await;
    let gw = gateway(
        &upstream,
        "",
        &[
            r#"id: moved, paths: ["/moved/{id}"], plugins: { redirect: { uri: 'https://new.example.com/items/${id}', status: 301 } }"#,
            r#"id: found, paths: ["/found/{id}"], plugins: { redirect: { uri: '/items/${id}?from=$route' } }"#,
            r#"id: temporary, paths: ["/temporary"], plugins: { redirect: { uri: 'https://other.example/t', status: 307 } }"#,
            r#"id: permanent, paths: ["/permanent/{id}"], plugins: { redirect: { uri: '/p/${id}', status: 308 } }"#,
            r#"id: secure, paths: ["/secure/*"], plugins: { redirect: { http_to_https: true } }"#,
            r#"id: secure-port, paths: ["/port/*"], plugins: { redirect: { http_to_https: true, https_port: 8443, status: 308 } }"#,
        ],
    );
    let addr = gw.addr("main");
    for (proto, target, status, location) in [
        (
            Proto::H1,
            "/moved/42?x=1",
            301,
            "https://new.example.com/items/42",
        ),
        (
            Proto::H2c,
            "/moved/a%20b",
            301,
            "https://new.example.com/items/a%20b",
        ),
        (Proto::H1, "/found/7", 302, "/items/7?from=found"),
        (Proto::H1, "/temporary", 307, "https://other.example/t"),
        (Proto::H1, "/permanent/9", 308, "/p/9"),
        (
            Proto::H1,
            "/secure/a/b?c=1&d",
            301,
            "https://shop.example/secure/a/b?c=1&d",
        ),
        (
            Proto::H2c,
            "/secure/h2",
            301,
            "https://shop.example/secure/h2",
        ),
        (
            Proto::H1,
            "/port/x",
            308,
            "https://shop.example:8443/port/x",
        ),
    ] {
        let response = get(
            addr,
            proto.clone(),
            target,
            &[("host", "shop.example:8080")],
        )
        .await;
        assert_eq!(response.status, status, "{target} {proto:?}");
        assert_eq!(response.header("location"), Some(location), "{target}");
        assert!(response.body.is_empty(), "{target}");
        still_serves(addr, &mut upstream).await;
    }
    assert!(
        upstream.requests_so_far().is_empty(),
        "no redirected request reached the upstream"
    );
    let text = gw.metrics.render();
    let line =
        r#"floodgate_plugin_rejections_total{route="moved",plugin="redirect",reason="redirect"} 2"#;
    assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
}

#[tokio::test]
async fn a_redirect_never_carries_what_a_client_injects() {
    let mut upstream = ScriptedUpstream::start(|_| Reply::new(UPSTREAM_REPLY)).await;
    let gw = gateway(
        &upstream,
        "",
        &[
            r#"id: found, paths: ["/found/{id}"], plugins: { redirect: { uri: '/items/${id}' } }"#,
            r#"id: secure, paths: ["/secure/*"], plugins: { redirect: { http_to_https: true } }"#,
        ],
    );
    let addr = gw.addr("main");
    // An encoded line break stays encoded inside the segment it fills.
    let raw = raw_exchange(
        addr,
        b"GET /found/evil.example%0D%0AX-Evil:%201 HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 302 "), "{raw}");
    assert!(
        raw.contains("\r\nlocation: /items/evil.example%0D%0AX-Evil:%201\r\n"),
        "{raw}"
    );
    assert!(!raw.to_ascii_lowercase().contains("\r\nx-evil"), "{raw}");
    // A Host the gateway refuses never becomes a Location.
    let raw = raw_exchange(
        addr,
        b"GET /secure/x HTTP/1.1\r\nHost: evil.example/path\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 400 "), "{raw}");
    assert!(!raw.to_ascii_lowercase().contains("location"), "{raw}");
    still_serves(addr, &mut upstream).await;
}
