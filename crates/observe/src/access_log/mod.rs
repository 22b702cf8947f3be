//! The access log: one line per finished request (JSON, or text from a template), written by a
//! dedicated thread.
//!
//! Workers never do the I/O. [`AccessLog::log`] hands the entry to a bounded channel with `try_send` and
//! returns; when the writer falls behind (a slow disk, a blocked pipe on stdout) entries are dropped and
//! counted rather than letting a full channel stall request handling. The writer formats and buffers
//! lines and flushes at most ~100 ms after a line was buffered, so a quiet log is still current while a
//! busy one costs one `write` per 64 KiB. [`AccessLog::reopen`] (SIGUSR1) has the writer flush and open
//! its file again, as logrotate expects of a daemon after moving the file away.

mod entry;
pub(crate) mod text;
mod timestamp;

pub use entry::AccessLogEntry;

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use floodgate_config::{AccessLogConfig, AccessLogFormat};
use http::HeaderName;
use parking_lot::Mutex;

use crate::AccessLogMetrics;

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
    counts: Arc<AccessLogMetrics>,
    signals: Arc<WriterSignals>,
    writer: Mutex<Option<JoinHandle<()>>>,
    captured: Vec<HeaderName>,
    success_sample_ratio: f64,
}

/// What the handle asks of the writer thread between lines.
#[derive(Default)]
struct WriterSignals {
    closing: AtomicBool,
    reopen: AtomicBool,
}

/// Where lines go.
enum Destination {
    Stdout,
    Stderr,
    File(PathBuf),
}

impl Destination {
    fn of(path: &str) -> Destination {
        match path {
            "-" | "stdout" => Destination::Stdout,
            "stderr" => Destination::Stderr,
            file => Destination::File(PathBuf::from(file)),
        }
    }

    /// Opens the destination; a file for appending, created if needed.
    fn open(&self) -> io::Result<Box<dyn Write + Send>> {
        Ok(match self {
            Destination::Stdout => Box::new(io::stdout()),
            Destination::Stderr => Box::new(io::stderr()),
            Destination::File(path) => {
                Box::new(OpenOptions::new().create(true).append(true).open(path)?)
            }
        })
    }
}

impl AccessLog {
    /// Opens the configured destination and starts the writer thread; lines it drops are counted in
    /// `counts`. Fails if the file cannot be opened or the thread cannot be spawned.
    pub fn open(config: &AccessLogConfig, counts: Arc<AccessLogMetrics>) -> io::Result<AccessLog> {
        let destination = Destination::of(&config.path);
        let sink = destination.open()?;
        Self::spawn(
            sink,
            destination,
            config.format.clone(),
            config.success_sample_ratio,
            CHANNEL_CAPACITY,
            counts,
        )
    }

    /// Starts a writer thread draining a channel of `capacity` entries into `sink`.
    fn spawn(
        sink: Box<dyn Write + Send>,
        destination: Destination,
        format: AccessLogFormat,
        success_sample_ratio: f64,
        capacity: usize,
        counts: Arc<AccessLogMetrics>,
    ) -> io::Result<AccessLog> {
        let (tx, rx) = sync_channel(capacity);
        let signals = Arc::new(WriterSignals::default());
        let captured = format.captured_headers().to_vec();
        let writer = thread::Builder::new()
            .name("floodgate-access-log".to_owned())
            .spawn({
                let signals = Arc::clone(&signals);
                move || run_writer(&rx, LineSink::new(sink, destination, format), &signals)
            })?;
        Ok(AccessLog {
            shared: Arc::new(Shared {
                tx,
                counts,
                signals,
                writer: Mutex::new(Some(writer)),
                captured,
                success_sample_ratio,
            }),
        })
    }

    /// The request fields the format's lines name, which [`AccessLogEntry::captured`] carries in this
    /// order. Empty for JSON, so a request copies nothing for them.
    pub fn captured_headers(&self) -> &[HeaderName] {
        &self.shared.captured
    }

    /// Whether a request that ended with `status` gets a line: always when it failed (400 and up),
    /// else with the configured `success_sample_ratio`.
    pub fn keeps(&self, status: u16) -> bool {
        let ratio = self.shared.success_sample_ratio;
        status >= 400 || ratio >= 1.0 || (ratio > 0.0 && fastrand::f64() < ratio)
    }

