//! The byte stream to an upstream target: plain TCP or TLS over it.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::stream::MaybeTls;

/// A connection to a target as the HTTP/1.1 client and the tunnels use it.
pub type UpstreamIo = MaybeTls<TlsStream<TcpStream>>;

impl MaybeTls<TlsStream<TcpStream>> {
    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Self::Plain(tcp) => tcp,
            Self::Tls(tls) => tls.get_ref().0,
        }
    }

    /// Whether an idle connection can take another request: the peer has neither closed it nor sent
    /// anything unasked. Reads only when the event loop has seen the socket become readable, so a quiet
    /// connection costs no system call. Over TLS the read goes through rustls, which consumes what a
    /// server may send on its own between responses (session tickets, key updates) and reports only
    /// application data or the end of the stream.
    pub fn is_reusable_when_idle(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.tcp().poll_read_ready(&mut cx) {
            Poll::Pending => return true,
            Poll::Ready(Err(_)) => return false,
            Poll::Ready(Ok(())) => {}
        }
        let mut probe = [0u8; 1];
        let mut probe = ReadBuf::new(&mut probe);
        // Pending: nothing for the application, still open. Ready: closed (nothing read), bytes nobody
        // asked for, or an error; none of them is reusable.
        Pin::new(self).poll_read(&mut cx, &mut probe).is_pending()
    }
}

/// The upstream's side of a tunnel: its connection after the 101, with any bytes it sent past the
/// response head put back in front.
pub type UpstreamTunnel = crate::rewind::Rewind<UpstreamIo>;
