//! The gateway's HTTP/1.1 client against upstreams that answer in every way RFC 9112 allows, and some
//! it does not: each case with the exact outcome at the client, and the gateway still serving after.

use std::time::Duration;

use bytes::Bytes;
use floodgate_testkit::{send, send_on, Proto, Reply, ScriptedUpstream, TestGateway, TestResponse};
use http::Request;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;

/// Safety net for anything that waits on the network; no test relies on it for its outcome.
const SAFETY: Duration = Duration::from_secs(20);

fn gateway(upstream: &ScriptedUpstream) -> TestGateway {
    TestGateway::start(&format!(
        r#"
workers: 1
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
upstreams:
  - id: scripted
    targets: [{{ address: "{}" }}]
routes:
  - {{ id: all, paths: ["/*"], upstream: scripted }}
"#,
        upstream.address()
    ))
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", "app.test")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

async fn send_ok(gw: &TestGateway, req: Request<Full<Bytes>>) -> TestResponse {
    tokio::time::timeout(SAFETY, send(gw.addr("main"), Proto::H1, req))
        .await
        .expect("request did not finish")
        .expect("request failed")
}

/// The gateway's own JSON error, status `status`.
fn assert_gateway_error(res: &TestResponse, status: u16) {
    assert_eq!(res.status, status, "body: {}", res.text());
    assert_eq!(res.header("content-type"), Some("application/json"));
    let body = res.json();
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    assert_eq!(body["request_id"], res.header("x-request-id").unwrap());
}

/// Scripts that answer `/ok` normally, so every test can prove the gateway still serves.
fn ok_or(
    path_reply: impl Fn(&str) -> Option<Reply> + Send + Sync + 'static,
) -> impl Fn(&floodgate_testkit::ScriptedRequest) -> Reply + Send + Sync + 'static {
    move |req| {
        let path = req.head.split(' ').nth(1).unwrap_or("/").to_string();
        path_reply(&path)
            .unwrap_or_else(|| Reply::new("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"))
    }
}

async fn assert_still_serves(gw: &TestGateway) {
    let res = send_ok(gw, get("/ok")).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "ok");
}

#[tokio::test]
async fn keep_alive_connection_is_reused_for_the_next_request() {
    let upstream = ScriptedUpstream::start(ok_or(|_| None)).await;
    let gw = gateway(&upstream);
    for _ in 0..3 {
        assert_eq!(send_ok(&gw, get("/ok")).await.text(), "ok");
    }
    assert_eq!(
        upstream.connections(),
        1,
        "three requests, one upstream connection"
    );
}

#[tokio::test]
async fn body_until_close_is_forwarded_whole_and_the_connection_not_reused() {
    let upstream = ScriptedUpstream::start(ok_or(|path| {
        (path == "/eof")
            .then(|| Reply::new("HTTP/1.1 200 OK\r\n\r\nall of this, until the end").close())
    }))
    .await;
    let gw = gateway(&upstream);
    let res = send_ok(&gw, get("/eof")).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "all of this, until the end");
    assert_still_serves(&gw).await;
    assert_eq!(upstream.connections(), 2);
}

