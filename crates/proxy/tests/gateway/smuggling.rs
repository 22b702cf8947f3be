//! Request smuggling and desync: for each way of framing a request ambiguously or wrongly, the exact status
//! the client gets and the exact bytes the upstream received, so nothing can ride behind a request the
//! gateway routed. After every case a request on a new connection is still served.

use std::time::Duration;

use floodgate_testkit::{
    read_to_close, OneRoute, Reply, ScriptedRequest, ScriptedUpstream, TestGateway,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Safety net for anything that waits on the network; no test relies on it for its outcome.
const SAFETY: Duration = Duration::from_secs(20);

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

fn gateway(upstream: &ScriptedUpstream, route_extra: &str) -> TestGateway {
    let config = OneRoute::to(upstream.address());
    if route_extra.is_empty() {
        config.start()
    } else {
        config.route(route_extra).start()
    }
}

/// Writes `bytes` on a new connection, reads until `answers` whole responses have come (or the gateway
/// closed), then closes the sending side and reads everything else the gateway sends until it closes.
///
/// The client half-closes only once it has the answers it expects: one that half-closes while its
/// request waits for the upstream has gone, for the gateway as for nginx, and gets no answer.
async fn exchange(gw: &TestGateway, bytes: &[u8], answers: usize) -> String {
    let mut stream = TcpStream::connect(gw.addr("main")).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    let mut raw = Vec::new();
    while whole_responses(&raw) < answers {
        let mut chunk = [0; 4096];
        match tokio::time::timeout(SAFETY, stream.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) => return String::from_utf8_lossy(&raw).into_owned(),
            Ok(Ok(n)) => raw.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("no answer: {}", String::from_utf8_lossy(&raw)),
        }
    }
    let _ = stream.shutdown().await;
    let rest = read_to_close(&mut stream).await;
    String::from_utf8_lossy(&raw).into_owned() + &rest
}

/// How many whole responses `raw` holds, each framed by its `Content-Length` (or bodiless: 1xx, 204,
/// 304); counting stops at one framed otherwise, which ends only when the connection does.
fn whole_responses(raw: &[u8]) -> usize {
    let mut rest = raw;
    let mut count = 0;
    while let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&rest[..end]).to_ascii_lowercase();
        let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        let length = head
            .split("\r\n")
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        let body = match (status, length) {
            (100..=199 | 204 | 304, _) => 0,
            (_, Some(length)) => length,
            _ => return count,
        };
        let Some(next) = rest.get(end + 4 + body..) else {
            return count;
        };
        count += 1;
        rest = next;
    }
    count
}

/// The status codes of every response in `raw`, in order.
fn statuses(raw: &str) -> Vec<u16> {
    raw.match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| raw.get(at + 9..at + 12)?.parse().ok())
        .collect()
}

