//! The access log: one JSON line per finished request, written by a dedicated thread.
//!
//! Workers never do the I/O. [`AccessLog::log`] hands the entry to a bounded channel with `try_send` and
//! returns; when the writer falls behind (a slow disk, a blocked pipe on stdout) entries are dropped and
//! counted rather than letting a full channel stall request handling. The writer formats and buffers
//! lines and flushes at most ~100 ms after a line was buffered, so a quiet log is still current while a
//! busy one costs one `write` per 64 KiB.

mod entry;
mod timestamp;

pub use entry::AccessLogEntry;

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Entries that may wait for the writer. About 220 bytes each, so the queue can grow to ~14 MiB, and it
/// absorbs a writer stall of ~0.6 s at 100k requests/s before entries are dropped.
const CHANNEL_CAPACITY: usize = 65_536;

/// Longest time a written line stays in the buffer before it is flushed to the file.
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// Output buffer: large enough that a busy log makes few `write` calls.
const BUFFER_BYTES: usize = 64 * 1024;

/// A handle on the access log; cheap to clone (one `Arc`), `Send` and `Sync`, so every worker keeps one.
///
/// The writer thread runs until [`AccessLog::close`] is called or the last clone is dropped; either way it
/// writes what is queued and flushes before it exits.
#[derive(Clone)]
pub struct AccessLog {
    shared: Arc<Shared>,
}

