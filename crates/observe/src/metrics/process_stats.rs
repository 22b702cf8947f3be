//! The process's own resources under the names every Prometheus client library uses (`process_*`), read
//! from `/proc/self` at scrape time, so they cost the request path nothing.
//!
//! Written by hand rather than with the `procfs` crate: five files and a few fields of each, where that
//! crate would bring a parser of all of `/proc`. On systems without `/proc` the families have no sample.

use std::fs;

use super::exposition::{Kind, TextWriter};

const CPU: &str = "process_cpu_seconds_total";
const RESIDENT: &str = "process_resident_memory_bytes";
const VIRTUAL: &str = "process_virtual_memory_bytes";
const OPEN_FDS: &str = "process_open_fds";
const MAX_FDS: &str = "process_max_fds";
const START_TIME: &str = "process_start_time_seconds";
const THREADS: &str = "process_threads";

/// Clock ticks per second in `/proc/<pid>/stat`: `USER_HZ`, which Linux fixes at 100 for that interface
/// whatever the kernel's own tick rate.
const TICKS_PER_SECOND: f64 = 100.0;

/// What one scrape read.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ProcessStats {
    pub(crate) cpu_seconds: Option<f64>,
    pub(crate) resident_bytes: Option<u64>,
    pub(crate) virtual_bytes: Option<u64>,
    pub(crate) open_fds: Option<u64>,
    pub(crate) max_fds: Option<u64>,
    pub(crate) start_time_seconds: Option<f64>,
    pub(crate) threads: Option<u64>,
}

impl ProcessStats {
    /// Reads this process's figures; each one that cannot be read is left out.
    pub(crate) fn read() -> ProcessStats {
        let mut stats = ProcessStats::default();
        if let Ok(stat) = fs::read_to_string("/proc/self/stat") {
            let boot_time = fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|s| boot_time(&s));
            stats.read_stat(&stat, boot_time);
        }
        if let Ok(status) = fs::read_to_string("/proc/self/status") {
            stats.resident_bytes = status_kib(&status, "VmRSS:").map(|kib| kib * 1024);
        }
        stats.open_fds = fs::read_dir("/proc/self/fd")
            .ok()
            .map(|entries| entries.count() as u64);
        stats.max_fds = fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|limits| soft_limit(&limits, "Max open files"));
        stats
    }

    /// Takes CPU time, virtual size, threads and the start time from `/proc/self/stat`.
    fn read_stat(&mut self, stat: &str, boot_time: Option<u64>) {
        // The command name (field 2) is in parentheses and may hold spaces or `)`: fields are counted
        // from the last `)`, where field 3 starts.
        let Some(after_name) = stat.rfind(')').map(|at| &stat[at + 1..]) else {
            return;
        };
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // Field n of proc(5) is fields[n - 3].
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        if let (Some(user), Some(system)) = (field(14), field(15)) {
            self.cpu_seconds = Some((user + system) as f64 / TICKS_PER_SECOND);
        }
        self.threads = field(20);
        if let (Some(started), Some(boot)) = (field(22), boot_time) {
            self.start_time_seconds = Some(boot as f64 + started as f64 / TICKS_PER_SECOND);
        }
        self.virtual_bytes = field(23);
    }

    pub(crate) fn render(&self, w: &mut TextWriter) {
        let families: [(&str, &str, Kind, Option<f64>); 7] = [
            (
                CPU,
                "User and system CPU time spent, in seconds.",
                Kind::Counter,
                self.cpu_seconds,
            ),
            (
                RESIDENT,
                "Resident memory size in bytes.",
                Kind::Gauge,
                self.resident_bytes.map(|b| b as f64),
            ),
            (
                VIRTUAL,
                "Virtual memory size in bytes.",
                Kind::Gauge,
                self.virtual_bytes.map(|b| b as f64),
            ),
            (
                OPEN_FDS,
                "Open file descriptors.",
                Kind::Gauge,
                self.open_fds.map(|n| n as f64),
            ),
            (
                MAX_FDS,
                "The limit on open file descriptors (soft).",
                Kind::Gauge,
                self.max_fds.map(|n| n as f64),
            ),
            (
                START_TIME,
                "Start time of the process since the Unix epoch, in seconds.",
                Kind::Gauge,
                self.start_time_seconds,
            ),
            (
                THREADS,
                "Threads of the process.",
                Kind::Gauge,
                self.threads.map(|n| n as f64),
            ),
        ];
        for (name, help, kind, value) in families {
            w.family(name, help, kind);
            if let Some(value) = value {
                w.sample(name, &[], value);
            }
        }
    }
}

/// `btime` of `/proc/stat`: the boot time, in seconds since the epoch.
fn boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// A `Name:   1234 kB` line of `/proc/self/status`, in KiB.
fn status_kib(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix(name))?;
    line.split_whitespace().next()?.parse().ok()
}

/// The soft limit of a `/proc/self/limits` row (`Max open files  1024  524288  files`); `unlimited` is
/// no number and gives none.
fn soft_limit(limits: &str, name: &str) -> Option<u64> {
    let row = limits.lines().find_map(|l| l.strip_prefix(name))?;
    row.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with a space and a `)` of its own, as a process may set it.
        let stat = "4242 (flood gate) x) S 1 4242 4242 0 -1 4194560 2270 0 0 0 250 75 0 0 20 0 9 0 \
                    123400 31457280 1200 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";
        let mut stats = ProcessStats::default();
        stats.read_stat(stat, Some(1_796_000_000));
        assert_eq!(stats.cpu_seconds, Some(3.25));
        assert_eq!(stats.threads, Some(9));
        assert_eq!(stats.start_time_seconds, Some(1_796_001_234.0));
        assert_eq!(stats.virtual_bytes, Some(31_457_280));
    }

    #[test]
    fn status_and_limits_rows() {
        let status = "Name:\tfloodgate\nVmPeak:\t  40000 kB\nVmRSS:\t   12345 kB\nThreads:\t9\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(12_345));
        assert_eq!(status_kib(status, "VmSwap:"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(soft_limit(limits, "Max open files"), Some(1024));
        assert_eq!(soft_limit(limits, "Max cpu time"), None);
        assert_eq!(
            boot_time("cpu  1 2 3\nbtime 1796000000\nprocesses 5\n"),
            Some(1_796_000_000)
        );
    }

    #[test]
    fn this_process_is_read() {
        let stats = ProcessStats::read();
        assert!(stats.cpu_seconds.is_some_and(|s| s >= 0.0));
        assert!(stats.resident_bytes.is_some_and(|b| b > 1024 * 1024));
        assert!(stats.open_fds.is_some_and(|n| n >= 3));
        assert!(stats.max_fds.is_some_and(|n| n >= 64));
        assert!(stats.threads.is_some_and(|n| n >= 1));
        let mut w = TextWriter::default();
        stats.render(&mut w);
        let text = w.finish();
        for name in [
            CPU, RESIDENT, VIRTUAL, OPEN_FDS, MAX_FDS, START_TIME, THREADS,
        ] {
            assert!(text.contains(&format!("\n{name} ")), "{name} in {text}");
        }
    }
}
