//! Routing on the normalised path: no spelling of a denied path reaches the upstream, the upstream
//! receives the path that was routed (or the original, when asked), and the query is never touched.
//!
//! `/app/internal/*` is a deny route (403, answered by the gateway) and `/app/*` is forwarded to a mock
//! upstream whose JSON echo carries the exact request target it received (`uri`). Each listener differs
//! only in its `path_normalization`.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use floodgate_testkit::{raw_exchange, send, MockUpstream, Proto, TestGateway, TestResponse};
use http::Request;
use http_body_util::Full;

/// Safety net for anything that waits on the network; no test relies on it for its outcome.
const SAFETY: Duration = Duration::from_secs(20);

fn config(backend: &MockUpstream) -> String {
    format!(
        r#"
workers: 1
listeners:
  - {{ name: main, address: "127.0.0.1:0" }}
  - {{ name: keep, address: "127.0.0.1:0", path_normalization: {{ escaped_slashes: keep }} }}
  - {{ name: decode, address: "127.0.0.1:0", path_normalization: {{ escaped_slashes: decode }} }}
  - {{ name: original, address: "127.0.0.1:0", path_normalization: {{ forward: original }} }}
  - {{ name: unmerged, address: "127.0.0.1:0", path_normalization: {{ merge_slashes: false }} }}
admin: {{ address: "127.0.0.1:0" }}
upstreams:
  - id: backend
    targets: [{{ address: "{backend}" }}]
routes:
  - {{ id: deny, paths: ["/app/internal/*"], respond: {{ status: 403, body: "denied" }} }}
  - {{ id: app, paths: ["/app/*"], upstream: backend }}
"#,
        backend = backend.address(),
    )
}

/// What the gateway answered, whichever client asked.
struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    /// The request target the upstream received, from its echo.
    fn upstream_uri(&self) -> String {
        assert_eq!(self.status, 200, "not forwarded: {}", self.body);
        let echo: serde_json::Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("echo is not JSON ({e}): {}", self.body));
        echo["uri"].as_str().expect("echo has uri").to_string()
    }
}

/// The clients a case runs with: HTTP/1.1 writing the request line byte for byte, and h2c.
#[derive(Clone, Copy, Debug)]
enum Client {
    H1,
    H2c,
}

const CLIENTS: [Client; 2] = [Client::H1, Client::H2c];

/// Sends `GET target` on a new connection.
async fn get(addr: SocketAddr, client: Client, target: &str) -> Answer {
    match client {
        Client::H1 => {
            let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let text = tokio::time::timeout(SAFETY, raw_exchange(addr, request.as_bytes()))
                .await
                .expect("exchange did not finish");
            let (head, body) = text
                .split_once("\r\n\r\n")
                .unwrap_or_else(|| panic!("{target}: no response head in {text:?}"));
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|code| code.parse().ok())
                .unwrap_or_else(|| panic!("{target}: no status in {head:?}"));
            Answer {
                status,
                body: body.to_string(),
            }
        }
        Client::H2c => {
            let req = Request::get(target)
                .body(Full::new(Bytes::new()))
                .unwrap_or_else(|e| panic!("{target}: {e}"));
            let res: TestResponse = tokio::time::timeout(SAFETY, send(addr, Proto::H2c, req))
                .await
                .expect("request did not finish")
                .unwrap_or_else(|e| panic!("{target}: {e}"));
            Answer {
                status: res.status.as_u16(),
                body: res.text(),
            }
        }
    }
}

/// A plain request through the same listener is forwarded as usual.
async fn assert_still_serves(addr: SocketAddr, client: Client) {
    let answer = get(addr, client, "/app/after").await;
    assert_eq!(answer.upstream_uri(), "/app/after", "{client:?}");
}

