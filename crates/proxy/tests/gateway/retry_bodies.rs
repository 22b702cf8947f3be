//! Retrying requests with bodies (`retries.buffer_body`): a body read whole before the first attempt
//! goes again, byte for byte, to the next target; one that streamed (longer than the buffer, or with
//! buffering off) is never sent twice. Over HTTP/1.1 (with a length and chunked) and HTTP/2.

use std::net::SocketAddr;

use bytes::Bytes;
use floodgate_testkit::config::{head, target_list};
use floodgate_testkit::{
    raw_exchange, send, FnUpstream, Proto, Reply, ScriptedRequest, ScriptedUpstream, TestGateway,
};
use http::Request;
use http_body_util::{BodyExt, Full};
use tokio::sync::mpsc;

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
const UNAVAILABLE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n";

/// One worker, round robin over `targets` (the first one first), and a route with `retries`.
fn config(targets: &[String], retries: &str) -> String {
    let targets = target_list(targets);
    head(1)
        + &format!(
        "upstreams:\n  - id: pool\n    targets: [{}]\n\
         routes:\n  - {{ id: r, paths: [\"/*\"], upstream: pool, max_body_bytes: 64, retries: {retries} }}\n",
        targets
    )
}

/// A target that reads each request whole, then answers `reply`.
async fn target(reply: &'static [u8]) -> ScriptedUpstream {
    ScriptedUpstream::start(move |_| Reply::new(reply)).await
}

/// A target that reads each request whole, then closes the connection without a word.
async fn hanging_up() -> ScriptedUpstream {
    ScriptedUpstream::start(|_| Reply::new(Vec::new()).close()).await
}

fn put(body: &'static [u8]) -> Request<Full<Bytes>> {
    Request::put("/x")
        .body(Full::new(Bytes::from_static(body)))
        .unwrap()
}

async fn status(addr: SocketAddr, proto: Proto, req: Request<Full<Bytes>>) -> u16 {
    send(addr, proto, req).await.unwrap().status.as_u16()
}

/// The body reached the target whole, framed by its length.
fn assert_sent_whole(req: &ScriptedRequest, body: &[u8]) {
    assert_eq!(req.body, body, "{}", req.head);
    assert_eq!(req.header("content-length"), Some(&*body.len().to_string()));
    assert_eq!(req.header("transfer-encoding"), None);
    assert!(req.raw.ends_with(&[b"\r\n\r\n", body].concat()));
}

#[tokio::test]
async fn a_buffered_body_goes_again_whole_to_the_next_target_after_a_503() {
    let mut failing = target(UNAVAILABLE).await;
    let mut good = target(OK).await;
    let retries = "{ attempts: 2, retry_on: [gateway_error] }";
    for proto in [Proto::H1, Proto::H2c] {
        // A fresh gateway: round robin starts at the failing target.
        let gw = TestGateway::start(&config(&[failing.address(), good.address()], retries));
        assert_eq!(status(gw.addr("main"), proto, put(b"payload")).await, 200);
        assert_sent_whole(&failing.next_request().await, b"payload");
        assert_sent_whole(&good.next_request().await, b"payload");
    }
    assert!(failing.requests_so_far().is_empty() && good.requests_so_far().is_empty());
}

#[tokio::test]
async fn a_chunked_body_is_buffered_and_each_target_gets_it_with_its_length() {
    let mut failing = hanging_up().await;
    let mut good = target(OK).await;
    let retries = "{ attempts: 2, retry_on: [reset] }";
    let gw = TestGateway::start(&config(&[failing.address(), good.address()], retries));
    let addr = gw.addr("main");
    let request =
        b"PUT /x HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n\
                    3\r\npay\r\n4\r\nload\r\n0\r\n\r\n";
    let answer = raw_exchange(addr, request).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_sent_whole(&failing.next_request().await, b"payload");
    assert_sent_whole(&good.next_request().await, b"payload");
}

#[tokio::test]
async fn a_post_with_a_buffered_body_is_still_not_retried_unless_non_idempotent() {
    let mut failing = target(UNAVAILABLE).await;
    let good = target(OK).await;
    let post = || {
        Request::post("/x")
            .body(Full::new(Bytes::from_static(b"payload")))
            .unwrap()
    };
    let retries = "{ attempts: 2, retry_on: [gateway_error] }";
    let gw = TestGateway::start(&config(&[failing.address(), good.address()], retries));
    assert_eq!(status(gw.addr("main"), Proto::H1, post()).await, 503);
    assert_sent_whole(&failing.next_request().await, b"payload");
    drop(gw);
    let retries = "{ attempts: 2, retry_on: [gateway_error], non_idempotent: true }";
    let gw = TestGateway::start(&config(&[failing.address(), good.address()], retries));
    assert_eq!(status(gw.addr("main"), Proto::H1, post()).await, 200);
}

#[tokio::test]
async fn a_body_that_streamed_is_never_sent_again() {
    for retries in [
        // Buffering off.
        "{ attempts: 2, retry_on: [gateway_error, reset], buffer_body: 0 }",
        // A body longer than the buffer streams.
        "{ attempts: 2, retry_on: [gateway_error, reset], buffer_body: 4 }",
    ] {
        let mut failing = target(UNAVAILABLE).await;
        let mut good = target(OK).await;
        let gw = TestGateway::start(&config(&[failing.address(), good.address()], retries));
        let addr = gw.addr("main");
        assert_eq!(
            status(addr, Proto::H1, put(b"payload")).await,
            503,
            "{retries}"
        );
        assert_sent_whole(&failing.next_request().await, b"payload");
        // A chunked body longer than the buffer goes on chunked, the part read ahead first.
        let request = b"PUT /x HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n\
                        3\r\npay\r\n4\r\nload\r\n0\r\n\r\n";
        let answer = raw_exchange(addr, request).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let streamed = good.next_request().await;
        assert_eq!(streamed.body, b"payload");
        assert_eq!(streamed.header("transfer-encoding"), Some("chunked"));
        assert!(good.requests_so_far().is_empty() && failing.requests_so_far().is_empty());
    }
}