/// A request's raw bytes as text, with the gateway's random request id replaced by `ID`.
fn normalized(request: &ScriptedRequest) -> String {
    let text = String::from_utf8_lossy(&request.raw).into_owned();
    text.split("\r\n")
        .map(|line| {
            if line.to_ascii_lowercase().starts_with("x-request-id: ") {
                "x-request-id: ID"
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// The head the gateway writes upstream for a request to `target` with `framing` lines.
fn forwarded(method: &str, target: &str, framing: &str) -> String {
    format!(
        "{method} {target} HTTP/1.1\r\nhost: app.test\r\nx-forwarded-for: 127.0.0.1\r\n\
         x-forwarded-proto: http\r\nx-forwarded-host: app.test\r\nx-request-id: ID\r\n{framing}\r\n"
    )
}

/// The gateway still serves: a plain request on a new connection gets the upstream's answer.
async fn still_serves(gw: &TestGateway, upstream: &mut ScriptedUpstream) {
    let raw = exchange(gw, b"GET /after HTTP/1.1\r\nHost: app.test\r\n\r\n", 1).await;
    assert_eq!(statuses(&raw), [200], "{raw}");
    let seen = upstream.next_request().await;
    assert_eq!(seen.target(), "/after");
}

struct Case {
    name: &'static str,
    bytes: &'static [u8],
    statuses: &'static [u16],
    /// Every request the upstream must have received, exactly, with the request id normalised.
    upstream: Vec<String>,
}

fn refused(name: &'static str, bytes: &'static [u8], status: u16) -> Case {
    let statuses: &'static [u16] = match status {
        400 => &[400],
        431 => &[431],
        501 => &[501],
        _ => unreachable!("add the status to the table"),
    };
    Case {
        name,
        bytes,
        statuses,
        upstream: Vec::new(),
    }
}

fn cases() -> Vec<Case> {
    let chunked_hello = format!(
        "{}5\r\nhello\r\n0\r\n\r\n",
        forwarded("POST", "/", "transfer-encoding: chunked\r\n")
    );
    vec![
        // CL.TE and TE.CL: both headers are refused outright, the body never read.
        refused(
            "CL.TE",
            b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
            400,
        ),
        refused(
            "TE.CL",
            b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
            400,
        ),
        // TE.TE obfuscations.
        refused(
            "xchunked",
            b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            400,
        ),
        refused(
            "chunked, identity",
            b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            400,
        ),
        refused(
            "duplicate TE",
            b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        refused(
            "TE with CL after an obfuscated TE",
            b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nTransfer-encoding: x\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
            400,
        ),
        refused(
            "space before colon",
            b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        refused(
            "obs-fold",
            b"POST / HTTP/1.1\r\nHost: app.test\r\nX-A: 1\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        refused(
            "gzip, chunked",
            b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            501,
        ),
        refused(
            "HTTP/1.0 with a transfer coding",
            b"POST / HTTP/1.0\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        // Whitespace around `chunked` is optional whitespace: the body is read chunked and sent chunked.
        Case {
            name: "space before chunked",
            bytes: b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding:  chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            statuses: &[200],
            upstream: vec![chunked_hello.clone()],
        },
        Case {
            name: "tab before chunked",
            bytes: b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding:\tchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            statuses: &[200],
            upstream: vec![chunked_hello],
        },
        // Content-Length.
        refused(
            "two lengths",
            b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            400,
        ),
        refused("list of two lengths", b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3, 4\r\n\r\nabcd", 400),
        refused("signed length", b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: +3\r\n\r\nabc", 400),
        refused("negative length", b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: -1\r\n\r\n", 400),
        refused("hex length", b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 0x3\r\n\r\nabc", 400),
        refused(
            "20-digit length",
            b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 00000000000000000003\r\n\r\nabc",
            400,
        ),
        Case {
            name: "a repeated length goes on as one number",
            bytes: b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5, 5\r\n\r\nhello",
            statuses: &[200],
            upstream: vec![format!("{}hello", forwarded("POST", "/", "content-length: 5\r\n"))],
        },
        // Bytes no head may carry.
        refused("bare CR in a value", b"GET / HTTP/1.1\r\nHost: app.test\r\nX-A: a\rb\r\n\r\n", 400),
        refused("NUL in a value", b"GET / HTTP/1.1\r\nHost: app.test\r\nX-A: a\0b\r\n\r\n", 400),
        refused("invalid name", b"GET / HTTP/1.1\r\nHost: app.test\r\nX(A: 1\r\n\r\n", 400),
        refused("NUL in the target", b"GET /a\0b HTTP/1.1\r\nHost: app.test\r\n\r\n", 400),
        // Chunked framing that is not the strict grammar: the upstream never gets a whole request.
        refused(
            "bare LF in a chunk extension",
            b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n",
            400,
        ),
        refused(
            "control bytes in a chunk extension",
            b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n5;a\rb\0c\r\nhello\r\n0\r\n\r\n",
            400,
        ),
        refused(
            "trailers ending in a bare LF, a request behind them",
            b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-T: 1\n\nGET /SMUGGLED HTTP/1.1\r\nHost: app.test\r\n\r\n",
            400,
        ),
        refused(
            "an empty trailer line ending in a bare LF",
            b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\nGET /SMUGGLED HTTP/1.1\r\nHost: app.test\r\n\r\n",
            400,
        ),
        // Host (RFC 9112 §3.2).
        refused("no Host", b"GET / HTTP/1.1\r\n\r\n", 400),
        refused("two Hosts", b"GET / HTTP/1.1\r\nHost: app.test\r\nHost: evil.test\r\n\r\n", 400),
        refused("Host not an authority", b"GET / HTTP/1.1\r\nHost: a b/c@d\r\n\r\n", 400),
        refused("percent-encoding in Host", b"GET / HTTP/1.1\r\nHost: a%41\r\n\r\n", 400),
        refused("a bracketed Host that is no IPv6 address", b"GET / HTTP/1.1\r\nHost: [::f::.]\r\n\r\n", 400),
        refused(
            "a vertical tab before a Transfer-Encoding value",
            b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        refused(
            "a control byte after a trailer value",
            b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-T: 1\x0c\r\n\r\n",
            400,
        ),
        refused("userinfo in the target", b"GET http://x@app.test/ HTTP/1.1\r\nHost: app.test\r\n\r\n", 400),
        refused(
            "target and Host disagree",
            b"GET http://evil.test/ HTTP/1.1\r\nHost: app.test\r\n\r\n",
            400,
        ),
        // Pipelining: two requests, two answers, two requests upstream, nothing else.
        Case {
            name: "pipelined requests",
            bytes: b"POST /one HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\n\r\nabcGET /two HTTP/1.1\r\nHost: app.test\r\n\r\n",
            statuses: &[200, 200],
            upstream: vec![
                format!("{}abc", forwarded("POST", "/one", "content-length: 3\r\n")),
                forwarded("GET", "/two", ""),
            ],
        },
        // An h2c upgrade is never tunnelled: it goes on as a plain request, its upgrade fields dropped.
        Case {
            name: "h2c upgrade",
            bytes: b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
            statuses: &[200],
            upstream: vec![forwarded("GET", "/", "")],
        },
        Case {
            name: "upgrade to a protocol the route does not allow",
            bytes: b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n",
            statuses: &[200],
            upstream: vec![forwarded("GET", "/", "")],
        },
    ]
}

#[tokio::test]
async fn smuggling_table_exact_status_and_upstream_bytes() {
    let mut upstream = ScriptedUpstream::start(|_| Reply::new(OK)).await;
    let gw = gateway(&upstream, "");
    for case in cases() {
        let raw = exchange(&gw, case.bytes, case.statuses.len()).await;
        assert_eq!(statuses(&raw), case.statuses, "{}: {raw}", case.name);
        if case.statuses.iter().any(|s| *s >= 400) {
            assert!(raw.contains("application/json"), "{}: {raw}", case.name);
        }
        // Whatever the upstream was sent has arrived by the time the client has its answers; a request
        // that never became whole is not recorded.
        let seen: Vec<String> = upstream.requests_so_far().iter().map(normalized).collect();
        assert_eq!(seen, case.upstream, "{}", case.name);
        assert!(
            seen.iter().all(|r| !r.contains("SMUGGLED")),
            "{}",
            case.name
        );
        still_serves(&gw, &mut upstream).await;
    }
}

#[tokio::test]
async fn an_oversized_head_is_431_and_nothing_goes_upstream() {
    let mut upstream = ScriptedUpstream::start(|_| Reply::new(OK)).await;
    let gw = gateway(&upstream, "");
    for bytes in [
        format!(
            "GET /{} HTTP/1.1\r\nHost: app.test\r\n\r\n",
            "a".repeat(100 * 1024)
        ),
        format!(
            "GET / HTTP/1.1\r\nHost: app.test\r\nX-Big: {}\r\n\r\n",
            "a".repeat(100 * 1024)
        ),
    ] {
        let raw = exchange(&gw, bytes.as_bytes(), 1).await;
        assert_eq!(statuses(&raw), [431], "{raw}");
        assert!(upstream.requests_so_far().is_empty());
        still_serves(&gw, &mut upstream).await;
    }
}

/// The reproduction of a request smuggled through the upstream pool: an upgrade request that declares a
/// body it does not send, answered by an upstream that replies first and reads the body after, must not
/// leave the pooled connection waiting for bytes that the next client's request would then provide.
#[tokio::test]
async fn an_upgrade_request_with_a_length_cannot_smuggle_the_next_clients_request() {
    let mut upstream = ScriptedUpstream::start(|request| match request.target() {
        "/x" => Reply::new(OK).then_drain(),
        _ => Reply::new(OK),
    })
    .await;
    let gw = gateway(&upstream, "");
    let smuggled = "GET /SMUGGLED HTTP/1.1\r\nHost: a\r\n\r\n";
    // Client B's request as the gateway writes it upstream: its length is what client A declares.
    let b_head = forwarded(
        "POST",
        "/y",
        &format!("content-length: {}\r\n", smuggled.len()),
    );
    let a = format!(
        "GET /x HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Content-Length: {}\r\n\r\n",
        b_head.len()
    );
    // A sends its head only; it gets its answer (the upstream replies before reading a body).
    let mut client_a = TcpStream::connect(gw.addr("main")).await.unwrap();
    client_a.write_all(a.as_bytes()).await.unwrap();
    let mut answer = [0u8; 512];
    let n = tokio::time::timeout(SAFETY, client_a.read(&mut answer))
        .await
        .expect("A got an answer")
        .unwrap();
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 200 OK"),
        "{:?}",
        String::from_utf8_lossy(&answer[..n])
    );

    let b = format!(
        "POST /y HTTP/1.1\r\nHost: app.test\r\nContent-Length: {}\r\n\r\n{smuggled}",
        smuggled.len()
    );
    let raw = exchange(&gw, b.as_bytes(), 1).await;
    assert_eq!(statuses(&raw), [200], "{raw}");
    drop(client_a);

    let first = upstream.next_request().await;
    assert_eq!(first.target(), "/x");
    // A's request went on as a plain one, framed as A declared it, and never as an upgrade.
    assert!(
        !first.head.to_ascii_lowercase().contains("upgrade"),
        "{}",
        first.head
    );
    let second = upstream.next_request().await;
    assert_eq!(normalized(&second), format!("{b_head}{smuggled}"));
    assert_ne!(
        second.connection, first.connection,
        "A's connection was not reused"
    );
    assert!(
        upstream.requests_so_far().is_empty(),
        "nothing else reached the upstream"
    );
    still_serves(&gw, &mut upstream).await;
}

/// A WebSocket upgrade without a body is still tunnelled; with `upgrades: []` it goes on as a plain request.
#[tokio::test]
async fn upgrades_follow_the_routes_allow_list() {
    let mut upstream = ScriptedUpstream::start(|_| Reply::new(OK)).await;
    let gw = gateway(&upstream, "upgrades: []");
    let raw = exchange(
        &gw,
        b"GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        1,
    )
    .await;
    assert_eq!(statuses(&raw), [200], "{raw}");
    let seen = upstream.next_request().await;
    assert!(
        !seen.head.to_ascii_lowercase().contains("upgrade"),
        "{}",
        seen.head
    );
    still_serves(&gw, &mut upstream).await;
}