#[tokio::test]
async fn deny_route_holds_against_every_spelling_of_its_path() {
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&config(&backend));
    for client in CLIENTS {
        for path in [
            "/app/internal/secret",
            "/app/%69nternal/secret",
            "/app/%69%6E%74%65%72%6e%61%6c/secret",
            "/app//internal/secret",
            "//app///internal//secret",
            "/app/./internal/x",
            "/app/foo/../internal/x",
            "/app/%2e%2e/app/internal/x",
            "/app/foo/%2E%2E/internal/x",
            "/app/foo/.%2e/internal/x",
            "/app/%2e/internal/x",
            "/app/internal/../internal/x",
        ] {
            let answer = get(gw.addr("main"), client, path).await;
            assert_eq!(answer.status, 403, "{client:?} {path}: {}", answer.body);
            assert_eq!(answer.body, "denied", "{client:?} {path}");
        }
        assert_eq!(backend.requests(), 0, "a denied path reached the upstream");
    }
    for client in CLIENTS {
        assert_still_serves(gw.addr("main"), client).await;
    }
}

#[tokio::test]
async fn upstream_receives_the_normalised_path() {
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&config(&backend));
    for client in CLIENTS {
        for (path, forwarded) in [
            ("/app/ok%7Efile", "/app/ok~file"),
            ("/app/ok%7efile", "/app/ok~file"),
            ("/app//a///b", "/app/a/b"),
            ("/app/a/./b/../c/", "/app/a/c/"),
            ("/app/caf%c3%a9", "/app/caf%C3%A9"),
            // Already normal: forwarded as it came.
            ("/app/a%20b/.well-known", "/app/a%20b/.well-known"),
        ] {
            let answer = get(gw.addr("main"), client, path).await;
            assert_eq!(answer.upstream_uri(), forwarded, "{client:?} {path}");
        }
    }
}

#[tokio::test]
async fn query_is_forwarded_byte_for_byte() {
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&config(&backend));
    for client in CLIENTS {
        for (target, forwarded) in [
            (
                "/app//%7e/x?q=%2f/../%7e&a=b+c&&e=%zz",
                "/app/~/x?q=%2f/../%7e&a=b+c&&e=%zz",
            ),
            ("/app/x?q=%7e//./", "/app/x?q=%7e//./"),
            ("/app/./x?", "/app/x?"),
        ] {
            let answer = get(gw.addr("main"), client, target).await;
            assert_eq!(answer.upstream_uri(), forwarded, "{client:?} {target}");
        }
    }
}

#[tokio::test]
async fn unroutable_paths_are_400_and_the_gateway_keeps_serving() {
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&config(&backend));
    for client in CLIENTS {
        for path in [
            "/app/%zz",
            "/app/%4",
            "/app/x%",
            "/app/a%00b",
            "/..",
            "/app/../../x",
            "/app/%2e%2e/%2E%2E/x",
            // Encoded slashes are refused by default.
            "/app/internal%2fsecret",
            "/app/internal%2Fsecret",
            "/app/internal%5csecret",
            // A literal backslash is the same separator to the servers that decode `%5C`.
            "/app/internal\\secret",
        ] {
            let answer = get(gw.addr("main"), client, path).await;
            assert_eq!(answer.status, 400, "{client:?} {path}: {}", answer.body);
            let error: serde_json::Value = serde_json::from_str(&answer.body)
                .unwrap_or_else(|e| panic!("{path}: error body is not JSON ({e})"));
            assert_eq!(error["error"], "bad request", "{path}");
            assert_still_serves(gw.addr("main"), client).await;
        }
    }
    // Only the follow-up requests reached the upstream.
    assert_eq!(backend.requests(), 22);
}

#[tokio::test]
async fn escaped_slashes_kept_stay_inside_their_segment() {
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&config(&backend));
    for client in CLIENTS {
        for (path, forwarded) in [
            ("/app/internal%2fsecret", "/app/internal%2Fsecret"),
            ("/app/a%5Cb", "/app/a%5Cb"),
            ("/app/x/..%2F..%2Fy", "/app/x/..%2F..%2Fy"),
        ] {
            let answer = get(gw.addr("keep"), client, path).await;
            assert_eq!(answer.upstream_uri(), forwarded, "{client:?} {path}");
        }
        // The other rules still apply on this listener.
        let answer = get(gw.addr("keep"), client, "/app/%69nternal/x").await;
        assert_eq!(answer.status, 403, "{client:?}");
    }
}

