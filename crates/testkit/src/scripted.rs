//! A raw HTTP/1.1 upstream that answers with exactly the bytes a test scripts, for upstream behaviour no
//! well-behaved server produces: bodies delimited by closing, broken lengths, interim responses, answers
//! before the request body has arrived, connections closed between requests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A request as the scripted upstream read it.
#[derive(Debug, Clone)]
pub struct ScriptedRequest {
    /// Which connection it came on, counting from 1 in the order they were accepted.
    pub connection: usize,
    /// The request head as text, up to and including the blank line.
    pub head: String,
    /// The body (de-chunked when it was chunked); empty when the reply was sent before it.
    pub body: Vec<u8>,
    /// Every byte of the request exactly as it arrived: the head, then the body as framed.
    pub raw: Vec<u8>,
}

impl ScriptedRequest {
    /// The request target of the request line.
    pub fn target(&self) -> &str {
        self.head.split(' ').nth(1).unwrap_or("")
    }
}

impl ScriptedRequest {
    /// The value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// What the scripted upstream does with one request.
pub struct Reply {
    bytes: Vec<u8>,
    close: bool,
    before_body: bool,
    drain_after: bool,
}

impl Reply {
    /// Answer with `bytes`, then wait for the next request on the connection.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            bytes: bytes.into(),
            close: false,
            before_body: false,
            drain_after: false,
        }
    }

    /// Answer as soon as the head has arrived, then read the body the head declares and keep the
    /// connection, as a server that answers early (a refused upgrade, an early 4xx) does.
    pub fn then_drain(mut self) -> Self {
        self.before_body = true;
        self.drain_after = true;
        self
    }

    /// Close the connection after writing the answer.
    pub fn close(mut self) -> Self {
        self.close = true;
        self
    }

    /// Answer as soon as the head has arrived, without reading the body (then close).
    pub fn before_body(mut self) -> Self {
        self.before_body = true;
        self.close = true;
        self
    }
}

type Script = dyn Fn(&ScriptedRequest) -> Reply + Send + Sync;

/// A running scripted upstream; stops when dropped.
pub struct ScriptedUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    seen: mpsc::UnboundedReceiver<ScriptedRequest>,
    task: JoinHandle<()>,
}

impl Drop for ScriptedUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ScriptedUpstream {
    /// Starts one on a free port; `script` decides the answer to each request. For a request whose
    /// reply is not [`Reply::before_body`], `script` sees the whole body.
    pub async fn start(
        script: impl Fn(&ScriptedRequest) -> Reply + Send + Sync + 'static,
    ) -> ScriptedUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let (tx, seen) = mpsc::unbounded_channel();
        let script: Arc<Script> = Arc::new(script);
        let counter = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let connection = counter.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(serve(stream, connection, script.clone(), tx.clone()));
            }
        });
        ScriptedUpstream {
            addr,
            connections,
            seen,
            task,
        }
    }

    /// `host:port`, for a config file.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The next request it answered, in order.
    pub async fn next_request(&mut self) -> ScriptedRequest {
        self.seen.recv().await.expect("scripted upstream stopped")
    }

    /// Every request it has answered and not yet handed out, without waiting.
    pub fn requests_so_far(&mut self) -> Vec<ScriptedRequest> {
        std::iter::from_fn(|| self.seen.try_recv().ok()).collect()
    }
}

async fn serve(
    mut stream: TcpStream,
    connection: usize,
    script: Arc<Script>,
    seen: mpsc::UnboundedSender<ScriptedRequest>,
) {
    let mut buf = Vec::new();
    loop {
        let Some(head_end) = read_until(&mut stream, &mut buf, b"\r\n\r\n").await else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let raw: Vec<u8> = buf.drain(..head_end).collect();
        let mut request = ScriptedRequest {
            connection,
            head,
            body: Vec::new(),
            raw,
        };
        let peek = script(&request);
        if peek.drain_after {
            if stream.write_all(&peek.bytes).await.is_err() {
                return;
            }
            // Recorded once the body has been read, or as far as it came when the connection ended.
            let drained = read_body(&mut stream, &mut buf, &mut request).await;
            let _ = seen.send(request);
            if drained.is_none() {
                return;
            }
            continue;
        }
        if !peek.before_body {
            match read_body(&mut stream, &mut buf, &mut request).await {
                Some(body) => request.body = body,
                None => return,
            }
        }
        // Asked again with the body, so scripts can answer on what it holds.
        let reply = if peek.before_body {
            peek
        } else {
            script(&request)
        };
        let _ = seen.send(request);
        if stream.write_all(&reply.bytes).await.is_err() || reply.close {
            return;
        }
    }
}

/// Reads until `marker` is in `buf`; the position just past it, or `None` when the peer closed first.
async fn read_until(stream: &mut TcpStream, buf: &mut Vec<u8>, marker: &[u8]) -> Option<usize> {
    loop {
        if let Some(at) = buf.windows(marker.len()).position(|w| w == marker) {
            return Some(at + marker.len());
        }
        let mut chunk = [0u8; 16 * 1024];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn read_exact_into(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    n: usize,
    raw: &mut Vec<u8>,
) -> Option<Vec<u8>> {
    while buf.len() < n {
        let mut chunk = [0u8; 16 * 1024];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(read) => buf.extend_from_slice(&chunk[..read]),
        }
    }
    let taken: Vec<u8> = buf.drain(..n).collect();
    raw.extend_from_slice(&taken);
    Some(taken)
}

/// The request body as `Content-Length` or chunked framing says (chunk extensions and trailers are
/// read and dropped).
async fn read_body(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    request: &mut ScriptedRequest,
) -> Option<Vec<u8>> {
    let chunked = request
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"));
    let length = request
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let raw = &mut request.raw;
    if chunked {
        let mut body = Vec::new();
        loop {
            let line_end = read_until(stream, buf, b"\r\n").await?;
            let line = String::from_utf8_lossy(&buf[..line_end - 2]).to_string();
            raw.extend(buf.drain(..line_end));
            let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                // Trailers, if any, end with a blank line.
                loop {
                    let end = read_until(stream, buf, b"\r\n").await?;
                    let blank = end == 2;
                    raw.extend(buf.drain(..end));
                    if blank {
                        return Some(body);
                    }
                }
            }
            body.extend(
                read_exact_into(stream, buf, size + 2, raw)
                    .await?
                    .drain(..size),
            );
        }
    }
    read_exact_into(stream, buf, length, raw).await
}
