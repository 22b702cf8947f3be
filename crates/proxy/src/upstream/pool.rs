//! Per-worker upstream connection pools.
//!
//! Each worker owns its pools outright (`Rc<RefCell<..>>` on a single-threaded runtime), so checking a
//! connection out or back in takes no lock and touches no other core's memory.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::client::conn::{http1, http2};

use crate::body::RequestBody;

/// A connection to a target, ready for one request (HTTP/1.1) or many at once (HTTP/2).
pub enum Conn {
    /// An HTTP/1.1 connection, exclusively ours until the response body ends.
    H1(http1::SendRequest<RequestBody>),
    /// A handle to a shared, multiplexed HTTP/2 connection.
    H2(http2::SendRequest<RequestBody>),
}

#[derive(Default)]
struct TargetPool {
    idle: Vec<(http1::SendRequest<RequestBody>, Instant)>,
    h2: Option<http2::SendRequest<RequestBody>>,
    /// Connections open to this target from this worker, idle or busy; closed ones are subtracted by the
    /// task that drives them.
    open: usize,
}

/// All pools of one worker, keyed by target (upstream id, TLS settings and address).
#[derive(Default)]
pub struct WorkerPools {
    targets: RefCell<HashMap<Arc<str>, TargetPool>>,
}

impl WorkerPools {
    /// A reusable connection to `key`: the shared HTTP/2 connection, or the most recently used idle HTTP/1.1
    /// one (warm in the upstream's caches). Connections idle longer than `idle_timeout` are closed.
    pub fn checkout(&self, key: &str, idle_timeout: Duration) -> Option<Conn> {
        let mut targets = self.targets.borrow_mut();
        let pool = targets.get_mut(key)?;
        if let Some(h2) = &pool.h2 {
            if h2.is_ready() {
                return Some(Conn::H2(h2.clone()));
            }
            pool.h2 = None;
        }
        let now = Instant::now();
        while let Some((sender, since)) = pool.idle.pop() {
            if now.duration_since(since) > idle_timeout || sender.is_closed() {
                continue;
            }
            if sender.is_ready() {
                return Some(Conn::H1(sender));
            }
        }
        None
    }

    /// Whether a request may go to `key`: it has a reusable connection, or is below `max_open`.
    pub fn has_capacity(&self, key: &str, max_open: Option<u32>) -> bool {
        let Some(max) = max_open else { return true };
        let targets = self.targets.borrow();
        match targets.get(key) {
            None => true,
            Some(pool) => pool.open < max as usize || pool.h2.is_some() || !pool.idle.is_empty(),
        }
    }

    /// Counts a new connection to `key`.
    pub fn opened(&self, key: &Arc<str>) {
        self.targets
            .borrow_mut()
            .entry(key.clone())
            .or_default()
            .open += 1;
    }

    /// Uncounts a connection whose driving task ended.
    pub fn closed(&self, key: &str) {
        if let Some(pool) = self.targets.borrow_mut().get_mut(key) {
            pool.open = pool.open.saturating_sub(1);
        }
    }

    /// Makes an HTTP/2 connection the shared one for `key`.
    pub fn share_h2(&self, key: &Arc<str>, sender: http2::SendRequest<RequestBody>) {
        self.targets.borrow_mut().entry(key.clone()).or_default().h2 = Some(sender);
    }

    fn checkin(&self, key: &Arc<str>, sender: http1::SendRequest<RequestBody>, max_idle: usize) {
        let mut targets = self.targets.borrow_mut();
        let pool = targets.entry(key.clone()).or_default();
        if pool.idle.len() < max_idle && !sender.is_closed() {
            pool.idle.push((sender, Instant::now()));
        }
    }

    /// Closes connections idle longer than `idle_timeout`; run periodically so upstreams are not held open.
    pub fn sweep(&self, idle_timeout: Duration) {
        let now = Instant::now();
        for pool in self.targets.borrow_mut().values_mut() {
            pool.idle.retain(|(sender, since)| {
                now.duration_since(*since) <= idle_timeout && !sender.is_closed()
            });
            if pool.h2.as_ref().is_some_and(|h2| h2.is_closed()) {
                pool.h2 = None;
            }
        }
    }
}

/// Gives an HTTP/1.1 connection back to its pool once the response body has been read to the end.
pub struct Release {
    pools: Rc<WorkerPools>,
    key: Arc<str>,
    sender: http1::SendRequest<RequestBody>,
    max_idle: usize,
}

impl Release {
    /// A connection to return to `pools` under `key` when the response ends.
    pub fn new(
        pools: Rc<WorkerPools>,
        key: Arc<str>,
        sender: http1::SendRequest<RequestBody>,
        max_idle: usize,
    ) -> Self {
        Self {
            pools,
            key,
            sender,
            max_idle,
        }
    }

    /// The response ended cleanly: keep the connection for the next request.
    pub fn reuse(self) {
        self.pools.checkin(&self.key, self.sender, self.max_idle);
    }
}
