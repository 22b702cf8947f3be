//! The process-wide `tracing` subscriber.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global `tracing` subscriber: output to standard error, filtered by `RUST_LOG` (default
/// `info`, also used when `RUST_LOG` does not parse), as JSON lines when `FLOODGATE_LOG_FORMAT=json` and as
/// human-readable lines otherwise (coloured only when standard error is a terminal). If a subscriber is already installed (a second call, or a test harness),
/// it is left in place.
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("FLOODGATE_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in files or a log collector's pipe.
        .with_ansi(std::io::stderr().is_terminal());
    // try_init fails only when a global subscriber exists already, which is the state we want.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_twice_is_harmless() {
        init_logging();
        init_logging();
        tracing::info!("logging initialised twice");
    }
}
