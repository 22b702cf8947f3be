//! Waiting for something a test caused to become visible, without guessing how long it takes.

use std::time::Duration;

/// Polls `condition` every 10 ms; panics after 10 s, a safety net for a broken test, not a timing
/// assertion.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}
