//! Body types of the proxy: the client's request body with its size limit, and the response body that
//! records the request when it ends.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::completion::Completion;
use crate::response_fields::ResponseFields;
use crate::upstream::http1::UpstreamBody;
use floodgate_http1::RawFields;

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
    Http1(crate::server::h1::RequestBodyReader),
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
        remaining: u64,
        limit: u64,
    }
}

impl RequestBody {
    /// Wraps the client's body with a limit in bytes.
    pub fn new(inner: ClientBody, limit: u64) -> Self {
        Self {
            inner: Some(inner),
            remaining: limit,
            limit,
        }
    }

    /// A body with nothing in it (an upgrade request's body is the tunnel, not this).
    pub fn empty() -> Self {
        Self {
            inner: None,
            remaining: 0,
            limit: 0,
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
        let Some(inner) = this.inner.as_pin_mut() else {
            return Poll::Ready(None);
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
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map(|b| b.size_hint())
            .unwrap_or_else(|| SizeHint::with_exact(0))
    }
}

/// The body sent to the client: the upstream's stream or a fixed body the gateway wrote itself.
///
/// It also carries the header fields that go out with the response without being in its map: an
/// HTTP/1.1 upstream's fields and the request id (see [`ResponseFields`]). Whoever needs them in the map
/// calls [`ResponseBody::move_fields_into`].
pub struct ResponseBody {
    kind: Kind,
    fields: ResponseFields,
    /// Records metrics and the access log entry when the body is done (or dropped).
    completion: Option<Completion>,
    bytes_sent: u64,
}

enum Kind {
    /// From an HTTP/1.1 upstream; it returns its connection to the pool itself when it ends.
    H1(UpstreamBody),
    /// A stream of a shared HTTP/2 upstream connection.
    H2(Incoming),
    Full(Option<Bytes>),
}

impl ResponseBody {
    /// A fixed body.
    pub fn full(bytes: Bytes) -> Self {
        Self::from_kind(
            Kind::Full(if bytes.is_empty() { None } else { Some(bytes) }),
            RawFields::default(),
        )
    }

    /// The body of an HTTP/1.1 upstream's response, with the header fields that go on with it.
    pub fn h1(body: UpstreamBody, fields: RawFields) -> Self {
        Self::from_kind(Kind::H1(body), fields)
    }

    /// The body of an HTTP/2 upstream's response.
    pub fn h2(body: Incoming) -> Self {
        Self::from_kind(Kind::H2(body), RawFields::default())
    }

    fn from_kind(kind: Kind, upstream: RawFields) -> Self {
        Self {
            kind,
            fields: ResponseFields {
                upstream,
                request_id: None,
            },
            completion: None,
            bytes_sent: 0,
        }
    }

    /// The header fields kept beside the response's map.
    pub fn fields(&self) -> &ResponseFields {
        &self.fields
    }

    /// Sets the request id the response goes out with.
    pub fn set_request_id(&mut self, id: HeaderValue) {
        self.fields.request_id = Some(id);
    }

    /// Moves the fields kept beside the map into `map` (for a writer that writes only the map).
    pub fn move_fields_into(&mut self, map: &mut HeaderMap) {
        std::mem::take(&mut self.fields).move_into(map);
    }

    /// Attaches the bookkeeping to run when the body ends.
    pub fn set_completion(&mut self, completion: Completion) {
        self.completion = Some(completion);
    }

    fn finish(&mut self) {
        if let Some(mut completion) = self.completion.take() {
            completion.bytes_sent = Some(self.bytes_sent);
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let frame = match &mut this.kind {
            Kind::Full(bytes) => bytes.take().map(|b| Ok(Frame::data(b))),
            Kind::H1(body) => ready!(Pin::new(body).poll_frame(cx)).map(|f| f.map_err(Into::into)),
            Kind::H2(body) => ready!(Pin::new(body).poll_frame(cx)).map(|f| f.map_err(Into::into)),
        };
        match &frame {
            Some(Ok(f)) => this.bytes_sent += f.data_ref().map_or(0, |d| d.len() as u64),
            Some(Err(_)) => {}
            None => this.finish(),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::H1(body) => body.is_end_stream(),
            Kind::H2(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::H1(body) => body.size_hint(),
            Kind::H2(body) => body.size_hint(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // Servers stop polling once `is_end_stream` is true (an empty body, or the last data frame of a body
        // with a length), so the end may only be visible here.
        self.finish();
    }
}
