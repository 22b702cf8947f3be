//! [`Background`]: the runtime that runs work kept off the workers (plugins' key fetches).

use tokio::runtime::{Handle, Runtime};

/// A one-thread runtime for background tasks, so they never run on (or stall) a worker's event loop.
pub struct Background {
    runtime: Option<Runtime>,
}

impl Background {
    /// Starts the runtime's thread.
    pub fn start() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("floodgate-background")
            .enable_all()
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    /// A handle to spawn tasks on.
    pub fn handle(&self) -> Option<Handle> {
        self.runtime.as_ref().map(|r| r.handle().clone())
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // The gateway may be dropped inside another runtime (tests, the binary's shutdown), where a
        // blocking shutdown would panic; the tasks are fetches that can be abandoned.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
