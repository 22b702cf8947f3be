//! Serving HTTP/2 (h2c and h2 over TLS) with hyper's server, under the limits of the `http2` section.
//!
//! What hyper and h2 0.4 enforce once told to, and what they do on their own:
//! - `max_concurrent_streams`: streams past it are refused with RST_STREAM(REFUSED_STREAM).
//! - `max_header_list_size`: a larger decoded header list gets a 431 and REFUSED_STREAM. It also caps
//!   the CONTINUATION frames one header block may span (h2 allows the list size over the frame size,
//!   plus a quarter, at least 5; more is GOAWAY ENHANCE_YOUR_CALM), which is the CONTINUATION flood
//!   defence (CVE-2024-27316 and its kin); a block far over the limit is a GOAWAY too.
//! - `max_pending_accept_reset_streams`: streams opened and reset by the client before the server
//!   accepted them; past it, GOAWAY ENHANCE_YOUR_CALM (rapid reset, CVE-2023-44487).
//! - `max_local_error_reset_streams`: streams the server had to reset because the client broke the
//!   protocol on them; past it, GOAWAY ENHANCE_YOUR_CALM (CVE-2025-8671).
//! - PING and SETTINGS floods (CVE-2019-9512, CVE-2019-9515): h2 holds at most one unsent PING ack and
//!   one unsent SETTINGS ack and reads no further frame until it has written them, so a peer that floods
//!   and does not read stalls only its own connection; nothing queues up. Nothing to configure.
//! - Keep-alive: a PING every `keepalive_interval`, the connection closed when it is not answered within
//!   `keepalive_timeout`, so dead peers do not hold connections.
//!
//! hyper has no idle timeout for HTTP/2 (hyperium/hyper#1628), so it is kept here: the service counts
//! the streams it is serving, and a connection with none for `idle_timeout` is shut down gracefully.

use std::cell::Cell;
use std::convert::Infallible;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use floodgate_config::Http2Config;
use floodgate_observe::TimeoutKind;
use http::{header, HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::rt::{Read, Write};
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::TokioTimer;

use crate::client_conn::ConnInfo;
use crate::executor::LocalExec;
use crate::request_body::ClientBody;
use crate::response_body::ResponseBody;
use crate::server::handle::handle;
use crate::worker_ctx::WorkerCtx;

/// How long a connection closed for idleness may take to send its GOAWAY and go; a client that does not
/// read cannot hold it open past this.
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(10);

/// Serves HTTP/2 with hyper's server until the connection ends, it has been idle for `idle_timeout`, or
/// the worker stops; the last two send GOAWAY and let the streams in flight finish.
pub async fn serve_h2<I>(ctx: Rc<WorkerCtx>, io: I, info: ConnInfo, limits: &Http2Config)
where
    I: Read + Write + Unpin + Send + 'static,
{
    let info = Rc::new(info);
    let streams = Rc::new(OpenStreams::new());
    let service_ctx = ctx.clone();
    let service_streams = streams.clone();
    // Boxed per request, so an idle connection does not hold a request's worth of state.
    let service = service_fn(move |mut req: Request<Incoming>| {
        let stream = OpenStream::new(service_streams.clone());
        join_cookie_crumbs(req.headers_mut());
        // A stream the client resets is dropped by hyper with this future, which records it as a 499.
        let handled = handle(
            service_ctx.clone(),
            info.clone(),
            req.map(ClientBody::Http2),
        );
        Box::pin(async move {
            let Ok(response) = handled.await;
            // hyper writes the map only: the fields kept beside it go into it.
            let (mut parts, mut body) = response.into_parts();
            body.move_fields_into(&mut parts.headers);
            let body = StreamBody {
                inner: body,
                _stream: stream,
            };
            Ok::<_, Infallible>(Response::from_parts(parts, body))
        })
    });
    let mut builder = http2::Builder::new(LocalExec);
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_list_size.get()).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(limits.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(limits.max_local_error_reset_streams);
    let keepalive = limits.keepalive_interval.get();
    if !keepalive.is_zero() {
        builder
            .keep_alive_interval(keepalive)
            .keep_alive_timeout(limits.keepalive_timeout.get());
    }
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);

    let idle_timeout = limits.idle_timeout.get();
    let idle_check = tokio::time::sleep(idle_timeout);
    tokio::pin!(idle_check);
    let mut stopped = ctx.stop.stopped();
    loop {
        tokio::select! {
            result = connection.as_mut() => return log_end(&ctx, result),
            () = &mut stopped => {
                connection.as_mut().graceful_shutdown();
                return log_end(&ctx, connection.as_mut().await);
            }
            () = idle_check.as_mut(), if !idle_timeout.is_zero() => {
                match streams.idle_until(idle_timeout) {
                    Some(deadline) if deadline <= Instant::now() => break,
                    Some(deadline) => idle_check.as_mut().reset(deadline.into()),
                    // Busy: it cannot be idle long enough before a full period from now.
                    None => idle_check
                        .as_mut()
                        .reset(tokio::time::Instant::now() + idle_timeout),
                }
            }
        }
    }
    tracing::debug!(worker = ctx.index, "closing an idle HTTP/2 connection");
    ctx.shared
        .metrics
        .timeouts
        .record(ctx.index, TimeoutKind::Http2Idle);
    connection.as_mut().graceful_shutdown();
    if let Ok(result) = tokio::time::timeout(IDLE_CLOSE_GRACE, connection.as_mut()).await {
        log_end(&ctx, result);
    }
}

