//! The per-worker in-flight request limit: requests a worker is serving, from their arrival to the end
//! of their response body, counted in a thread-local cell.
//!
//! Each worker is one thread and a request never leaves it (its tasks run on the worker's `LocalSet`), so
//! the count needs no atomic and no sharing: entering and leaving are a plain increment and decrement.

use std::cell::Cell;
use std::marker::PhantomData;

thread_local! {
    /// Requests in flight on this worker thread.
    static IN_FLIGHT: Cell<u64> = const { Cell::new(0) };
}

/// One request counted as in flight on its worker until this is dropped (with the response's
/// completion, when its body has ended or was abandoned).
#[derive(Debug)]
pub struct RequestSlot {
    /// Not `Send`: the slot must be released on the thread that counted it.
    _worker_thread: PhantomData<*const ()>,
}

impl RequestSlot {
    /// Counts a request in flight on this worker, unless `limit` are already (`0` is no limit); `None`
    /// means the request is to be refused.
    pub fn enter(limit: u64) -> Option<RequestSlot> {
        IN_FLIGHT.with(|count| {
            let now = count.get();
            if limit != 0 && now >= limit {
                return None;
            }
            count.set(now + 1);
            Some(RequestSlot {
                _worker_thread: PhantomData,
            })
        })
    }
}

impl Drop for RequestSlot {
    fn drop(&mut self) {
        IN_FLIGHT.with(|count| count.set(count.get().saturating_sub(1)));
    }
}

#[cfg(test)]
fn in_flight() -> u64 {
    IN_FLIGHT.with(Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_past_the_limit_is_refused_until_one_ends() {
        let first = RequestSlot::enter(2);
        let second = RequestSlot::enter(2);
        assert!(first.is_some() && second.is_some());
        assert!(RequestSlot::enter(2).is_none());
        assert_eq!(in_flight(), 2, "a refused request is not counted");
        drop(first);
        assert!(RequestSlot::enter(2).is_some());
        drop(second);
        assert_eq!(in_flight(), 0);
    }

    #[test]
    fn each_worker_thread_counts_its_own() {
        let _here = RequestSlot::enter(1);
        let elsewhere = std::thread::spawn(|| RequestSlot::enter(1).is_some());
        assert!(elsewhere.join().unwrap_or(false));
        assert!(RequestSlot::enter(1).is_none());
    }
}
