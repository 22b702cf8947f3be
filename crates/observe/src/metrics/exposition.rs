//! The Prometheus text exposition format, version 0.0.4, written by hand.
//!
//! Why not `prometheus-client` or `prometheus`: their counter families keep one shared atomic per label set
//! and find it through a map behind a lock. Our counters are per-worker slots that only a scrape sums, which
//! those types cannot express without a custom collector per metric and a lock on label lookup; and the
//! format itself is a few lines of text per sample, so writing it here is smaller than adapting either.

use std::fmt::{self, Display, Write};

/// The `# TYPE` of a metric family.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Accumulates an exposition. Writes go to a `String`, which cannot fail, so the `fmt::Result`s are
/// dropped.
#[derive(Default)]
pub(crate) struct TextWriter {
    out: String,
}

impl TextWriter {
    /// Starts a family: its `# HELP` and `# TYPE` lines. `help` is our own text and holds no backslash or
    /// newline, so it needs no escaping.
    pub(crate) fn family(&mut self, name: &str, help: &str, kind: Kind) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// Writes one sample line: `name{label="value",...} value`.
    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, label_value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(label);
                self.out.push_str("=\"");
                escape_label_value(&mut self.out, label_value);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// The finished exposition.
    pub(crate) fn finish(self) -> String {
        self.out
    }
}

/// Appends `value` escaped as the format requires inside a quoted label value: backslash, double quote and
/// line feed are the only characters that need it.
fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A duration in seconds, printed exactly from integer microseconds (`1.500000`) so no float rounding
/// shows up in sums.
pub(crate) struct Seconds {
    pub(crate) micros: u64,
}

impl Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:06}",
            self.micros / 1_000_000,
            self.micros % 1_000_000
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut w = TextWriter::default();
        w.sample("m", &[("route", "a\\b\"c\nd"), ("x", "é")], 1);
        assert_eq!(w.finish(), "m{route=\"a\\\\b\\\"c\\nd\",x=\"é\"} 1\n");
    }

    #[test]
    fn family_header_and_unlabelled_sample() {
        let mut w = TextWriter::default();
        w.family("up_total", "Things.", Kind::Counter);
        w.sample("up_total", &[], 3);
        assert_eq!(
            w.finish(),
            "# HELP up_total Things.\n# TYPE up_total counter\nup_total 3\n"
        );
    }

    #[test]
    fn seconds_are_exact() {
        assert_eq!(Seconds { micros: 0 }.to_string(), "0.000000");
        assert_eq!(Seconds { micros: 1_500_000 }.to_string(), "1.500000");
        assert_eq!(Seconds { micros: 42 }.to_string(), "0.000042");
    }
}