#[tokio::test]
async fn escaped_slashes_decoded_separate_segments() {
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&config(&backend));
    for client in CLIENTS {
        for path in [
            "/app/internal%2fsecret",
            "/app%2Finternal%2Fsecret",
            "/app/internal%5Csecret",
            "/app/x%2F..%2Finternal/secret",
        ] {
            let answer = get(gw.addr("decode"), client, path).await;
            assert_eq!(answer.status, 403, "{client:?} {path}: {}", answer.body);
        }
        let answer = get(gw.addr("decode"), client, "/app/a%2F%2Fb%2F..%2Fc").await;
        assert_eq!(answer.upstream_uri(), "/app/a/c", "{client:?}");
        let answer = get(gw.addr("decode"), client, "/app%2F..%2F..%2Fx").await;
        assert_eq!(answer.status, 400, "{client:?}: {}", answer.body);
        assert_still_serves(gw.addr("decode"), client).await;
    }
}

#[tokio::test]
async fn forward_original_sends_the_raw_target_but_routes_on_the_normalised_one() {
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&config(&backend));
    for client in CLIENTS {
        let answer = get(gw.addr("original"), client, "/app//x/./%7e?q=%7e").await;
        assert_eq!(answer.upstream_uri(), "/app//x/./%7e?q=%7e", "{client:?}");
        let answer = get(gw.addr("original"), client, "/app/%69nternal/x").await;
        assert_eq!(answer.status, 403, "{client:?}");
        let answer = get(gw.addr("original"), client, "/app/%zz").await;
        assert_eq!(answer.status, 400, "{client:?}");
        assert_still_serves(gw.addr("original"), client).await;
    }
}

#[tokio::test]
async fn repeated_slashes_are_kept_when_merging_is_off() {
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&config(&backend));
    for client in CLIENTS {
        let answer = get(gw.addr("unmerged"), client, "/app//x/%7e").await;
        assert_eq!(answer.upstream_uri(), "/app//x/~", "{client:?}");
        let answer = get(gw.addr("unmerged"), client, "/app/x//../internal/y").await;
        assert_eq!(answer.status, 200, "{client:?}: {}", answer.body);
        assert_eq!(answer.upstream_uri(), "/app/x/internal/y", "{client:?}");
    }
}

