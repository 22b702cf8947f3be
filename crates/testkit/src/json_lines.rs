//! Files of one JSON object per line, as the access log writes them.

use std::path::Path;

/// The lines of `path` that are JSON objects, in order; none when the file is missing (not written
/// yet). A line cut short by a write in progress is left out, so a poll can read the file any time.
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
