//! Sending one request on an HTTP/1.1 upstream connection and reading its response head.

use std::future::poll_fn;
use std::io::{self, IoSlice};

use bytes::BytesMut;
use http::{Method, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::conn::Http1Conn;
use crate::read_size::ReadSize;
use crate::request_body::{RequestBody, RequestBodyError};
use crate::write_all::write_all_vectored;
use floodgate_http1::{
    encode_chunk_size, encode_last_chunk, parse_response, ResponseError, ResponseHead,
};

/// Why a request got no usable response head.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The client's request body failed: over the size limit, or the client went away.
    #[error(transparent)]
    Body(RequestBodyError),
    /// The connection failed or closed before a whole response head arrived.
    #[error("upstream connection failed: {error}")]
    Upstream {
        /// What the socket said.
        error: io::Error,
        /// Whether the request may go again on another connection: the connection had carried
        /// requests before (so an upstream closing it while idle is the likely cause), no byte of a
        /// response arrived, no byte of the body was taken from the client, and the method is
        /// idempotent or the request never left.
        retryable: bool,
    },
    /// The upstream answered with something that is not a usable HTTP/1.1 response head.
    #[error("invalid response from the upstream: {0}")]
    BadResponse(#[from] ResponseError),
}

/// Sends `head` (an encoded request head) and `body` on `conn` and reads the response head, skipping
/// interim 1xx responses other than 101. The body is written as the client sends it (chunked when
/// `chunked`), while the response is read: an upstream may answer before the body has ended, and then
/// the rest of the body is not sent and the connection is not reused.
pub async fn send(
    conn: &mut Http1Conn,
    head: &[u8],
    body: &mut RequestBody,
    chunked: bool,
    method: &Method,
) -> Result<ResponseHead, SendError> {
    let reused = conn.served > 0;
    conn.served += 1;
    let mut progress = Progress::default();
    let failed = |error: io::Error, progress: &Progress| SendError::Upstream {
        retryable: reused
            && !progress.response_bytes
            && !progress.body_taken
            && (method.is_idempotent() || !progress.head_written),
        error,
    };

    if let Err(e) = write_head(&mut conn.io, head, body.is_end_stream()).await {
        return Err(failed(e, &progress));
    }
    progress.head_written = true;

    if body.is_end_stream() {
        return read_head(
            &mut conn.io,
            &mut conn.buf,
            &mut conn.read_size,
            method,
            &mut progress,
        )
        .await
        .map_err(|e| e.into_send_error(&progress, failed));
    }

    // Boxed: most requests have no body, and inline this would make every request's future larger.
    let (result, body_sent, body_taken, response_bytes) =
        Box::pin(stream_body(conn, body, chunked, method)).await?;
    progress.response_bytes = response_bytes;
    progress.body_taken = body_taken;
    let body_complete = matches!(body_sent, Some(Ok(())));
    let mut head = match (result, body_sent) {
        (Ok(head), _) => head,
        // The response could not be read; a failure to send the body explains it best.
        (Err(_), Some(Err(e))) => return Err(failed(e, &progress)),
        (Err(e), _) => return Err(e.into_send_error(&progress, failed)),
    };
    if !body_complete {
        // The rest of the body is still on its way from the client; the connection cannot carry more.
        head.keep_alive = false;
    }
    Ok(head)
}

/// What [`stream_body`] saw: the response head (or why not), how sending the body ended (`None`: the
/// head came first), whether any of the body was taken from the client, and whether any byte of a
/// response arrived.
type Streamed = (
    Result<ResponseHead, ReadError>,
    Option<io::Result<()>>,
    bool,
    bool,
);

/// Writes the body while reading the response head, until the head has arrived.
async fn stream_body(
    conn: &mut Http1Conn,
    body: &mut RequestBody,
    chunked: bool,
    method: &Method,
) -> Result<Streamed, SendError> {
    let mut body_taken = false;
    let mut head_progress = Progress {
        head_written: true,
        ..Progress::default()
    };
    let mut body_sent: Option<Result<(), io::Error>> = None;
    let result = {
        let (mut reader, mut writer) = tokio::io::split(&mut conn.io);
        let sending = write_body(&mut writer, body, chunked, &mut body_taken);
        let receiving = read_head(
            &mut reader,
            &mut conn.buf,
            &mut conn.read_size,
            method,
            &mut head_progress,
        );
        tokio::pin!(sending, receiving);
        loop {
            tokio::select! {
                head = &mut receiving => break head,
                sent = &mut sending, if body_sent.is_none() => match sent {
                    Ok(()) => body_sent = Some(Ok(())),
                    Err(BodyWriteError::Client(e)) => return Err(SendError::Body(e)),
                    // The upstream may have stopped reading because it has answered already: wait for it.
                    Err(BodyWriteError::Io(e)) => body_sent = Some(Err(e)),
                },
            }
        }
    };
    Ok((result, body_sent, body_taken, head_progress.response_bytes))
}

/// How far a request got, for deciding whether it may be sent again.
#[derive(Default)]
struct Progress {
    head_written: bool,
    body_taken: bool,
    response_bytes: bool,
}

/// A failure while reading the response head.
enum ReadError {
    Io(io::Error),
    Head(ResponseError),
}

impl ReadError {
    fn into_send_error(
        self,
        progress: &Progress,
        failed: impl Fn(io::Error, &Progress) -> SendError,
    ) -> SendError {
        match self {
            Self::Io(e) => failed(e, progress),
            Self::Head(e) => SendError::BadResponse(e),
        }
    }
}

/// A failure while writing the request body.
enum BodyWriteError {
    /// The client's side.
    Client(RequestBodyError),
    /// The upstream's side.
    Io(io::Error),
}

impl From<io::Error> for BodyWriteError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

async fn write_head<W: AsyncWrite + Unpin>(io: &mut W, head: &[u8], last: bool) -> io::Result<()> {
    io.write_all(head).await?;
    if last {
        // TLS keeps what it encrypted until flushed.
        io.flush().await?;
    }
    Ok(())
}

async fn write_body<W: AsyncWrite + Unpin>(
    io: &mut W,
    body: &mut RequestBody,
    chunked: bool,
    taken: &mut bool,
) -> Result<(), BodyWriteError> {
    loop {
        let frame = body.frame().await;
        *taken = true;
        let frame = match frame {
            None => {
                if chunked {
                    io.write_all(b"0\r\n\r\n").await?;
                }
                break;
            }
            Some(Err(e)) => return Err(BodyWriteError::Client(e)),
            Some(Ok(frame)) => frame,
        };
        match frame.into_data() {
            Ok(data) if data.is_empty() => {}
            Ok(data) if chunked => {
                let size = encode_chunk_size(data.len());
                let mut parts = [
                    IoSlice::new(size.as_bytes()),
                    IoSlice::new(&data),
                    IoSlice::new(b"\r\n"),
                ];
                write_all_vectored(
                    |cx, bufs| std::pin::Pin::new(&mut *io).poll_write_vectored(cx, bufs),
                    &mut parts,
                )
                .await?;
            }
            Ok(data) => io.write_all(&data).await?,
            Err(frame) => {
                if let (true, Ok(trailers)) = (chunked, frame.into_trailers()) {
                    let mut last = Vec::with_capacity(64);
                    encode_last_chunk(&mut last, Some(&trailers));
                    io.write_all(&last).await?;
                    break;
                }
            }
        }
    }
    io.flush().await?;
    Ok(())
}

async fn read_head<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    read_size: &mut ReadSize,
    method: &Method,
    progress: &mut Progress,
) -> Result<ResponseHead, ReadError> {
    loop {
        if !buf.is_empty() {
            match parse_response(buf, method) {
                Ok(Some(head))
                    if head.status.is_informational()
                        && head.status != StatusCode::SWITCHING_PROTOCOLS =>
                {
                    // 100 Continue, 103 Early Hints: interim, and the gateway answers `Expect` itself.
                    continue;
                }
                Ok(Some(head)) => return Ok(head),
                Ok(None) => {}
                Err(e) => return Err(ReadError::Head(e)),
            }
        }
        match poll_fn(|cx| read_size.poll_fill(cx, io, buf)).await {
            Ok(0) if buf.is_empty() => {
                return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
            Ok(0) => {
                return Err(ReadError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "upstream closed the connection inside the response head",
                )));
            }
            Ok(_) => progress.response_bytes = true,
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
}
