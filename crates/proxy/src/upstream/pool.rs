//! Per-worker upstream connection pools.
//!
//! Each worker owns its pools outright (`Rc<RefCell<..>>` on a single-threaded runtime), so checking a
//! connection out or back in takes no lock and touches no other core's memory.

use floodgate_upstream::breaker::ConnectionPermit;
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use floodgate_observe::UpstreamMetrics;
use hyper::client::conn::http2;
use rustc_hash::FxBuildHasher;

use super::http1::Http1Conn;
use crate::request_body::RequestBody;

/// A connection to a target, ready for one request (HTTP/1.1) or many at once (HTTP/2).
pub enum Conn {
    /// An HTTP/1.1 connection, exclusively ours until the response body ends.
    H1(Http1Conn),
    /// A handle to a shared, multiplexed HTTP/2 connection.
    H2(http2::SendRequest<RequestBody>),
}

struct TargetPool {
    idle: Vec<(Http1Conn, Instant)>,
    h2: Option<http2::SendRequest<RequestBody>>,
    /// Connections open to this target from this worker, idle or busy, each counted by its
    /// [`OpenGuard`].
    open: Rc<OpenCount>,
}

impl TargetPool {
    fn new(key: &Arc<str>) -> Self {
        Self {
            idle: Vec::new(),
            h2: None,
            open: Rc::new(OpenCount {
                count: Cell::new(0),
                key: key.clone(),
                metrics: OnceCell::new(),
            }),
        }
    }
}

/// The open connections of one target's pool, and the pool's key: a connection finds its way back
/// through its guard, so handing it back copies no key (a shared count) per request.
struct OpenCount {
    count: Cell<usize>,
    key: Arc<str>,
    /// The target's upstream's metrics and the worker's index, from its first connection: the pool's
    /// open and idle connections are counted there.
    metrics: OnceCell<(Arc<UpstreamMetrics>, usize)>,
}

impl OpenCount {
    /// `n` connections went into the idle list (`idle`) or came out of it. Counted on the pool, not
    /// on each connection, so a checkout does not have to touch the connection it pops.
    fn note_idle(&self, idle: bool, n: u64) {
        if let Some((metrics, worker)) = self.metrics.get() {
            if idle {
                metrics.timing.connections_idle(*worker, n);
            } else {
                metrics.timing.connections_busy(*worker, n);
            }
        }
    }
}

/// Counts one open connection of a target for as long as it lives, in its worker's pool, in the
/// upstream's `floodgate_upstream_connections_open` and, when the upstream has a circuit breaker, in
/// the breaker's `max_connections`.
pub struct OpenGuard {
    open: Rc<OpenCount>,
    _permit: Option<ConnectionPermit>,
}

impl OpenGuard {
    /// The key of the pool the connection belongs to.
    pub(crate) fn pool_key(&self) -> &Arc<str> {
        &self.open.key
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        let count = &self.open.count;
        count.set(count.get().saturating_sub(1));
        if let Some((metrics, worker)) = self.open.metrics.get() {
            metrics.timing.connection_closed(*worker);
        }
    }
}

/// All pools of one worker, keyed by target (upstream id, TLS settings and address).
#[derive(Default)]
pub struct WorkerPools {
    /// Keyed by names from the configuration, not from clients, so a fast hash without a random seed
    /// is safe (it is looked up twice per request).
    targets: RefCell<HashMap<Arc<str>, TargetPool, FxBuildHasher>>,
}

impl WorkerPools {
    /// A reusable connection to `key`: the shared HTTP/2 connection, or the most recently used idle HTTP/1.1
    /// one (warm in the upstream's caches). Connections idle longer than `idle_timeout`, or closed by the
    /// upstream, are dropped on the way. `now` is the caller's reading of the clock.
    pub fn checkout(&self, key: &str, idle_timeout: Duration, now: Instant) -> Option<Conn> {
        let mut stale = Vec::new();
        let found = {
            let mut targets = self.targets.borrow_mut();
            let pool = targets.get_mut(key)?;
            if let Some(h2) = &pool.h2 {
                if h2.is_ready() {
                    return Some(Conn::H2(h2.clone()));
                }
                pool.h2 = None;
            }
            let mut found = None;
            let before = pool.idle.len();
            while let Some((mut conn, since)) = pool.idle.pop() {
                if now.duration_since(since) <= idle_timeout && conn.is_reusable_when_idle() {
                    found = Some(Conn::H1(conn));
                    break;
                }
                stale.push(conn);
            }
            pool.open
                .note_idle(false, (before - pool.idle.len()) as u64);
            found
        };
        // Dropped outside the borrow: closing them touches their pool's count.
        drop(stale);
        found
    }

