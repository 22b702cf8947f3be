//! The `floodgate` binary: command line, start-up, signals (SIGHUP reloads, SIGTERM/SIGINT drain and stop).

#![deny(unsafe_code)]
#![deny(clippy::disallowed_types, clippy::disallowed_methods)]

mod allocator;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use clap::{Parser, Subcommand};
use floodgate_admin::AdminState;
use floodgate_config::{default_config, parse_yaml, Config, ConfigError};
use floodgate_observe::Metrics;
use floodgate_proxy::{BuildInputs, Gateway, Snapshot};
use tokio::signal::unix::{signal, SignalKind};

/// floodgate: a cloud-native API gateway.
#[derive(Parser)]
#[command(name = "floodgate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (with the built-in configuration when no file is given).
    Run {
        /// Configuration file (YAML).
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Check a configuration file and exit non-zero, listing every error, when it is invalid.
    Validate {
        /// Configuration file (YAML).
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Print the JSON Schema of the configuration file.
    Schema,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => run(config.as_deref()),
        Command::Validate { config } => validate(&config),
        Command::Schema => {
            println!("{}", Config::json_schema());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("floodgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_yaml(&text)
}

fn validate(path: &Path) -> Result<()> {
    let config = load(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    // Building the snapshot reads certificates and keys too, so `validate` catches what `run` would.
    let metrics = Metrics::new(1);
    Snapshot::build(&config, &metrics, 1, None, BuildInputs::validating())
        .map_err(|errors| anyhow!("{}: {}", path.display(), ConfigError::Invalid(errors)))?;
    for warning in warnings(&config) {
        eprintln!("{}: warning: {warning}", path.display());
    }
    println!("{}: configuration is valid", path.display());
    Ok(())
}

/// What is worth an operator's attention in a valid configuration.
fn warnings(config: &Config) -> Vec<floodgate_config::FieldError> {
    config.method_gap_warnings(floodgate_plugins::AUTHENTICATING_PLUGINS)
}

fn log_warnings(config: &Config) {
    for warning in warnings(config) {
        tracing::warn!("configuration: {warning}");
    }
}

fn run(path: Option<&Path>) -> Result<()> {
    floodgate_observe::init_logging();
    let config = match path {
        Some(path) => load(path).map_err(|e| anyhow!("{}: {e}", path.display()))?,
        None => {
            tracing::info!("no --config given: using the built-in configuration");
            default_config()
        }
    };
    log_warnings(&config);
    let metrics = Metrics::new(config.worker_count());
    let admin_address = config.admin.address.clone();
    let mut gateway = Gateway::start(&config, metrics.clone()).context("cannot start")?;
    metrics.set_config_loaded_now();
    let admin = AdminState::with_status(
        metrics.clone(),
        Some(Box::new(gateway.upstream_status_source())),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the main runtime")?;
    let mut shutdown_timeout = config.shutdown_timeout.get();
    runtime.block_on(async move {
        let serving: Result<()> = async {
            let listener = tokio::net::TcpListener::bind(&admin_address)
                .await
                .with_context(|| format!("admin.address: cannot listen on {admin_address}"))?;
            tracing::info!(address = %admin_address, "admin listening");
            tokio::spawn(floodgate_admin::serve(listener, admin.clone()));
            admin.set_ready(true);
            let mut hangup = signal(SignalKind::hangup())?;
            let mut terminate = signal(SignalKind::terminate())?;
            let mut interrupt = signal(SignalKind::interrupt())?;
            loop {
                tokio::select! {
                    _ = hangup.recv() => {
                        if let Some(timeout) = reload(path, &mut gateway, &metrics) {
                            shutdown_timeout = timeout;
                        }
                    }
                    _ = terminate.recv() => break,
                    _ = interrupt.recv() => break,
                }
            }
            Ok(())
        }
        .await;
        // The admin listener keeps answering while connections drain, so /readyz says 503 to load
        // balancers instead of going silent.
        admin.set_ready(false);
        tracing::info!(grace = ?shutdown_timeout, "shutting down: draining open connections");
        let drained = tokio::task::spawn_blocking(move || gateway.shutdown(shutdown_timeout)).await;
        if drained.is_err() {
            tracing::error!("shutdown did not complete cleanly");
        }
        tracing::info!("stopped");
        serving
    })
}

/// Re-reads and applies the configuration file. A bad file leaves the running configuration in place.
/// Returns the new shutdown timeout when the reload succeeded.
fn reload(
    path: Option<&Path>,
    gateway: &mut Gateway,
    metrics: &Arc<Metrics>,
) -> Option<std::time::Duration> {
    let Some(path) = path else {
        tracing::warn!(
            "SIGHUP ignored: running the built-in configuration, there is no file to re-read"
        );
        return None;
    };
    let applied = load(path).map_err(|e| e.to_string()).and_then(|config| {
        log_warnings(&config);
        gateway
            .reload(&config)
            .map(|()| config.shutdown_timeout.get())
            .map_err(|e| e.to_string())
    });
    metrics.record_reload(applied.is_ok());
    match applied {
        Ok(timeout) => {
            metrics.set_config_loaded_now();
            tracing::info!(file = %path.display(), "configuration reloaded");
            Some(timeout)
        }
        Err(e) => {
            tracing::error!(file = %path.display(), "reload failed, keeping the running configuration: {e}");
            None
        }
    }
}
