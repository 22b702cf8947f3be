//! The executor hyper uses for HTTP/2 streams: the worker's own single-threaded runtime.

use std::future::Future;

/// Spawns onto the current worker's `LocalSet`, so futures need not be `Send` and never leave their core.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalExec;

impl<F> hyper::rt::Executor<F> for LocalExec
where
    F: Future + 'static,
{
    fn execute(&self, future: F) {
        tokio::task::spawn_local(future);
    }
}