/// Joins the `cookie` fields of a request into one, with `; `, as RFC 9113 §8.2.3 requires before a
/// request leaves HTTP/2: clients split cookies into crumbs for HPACK, and an HTTP/1.1 upstream (or a
/// plugin reading one `Cookie`) would otherwise see several `Cookie` lines, which RFC 6265 §5.4 forbids.
///
/// Runs on every HTTP/2 request, so it first compares two counts the map keeps: when no name holds
/// two values there is nothing to join and nothing is looked up. Otherwise one lookup of a standard
/// name; only a request with two crumbs or more builds the joined value.
fn join_cookie_crumbs(headers: &mut HeaderMap) {
    if headers.len() == headers.keys_len() {
        return;
    }
    let mut crumbs = headers.get_all(header::COOKIE).iter();
    if crumbs.next().is_none() || crumbs.next().is_none() {
        return;
    }
    let mut joined = Vec::new();
    for (i, crumb) in headers.get_all(header::COOKIE).iter().enumerate() {
        if i > 0 {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(crumb.as_bytes());
    }
    // Each crumb was a valid value, and `; ` is valid between them: this never fails.
    if let Ok(value) = HeaderValue::from_maybe_shared(Bytes::from(joined)) {
        headers.insert(header::COOKIE, value);
    }
}

/// Logs how a connection ended; an unanswered keep-alive PING is the one timeout hyper reports, and is
/// counted with the other deadlines.
fn log_end(ctx: &WorkerCtx, result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        if e.is_timeout() {
            ctx.shared
                .metrics
                .timeouts
                .record(ctx.index, TimeoutKind::Http2Keepalive);
        }
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// The streams a connection is serving, and since when it has served none.
struct OpenStreams {
    open: Cell<usize>,
    /// When the last stream ended (or the connection began); `None` while a stream is open.
    idle_since: Cell<Option<Instant>>,
}

impl OpenStreams {
    fn new() -> Self {
        Self {
            open: Cell::new(0),
            idle_since: Cell::new(Some(Instant::now())),
        }
    }

    /// When the connection will have been idle for `timeout`, if it is idle now.
    fn idle_until(&self, timeout: Duration) -> Option<Instant> {
        self.idle_since.get().map(|since| since + timeout)
    }
}

/// A stream counted in its connection's [`OpenStreams`] from the request's arrival until its response
/// body has ended or was dropped (the client reset the stream, or the connection closed).
struct OpenStream(Rc<OpenStreams>);

impl OpenStream {
    fn new(streams: Rc<OpenStreams>) -> Self {
        streams.open.set(streams.open.get() + 1);
        streams.idle_since.set(None);
        Self(streams)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        let open = self.0.open.get().saturating_sub(1);
        self.0.open.set(open);
        if open == 0 {
            self.0.idle_since.set(Some(Instant::now()));
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its stream counted as open until it ends.
    struct StreamBody {
        #[pin]
        inner: ResponseBody,
        _stream: OpenStream,
    }
}

impl Body for StreamBody {
    type Data = <ResponseBody as Body>::Data;
    type Error = <ResponseBody as Body>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
