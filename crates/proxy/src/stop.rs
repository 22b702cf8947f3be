//! A worker's stop signal: tells its connections that the worker is shutting down.
//!
//! Every idle HTTP/1.1 connection waits on it between requests, so it is built for that: a connection
//! registers its task's waker once, and each later wait is a flag read and a waker comparison. A
//! `tokio::sync::watch` receiver would take a lock to register, and another to unregister, on every wait.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use slab::Slab;

/// Set once, when the worker starts to stop; wakes every connection waiting on it.
#[derive(Default)]
pub struct StopSignal {
    stopped: Cell<bool>,
    waiters: RefCell<Slab<Waker>>,
}

impl StopSignal {
    /// Whether the worker is stopping.
    pub fn is_stopped(&self) -> bool {
        self.stopped.get()
    }

    /// Marks the worker as stopping and wakes every waiter.
    pub fn stop(&self) {
        self.stopped.set(true);
        // Taken out first: a woken task may drop its wait, which borrows the waiters again.
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for (_, waker) in waiters {
            waker.wake();
        }
    }

    /// A future that resolves once the worker is stopping. It can be polled again and again (by
    /// reference) across many waits, staying registered until it is dropped.
    pub fn stopped(&self) -> Stopped<'_> {
        Stopped {
            signal: self,
            key: None,
        }
    }
}

/// Resolves when its [`StopSignal`] is set (see [`StopSignal::stopped`]).
pub struct Stopped<'a> {
    signal: &'a StopSignal,
    key: Option<usize>,
}

impl Future for Stopped<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.is_stopped() {
            return Poll::Ready(());
        }
        let signal = self.signal;
        let mut waiters = signal.waiters.borrow_mut();
        match self.key.and_then(|key| waiters.get_mut(key)) {
            Some(waker) => {
                if !waker.will_wake(cx.waker()) {
                    waker.clone_from(cx.waker());
                }
            }
            None => self.key = Some(waiters.insert(cx.waker().clone())),
        }
        Poll::Pending
    }
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            // After `stop` the slab is empty and nothing was inserted since, so the key is simply gone.
            if !self.signal.is_stopped() {
                self.signal.waiters.borrow_mut().try_remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    use super::*;

    struct CountWakes(AtomicUsize);

    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_waiter_registers_once_and_is_woken_by_stop() {
        let signal = StopSignal::default();
        let count = Arc::new(CountWakes(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut stopped = signal.stopped();
        for _ in 0..3 {
            assert!(Pin::new(&mut stopped).poll(&mut cx).is_pending());
        }
        assert_eq!(signal.waiters.borrow().len(), 1);
        signal.stop();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(Pin::new(&mut stopped).poll(&mut cx).is_ready());
        drop(stopped);
        // A wait begun after the stop is ready at once.
        assert!(Pin::new(&mut signal.stopped()).poll(&mut cx).is_ready());
    }

    #[test]
    fn a_dropped_waiter_is_forgotten_and_others_still_woken() {
        let signal = StopSignal::default();
        let first = Arc::new(CountWakes(AtomicUsize::new(0)));
        let second = Arc::new(CountWakes(AtomicUsize::new(0)));
        let first_waker = Waker::from(first.clone());
        let second_waker = Waker::from(second.clone());
        let mut a = signal.stopped();
        let mut b = signal.stopped();
        assert!(Pin::new(&mut a)
            .poll(&mut Context::from_waker(&first_waker))
            .is_pending());
        assert!(Pin::new(&mut b)
            .poll(&mut Context::from_waker(&first_waker))
            .is_pending());
        // A new waker replaces the old one.
        assert!(Pin::new(&mut b)
            .poll(&mut Context::from_waker(&second_waker))
            .is_pending());
        drop(a);
        assert_eq!(signal.waiters.borrow().len(), 1);
        signal.stop();
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
    }
}
