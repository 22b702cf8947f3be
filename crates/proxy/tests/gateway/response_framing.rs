//! Upstream responses framed wrongly or unusually: for each, the exact answer the client gets, and then a
//! second request on the same client connection gets its own correct response (no poisoned pooled
//! connection, no bytes of one response read as the next). Where the first response had to end the
//! connection (a body that broke off after its head), the client sees an unfinished response and a new
//! connection is served.

use std::time::Duration;

use floodgate_testkit::{OneRoute, Reply, ScriptedUpstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Safety net for anything that waits on the network; no test relies on it for its outcome.
const SAFETY: Duration = Duration::from_secs(20);

/// What the scripted upstream answers for `/case/N`: row N of [`cases`]. `/next` answers `next`.
fn script(request: &floodgate_testkit::ScriptedRequest) -> Reply {
    let target = request.target().to_string();
    if let Some(n) = target.strip_prefix("/case/") {
        let n: usize = n.parse().unwrap_or(0);
        return Reply::new(cases()[n].upstream);
    }
    Reply::new(&b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nnext"[..])
}

struct Case {
    name: &'static str,
    method: &'static str,
    /// Extra request header lines.
    request_headers: &'static str,
    /// What the upstream sends, exactly.
    upstream: &'static [u8],
    /// The status the client gets.
    status: u16,
    /// The body the client gets (de-chunked).
    body: &'static str,
    /// Header lines (lowercase) the client's response must have, and must not have.
    has: &'static [&'static str],
    has_not: &'static [&'static str],
    /// The response arrives whole and the connection stays open for the next request; else the body
    /// breaks off after the head and the connection closes.
    keeps_connection: bool,
}

fn cases() -> Vec<Case> {
    let case = |name, upstream, status, body, keeps_connection| Case {
        name,
        method: "GET",
        request_headers: "",
        upstream,
        status,
        body,
        has: &[],
        has_not: &[],
        keeps_connection,
    };
    vec![
        Case {
            has: &["transfer-encoding: chunked"],
            has_not: &["content-length"],
            ..case(
                "length beside a transfer coding: the coding frames it, the length does not go on",
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                200,
                "hello",
                true,
            )
        },
        case(
            "two different lengths",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            502,
            "",
            true,
        ),
        Case {
            has: &["content-length: 5"],
            has_not: &["content-length: 5, 5"],
            ..case(
                "a repeated length goes on as one number",
                b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello",
                200,
                "hello",
                true,
            )
        },
        Case {
            has: &["content-length: 0"],
            has_not: &["content-length: 0, 0"],
            ..case(
                "a repeated zero length goes on as one zero: the client is not left reading to the close",
                b"HTTP/1.1 200 OK\r\nContent-Length: 0, 0\r\n\r\n",
                200,
                "",
                true,
            )
        },
        Case {
            has: &["content-length: 0"],
            has_not: &["content-length: 0, 0"],
            ..case(
                "a zero length on two lines from an HTTP/1.0 upstream",
                b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
                200,
                "",
                true,
            )
        },
        case(
            "a transfer coding other than chunked",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            502,
            "",
            true,
        ),
        case(
            "a bad chunk size after the head: the body breaks off and the connection closes",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n",
            200,
            "ok",
            false,
        ),
        case(
            "trailers ending in a bare LF",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\n\n",
            200,
            "ok",
            false,
        ),
        case(
            "a body longer than its length: the rest is never read as a response",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nsmuggled",
            200,
            "ok",
            true,
        ),
        case(
            "interim responses before the final one",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            200,
            "ok",
            true,
        ),
        case(
            "204 with a body",
            b"HTTP/1.1 204 No Content\r\nContent-Length: 8\r\n\r\nsmuggled",
            204,
            "",
            true,
        ),
        case(
            "304 with a body",
            b"HTTP/1.1 304 Not Modified\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nsmuggled",
            304,
            "",
            true,
        ),
        case(
            "HTTP/1.0 with a transfer coding: read as chunked, then the connection is not reused",
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            200,
            "ok",
            true,
        ),
        Case {
            request_headers: "TE: trailers\r\n",
            has: &["x-sum: 1"],
            has_not: &["content-length: 99", "host: evil"],
            ..case(
                "trailers go to a client that asked for them, less forbidden ones",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 1\r\nContent-Length: 99\r\nHost: evil\r\n\r\n",
                200,
                "ok",
                true,
            )
        },
        Case {
            has_not: &["x-sum"],
            ..case(
                "no trailers for a client that did not ask",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 1\r\n\r\n",
                200,
                "ok",
                true,
            )
        },
        Case {
            method: "HEAD",
            has: &["content-length: 8"],
            ..case(
                "HEAD: a length but no body",
                b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n",
                200,
                "",
                true,
            )
        },
    ]
}

