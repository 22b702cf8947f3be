//! Request fields as the upstream receives them, byte for byte: HTTP/2 cookie crumbs joined into one
//! `Cookie` line, and names with `_` allowed, dropped or refused as each listener says.
//!
//! The upstream is a scripted HTTP/1.1 server, so each test sees the exact head it was sent.

use std::time::Duration;

use bytes::Bytes;
use floodgate_testkit::{raw_exchange, send, OneRoute, Proto, Reply, ScriptedUpstream};
use http::Request;
use http_body_util::Full;

/// Safety net for anything that waits on the network; no test relies on it for its outcome.
const SAFETY: Duration = Duration::from_secs(20);

async fn upstream() -> ScriptedUpstream {
    ScriptedUpstream::start(|_| Reply::new("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")).await
}

/// The values of the head's lines named `name`, in order.
fn lines<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

/// Sends `req` on a new connection and returns the status and body.
async fn exchange(
    addr: std::net::SocketAddr,
    proto: Proto,
    req: Request<Full<Bytes>>,
) -> (u16, String) {
    let res = tokio::time::timeout(SAFETY, send(addr, proto, req))
        .await
        .expect("request did not finish")
        .expect("request failed");
    (res.status.as_u16(), res.text())
}

#[tokio::test]
async fn http2_cookie_crumbs_reach_an_http1_upstream_as_one_cookie_line() {
    let mut backend = upstream().await;
    let gw = OneRoute::to(backend.address()).start();
    let addr = gw.addr("main");

    let crumbs = Request::get("/crumbs")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .header("cookie", "c=3")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(exchange(addr, Proto::H2c, crumbs).await, (200, "ok".into()));
    let seen = backend.next_request().await;
    assert_eq!(seen.target(), "/crumbs");
    assert_eq!(
        lines(&seen.head, "cookie"),
        ["a=1; b=2; c=3"],
        "{}",
        seen.head
    );

    // One crumb goes on as it came.
    let one = Request::get("/one")
        .header("cookie", "session=x; theme=dark")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(exchange(addr, Proto::H2c, one).await, (200, "ok".into()));
    let seen = backend.next_request().await;
    assert_eq!(
        lines(&seen.head, "cookie"),
        ["session=x; theme=dark"],
        "{}",
        seen.head
    );

    // An HTTP/1.1 client's fields are its own: passed on line for line.
    let text = tokio::time::timeout(
        SAFETY,
        raw_exchange(
            addr,
            b"GET /h1 HTTP/1.1\r\nHost: x\r\nCookie: a=1; b=2\r\nCookie: c=3\r\nConnection: close\r\n\r\n",
        ),
    )
    .await
    .expect("exchange did not finish");
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    let seen = backend.next_request().await;
    assert_eq!(seen.target(), "/h1");
    assert_eq!(
        lines(&seen.head, "cookie"),
        ["a=1; b=2", "c=3"],
        "{}",
        seen.head
    );

    // And the gateway still serves HTTP/2 without cookies.
    let plain = Request::get("/after")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(exchange(addr, Proto::H2c, plain).await, (200, "ok".into()));
    let seen = backend.next_request().await;
    assert_eq!(seen.target(), "/after");
    assert!(lines(&seen.head, "cookie").is_empty(), "{}", seen.head);
}

/// One listener per `underscores_in_headers` rule, all routing `/*` to `backend`.
fn underscores_config(backend: &ScriptedUpstream) -> String {
    format!(
        r#"
workers: 1
listeners:
  - {{ name: allow, address: "127.0.0.1:0" }}
  - {{ name: drop, address: "127.0.0.1:0", underscores_in_headers: drop }}
  - {{ name: reject, address: "127.0.0.1:0", underscores_in_headers: reject }}
admin: {{ address: "127.0.0.1:0" }}
upstreams:
  - id: backend
    targets: [{{ address: "{}" }}]
routes:
  - {{ id: all, paths: ["/*"], upstream: backend }}
"#,
        backend.address()
    )
}

