//! floodgate's HTTP/1.1 server, for cleartext and TLS connections.
//!
//! One task per connection reads a request head with `httparse`, hands the request to the handler, and
//! writes the response as its body streams; the request body is read off the same connection by whoever
//! consumes it (`body.rs`), in the same task. Between requests the connection holds no buffer, only its
//! socket: an idle keep-alive connection costs a small task and its socket registration, as in nginx.
//!
//! hyper's server, which this replaces for HTTP/1.1, kept an 8 KiB read buffer and an 8 KiB header
//! buffer for the life of every connection, built every request through its dispatcher, and needed a
//! second scan of each head to see `Content-Length` together with `Transfer-Encoding` (it hides one).
//! HTTP/2 connections are still served by hyper.

pub(crate) mod body;
mod response;
mod wire;

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use http::{Method, Request, StatusCode, Version};
use tokio::io::AsyncWrite;

use self::body::RequestBodyReader;
use self::response::{write_response, Written};
use self::wire::Wire;
use crate::client_conn::ConnInfo;
use crate::deadline::ProgressDeadline;
use crate::error::ProxyError;
use crate::read_size::ReadSize;
use crate::request_body::ClientBody;
use crate::rewind::Rewind;
use crate::server::handle::handle;
use crate::server::io::ClientIo;
use crate::server::tunnel::tunnel_io;
use crate::snapshot::ClientTimeouts;
use crate::upstream::io::UpstreamTunnel;
use crate::worker_ctx::WorkerCtx;
use floodgate_http1::{head_complete, parse_request, RequestError, RequestHead};
use floodgate_observe::TimeoutKind;

/// Bytes asked of the socket by the first read of a request.
const FIRST_READ: usize = 4096;

/// How long, and how many bytes, a closing connection reads and drops (see [`close`]).
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;

/// Serves HTTP/1.1 on `io` until the client closes, asks to close, the gateway shuts down, or the
/// connection becomes a tunnel. Heads over `max_header_bytes` plus 16 KiB are refused with 431 as they
/// arrive; heads over `max_header_bytes` get the handler's 431.
pub async fn serve(ctx: Rc<WorkerCtx>, io: ClientIo, info: ConnInfo, max_header_bytes: usize) {
    let timeouts = ctx.shared.snapshot.load().client_timeouts;
    let info = Rc::new(info);
    let head_limit = max_header_bytes + 16 * 1024;
    let wire = Rc::new(RefCell::new(Wire {
        io,
        buf: BytesMut::new(),
        body_done: true,
        read_size: ReadSize::new(FIRST_READ),
        body_deadline: ProgressDeadline::new(timeouts.body),
        send_deadline: ProgressDeadline::new(timeouts.send),
        timed_out: None,
        read_closed: false,
        pipelined: false,
        watcher: None,
    }));
    let tunnel = serve_requests(&ctx, &wire, &info, head_limit, timeouts).await;
    if let Some(kind) = wire.borrow_mut().timed_out.take() {
        ctx.shared.metrics.timeouts.record(ctx.index, kind);
    }
    // After a 101 the connection (with any bytes read past the head) is joined to the upstream's.
    if let (Some(upstream), Ok(wire)) = (tunnel, Rc::try_unwrap(wire)) {
        let Wire { io, buf, .. } = wire.into_inner();
        Box::pin(tunnel_io(ctx, Rewind::new(io, buf.freeze()), upstream)).await;
    }
}

