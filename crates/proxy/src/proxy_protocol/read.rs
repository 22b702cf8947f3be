//! Taking the header off a connection's socket, to its last byte and not one more.

use std::net::SocketAddr;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::parse::{parse, InvalidHeader, Parsed, MAX_HEADER_LEN};

/// Why a connection's header was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// No whole header before the deadline.
    #[error("no PROXY protocol header in time")]
    Timeout,
    /// The peer closed the connection before sending anything.
    #[error("closed before any byte")]
    Closed,
    /// The peer closed the connection partway through a header.
    #[error("closed partway through a PROXY protocol header")]
    Truncated,
    /// The bytes are not a valid header.
    #[error(transparent)]
    Invalid(#[from] InvalidHeader),
    /// The socket failed.
    #[error("reading the PROXY protocol header: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads the header at the start of `stream` by `deadline`, taking exactly its bytes off the socket, and
/// returns the client it names (`None`: the socket's peer stands).
///
/// Each round peeks at what has arrived: bytes that leave the header incomplete all belong to it and are
/// taken; once it is whole, only its own bytes are. The next peek then waits for new bytes, or sees the
/// end of the connection, instead of finding the same ones again.
pub async fn read_header(
    stream: &mut TcpStream,
    deadline: Instant,
) -> Result<Option<SocketAddr>, ReadError> {
    let mut buf = vec![0u8; MAX_HEADER_LEN];
    let mut taken = 0;
    loop {
        let n = tokio::time::timeout_at(deadline, stream.peek(&mut buf[taken..]))
            .await
            .map_err(|_| ReadError::Timeout)??;
        if n == 0 {
            return Err(if taken == 0 {
                ReadError::Closed
            } else {
                ReadError::Truncated
            });
        }
        let seen = taken + n;
        let (end, done) = match parse(&buf[..seen])? {
            Parsed::Incomplete => (seen, None),
            Parsed::Header { len, source } => (len, Some(source)),
        };
        // These bytes are already in the socket's buffer, so this returns at once.
        tokio::time::timeout_at(deadline, stream.read_exact(&mut buf[taken..end]))
            .await
            .map_err(|_| ReadError::Timeout)??;
        taken = end;
        if let Some(source) = done {
            return Ok(source);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy_protocol::parse::tests::{addr, v2, v2_tcp4_payload};

    /// Writes `parts` to a connection one at a time, pausing between them, then `rest`, and closes it;
    /// returns what `read_header` made of it and what was left on the socket after.
    async fn read_over_socket(
        parts: &[&[u8]],
        rest: &[u8],
    ) -> (Result<Option<SocketAddr>, ReadError>, Vec<u8>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let mut parts: Vec<Vec<u8>> = parts.iter().map(|p| p.to_vec()).collect();
        parts.push(rest.to_vec());
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for part in parts {
                client.write_all(&part).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        });
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        let result = read_header(&mut server, deadline).await;
        writer.await.unwrap();
        let mut left = Vec::new();
        if result.is_ok() {
            server.read_to_end(&mut left).await.unwrap();
        }
        (result, left)
    }

    #[tokio::test]
    async fn a_header_split_over_segments_is_read_and_what_follows_is_left_on_the_socket() {
        let line = b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 80\r\n";
        let (source, left) = read_over_socket(
            &[&line[..3], &line[3..20], &line[20..]],
            b"\x16\x03\x01 hello",
        )
        .await;
        assert_eq!(source.unwrap(), addr("203.0.113.7:51234"));
        assert_eq!(left, b"\x16\x03\x01 hello");

        let header = v2(1, 0x11, &v2_tcp4_payload());
        let (source, left) = read_over_socket(&[&header[..5], &header[5..17]], &{
            let mut rest = header[17..].to_vec();
            rest.extend_from_slice(b"GET / HTTP/1.1\r\n");
            rest
        })
        .await;
        assert_eq!(source.unwrap(), addr("203.0.113.7:51234"));
        assert_eq!(left, b"GET / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn a_connection_closed_before_or_inside_a_header_is_told_apart() {
        let (result, _) = read_over_socket(&[], b"").await;
        assert!(matches!(result, Err(ReadError::Closed)), "{result:?}");
        let (result, _) = read_over_socket(&[b"PROXY TCP4 1.2"], b"").await;
        assert!(matches!(result, Err(ReadError::Truncated)), "{result:?}");
        let (result, _) = read_over_socket(&[b"PROXY TCP4 1.2"], b".3.4\0").await;
        assert!(matches!(result, Err(ReadError::Invalid(_))), "{result:?}");
    }
}