#[tokio::test]
async fn a_body_past_the_routes_limit_while_buffering_is_a_413_and_the_next_request_is_served() {
    let mut good = target(OK).await;
    let retries = "{ attempts: 2, retry_on: [gateway_error] }";
    let gw = TestGateway::start(&config(&[good.address()], retries));
    let addr = gw.addr("main");
    // 70 bytes in chunks, over the route's 64 and under the buffer's 64KiB.
    let chunk = format!("46\r\n{}\r\n0\r\n\r\n", "x".repeat(70));
    let request = format!(
        "PUT /x HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{chunk}"
    );
    let answer = raw_exchange(addr, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(good.requests_so_far().is_empty());
    assert_eq!(status(addr, Proto::H1, put(b"payload")).await, 200);
    assert_sent_whole(&good.next_request().await, b"payload");
}

#[tokio::test]
async fn a_buffer_larger_than_16mib_is_refused_with_its_field_path_and_a_reload_with_it_changes_nothing(
) {
    let mut good = target(OK).await;
    let bad = config(&[good.address()], "{ buffer_body: 17MiB }");
    let err = TestGateway::try_start(&bad).err().expect("refused");
    assert!(
        err.contains("routes[0].retries.buffer_body: must be at most 16MiB"),
        "{err}"
    );
    let mut gw = TestGateway::start(&config(&[good.address()], "{ attempts: 2 }"));
    assert!(gw.reload(&bad).unwrap_err().contains("buffer_body"));
    assert_eq!(
        status(gw.addr("main"), Proto::H1, put(b"payload")).await,
        200
    );
    assert_sent_whole(&good.next_request().await, b"payload");
}

/// An h2c-capable target that reads each body whole, reports it, and answers `status`.
async fn reporting(status: u16, seen: mpsc::UnboundedSender<(http::Version, Bytes)>) -> FnUpstream {
    FnUpstream::start(move |req: Request<hyper::body::Incoming>| {
        let seen = seen.clone();
        async move {
            let version = req.version();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            seen.send((version, body)).unwrap();
            let mut res = http::Response::new(Full::new(Bytes::new()));
            *res.status_mut() = http::StatusCode::from_u16(status).unwrap();
            res
        }
    })
    .await
}

#[tokio::test]
async fn an_http2_upstream_gets_a_buffered_body_again_on_the_next_target() {
    let (to_failing, mut at_failing) = mpsc::unbounded_channel();
    let (to_good, mut at_good) = mpsc::unbounded_channel();
    let failing = reporting(503, to_failing).await;
    let good = reporting(200, to_good).await;
    let targets = target_list(&[failing.address(), good.address()]);
    let yaml = head(1)
        + &format!(
            "upstreams:\n  - {{ id: pool, protocol: h2c, targets: [{targets}] }}\n\
             routes:\n  - {{ id: r, paths: [\"/*\"], upstream: pool, \
             retries: {{ attempts: 2, retry_on: [gateway_error] }} }}\n"
        );
    for proto in [Proto::H1, Proto::H2c] {
        // A fresh gateway: round robin starts at the failing target.
        let gw = TestGateway::start(&yaml);
        assert_eq!(status(gw.addr("main"), proto, put(b"payload")).await, 200);
        for seen in [&mut at_failing, &mut at_good] {
            let (version, body) = seen.recv().await.unwrap();
            assert_eq!(
                (version, &body[..]),
                (http::Version::HTTP_2, &b"payload"[..])
            );
            assert!(seen.is_empty());
        }
    }
}

#[tokio::test]
async fn an_http2_attempt_abandoned_at_its_per_try_timeout_is_retried_with_its_whole_head() {
    let (to_good, mut at_good) = mpsc::unbounded_channel();
    let slow = FnUpstream::start(|_req| async {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        http::Response::new(Full::new(Bytes::new()))
    })
    .await;
    let good = FnUpstream::start(move |req: Request<hyper::body::Incoming>| {
        let to_good = to_good.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            to_good.send((parts, body)).unwrap();
            http::Response::new(Full::new(Bytes::new()))
        }
    })
    .await;
    let targets = target_list(&[slow.address(), good.address()]);
    let yaml = head(1)
        + &format!(
            "upstreams:\n  - {{ id: pool, protocol: h2c, targets: [{targets}] }}\n\
             routes:\n  - {{ id: r, paths: [\"/*\"], upstream: pool, \
             retries: {{ attempts: 2, retry_on: [gateway_error], per_try_timeout: 200ms }} }}\n"
        );
    for (method, body) in [
        (http::Method::PUT, &b"payload"[..]),
        (http::Method::GET, b""),
    ] {
        // A fresh gateway: round robin starts at the slow target.
        let gw = TestGateway::start(&yaml);
        let req = Request::builder()
            .method(method.clone())
            .uri("/orders/7?x=1")
            .header("x-order", "seven")
            .body(Full::new(Bytes::from_static(body)))
            .unwrap();
        assert_eq!(status(gw.addr("main"), Proto::H1, req).await, 200);
        let (parts, received) = at_good.recv().await.unwrap();
        assert_eq!(parts.method, method);
        assert_eq!(
            parts.uri.path_and_query().unwrap().as_str(),
            "/orders/7?x=1"
        );
        assert_eq!(parts.headers["x-order"], "seven");
        assert!(parts.headers.contains_key("x-forwarded-for"));
        assert_eq!(&received[..], body);
    }
}