/// The request loop of [`serve`]: the upstream's side of a tunnel when a request was upgraded.
async fn serve_requests(
    ctx: &Rc<WorkerCtx>,
    wire: &Rc<RefCell<Wire>>,
    info: &Rc<ConnInfo>,
    head_limit: usize,
    timeouts: ClientTimeouts,
) -> Option<UpstreamTunnel> {
    // Registered once for the connection's life; each idle wait below only polls it again.
    let mut stopped = ctx.stop.stopped();
    // The first request's head is waited for as long as a head may take; later ones as long as a
    // keep-alive connection may idle (nginx's `client_header_timeout` and `keepalive_timeout`).
    let mut idle_limit = (timeouts.header, TimeoutKind::ClientHeader);
    // A timer of the connection's own for idle waits, apart from the one the route timeouts move:
    // each idle deadline is later than the one before, and tokio moves a timer later without a lock,
    // while alternating it with an earlier route deadline would take that lock twice per request.
    let mut idle = Box::pin(tokio::time::sleep_until(tokio::time::Instant::now()));
    loop {
        let pipelined = {
            let mut next = wire.borrow_mut();
            next.pipelined = !next.buf.is_empty();
            next.pipelined
        };
        if !pipelined {
            // Idle: give the buffer back, and wait with nothing but the socket.
            {
                let mut idle = wire.borrow_mut();
                ctx.recycle_read_buffer(std::mem::take(&mut idle.buf));
                idle.read_size.reset();
            }
            // Not yet registered on the first wait, so setting it costs no lock then either.
            idle.as_mut()
                .reset(tokio::time::Instant::now() + idle_limit.0);
            let readable = {
                // Biased: no random branch order (and no random number) per wait; a stop is seen
                // at the latest when the socket has nothing to say.
                tokio::select! {
                    biased;
                    ready = wait_readable(wire) => ready,
                    () = &mut stopped => false,
                    () = &mut idle => {
                        wire.borrow_mut().timed_out = Some(idle_limit.1);
                        false
                    }
                }
            };
            if !readable {
                return None;
            }
            let mut woken = wire.borrow_mut();
            if woken.buf.capacity() == 0 {
                woken.buf = ctx.read_buffer();
            }
        }
        idle_limit = (timeouts.keepalive, TimeoutKind::ClientKeepalive);
        let head = match read_head(wire, head_limit, timeouts.header).await {
            Ok(Some(head)) => head,
            Ok(None) => return None,
            Err(error) => {
                if error == ProxyError::RequestTimeout {
                    wire.borrow_mut().timed_out = Some(TimeoutKind::ClientHeader);
                }
                Box::pin(refuse(wire, error)).await;
                return None;
            }
        };
        let (request, head_request, client_version, keep_alive, trailers) =
            into_request(head, wire, info);
        let upgraded;
        let written = {
            // Boxed: the handler's state lives only while a request does, not in every idle
            // connection. The box is allocated before the handler's future is built, so the future
            // is built in it rather than on the stack and then copied in (a few kilobytes a request).
            let slot = Box::new_uninit();
            let mut handling =
                Box::into_pin(Box::write(slot, handle(ctx.clone(), info.clone(), request)));
            // The request first: most are answered at their first poll and never look at the client.
            // When the client is gone, dropping the handler drops the upstream exchange with it (that
            // connection is closed, not pooled with a response still to come) and records the request
            // as a 499, its plugins' `log` phase included.
            let answered = poll_fn(|cx| match handling.as_mut().poll(cx) {
                Poll::Ready(Ok(response)) => Poll::Ready(Some(response)),
                Poll::Pending => wire
                    .borrow_mut()
                    .poll_client_gone(cx, head_limit)
                    .map(|()| None),
            })
            .await;
            drop(handling);
            let response = answered?;
            upgraded = response.status() == StatusCode::SWITCHING_PROTOCOLS;
            // A body left unread (an answer that did not need it) cannot be skipped safely on the
            // connection: say so in the response, and close after it.
            let keep = keep_alive && !ctx.stop.is_stopped() && wire.borrow().body_done;
            // Awaited where it is built: bound to a name first, the writer's future would be copied
            // into the connection's future at the await.
            write_response(wire, response, head_request, client_version, keep, trailers).await
        };
        if upgraded {
            let upstream = info.pending_upgrade.borrow_mut().take();
            return match (written, upstream) {
                (Written::Complete(_), Some(upstream)) => Some(upstream),
                _ => None,
            };
        }
        let body_done = wire.borrow().body_done;
        match written {
            Written::Complete(true) if body_done => {}
            Written::Complete(_) => {
                Box::pin(close(wire, !body_done)).await;
                return None;
            }
            Written::Broken => return None,
        }
    }
}

/// The request for the handler, with its body read from `wire`; then whether it is a `HEAD` request,
/// its version, whether the client wants the connection kept, and whether it accepts trailers. A
/// function of its own, so the head's pieces are not held in the connection's future.
fn into_request(
    head: RequestHead,
    wire: &Rc<RefCell<Wire>>,
    info: &ConnInfo,
) -> (Request<ClientBody>, bool, Version, bool, bool) {
    let RequestHead {
        parts,
        framing,
        keep_alive,
        expects_continue,
        ambiguous,
        accepts_trailers,
    } = head;
    if ambiguous {
        info.ambiguous_framing.set(true);
    }
    let head_request = parts.method == Method::HEAD;
    let version = parts.version;
    let body = RequestBodyReader::new(wire.clone(), framing, expects_continue);
    let request = Request::from_parts(parts, ClientBody::Http1(body));
    (request, head_request, version, keep_alive, accepts_trailers)
}