    /// Queues `entry` for writing. Never blocks: if the queue is full, or the log is closed, the entry is
    /// discarded and counted in [`AccessLog::dropped`].
    pub fn log(&self, entry: AccessLogEntry) {
        if self.shared.tx.try_send(entry).is_err() {
            self.shared.counts.count_dropped();
        }
    }

    /// Entries discarded so far, by this log and any other sharing its counts, because the writer was
    /// behind or the log was closed.
    pub fn dropped(&self) -> u64 {
        self.shared.counts.dropped()
    }

    /// Has the writer flush and open its file again (within ~100 ms), so lines go to a new file after
    /// logrotate moved the old one away. If the file cannot be opened, lines keep going to the old one
    /// and a warning says why. Does nothing for standard output and error.
    pub fn reopen(&self) {
        self.shared.signals.reopen.store(true, Ordering::Release);
    }

    /// Stops the writer thread after it has written and flushed every entry queued so far, and waits for
    /// it (at most ~100 ms plus the time to write the queue). Meant for shutdown: it blocks the caller.
    /// Entries logged afterwards, on any clone, are dropped and counted. Calling it again does nothing.
    pub fn close(&self) {
        self.shared.signals.closing.store(true, Ordering::Release);
        let writer = self.shared.writer.lock().take();
        if let Some(writer) = writer {
            // The writer does not panic; if it somehow did, there is nothing left to flush.
            let _ = writer.join();
        }
    }
}

