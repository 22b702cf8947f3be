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