/// Waits until the client sends something; `false` when it failed instead.
async fn wait_readable(wire: &Rc<RefCell<Wire>>) -> bool {
    let plain = matches!(wire.borrow().io, ClientIo::Plain(_));
    if plain {
        // Readiness of the socket needs no buffer; a close shows as readable and then reads nothing.
        poll_fn(|cx| match &wire.borrow().io {
            ClientIo::Plain(tcp) => tcp.poll_read_ready(cx),
            ClientIo::Tls(_) => Poll::Ready(Ok(())),
        })
        .await
        .is_ok()
    } else {
        // rustls may hold decrypted bytes the socket no longer shows: read instead.
        matches!(poll_fn(|cx| wire.borrow_mut().poll_read_more(cx)).await, Ok(n) if n > 0)
    }
}

/// Reads until a whole request head is in the buffer, within `timeout` of the reads it takes.
/// `Ok(None)`: the client closed before a whole head; a head that started and did not finish in time is
/// [`ProxyError::RequestTimeout`].
async fn read_head(
    wire: &Rc<RefCell<Wire>>,
    limit: usize,
    timeout: Duration,
) -> Result<Option<RequestHead>, ProxyError> {
    let mut deadline = None;
    let mut reads = 0u32;
    // Most heads arrive whole in their first read, so the first attempt parses at once. After that a
    // head is parsed again only once its end has arrived, searched for from where the last search
    // stopped: a head sent a byte at a time costs one scan overall, not one parse per read.
    let mut parsed_once = false;
    let mut scanned = 0;
    loop {
        {
            let mut w = wire.borrow_mut();
            // Empty lines before a request line are ignored (RFC 9112 §2.2: some clients send a CRLF
            // after a body); dropped here, they cannot make each later read parse the buffer again.
            let blank = w
                .buf
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
            if blank > 0 {
                w.buf.advance(blank);
                scanned = 0;
            }
            let complete = if parsed_once && !w.buf.is_empty() {
                head_complete(&w.buf, &mut scanned)
            } else {
                None
            };
            if complete.is_some_and(|len| len > limit) {
                return Err(ProxyError::HeadersTooLarge);
            }
            if (!parsed_once && !w.buf.is_empty()) || complete.is_some() {
                parsed_once = true;
                let before = w.buf.len();
                match parse_request(&mut w.buf) {
                    Ok(Some(_)) if before - w.buf.len() > limit => {
                        return Err(ProxyError::HeadersTooLarge)
                    }
                    Ok(Some(head)) => return Ok(Some(head)),
                    Ok(None) => {}
                    Err(_) if before > limit => return Err(ProxyError::HeadersTooLarge),
                    Err(RequestError::TooManyHeaders) => return Err(ProxyError::HeadersTooLarge),
                    Err(RequestError::Malformed) => return Err(ProxyError::BadRequest),
                    Err(RequestError::UnsupportedCoding) => {
                        return Err(ProxyError::UnsupportedTransferCoding)
                    }
                }
            }
            if w.buf.len() > limit {
                return Err(ProxyError::HeadersTooLarge);
            }
        }
        let fill = poll_fn(|cx| wire.borrow_mut().poll_read_more(cx));
        // The first read of a head follows readiness and needs no timer (nor a clock reading); a head
        // that needs more reads gets its deadline then.
        let read = if reads == 0 {
            fill.await
        } else {
            let at = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + timeout);
            match tokio::time::timeout_at(at, fill).await {
                Ok(read) => read,
                Err(_) if wire.borrow().buf.is_empty() => return Ok(None),
                Err(_) => return Err(ProxyError::RequestTimeout),
            }
        };
        reads += 1;
        match read {
            Ok(0) | Err(_) => return Ok(None),
            Ok(_) => {}
        }
    }
}

/// Answers a head the server could not take (400, 431) with the gateway's JSON error, and closes.
async fn refuse(wire: &Rc<RefCell<Wire>>, error: ProxyError) {
    let request_id = crate::request_id::generate();
    let mut response = error.response(&request_id, false);
    response
        .headers_mut()
        .insert(&crate::request_id::X_REQUEST_ID, request_id);
    let _ = write_response(wire, response, false, http::Version::HTTP_11, false, false).await;
    close(wire, true).await;
}

/// Closes the connection gracefully: sends FIN, then, when the client may still be sending (a body
/// the gateway did not read), reads and drops what comes for a short while, so a response the client
/// has not read yet is not destroyed by a reset (a lingering close, as nginx does).
async fn close(wire: &Rc<RefCell<Wire>>, linger: bool) {
    let _ = poll_fn(|cx| Pin::new(&mut wire.borrow_mut().io).poll_shutdown(cx)).await;
    if !linger {
        return;
    }
    let drain = async {
        let mut dropped = 0;
        loop {
            wire.borrow_mut().buf.clear();
            match poll_fn(|cx| wire.borrow_mut().poll_read_more(cx)).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    dropped += n;
                    if dropped > LINGER_BYTES {
                        break;
                    }
                }
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}