#[tokio::test]
async fn a_refused_path_leaves_its_http1_connection_serving() {
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&config(&backend));
    // Pipelined on one connection: the refusal is an ordinary answer, the request after it is served.
    let requests = "GET /app/%zz HTTP/1.1\r\nHost: x\r\n\r\n\
                    GET /app/internal%2fsecret HTTP/1.1\r\nHost: x\r\n\r\n\
                    GET /app/%69nternal/x HTTP/1.1\r\nHost: x\r\n\r\n\
                    GET /app//ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let text = tokio::time::timeout(SAFETY, raw_exchange(gw.addr("main"), requests.as_bytes()))
        .await
        .expect("exchange did not finish");
    let statuses: Vec<&str> = text
        .match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| text.get(at + 9..at + 12))
        .collect();
    assert_eq!(statuses, ["400", "400", "403", "200"], "{text}");
    assert!(text.contains(r#""uri":"/app/ok""#), "{text}");
}

/// A catch-all route and a guarded prefix (403, answered by the gateway, standing for a route that
/// asks for credentials), on a listener per `semicolons` setting.
fn parameters_config(backend: &MockUpstream) -> String {
    format!(
        r#"
workers: 1
listeners:
  - {{ name: refuse, address: "127.0.0.1:0" }}
  - {{ name: strip, address: "127.0.0.1:0", path_normalization: {{ semicolons: strip }} }}
  - {{ name: keep, address: "127.0.0.1:0", path_normalization: {{ semicolons: keep }} }}
admin: {{ address: "127.0.0.1:0" }}
upstreams:
  - id: backend
    targets: [{{ address: "{backend}" }}]
routes:
  - {{ id: admin, paths: ["/admin", "/admin/*"], respond: {{ status: 403, body: "denied" }} }}
  - {{ id: all, paths: ["/*"], upstream: backend }}
"#,
        backend = backend.address(),
    )
}

/// What each listener does with a path, by its `semicolons`.
#[derive(Debug, PartialEq)]
enum Expect {
    Status(u16),
    Forwarded(&'static str),
}

/// The spellings a servlet upstream serves as `/admin/secret`, their neighbours, and what each listener
/// answers: `refuse` 400 for any `;` or `%3B`; `strip` routes them as the upstream will read them
/// and refuses a `%3B` left in the path; `keep` routes them literally.
const PARAMETER_CASES: [(&str, Expect, Expect); 10] = [
    (
        "/admin;x/secret",
        Expect::Status(403),
        Expect::Forwarded("/admin;x/secret"),
    ),
    (
        "/admin;/secret",
        Expect::Status(403),
        Expect::Forwarded("/admin;/secret"),
    ),
    (
        "/public/..;/admin/secret",
        Expect::Status(403),
        Expect::Forwarded("/public/..;/admin/secret"),
    ),
    (
        "/admin;jsessionid=1/secret",
        Expect::Status(403),
        Expect::Forwarded("/admin;jsessionid=1/secret"),
    ),
    ("/admin/secret;x", Expect::Status(403), Expect::Status(403)),
    (
        "/admin;x",
        Expect::Status(403),
        Expect::Forwarded("/admin;x"),
    ),
    (
        "/..;/admin/secret",
        Expect::Status(400),
        Expect::Forwarded("/..;/admin/secret"),
    ),
    (
        "/admin%3Bx/secret",
        Expect::Status(400),
        Expect::Forwarded("/admin%3Bx/secret"),
    ),
    (
        "/public/..%3b/admin",
        Expect::Status(400),
        Expect::Forwarded("/public/..%3B/admin"),
    ),
    (
        "/public;v=2/page?q=a;b",
        Expect::Forwarded("/public/page?q=a;b"),
        Expect::Forwarded("/public;v=2/page?q=a;b"),
    ),
];

async fn assert_answer(addr: SocketAddr, client: Client, path: &str, expect: &Expect) {
    let answer = get(addr, client, path).await;
    match expect {
        Expect::Status(status) => {
            assert_eq!(answer.status, *status, "{client:?} {path}: {}", answer.body)
        }
        Expect::Forwarded(uri) => assert_eq!(answer.upstream_uri(), *uri, "{client:?} {path}"),
    }
}

#[tokio::test]
async fn path_parameters_are_refused_by_default() {
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&parameters_config(&backend));
    for client in CLIENTS {
        for (path, _, _) in &PARAMETER_CASES {
            let answer = get(gw.addr("refuse"), client, path).await;
            assert_eq!(answer.status, 400, "{client:?} {path}: {}", answer.body);
            let error: serde_json::Value = serde_json::from_str(&answer.body)
                .unwrap_or_else(|e| panic!("{path}: error body is not JSON ({e})"));
            assert_eq!(error["error"], "bad request", "{path}");
        }
        // A `;` in the query is not in the path.
        let answer = get(gw.addr("refuse"), client, "/public/page?q=a;b%3B").await;
        assert_eq!(answer.upstream_uri(), "/public/page?q=a;b%3B", "{client:?}");
    }
    // Only the two query requests reached the upstream.
    assert_eq!(backend.requests(), 2);
}

#[tokio::test]
async fn stripped_path_parameters_route_and_go_upstream_as_a_servlet_reads_them() {
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&parameters_config(&backend));
    for client in CLIENTS {
        for (path, strip, _) in &PARAMETER_CASES {
            assert_answer(gw.addr("strip"), client, path, strip).await;
        }
        let answer = get(gw.addr("strip"), client, "/public/after").await;
        assert_eq!(answer.upstream_uri(), "/public/after", "{client:?}");
    }
    // Per client: the one forwarded case and the follow-up.
    assert_eq!(backend.requests(), 4);
}

#[tokio::test]
async fn kept_path_parameters_are_literal() {
    let backend = MockUpstream::http("backend").await;
    let gw = TestGateway::start(&parameters_config(&backend));
    for client in CLIENTS {
        for (path, _, keep) in &PARAMETER_CASES {
            assert_answer(gw.addr("keep"), client, path, keep).await;
        }
        let answer = get(gw.addr("keep"), client, "/public/after").await;
        assert_eq!(answer.upstream_uri(), "/public/after", "{client:?}");
    }
}