/// The writer thread: formats entries into a buffer and flushes it within [`FLUSH_INTERVAL`] of the
/// oldest unflushed line.
fn run_writer(rx: &Receiver<AccessLogEntry>, mut out: LineSink, signals: &WriterSignals) {
    let mut unflushed_since: Option<Instant> = None;
    loop {
        // Sleep until the buffered lines are due, or at most one interval so `close` and `reopen` are
        // noticed.
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
        if signals.closing.load(Ordering::Acquire) {
            while let Ok(entry) = rx.try_recv() {
                out.write(&entry);
            }
            break;
        }
        if signals.reopen.swap(false, Ordering::AcqRel) {
            out.reopen();
            unflushed_since = None;
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
    destination: Destination,
    format: AccessLogFormat,
    line: Vec<u8>,
    scratch: String,
    failing: bool,
}

impl LineSink {
    fn new(sink: Box<dyn Write + Send>, destination: Destination, format: AccessLogFormat) -> Self {
        Self {
            out: BufWriter::with_capacity(BUFFER_BYTES, sink),
            destination,
            format,
            line: Vec::with_capacity(512),
            scratch: String::with_capacity(64),
            failing: false,
        }
    }

    fn write(&mut self, entry: &AccessLogEntry) {
        self.line.clear();
        match &self.format {
            AccessLogFormat::Json => {
                // Serializing plain strings and numbers cannot fail; if it did, skipping the line is all
                // we can do.
                if entry
                    .write_json_line(&mut self.line, &mut self.scratch)
                    .is_err()
                {
                    return;
                }
            }
            AccessLogFormat::Text(template) => {
                text::write_text_line(template, entry, &mut self.line, &mut self.scratch)
            }
        }
        let result = self.out.write_all(&self.line);
        self.note(result);
    }

    fn flush(&mut self) {
        let result = self.out.flush();
        self.note(result);
    }

    /// Flushes what is buffered to the old file, then swaps in the file opened again.
    fn reopen(&mut self) {
        self.flush();
        let Destination::File(path) = &self.destination else {
            return;
        };
        match self.destination.open() {
            Ok(sink) => {
                self.out = BufWriter::with_capacity(BUFFER_BYTES, sink);
                tracing::info!(path = %path.display(), "access log reopened");
            }
            Err(error) => tracing::warn!(
                path = %path.display(),
                %error,
                "access log not reopened; lines still go to the file open before"
            ),
        }
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

    fn config(path: &std::path::Path, format: &str, ratio: f64) -> AccessLogConfig {
        serde_json::from_value(serde_json::json!({
            "path": path.to_str().unwrap(),
            "format": format,
            "success_sample_ratio": ratio,
        }))
        .unwrap()
    }

    fn open_json(path: &std::path::Path) -> io::Result<AccessLog> {
        AccessLog::open(&config(path, "json", 1.0), Arc::default())
    }

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

    /// Polls until `path` exists (the writer opened it again).
    #[allow(clippy::disallowed_methods)] // a test thread, not a worker
    fn wait_for_file(path: &std::path::Path) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !path.exists() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn writes_one_json_object_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = open_json(&path).unwrap();
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
            let log = open_json(&path).unwrap();
            log.log(sample_entry(1));
            log.close();
        }
        assert_eq!(read_lines(&path).len(), 2);
    }

    #[test]
    fn lines_are_flushed_without_closing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = open_json(&path).unwrap();
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
        let log = open_json(&path).unwrap();
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
        assert!(open_json(&path).is_err());
    }

    #[test]
    fn standard_streams_are_accepted_and_reopen_does_nothing_to_them() {
        for path in ["-", "stdout", "stderr"] {
            let log = AccessLog::open(
                &config(std::path::Path::new(path), "json", 1.0),
                Arc::default(),
            )
            .unwrap();
            log.reopen();
            log.close();
            assert!(!std::path::Path::new(path).exists(), "{path} is not a file");
        }
    }

    #[test]
    fn reopen_moves_lines_to_a_new_file_after_a_rename() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let rotated = dir.path().join("access.log.1");
        let log = open_json(&path);
        let log = log.unwrap();
        log.log(sample_entry(1));
        assert_eq!(wait_for_lines(&path, 1).len(), 1);
        std::fs::rename(&path, &rotated).unwrap();
        // Until the reopen the writer still holds the moved file, as logrotate expects.
        log.log(sample_entry(2));
        assert_eq!(wait_for_lines(&rotated, 2).len(), 2);
        log.reopen();
        wait_for_file(&path);
        log.log(sample_entry(3));
        log.close();
        let new_lines = read_lines(&path);
        assert_eq!(new_lines.len(), 1);
        assert_eq!(new_lines[0]["request_id"], "req-3");
        assert_eq!(read_lines(&rotated).len(), 2);
    }

    #[test]
    fn a_failed_reopen_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("logs");
        std::fs::create_dir(&sub).unwrap();
        let path = sub.join("access.log");
        let moved = dir.path().join("moved");
        let log = open_json(&path).unwrap();
        std::fs::rename(&sub, &moved).unwrap();
        log.reopen();
        log.log(sample_entry(5));
        log.close();
        let lines = read_lines(&moved.join("access.log"));
        assert_eq!(lines.len(), 1, "the line went to the file still open");
        assert!(!sub.exists());
    }

    #[test]
    fn a_text_format_writes_its_template() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::open(
            &config(&path, "$status $request_id $http_user_agent", 1.0),
            Arc::default(),
        )
        .unwrap();
        assert_eq!(log.captured_headers(), [http::header::USER_AGENT]);
        let mut entry = sample_entry(4);
        entry.captured = vec![Some(http::HeaderValue::from_static("probe/1"))];
        log.log(entry);
        log.close();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "201 req-4 probe/1\n"
        );
    }

    #[test]
    fn sampling_keeps_failures_and_a_share_of_successes() {
        let dir = tempfile::tempdir().unwrap();
        let none =
            AccessLog::open(&config(&dir.path().join("a"), "json", 0.0), Arc::default()).unwrap();
        assert!(!none.keeps(200) && !none.keeps(304) && !none.keeps(399));
        assert!(none.keeps(400) && none.keeps(404) && none.keeps(502));
        let all =
            AccessLog::open(&config(&dir.path().join("b"), "json", 1.0), Arc::default()).unwrap();
        assert!((0..1000).all(|_| all.keeps(200)));
        let tenth =
            AccessLog::open(&config(&dir.path().join("c"), "json", 0.1), Arc::default()).unwrap();
        fastrand::seed(7);
        let kept = (0..10_000).filter(|_| tenth.keeps(200)).count();
        assert!((800..1200).contains(&kept), "{kept} of 10000 at 0.1");
        assert!((0..1000).all(|_| tenth.keeps(500)));
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
        let log = AccessLog::spawn(
            Box::new(sink),
            Destination::Stdout,
            AccessLogFormat::Json,
            1.0,
            capacity,
            Arc::default(),
        )
        .unwrap();

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
