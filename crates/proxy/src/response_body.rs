//! The body sent to the client, and the bookkeeping that runs when it ends.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use floodgate_http1::RawFields;
use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::completion::Completion;
use crate::request_body::BoxError;
use crate::response_fields::ResponseFields;
use crate::upstream::http1::body::UpstreamBody;

/// The body sent to the client: the upstream's stream or a fixed body the gateway wrote itself.
///
/// It also carries the header fields that go out with the response without being in its map: an
/// HTTP/1.1 upstream's fields and the request id (see [`ResponseFields`]). Whoever needs them in the map
/// calls [`ResponseBody::move_fields_into`].
///
/// Boxed: a response moves through several futures and return values on its way to the client, and a
/// pointer moves for free where the body and its fields (about 400 bytes) would be copied each time,
/// which cost more per request than the allocation does.
pub struct ResponseBody(Box<Inner>);

struct Inner {
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
        Self(Box::new(Inner {
            kind,
            fields: ResponseFields {
                upstream,
                added: Vec::new(),
                request_id: None,
            },
            completion: None,
            bytes_sent: 0,
        }))
    }

    /// The header fields kept beside the response's map.
    pub fn fields(&self) -> &ResponseFields {
        &self.0.fields
    }

    /// The upstream's fields kept as bytes and the fields plugins added, for the plugins' one view
    /// of the response's fields.
    pub fn plugin_fields_mut(&mut self) -> (&mut RawFields, &mut floodgate_plugins::AddedFields) {
        (&mut self.0.fields.upstream, &mut self.0.fields.added)
    }

    /// Sets the request id the response goes out with.
    pub fn set_request_id(&mut self, id: HeaderValue) {
        self.0.fields.request_id = Some(id);
    }

    /// Moves the fields kept beside the map into `map` (for a writer that writes only the map).
    pub fn move_fields_into(&mut self, map: &mut HeaderMap) {
        std::mem::take(&mut self.0.fields).move_into(map);
    }

    /// Attaches the bookkeeping to run when the body ends.
    pub fn set_completion(&mut self, completion: Completion) {
        self.0.completion = Some(completion);
    }
}

impl Inner {
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
        let this = &mut *self.0;
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
        match &self.0.kind {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::H1(body) => body.is_end_stream(),
            Kind::H2(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0.kind {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::H1(body) => body.size_hint(),
            Kind::H2(body) => body.size_hint(),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Servers stop polling once `is_end_stream` is true (an empty body, or the last data frame of a body
        // with a length), so the end may only be visible here.
        self.finish();
    }
}