/// One response read off `stream`: its head (lowercased) and its body, de-chunked with the trailer
/// lines appended to the head; `None` when the connection closed before a whole response.
async fn read_response(stream: &mut TcpStream, head_request: bool) -> Option<(String, String)> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(SAFETY, stream.read(&mut chunk))
            .await
            .expect("an answer")
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let mut head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let mut rest = buf[head_end..].to_vec();
    let status: u16 = head.get(9..12)?.parse().ok()?;
    let header = |name: &str| {
        head.split("\r\n")
            .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
    };
    let mut more = async |rest: &mut Vec<u8>, want: usize| -> Option<()> {
        while rest.len() < want {
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(SAFETY, stream.read(&mut chunk))
                .await
                .expect("more of the body")
                .ok()?;
            if n == 0 {
                return None;
            }
            rest.extend_from_slice(&chunk[..n]);
        }
        Some(())
    };
    if head_request || status == 204 || status == 304 {
        return Some((head, String::new()));
    }
    if header("transfer-encoding").as_deref() == Some("chunked") {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(at) = rest.windows(2).position(|w| w == b"\r\n") {
                    break at;
                }
                let want = rest.len() + 1;
                more(&mut rest, want).await?;
            };
            let size =
                usize::from_str_radix(&String::from_utf8_lossy(&rest[..line_end]), 16).ok()?;
            rest.drain(..line_end + 2);
            if size == 0 {
                loop {
                    let end = loop {
                        if let Some(at) = rest.windows(2).position(|w| w == b"\r\n") {
                            break at;
                        }
                        let want = rest.len() + 1;
                        more(&mut rest, want).await?;
                    };
                    let line = String::from_utf8_lossy(&rest[..end]).to_ascii_lowercase();
                    rest.drain(..end + 2);
                    if line.is_empty() {
                        return Some((head, String::from_utf8_lossy(&body).into_owned()));
                    }
                    head.push_str(&line);
                    head.push_str("\r\n");
                }
            }
            more(&mut rest, size + 2).await?;
            body.extend(rest.drain(..size));
            rest.drain(..2);
        }
    }
    let length: usize = header("content-length")?.parse().ok()?;
    more(&mut rest, length).await?;
    Some((head, String::from_utf8_lossy(&rest[..length]).into_owned()))
}

#[tokio::test]
async fn each_badly_framed_response_is_answered_exactly_and_the_next_request_gets_its_own() {
    let upstream = ScriptedUpstream::start(script).await;
    let gw = OneRoute::to(upstream.address()).start();
    for (n, case) in cases().iter().enumerate() {
        let mut stream = TcpStream::connect(gw.addr("main")).await.unwrap();
        let request = format!(
            "{} /case/{n} HTTP/1.1\r\nHost: app.test\r\n{}\r\n",
            case.method, case.request_headers
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let Some((head, body)) = read_response(&mut stream, case.method == "HEAD").await else {
            // A body that broke off after its head ends the response unfinished (no last chunk), so
            // the client can tell; the connection is closed and a new one is served.
            assert!(!case.keeps_connection, "{}: no whole response", case.name);
            let mut fresh = TcpStream::connect(gw.addr("main")).await.unwrap();
            fresh
                .write_all(b"GET /next HTTP/1.1\r\nHost: app.test\r\n\r\n")
                .await
                .unwrap();
            let (_, body) = read_response(&mut fresh, false)
                .await
                .expect("a new connection is served");
            assert_eq!(body, "next", "{}", case.name);
            continue;
        };
        assert!(
            case.keeps_connection,
            "{}: a whole response where the body broke",
            case.name
        );
        assert!(
            head.starts_with(&format!("http/1.1 {} ", case.status)),
            "{}: {head}",
            case.name
        );
        if case.status == 502 {
            assert!(body.contains("\"error\""), "{}: {body}", case.name);
        } else {
            assert_eq!(body, case.body, "{}", case.name);
        }
        for line in case.has {
            assert!(
                head.contains(&format!("{line}\r\n")),
                "{}: {line} in {head}",
                case.name
            );
        }
        for line in case.has_not {
            assert!(!head.contains(line), "{}: {line} in {head}", case.name);
        }

        // The same connection, when it is still open, answers the next request with its own response.
        let next = b"GET /next HTTP/1.1\r\nHost: app.test\r\n\r\n";
        let answered = match stream.write_all(next).await {
            Ok(()) => read_response(&mut stream, false).await,
            Err(_) => None,
        };
        let (head, body) = answered.unwrap_or_else(|| panic!("{}: connection closed", case.name));
        assert!(head.starts_with("http/1.1 200 "), "{}: {head}", case.name);
        assert_eq!(body, "next", "{}", case.name);
    }
}
