//! How much to read at a time: little for heads, more as a body keeps filling what was asked.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
use tokio::io::AsyncRead;

/// Largest read asked for.
const MAX_READ: usize = 64 * 1024;

/// A read size that starts small (most heads and small bodies fit in one short read) and doubles
/// whenever a read fills all the room it was given, up to 64 KiB, so a large body moves in few
/// system calls. Reset to the start for the next message.
#[derive(Debug, Clone, Copy)]
pub struct ReadSize {
    initial: usize,
    next: usize,
}

impl ReadSize {
    /// Starting at `initial` bytes.
    pub const fn new(initial: usize) -> Self {
        Self {
            initial,
            next: initial,
        }
    }

    /// Makes room in `buf` for the next read; returns the room there is.
    pub fn reserve(&self, buf: &mut BytesMut) -> usize {
        if buf.capacity() - buf.len() < self.next / 2 {
            buf.reserve(self.next);
        }
        buf.capacity() - buf.len()
    }

    /// Notes that a read given `room` bytes returned `read`.
    pub fn record(&mut self, read: usize, room: usize) {
        if read >= room && self.next < MAX_READ {
            self.next = (self.next * 2).min(MAX_READ);
        }
    }

    /// Reads from `io` into `buf` as much as this size asks; `Ok(0)` at end of stream.
    pub fn poll_fill<R: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut R,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        let room = self.reserve(buf);
        let read = ready!(tokio_util::io::poll_read_buf(Pin::new(io), cx, buf))?;
        self.record(read, room);
        Poll::Ready(Ok(read))
    }

    /// Back to the starting size, for the next message.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_while_reads_fill_the_room_and_resets() {
        let mut size = ReadSize::new(4096);
        let mut buf = BytesMut::new();
        let room = size.reserve(&mut buf);
        assert!(room >= 4096);
        size.record(room, room);
        size.record(1, room);
        assert_eq!(size.next, 8192);
        for _ in 0..10 {
            size.record(usize::MAX, 1);
        }
        assert_eq!(size.next, MAX_READ);
        size.reset();
        assert_eq!(size.next, 4096);
    }
}
