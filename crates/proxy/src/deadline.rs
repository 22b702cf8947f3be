//! A deadline on a peer's progress: armed only when an I/O operation has to wait, and disarmed by any
//! progress, so a connection whose reads and writes complete at once never touches a timer.
//!
//! This gives nginx's semantics for `client_body_timeout`, `send_timeout` and `proxy_read_timeout`: the
//! limit is on the wait between two successful operations, not on the whole transfer, so a large body
//! that keeps moving is never cut off, and a peer that stops is.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// How long a peer may make no progress.
pub struct ProgressDeadline {
    period: Duration,
    /// Made the first time an operation waits, then moved for each later wait: tokio moves a registered
    /// timer to a later deadline without taking its lock.
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl ProgressDeadline {
    /// A deadline of `period` after the last progress.
    pub fn new(period: Duration) -> Self {
        Self {
            period,
            timer: None,
            armed: false,
        }
    }

    /// Polls `op`, an I/O operation on the peer: its result as it is when it is ready, and an error of kind
    /// `TimedOut` when it has been waiting for longer than the period.
    pub fn poll<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(&mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if let Poll::Ready(result) = op(cx) {
            self.armed = false;
            return Poll::Ready(result);
        }
        if !self.armed {
            let at = Instant::now() + self.period;
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(at),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(at))),
            }
            self.armed = true;
        }
        match self.timer.as_mut().map(|timer| timer.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => {
                self.armed = false;
                Poll::Ready(Err(io::ErrorKind::TimedOut.into()))
            }
            _ => Poll::Pending,
        }
    }
}

/// Whether `error`, or an error it wraps, is a deadline's `TimedOut`.
pub fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if io.kind() == io::ErrorKind::TimedOut {
                return true;
            }
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_only_count_without_progress() {
        let mut deadline = ProgressDeadline::new(Duration::from_millis(1));
        // An operation that is ready never arms the timer.
        let ready = std::future::poll_fn(|cx| deadline.poll(cx, |_| Poll::Ready(Ok(1)))).await;
        assert_eq!(ready.unwrap(), 1);
        assert!(deadline.timer.is_none());
        // One that never is fails once the period has passed.
        let stuck = std::future::poll_fn(|cx| deadline.poll::<()>(cx, |_| Poll::Pending)).await;
        assert_eq!(stuck.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }
}