    /// Whether a request may go to `key`: it has a reusable connection, or is below `max_open`.
    #[inline]
    pub fn has_capacity(&self, key: &str, max_open: Option<u32>) -> bool {
        let Some(max) = max_open else { return true };
        let targets = self.targets.borrow();
        match targets.get(key) {
            None => true,
            Some(pool) => {
                pool.open.count.get() < max as usize || pool.h2.is_some() || !pool.idle.is_empty()
            }
        }
    }

    /// Counts a new connection to `key`, made by `worker` to an upstream with `metrics`, until the
    /// returned guard is dropped, holding the breaker's `permit` as long.
    pub fn opened(
        &self,
        key: &Arc<str>,
        permit: Option<ConnectionPermit>,
        metrics: &Arc<UpstreamMetrics>,
        worker: usize,
    ) -> OpenGuard {
        let mut targets = self.targets.borrow_mut();
        let open = &pool_of(&mut targets, key).open;
        open.count.set(open.count.get() + 1);
        // A pool's target belongs to one upstream (its id is part of the key), so the first
        // connection's metrics are every connection's.
        let (metrics, worker) = open.metrics.get_or_init(|| (metrics.clone(), worker));
        metrics.timing.connection_opened(*worker);
        OpenGuard {
            open: open.clone(),
            _permit: permit,
        }
    }

    /// Makes an HTTP/2 connection the shared one for `key`.
    pub fn share_h2(&self, key: &Arc<str>, sender: http2::SendRequest<RequestBody>) {
        pool_of(&mut self.targets.borrow_mut(), key).h2 = Some(sender);
    }

    fn checkin(&self, conn: Http1Conn, max_idle: usize) {
        let mut targets = self.targets.borrow_mut();
        let key = conn.pool_key();
        // The pool exists while one of its connections is open; `entry` would clone the key.
        let pool = match targets.get_mut(&**key) {
            Some(pool) => pool,
            None => {
                let key = key.clone();
                pool_of(&mut targets, &key)
            }
        };
        if pool.idle.len() < max_idle {
            pool.open.note_idle(true, 1);
            pool.idle.push((conn, Instant::now()));
            return;
        }
        drop(targets);
        drop(conn);
    }

    /// Closes connections idle longer than `idle_timeout` or closed by the upstream; run periodically so
    /// upstreams are not held open and closed sockets do not linger.
    pub fn sweep(&self, idle_timeout: Duration) {
        let now = Instant::now();
        let mut stale = Vec::new();
        for pool in self.targets.borrow_mut().values_mut() {
            let before = pool.idle.len();
            // In order: the most recently used stays on top.
            for (mut conn, since) in std::mem::take(&mut pool.idle) {
                if now.duration_since(since) <= idle_timeout && conn.is_reusable_when_idle() {
                    pool.idle.push((conn, since));
                } else {
                    stale.push(conn);
                }
            }
            pool.open
                .note_idle(false, (before - pool.idle.len()) as u64);
            if pool.h2.as_ref().is_some_and(|h2| h2.is_closed()) {
                pool.h2 = None;
            }
        }
        drop(stale);
        // A pool with nothing in it is forgotten: a target's address may change with its name's
        // answers, and the addresses a worker ever connected to must not pile up. One with an open
        // connection stays, since that connection's guard counts in it.
        self.targets.borrow_mut().retain(|_, pool| {
            pool.open.count.get() > 0 || pool.h2.is_some() || !pool.idle.is_empty()
        });
    }
}

/// The pool of `key`, made when it has none yet.
fn pool_of<'m>(
    targets: &'m mut HashMap<Arc<str>, TargetPool, FxBuildHasher>,
    key: &Arc<str>,
) -> &'m mut TargetPool {
    targets
        .entry(key.clone())
        .or_insert_with(|| TargetPool::new(key))
}

/// Where an HTTP/1.1 connection goes back to once its response has been read to the end: its
/// worker's pools, under the key its open guard carries.
pub struct Checkin {
    pools: Rc<WorkerPools>,
    max_idle: usize,
}

impl Checkin {
    /// Connections to return to `pools`, keeping at most `max_idle` idle per target.
    pub fn new(pools: Rc<WorkerPools>, max_idle: usize) -> Self {
        Self { pools, max_idle }
    }

    /// The response ended cleanly: keep the connection for the next request.
    pub fn put(self, conn: Http1Conn) {
        self.pools.checkin(conn, self.max_idle);
    }
}
