//! A request body read whole before the first attempt (`retries.buffer_body`), so that a retry can
//! send it again: a body that streamed to a failed target is gone, and is never sent twice.

use std::future::poll_fn;
use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::Body;

use crate::request_body::{RequestBody, RequestBodyError};

/// A request body kept for every attempt.
pub(super) struct Replay {
    data: Bytes,
    trailers: Option<HeaderMap>,
}

impl Replay {
    /// Reads `body` whole when it ends within `limit` bytes: then `body` sends the copy, and the
    /// copy is returned for the retries. A longer body is not kept: what was read of it goes back to
    /// the front of `body`, which streams on as before.
    pub(super) async fn read(
        body: &mut RequestBody,
        limit: u64,
    ) -> Result<Option<Replay>, RequestBodyError> {
        if body.size_hint().lower() > limit {
            return Ok(None);
        }
        let mut read = BytesMut::new();
        let mut trailers = None;
        while let Some(frame) = poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await {
            let frame = match frame?.into_data() {
                Ok(data) => {
                    read.extend_from_slice(&data);
                    if read.len() as u64 > limit {
                        body.put_back(read.freeze());
                        return Ok(None);
                    }
                    continue;
                }
                Err(frame) => frame,
            };
            if let Ok(fields) = frame.into_trailers() {
                trailers = Some(fields);
            }
        }
        let replay = Replay {
            data: read.freeze(),
            trailers,
        };
        *body = replay.body();
        Ok(Some(replay))
    }

    /// The body again, for one more attempt.
    pub(super) fn body(&self) -> RequestBody {
        RequestBody::buffered(self.data.clone(), self.trailers.clone())
    }
}
