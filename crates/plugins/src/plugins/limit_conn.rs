//! `limit-conn`: concurrent requests per key.

/// A concurrency slot a request holds until it ends.
pub struct Held {
    _private: (),
}