#[tokio::test]
async fn chunked_response_with_extensions_and_trailers_is_decoded() {
    let upstream = ScriptedUpstream::start(ok_or(|path| {
        (path == "/chunked").then(|| {
            Reply::new(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-sum\r\n\r\n\
                 5;name=value\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nx-sum: 42\r\n\r\n",
            )
        })
    }))
    .await;
    let gw = gateway(&upstream);
    for (proto, h2) in [(Proto::H1, false), (Proto::H2c, true)] {
        let res = tokio::time::timeout(SAFETY, send(gw.addr("main"), proto, get("/chunked")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(res.status, 200);
        assert_eq!(res.text(), "hello world");
        if h2 {
            let trailers = res.trailers.as_ref().expect("trailers over h2c");
            assert_eq!(trailers["x-sum"], "42");
        }
    }
    assert_still_serves(&gw).await;
    assert_eq!(
        upstream.connections(),
        1,
        "a chunked body ends cleanly: the connection is reused"
    );
}

#[tokio::test]
async fn interim_responses_are_skipped() {
    let upstream = ScriptedUpstream::start(ok_or(|path| {
        (path == "/hints").then(|| {
            Reply::new(
                "HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n\
                 HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 4\r\n\r\ndone",
            )
        })
    }))
    .await;
    let gw = gateway(&upstream);
    let res = send_ok(&gw, get("/hints")).await;
    assert_eq!(res.status, 201);
    assert_eq!(res.text(), "done");
    assert_still_serves(&gw).await;
}

#[tokio::test]
async fn broken_response_heads_are_502_json() {
    let upstream = ScriptedUpstream::start(ok_or(|path| {
        let bytes = match path {
            "/not-http" => "hello there\r\n\r\n".to_string(),
            "/bad-length" => "HTTP/1.1 200 OK\r\ncontent-length: 12abc\r\n\r\n".to_string(),
            "/two-lengths" => {
                "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab".to_string()
            }
            "/huge-head" => format!(
                "HTTP/1.1 200 OK\r\nx-big: {}\r\n\r\n",
                "a".repeat(70 * 1024)
            ),
            "/closed-in-head" => "HTTP/1.1 200 OK\r\ncontent-le".to_string(),
            "/unasked-upgrade" => {
                "HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n".to_string()
            }
            _ => return None,
        };
        Some(Reply::new(bytes).close())
    }))
    .await;
    let gw = gateway(&upstream);
    for path in [
        "/not-http",
        "/bad-length",
        "/two-lengths",
        "/huge-head",
        "/closed-in-head",
        "/unasked-upgrade",
    ] {
        let res = send_ok(&gw, get(path)).await;
        assert_gateway_error(&res, 502);
        assert_still_serves(&gw).await;
    }
}

#[tokio::test]
async fn body_cut_short_aborts_the_client_response_then_serves() {
    let upstream = ScriptedUpstream::start(ok_or(|path| {
        (path == "/short")
            .then(|| Reply::new("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf").close())
    }))
    .await;
    let gw = gateway(&upstream);
    // The client sees the connection end: before the head (when the head and the first bytes were still
    // in one write), or inside the body. Never a complete-looking response.
    let outcome = tokio::time::timeout(SAFETY, async {
        let response = send_on(gw.addr("main"), Proto::H1, get("/short")).await?;
        assert_eq!(response.status(), 200);
        match response.into_body().collect().await {
            Ok(body) => Ok(body.to_bytes()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
    .unwrap();
    assert!(
        outcome.is_err(),
        "a body shorter than its Content-Length looked complete: {outcome:?}"
    );
    assert_still_serves(&gw).await;
}

#[tokio::test]
async fn pooled_connection_closed_by_the_upstream_is_replaced_transparently() {
    // Every answer closes the connection without saying so, as an upstream whose keep-alive timeout
    // ran out would.
    let upstream = ScriptedUpstream::start(|_req: &floodgate_testkit::ScriptedRequest| {
        Reply::new("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").close()
    })
    .await;
    let gw = gateway(&upstream);
    for _ in 0..3 {
        let res = send_ok(&gw, get("/ok")).await;
        assert_eq!(res.status, 200, "{}", res.text());
        assert_eq!(res.text(), "ok");
    }
    assert_eq!(upstream.connections(), 3);
}

#[tokio::test]
async fn http10_upstream_without_keep_alive_gets_a_connection_per_request() {
    let upstream = ScriptedUpstream::start(|_req: &floodgate_testkit::ScriptedRequest| {
        Reply::new("HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok")
    })
    .await;
    let gw = gateway(&upstream);
    for _ in 0..2 {
        let res = send_ok(&gw, get("/ok")).await;
        assert_eq!(res.text(), "ok");
        assert_eq!(
            res.version,
            http::Version::HTTP_11,
            "the client's connection keeps its version"
        );
    }
    assert_eq!(upstream.connections(), 2);
}

#[tokio::test]
async fn request_bodies_are_framed_for_the_upstream() {
    let mut upstream = ScriptedUpstream::start(ok_or(|_| None)).await;
    let gw = gateway(&upstream);

    // A declared length goes as that length.
    let req = Request::post("/ok")
        .header("host", "app.test")
        .body(Full::new(Bytes::from_static(b"0123456789")))
        .unwrap();
    assert_eq!(send_ok(&gw, req).await.status, 200);
    let seen = upstream.next_request().await;
    assert_eq!(seen.header("content-length"), Some("10"));
    assert_eq!(seen.header("transfer-encoding"), None);
    assert_eq!(seen.body, b"0123456789");

    // A body of unknown length goes chunked, trailers included.
    let frames = vec![
        Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(b"abc"))),
        Ok(Frame::data(Bytes::from_static(b"def"))),
        Ok(Frame::trailers({
            let mut t = http::HeaderMap::new();
            t.insert("x-done", "yes".parse().unwrap());
            t
        })),
    ];
    let req = Request::post("/ok")
        .header("host", "app.test")
        .body(StreamBody::new(futures_util::stream::iter(frames)))
        .unwrap();
    let res = tokio::time::timeout(SAFETY, send(gw.addr("main"), Proto::H2c, req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(res.status, 200);
    let seen = upstream.next_request().await;
    assert_eq!(seen.header("transfer-encoding"), Some("chunked"));
    assert_eq!(seen.header("content-length"), None);
    assert_eq!(seen.body, b"abcdef");

    // No body: no framing headers at all.
    assert_eq!(send_ok(&gw, get("/ok")).await.status, 200);
    let seen = upstream.next_request().await;
    assert_eq!(seen.header("content-length"), None);
    assert_eq!(seen.header("transfer-encoding"), None);
    assert!(
        seen.head
            .starts_with("GET /ok HTTP/1.1\r\nhost: app.test\r\n"),
        "{}",
        seen.head
    );
}

#[tokio::test]
async fn answer_before_the_body_reaches_the_client() {
    let upstream = ScriptedUpstream::start(ok_or(|path| {
        (path == "/early").then(|| {
            Reply::new("HTTP/1.1 413 Payload Too Large\r\ncontent-length: 8\r\n\r\ntoo much")
                .before_body()
        })
    }))
    .await;
    let gw = gateway(&upstream);
    // A large body of unknown length: the upstream answers without reading it and closes.
    let frames =
        (0..256).map(|_| Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![b'x'; 16 * 1024]))));
    let req = Request::post("/early")
        .header("host", "app.test")
        .body(StreamBody::new(futures_util::stream::iter(frames)))
        .unwrap();
    let res = tokio::time::timeout(SAFETY, send(gw.addr("main"), Proto::H2c, req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(res.status, 413);
    assert_eq!(res.text(), "too much");
    assert_still_serves(&gw).await;
}

#[tokio::test]
async fn upstream_fields_go_on_except_hop_by_hop_ones_and_its_request_id() {
    let mut upstream = ScriptedUpstream::start(ok_or(|path| {
        (path == "/fields").then(|| {
            Reply::new(
                "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Private\r\nX-Private: 1\r\n\
                 Keep-Alive: timeout=5\r\nX-Request-Id: upstream-made\r\nX-Kept: a\r\nx-kept: b\r\n\
                 Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi",
            )
        })
    }))
    .await;
    let gw = gateway(&upstream);
    for proto in [Proto::H1, Proto::H2c] {
        let res =
            tokio::time::timeout(SAFETY, send(gw.addr("main"), proto.clone(), get("/fields")))
                .await
                .expect("request did not finish")
                .expect("request failed");
        assert_eq!(res.status, 200, "{proto:?}");
        assert_eq!(res.text(), "hi");
        assert_eq!(res.header("content-type"), Some("text/plain"));
        assert_eq!(res.header("content-length"), Some("2"), "{proto:?}");
        let kept: Vec<_> = res.headers.get_all("x-kept").iter().collect();
        assert_eq!(kept, ["a", "b"], "{proto:?}");
        for gone in ["x-private", "keep-alive"] {
            assert!(
                res.headers.get(gone).is_none(),
                "{proto:?}: {gone} was passed on"
            );
        }
        // The gateway's request id replaces the upstream's: the one it sent upstream, once.
        let ids: Vec<_> = res.headers.get_all("x-request-id").iter().collect();
        let sent = upstream.next_request().await;
        assert_eq!(ids.len(), 1, "{proto:?}: {ids:?}");
        assert_eq!(Some(ids[0].to_str().unwrap()), sent.header("x-request-id"));
    }
    assert_still_serves(&gw).await;
}

#[tokio::test]
async fn forwarding_headers_replace_the_clients_own_once_each() {
    let mut upstream = ScriptedUpstream::start(ok_or(|_| None)).await;
    let gw = gateway(&upstream);
    let req = Request::get("/ok")
        .header("host", "app.test")
        .header("x-forwarded-for", "10.0.0.9")
        .header("X-Forwarded-Proto", "gopher")
        .header("x-forwarded-host", "elsewhere.test")
        .header("x-request-id", "not a plain token")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = send_ok(&gw, req).await;
    assert_eq!(res.status, 200);
    let seen = upstream.next_request().await;
    let values = |name: &str| -> Vec<String> {
        seen.head
            .lines()
            .filter_map(|line| line.split_once(':'))
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .collect()
    };
    assert_eq!(
        values("x-forwarded-for"),
        ["10.0.0.9, 127.0.0.1"],
        "{}",
        seen.head
    );
    assert_eq!(values("x-forwarded-proto"), ["http"], "{}", seen.head);
    assert_eq!(values("x-forwarded-host"), ["app.test"], "{}", seen.head);
    // The client's id is not a plain token, so the gateway made one: the same it returns.
    assert_eq!(
        values("x-request-id"),
        [res.header("x-request-id").unwrap().to_string()],
        "{}",
        seen.head
    );
    assert_eq!(values("host"), ["app.test"]);
    assert_still_serves(&gw).await;
}

#[tokio::test]
async fn a_length_beside_a_transfer_coding_is_not_passed_on() {
    // RFC 9112 §6.3: the chunked framing wins and the length must not be forwarded; the client gets
    // the whole decoded body, framed by the gateway.
    let upstream = ScriptedUpstream::start(ok_or(|path| {
        (path == "/both").then(|| {
            Reply::new(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n\
                 5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            )
        })
    }))
    .await;
    let gw = gateway(&upstream);
    for proto in [Proto::H1, Proto::H2c] {
        let res = tokio::time::timeout(SAFETY, send(gw.addr("main"), proto.clone(), get("/both")))
            .await
            .expect("request did not finish")
            .expect("request failed");
        assert_eq!(res.status, 200, "{proto:?}");
        assert_eq!(res.text(), "hello world", "{proto:?}");
        assert_ne!(res.header("content-length"), Some("3"), "{proto:?}");
    }
    assert_still_serves(&gw).await;
}
