//! Writing a whole vectored buffer: the one loop both sides' HTTP/1.1 writers use, over whatever
//! vectored write they poll (a plain socket, or the client connection's write with its deadline).

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::task::{Context, Poll};

/// Writes all of `parts` with `poll_write`, skipping empty slices; a write of zero bytes is an error.
pub async fn write_all_vectored(
    mut poll_write: impl FnMut(&mut Context<'_>, &[IoSlice<'_>]) -> Poll<io::Result<usize>>,
    mut parts: &mut [IoSlice<'_>],
) -> io::Result<()> {
    IoSlice::advance_slices(&mut parts, 0);
    while !parts.is_empty() {
        let n = poll_fn(|cx| poll_write(cx, parts)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut parts, n);
    }
    Ok(())
}