struct Shared {
    tx: SyncSender<AccessLogEntry>,
    dropped: AtomicU64,
    closing: Arc<AtomicBool>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl AccessLog {
    /// Opens `path` for appending (creating it if needed), or standard output when `path` is `-`, and starts
    /// the writer thread. Fails if the file cannot be opened or the thread cannot be spawned.
    pub fn open(path: &str) -> io::Result<AccessLog> {
        let sink: Box<dyn Write + Send> = if path == "-" {
            Box::new(io::stdout())
        } else {
            Box::new(OpenOptions::new().create(true).append(true).open(path)?)
        };
        Self::spawn(sink, CHANNEL_CAPACITY)
    }

    /// Starts a writer thread draining a channel of `capacity` entries into `sink`.
    fn spawn(sink: Box<dyn Write + Send>, capacity: usize) -> io::Result<AccessLog> {
        let (tx, rx) = sync_channel(capacity);
        let closing = Arc::new(AtomicBool::new(false));
        let writer = thread::Builder::new()
            .name("floodgate-access-log".to_owned())
            .spawn({
                let closing = Arc::clone(&closing);
                move || run_writer(&rx, sink, &closing)
            })?;
        Ok(AccessLog {
            shared: Arc::new(Shared {
                tx,
                dropped: AtomicU64::new(0),
                closing,
                writer: Mutex::new(Some(writer)),
            }),
        })
    }

    /// Queues `entry` for writing. Never blocks: if the queue is full, or the log is closed, the entry is
    /// discarded and counted in [`AccessLog::dropped`].
    pub fn log(&self, entry: AccessLogEntry) {
        if self.shared.tx.try_send(entry).is_err() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Entries discarded so far because the writer was behind or the log was closed.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Stops the writer thread after it has written and flushed every entry queued so far, and waits for
    /// it (at most ~100 ms plus the time to write the queue). Meant for shutdown: it blocks the caller.
    /// Entries logged afterwards, on any clone, are dropped and counted. Calling it again does nothing.
    pub fn close(&self) {
        self.shared.closing.store(true, Ordering::Release);
        let writer = self.shared.writer.lock().take();
        if let Some(writer) = writer {
            // The writer does not panic; if it somehow did, there is nothing left to flush.
            let _ = writer.join();
        }
    }
}

/// The writer thread: formats entries into a buffer and flushes it within [`FLUSH_INTERVAL`] of the
/// oldest unflushed line.
fn run_writer(rx: &Receiver<AccessLogEntry>, sink: Box<dyn Write + Send>, closing: &AtomicBool) {
    let mut out = LineSink::new(sink);
    let mut unflushed_since: Option<Instant> = None;
    loop {
        // Sleep until the buffered lines are due, or at most one interval so `close` is noticed.
        let wait = unflushed_since.map_or(FLUSH_INTERVAL, |since| {
            FLUSH_INTERVAL.saturating_sub(since.elapsed())
        });
        match rx.recv_timeout(wait) {
            Ok(entry) => {
                out.write(&entry);
                unflushed_since.get_or_insert_with(Instant::now);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if closing.load(Ordering::Acquire) {
            while let Ok(entry) = rx.try_recv() {
                out.write(&entry);
            }
            break;
        }
        if unflushed_since.is_some_and(|since| since.elapsed() >= FLUSH_INTERVAL) {
            out.flush();
            unflushed_since = None;
        }
    }
    out.flush();
}

/// The buffered output, reporting I/O failures once per failing stretch rather than once per line.
struct LineSink {
    out: BufWriter<Box<dyn Write + Send>>,
    line: Vec<u8>,
    timestamp: String,
    failing: bool,
}

impl LineSink {
    fn new(sink: Box<dyn Write + Send>) -> Self {
        Self {
            out: BufWriter::with_capacity(BUFFER_BYTES, sink),
            line: Vec::with_capacity(512),
            timestamp: String::with_capacity(32),
            failing: false,
        }
    }

    fn write(&mut self, entry: &AccessLogEntry) {
        self.line.clear();
        // Serializing plain strings and numbers cannot fail; if it did, skipping the line is all we can do.
        if entry
            .write_json_line(&mut self.line, &mut self.timestamp)
            .is_ok()
        {
            let result = self.out.write_all(&self.line);
            self.note(result);
        }
    }

    fn flush(&mut self) {
        let result = self.out.flush();
        self.note(result);
    }

    fn note(&mut self, result: io::Result<()>) {
        match result {
            Ok(()) if self.failing => {
                self.failing = false;
                tracing::info!("access log writes succeed again");
            }
            Ok(()) => {}
            Err(error) if !self.failing => {
                self.failing = true;
                tracing::warn!(%error, "access log write failed; lines are lost until writes succeed");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::entry::tests::sample_entry;
    use super::*;
    use std::sync::mpsc;

    fn read_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Polls until `path` holds `n` lines; tests wait for behaviour, not for a fixed time.
    #[allow(clippy::disallowed_methods)] // a test thread, not a worker
    fn wait_for_lines(path: &std::path::Path, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = read_lines(path);
            if lines.len() >= n || Instant::now() > deadline {
                return lines;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn writes_one_json_object_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::open(path.to_str().unwrap()).unwrap();
        for n in 0..100 {
            log.log(sample_entry(n));
        }
        log.close();
        let lines = read_lines(&path);
        assert_eq!(lines.len(), 100);
        assert_eq!(lines[0]["request_id"], "req-0");
        assert_eq!(lines[99]["request_id"], "req-99");
        assert_eq!(lines[42]["timestamp"], "2023-11-14T22:13:20.123Z");
        assert_eq!(log.dropped(), 0);
    }

    #[test]
    fn reopening_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        for _ in 0..2 {
            let log = AccessLog::open(path.to_str().unwrap()).unwrap();
            log.log(sample_entry(1));
            log.close();
        }
        assert_eq!(read_lines(&path).len(), 2);
    }

    #[test]
    fn lines_are_flushed_without_closing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::open(path.to_str().unwrap()).unwrap();
        log.log(sample_entry(7));
        let lines = wait_for_lines(&path, 1);
        assert_eq!(lines.len(), 1, "the timer flushes a quiet log");
        assert_eq!(lines[0]["request_id"], "req-7");
        log.close();
    }

    #[test]
    fn dropping_the_last_clone_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::open(path.to_str().unwrap()).unwrap();
        let clone = log.clone();
        thread::spawn(move || clone.log(sample_entry(1)))
            .join()
            .unwrap();
        log.log(sample_entry(2));
        drop(log);
        assert_eq!(wait_for_lines(&path, 2).len(), 2);
    }

    #[test]
    fn unopenable_path_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-dir").join("access.log");
        assert!(AccessLog::open(path.to_str().unwrap()).is_err());
    }

    #[test]
    fn stdout_is_accepted() {
        let log = AccessLog::open("-").unwrap();
        log.close();
    }

    /// A sink whose first write blocks until the test releases it, standing in for a stalled disk.
    struct StalledSink {
        entered: mpsc::Sender<()>,
        release: mpsc::Receiver<()>,
        released: bool,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for StalledSink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if !self.released {
                let _ = self.entered.send(());
                let _ = self.release.recv();
                self.released = true;
            }
            self.written.lock().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_writer_never_blocks_log_and_counts_drops() {
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        let written = Arc::new(Mutex::new(Vec::new()));
        let sink = StalledSink {
            entered: entered_tx,
            release: release_rx,
            released: false,
            written: Arc::clone(&written),
        };
        let capacity = 8;
        let log = AccessLog::spawn(Box::new(sink), capacity).unwrap();

        // The first line's timed flush reaches the sink and stalls the writer there.
        log.log(sample_entry(0));
        entered_rx.recv_timeout(Duration::from_secs(10)).unwrap();

        // The queue takes `capacity` more; everything past it is dropped, and each call returns.
        for n in 1..=capacity + 50 {
            log.log(sample_entry(n));
        }
        assert_eq!(log.dropped(), 50);

        release_tx.send(()).unwrap();
        log.close();
        let text = String::from_utf8(written.lock().clone()).unwrap();
        let ids: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["request_id"].to_string()
            })
            .collect();
        assert_eq!(ids.len(), capacity + 1);
        assert_eq!(ids[capacity], "\"req-8\"");

        // After close, entries are counted as dropped rather than queued for no one.
        log.log(sample_entry(99));
        assert_eq!(log.dropped(), 51);
        log.close();
    }
}
