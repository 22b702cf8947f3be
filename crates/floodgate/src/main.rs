//! The `floodgate` binary: command line, start-up, signals (SIGHUP reloads, SIGTERM/SIGINT drain and stop).

#![deny(unsafe_code)]
#![deny(clippy::disallowed_types, clippy::disallowed_methods)]

mod admin_client;
mod allocator;
mod commands;
mod schema;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use admin_client::AdminClient;
use anyhow::{anyhow, Context, Result};
use clap::{Parser, Subcommand};
use commands::{Outcome, Side};
use floodgate_admin::{AdminApi, AdminState, ApiKey, EtcdWrites};
use floodgate_config::{
    default_config, parse_yaml, AdminConfig, Config, ConfigError, EtcdSourceConfig,
};
use floodgate_observe::Metrics;
use floodgate_proxy::{BuildInputs, Gateway, GatewayError, Snapshot};
use floodgate_store::etcd::{EtcdSource, EtcdWriter, StartedFrom, Validator};
use floodgate_store::registry::RegistryFollower;
use floodgate_store::{Applier, ApplyError, ApplyRequest, ChangeSource, ConfigVersions};
use tokio::signal::unix::{signal, SignalKind};

/// How many applied configurations the admin API's history keeps, the running one included.
const HISTORY_SIZE: usize = 32;

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
    /// Print a running gateway's configuration as YAML (secrets masked). Exit 0, or 2 when it cannot.
    Dump {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Show what differs between two configurations, as a unified diff: two files; a running gateway
    /// and a file (`--admin`: what applying the file would change); or a running gateway and a version
    /// of its history (`--admin --version N`: what a rollback would change). Exit 0 when nothing
    /// differs, 1 when something does, 2 when they cannot be compared.
    Diff {
        /// One file (with `--admin`) or two.
        files: Vec<PathBuf>,
        /// Compare with the gateway whose admin API is at this address instead of a first file.
        #[arg(long)]
        admin: Option<String>,
        /// With `--admin` and no file: the version of its history to compare the running one with.
        #[arg(long)]
        version: Option<u64>,
        /// The admin API key (else the environment's FLOODGATE_ADMIN_API_KEY).
        #[arg(long)]
        api_key: Option<String>,
    },
    /// Register one instance of a service in the etcd registry and keep it there until stopped
    /// (SIGTERM or SIGINT revoke it at once; a crash lets its lease expire after --ttl).
    Register {
        /// etcd client endpoints (`http://host:port`), comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        etcd: Vec<String>,
        /// The service's prefix, as the upstream's `discovery.etcd.prefix` names it (`/services/users/`).
        #[arg(long)]
        prefix: String,
        /// The instance's address, `ip:port`.
        #[arg(long)]
        address: String,
        /// Its relative share of requests (1 to 10000).
        #[arg(long, default_value_t = 1)]
        weight: u32,
        /// Its priority level (0 is the first).
        #[arg(long, default_value_t = 0)]
        priority: u32,
        /// How long the registration outlives the process if it dies without unregistering.
        #[arg(long, default_value = "10s")]
        ttl: humantime::Duration,
        /// The key below the prefix (default: the address).
        #[arg(long)]
        id: Option<String>,
    },
    /// Validate a configuration file, then apply it to a running gateway through its admin API: whole
    /// when its configuration comes from a file, resource by resource when it comes from etcd. Exit 0
    /// when applied, 1 when the file or the gateway refused it, 2 when the gateway cannot be reached.
    Apply {
        /// Configuration file (YAML).
        #[arg(short, long)]
        config: PathBuf,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

/// Where a running gateway's admin API is.
#[derive(clap::Args)]
struct AdminArgs {
    /// The admin API's address.
    #[arg(long, default_value = "127.0.0.1:9180")]
    admin: String,
    /// The admin API key (else the environment's FLOODGATE_ADMIN_API_KEY).
    #[arg(long)]
    api_key: Option<String>,
}

impl AdminArgs {
    fn client(&self) -> AdminClient {
        AdminClient::new(&self.admin, self.api_key.clone())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => run(config.as_deref()),
        Command::Validate { config } => validate(&config),
        Command::Schema => {
            println!("{}", schema::full_schema());
            Ok(())
        }
        Command::Dump { admin } => {
            return client_command(async move {
                print!("{}", commands::dump(&admin.client()).await?);
                Ok(Outcome::Done)
            })
        }
        Command::Diff {
            files,
            admin,
            version,
            api_key,
        } => return client_command(diff(files, admin, version, api_key)),
        Command::Register {
            etcd,
            prefix,
            address,
            weight,
            priority,
            ttl,
            id,
        } => {
            return client_command(async move {
                register(etcd, prefix, address, weight, priority, ttl.into(), id).await?;
                Ok(Outcome::Done)
            })
        }
        Command::Apply { config, admin } => {
            return client_command(async move {
                match checked(&config) {
                    Ok(config) => commands::apply(&admin.client(), &config).await,
                    Err(e) => {
                        eprintln!("floodgate: {e:#}");
                        Ok(Outcome::NotDone)
                    }
                }
            })
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

/// Runs a command that talks to a running gateway: its outcome's exit code, or 2 with the error.
fn client_command(command: impl std::future::Future<Output = Result<Outcome>>) -> ExitCode {
    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(command));
    match outcome {
        Ok(outcome) => outcome.into(),
        Err(e) => {
            eprintln!("floodgate: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `floodgate register`: keeps one instance in the registry until SIGTERM or SIGINT.
async fn register(
    endpoints: Vec<String>,
    prefix: String,
    address: String,
    weight: u32,
    priority: u32,
    ttl: std::time::Duration,
    id: Option<String>,
) -> Result<()> {
    floodgate_observe::init_logging();
    if !prefix.starts_with('/') || !prefix.ends_with('/') {
        return Err(anyhow!("--prefix: must start and end with \"/\""));
    }
    address
        .parse::<std::net::SocketAddr>()
        .map_err(|_| anyhow!("--address: {address:?} is not ip:port"))?;
    let settings = floodgate_config::EtcdDiscoveryConfig {
        prefix: prefix.clone(),
        endpoints,
        username: None,
        password: None,
        timeout: floodgate_config::HumanDuration::from_secs(5),
        tls: None,
    };
    let key = format!("{prefix}{}", id.unwrap_or_else(|| address.clone()));
    let value = serde_json::json!({ "address": address, "weight": weight, "priority": priority })
        .to_string();
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let stop = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    };
    floodgate_store::registry::register(&settings, &key, &value, ttl, stop).await;
    Ok(())
}

async fn diff(
    files: Vec<PathBuf>,
    admin: Option<String>,
    version: Option<u64>,
    api_key: Option<String>,
) -> Result<Outcome> {
    let client = admin.map(|address| AdminClient::new(&address, api_key));
    let load = |path: &Path| load(path).map_err(|e| anyhow!("{}: {e}", path.display()));
    let (from, to) = match (files.as_slice(), &client, version) {
        ([a, b], None, None) => (Side::File(a), Side::File(b)),
        ([file], Some(client), None) => (Side::Running(client), Side::File(file)),
        ([], Some(client), Some(version)) => {
            (Side::Running(client), Side::Version(client, version))
        }
        _ => {
            return Err(anyhow!(
                "give two files, one file and --admin, or --admin and --version"
            ))
        }
    };
    commands::diff(from, to, load).await
}

/// The configuration in `path` when it is valid as `run` would find it: building the snapshot reads
/// certificates and keys and builds the plugins too.
fn checked(path: &Path) -> Result<Config> {
    let config = load(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let metrics = Metrics::new(1);
    Snapshot::build(&config, &metrics, 1, None, BuildInputs::validating())
        .map_err(|errors| anyhow!("{}: {}", path.display(), ConfigError::Invalid(errors)))?;
    Ok(config)
}

fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_yaml(&text)
}

fn validate(path: &Path) -> Result<()> {
    let config = checked(path)?;
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
    let (file_config, source) = match path {
        Some(path) => (
            load(path).map_err(|e| anyhow!("{}: {e}", path.display()))?,
            ChangeSource::File,
        ),
        None => {
            tracing::info!("no --config given: using the built-in configuration");
            (default_config(), ChangeSource::BuiltIn)
        }
    };
    let bootstrap_errors = file_config.etcd_bootstrap_errors();
    if !bootstrap_errors.is_empty() {
        let file = path.map_or_else(String::new, |p| p.display().to_string());
        return Err(anyhow!(
            "{file}: {}",
            ConfigError::Invalid(bootstrap_errors)
        ));
    }
    log_warnings(&file_config);
    let api_key = admin_api_key(&file_config.admin)?;
    let metrics = Metrics::new(file_config.worker_count());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the main runtime")?;
    // What applying would check beyond the schema (plugins, certificates): etcd's resources are held
    // to it before they are applied, and the admin API's writes before they reach etcd.
    let validate: Arc<Validator> = Arc::new(|config: &Config| {
        Snapshot::build(config, &Metrics::new(1), 1, None, BuildInputs::validating()).map(drop)
    });
    let etcd_writes = file_config.config_source.etcd().map(|settings| EtcdWrites {
        writer: EtcdWriter::new(settings.clone()),
        validate: validate.clone(),
        metrics: metrics.clone(),
        wait: settings.timeout.get(),
    });
    let (config, source, etcd, ready_at_start) = match file_config.config_source.etcd() {
        Some(settings) => {
            let mut etcd = etcd_source(settings, &file_config, path, &metrics, validate);
            let (config, started) = runtime.block_on(etcd.initial());
            (
                config,
                ChangeSource::Etcd,
                Some(etcd),
                started != StartedFrom::Nothing,
            )
        }
        None => (file_config, source, None, true),
    };
    let admin_address = config.admin.address.clone();
    let mut gateway = Gateway::start(&config, metrics.clone()).context("cannot start")?;
    metrics.set_config_loaded_now();
    let mut shutdown_timeout = config.shutdown_timeout.get();
    let from_etcd = etcd.is_some();
    let versions = Arc::new(ConfigVersions::new(config, source, HISTORY_SIZE));
    let (applier, mut changes) = Applier::channel();
    let admin = AdminState::with_api(
        metrics.clone(),
        Some(Box::new(gateway.upstream_status_source())),
        Some(AdminApi {
            versions: versions.clone(),
            applier: applier.clone(),
            api_key,
            etcd: etcd_writes,
            schema: schema::full_schema(),
        }),
    );
    runtime.block_on(async move {
        let serving: Result<()> = async {
            let listener = tokio::net::TcpListener::bind(&admin_address)
                .await
                .with_context(|| format!("admin.address: cannot listen on {admin_address}"))?;
            tracing::info!(address = %admin_address, "admin listening");
            tokio::spawn(floodgate_admin::serve(listener, admin.clone()));
            admin.set_ready(ready_at_start);
            let registered = gateway.registered_targets();
            let mut registry = RegistryFollower::new(Arc::new(move |id: &str, targets| {
                registered.set(id, targets)
            }));
            registry.follow(&versions.current().config);
            if let Some(etcd) = etcd {
                let admin = admin.clone();
                tokio::spawn(etcd.run(applier, move || admin.set_ready(true)));
            }
            let mut hangup = signal(SignalKind::hangup())?;
            let mut terminate = signal(SignalKind::terminate())?;
            let mut interrupt = signal(SignalKind::interrupt())?;
            loop {
                tokio::select! {
                    _ = hangup.recv() => {
                        if from_etcd {
                            tracing::warn!("SIGHUP ignored: the configuration comes from etcd; the file's own settings take effect on restart");
                        } else if let Some(timeout) = reload(path, &mut gateway, &metrics, &versions) {
                            shutdown_timeout = timeout;
                            registry.follow(&versions.current().config);
                        }
                    }
                    Some(change) = changes.recv() => {
                        if let Some(timeout) = apply_change(change, &mut gateway, &metrics, &versions) {
                            shutdown_timeout = timeout;
                            registry.follow(&versions.current().config);
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

/// The etcd source for a file whose `config_source` is `settings`; its copy on disk defaults to the file's
/// path with `.etcd-copy.json` appended.
fn etcd_source(
    settings: &EtcdSourceConfig,
    file_config: &Config,
    path: Option<&Path>,
    metrics: &Arc<Metrics>,
    validate: Arc<Validator>,
) -> EtcdSource {
    let copy_file = match (&settings.copy_file, path) {
        (Some(copy), _) => PathBuf::from(copy),
        (None, Some(path)) => {
            let mut copy = path.as_os_str().to_owned();
            copy.push(".etcd-copy.json");
            PathBuf::from(copy)
        }
        (None, None) => PathBuf::from("floodgate.etcd-copy.json"),
    };
    EtcdSource::new(
        settings.clone(),
        file_config.clone(),
        copy_file,
        validate,
        metrics.clone(),
    )
}

/// The admin API's key: from the environment variable `api_key_env` names, else `api_key`.
fn admin_api_key(admin: &AdminConfig) -> Result<Option<ApiKey>> {
    if let Some(name) = &admin.api_key_env {
        return match std::env::var(name) {
            Ok(key) if !key.is_empty() => Ok(Some(ApiKey::new(&key))),
            _ => Err(anyhow!(
                "admin.api_key_env: environment variable {name} is not set or empty"
            )),
        };
    }
    Ok(admin
        .api_key
        .as_deref()
        .filter(|key| !key.is_empty())
        .map(ApiKey::new))
}

/// Applies `config` to the running gateway, counting the reload either way. Returns the new shutdown
/// timeout when it was applied.
fn apply(
    config: &Config,
    gateway: &mut Gateway,
    metrics: &Arc<Metrics>,
) -> Result<std::time::Duration, GatewayError> {
    log_warnings(config);
    let applied = gateway.reload(config);
    metrics.record_reload(applied.is_ok());
    applied?;
    metrics.set_config_loaded_now();
    Ok(config.shutdown_timeout.get())
}

/// Applies a configuration the admin API sent, and answers it.
fn apply_change(
    change: ApplyRequest,
    gateway: &mut Gateway,
    metrics: &Arc<Metrics>,
    versions: &ConfigVersions,
) -> Option<std::time::Duration> {
    let ApplyRequest {
        config,
        source,
        reply,
    } = change;
    let outcome = match apply(&config, gateway, metrics) {
        Ok(timeout) => {
            let applied = versions.record(config, source);
            tracing::info!(
                version = applied.version,
                source = source.as_str(),
                "configuration applied"
            );
            Ok((applied, timeout))
        }
        Err(e) => {
            tracing::error!(
                source = source.as_str(),
                "configuration refused, keeping the running one: {e}"
            );
            Err(match e {
                GatewayError::Invalid(errors) => ApplyError::Invalid(errors),
                other => ApplyError::Failed(other.to_string()),
            })
        }
    };
    let timeout = outcome.as_ref().ok().map(|(_, timeout)| *timeout);
    let _ = reply.send(outcome.map(|(applied, _)| applied));
    timeout
}

/// Re-reads and applies the configuration file. A bad file leaves the running configuration in place.
/// Returns the new shutdown timeout when the reload succeeded.
fn reload(
    path: Option<&Path>,
    gateway: &mut Gateway,
    metrics: &Arc<Metrics>,
    versions: &ConfigVersions,
) -> Option<std::time::Duration> {
    let Some(path) = path else {
        tracing::warn!(
            "SIGHUP ignored: running the built-in configuration, there is no file to re-read"
        );
        return None;
    };
    let config = match load(path) {
        Ok(config) => config,
        Err(e) => {
            metrics.record_reload(false);
            tracing::error!(file = %path.display(), "reload failed, keeping the running configuration: {e}");
            return None;
        }
    };
    match apply(&config, gateway, metrics) {
        Ok(timeout) => {
            let applied = versions.record(config, ChangeSource::File);
            tracing::info!(file = %path.display(), version = applied.version, "configuration reloaded");
            Some(timeout)
        }
        Err(e) => {
            tracing::error!(file = %path.display(), "reload failed, keeping the running configuration: {e}");
            None
        }
    }
}
