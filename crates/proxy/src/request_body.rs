//! The client's request body as the servers read it, and the size limit it passes through on its way
//! upstream.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::server::h1::body::RequestBodyReader;

/// The error of a request body: the client's stream failed, or it passed the route's size limit.
#[derive(Debug, thiserror::Error)]
pub enum RequestBodyError {
    /// More bytes than `max_body_bytes`.
    #[error("request body exceeds the limit of {0} bytes")]
    TooLarge(u64),
    /// The client connection failed while sending the body.
    #[error("client body: {0}")]
    Client(BoxError),
}

/// Any error, boxed: what the bodies of either protocol may fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The client's request body, as the server of its protocol reads it.
pub enum ClientBody {
    /// An HTTP/2 stream, from hyper's server.
    Http2(Incoming),
    /// Read off an HTTP/1.1 connection by floodgate's server.
    Http1(RequestBodyReader),
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Http2(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            Self::Http1(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Http2(body) => body.is_end_stream(),
            Self::Http1(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Http2(body) => body.size_hint(),
            Self::Http1(body) => body.size_hint(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The client's body on its way upstream, cut off with [`RequestBodyError::TooLarge`] past the limit.
    ///
    /// `Content-Length` over the limit is refused before forwarding; this catches chunked bodies and
    /// HTTP/2 streams whose length is not declared.
    pub struct RequestBody {
        #[pin]
        inner: Option<ClientBody>,
        // Bytes already read (and counted against the limit), sent before the rest of `inner`: a
        // body buffered for a retry, or the start of one that proved too long to buffer. Boxed: few
        // requests have any, and every request moves this struct.
        ahead: Option<Box<Ahead>>,
        remaining: u64,
        limit: u64,
    }
}

/// What a body sends before (or instead of) the client's stream.
struct Ahead {
    data: Option<Bytes>,
    /// The trailers of a buffered body, sent after `data` when there is no stream.
    trailers: Option<HeaderMap>,
}

impl RequestBody {
    /// Wraps the client's body with a limit in bytes.
    pub fn new(inner: ClientBody, limit: u64) -> Self {
        Self {
            inner: Some(inner),
            ahead: None,
            remaining: limit,
            limit,
        }
    }

    /// A body with nothing in it (an upgrade request's body is the tunnel, not this).
    pub fn empty() -> Self {
        Self {
            inner: None,
            ahead: None,
            remaining: 0,
            limit: 0,
        }
    }

    /// A body read whole beforehand: `data`, then `trailers`.
    pub fn buffered(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        Self {
            inner: None,
            ahead: Some(Box::new(Ahead {
                data: (!data.is_empty()).then_some(data),
                trailers,
            })),
            remaining: 0,
            limit: 0,
        }
    }

    /// Sends `data`, already read from this body, before the rest of it.
    pub(crate) fn put_back(&mut self, data: Bytes) {
        if !data.is_empty() {
            self.ahead = Some(Box::new(Ahead {
                data: Some(data),
                trailers: None,
            }));
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        let this = self.project();
        if let Some(ahead) = this.ahead.as_deref_mut() {
            if let Some(data) = ahead.data.take() {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
        }
        let Some(inner) = this.inner.as_pin_mut() else {
            let trailers = this.ahead.as_deref_mut().and_then(|a| a.trailers.take());
            return Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t))));
        };
        match ready!(inner.poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > *this.remaining {
                        return Poll::Ready(Some(Err(RequestBodyError::TooLarge(*this.limit))));
                    }
                    *this.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => Poll::Ready(Some(Err(RequestBodyError::Client(e)))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ahead
            .as_deref()
            .is_none_or(|a| a.data.is_none() && a.trailers.is_none())
            && self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let ahead = self.ahead.as_deref();
        let trailers = ahead.is_some_and(|a| a.trailers.is_some());
        let ahead = ahead
            .and_then(|a| a.data.as_ref())
            .map_or(0, |d| d.len() as u64);
        match &self.inner {
            Some(inner) => {
                let rest = inner.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower() + ahead);
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper + ahead);
                }
                hint
            }
            // Trailers need chunked framing on HTTP/1.1, which an exact length would not get.
            None if trailers => {
                let mut hint = SizeHint::new();
                hint.set_lower(ahead);
                hint
            }
            None => SizeHint::with_exact(ahead),
        }
    }
}