/// A request with two fields named with `_`, one of them the `_` spelling of another it carries.
fn underscored(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("x-user", "real")
        .header("x_user", "forged")
        .header("x-tenant_id", "t1")
        .header("accept", "*/*")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// The client's own fields in a head the gateway wrote: every line but the request line, `Host` and
/// the fields the gateway adds.
fn client_fields(head: &str) -> Vec<(String, String)> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
        .filter(|(n, _)| {
            !matches!(
                n.as_str(),
                "host"
                    | "x-forwarded-for"
                    | "x-forwarded-proto"
                    | "x-forwarded-host"
                    | "x-request-id"
            )
        })
        .collect()
}

fn pairs(fields: &[(&str, &str)]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn fields_named_with_underscores_follow_the_listeners_rule() {
    let mut backend = upstream().await;
    let gw = floodgate_testkit::TestGateway::start(&underscores_config(&backend));
    for proto in [Proto::H1, Proto::H2c] {
        // `allow`, the default: passed on as sent.
        let answer = exchange(gw.addr("allow"), proto.clone(), underscored("/allow")).await;
        assert_eq!(answer, (200, "ok".into()), "{proto:?}");
        let seen = backend.next_request().await;
        assert_eq!(seen.target(), "/allow");
        assert_eq!(
            client_fields(&seen.head),
            pairs(&[
                ("x-user", "real"),
                ("x_user", "forged"),
                ("x-tenant_id", "t1"),
                ("accept", "*/*")
            ]),
            "{proto:?}: {}",
            seen.head
        );

        // `drop`: every such field is gone, the rest untouched.
        let answer = exchange(gw.addr("drop"), proto.clone(), underscored("/drop")).await;
        assert_eq!(answer, (200, "ok".into()), "{proto:?}");
        let seen = backend.next_request().await;
        assert_eq!(seen.target(), "/drop");
        assert_eq!(
            client_fields(&seen.head),
            pairs(&[("x-user", "real"), ("accept", "*/*")]),
            "{proto:?}: {}",
            seen.head
        );

        // `reject`: the gateway's JSON 400, nothing forwarded; then a clean request is served.
        let (status, body) =
            exchange(gw.addr("reject"), proto.clone(), underscored("/reject")).await;
        assert_eq!(status, 400, "{proto:?}: {body}");
        let error: serde_json::Value = serde_json::from_str(&body).expect("error body is JSON");
        assert_eq!(error["error"], "underscore in a header name", "{body}");
        let clean = Request::get("/clean")
            .header("x-user", "real")
            .body(Full::new(Bytes::new()))
            .unwrap();
        assert_eq!(
            exchange(gw.addr("reject"), proto.clone(), clean).await,
            (200, "ok".into())
        );
        let seen = backend.next_request().await;
        assert_eq!(
            seen.target(),
            "/clean",
            "{proto:?}: the refused request was forwarded"
        );
        assert_eq!(
            client_fields(&seen.head),
            pairs(&[("x-user", "real")]),
            "{}",
            seen.head
        );
    }
    assert!(backend.requests_so_far().is_empty());
}

#[tokio::test]
async fn a_refused_underscore_leaves_its_http1_connection_serving() {
    let mut backend = upstream().await;
    let gw = floodgate_testkit::TestGateway::start(&underscores_config(&backend));
    let requests = "GET /first HTTP/1.1\r\nHost: x\r\nX_User: forged\r\n\r\n\
                    GET /second HTTP/1.1\r\nHost: x\r\nX-User: real\r\nConnection: close\r\n\r\n";
    let text = tokio::time::timeout(SAFETY, raw_exchange(gw.addr("reject"), requests.as_bytes()))
        .await
        .expect("exchange did not finish");
    let statuses: Vec<&str> = text
        .match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| text.get(at + 9..at + 12))
        .collect();
    assert_eq!(statuses, ["400", "200"], "{text}");
    let seen = backend.next_request().await;
    assert_eq!(seen.target(), "/second");
    assert_eq!(
        client_fields(&seen.head),
        pairs(&[("x-user", "real")]),
        "{}",
        seen.head
    );
}
