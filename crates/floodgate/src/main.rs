//! The `floodgate` binary: command line, start-up, signals (SIGHUP reloads, SIGTERM/SIGINT drain and stop).

#![deny(unsafe_code)]
#![deny(clippy::disallowed_types, clippy::disallowed_methods)]

mod admin_client;
mod allocator;
mod commands;
mod config_file;
mod schema;
mod serve;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use admin_client::AdminClient;
use anyhow::{anyhow, Result};
use clap::{Parser, Subcommand};
use commands::{Outcome, Side};
use config_file::{load, warnings};
use floodgate_config::{Config, ConfigError};
use floodgate_observe::Metrics;
use floodgate_proxy::{BuildInputs, Snapshot};
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
    Register(RegisterArgs),
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
        Command::Run { config } => serve::run(config.as_deref()),
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
        Command::Register(args) => {
            return client_command(async move {
                register(args).await?;
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
/// `floodgate register`'s arguments (etcdctl's names for the connection's).
#[derive(clap::Args)]
struct RegisterArgs {
    /// etcd client endpoints (`http://host:port`, `https://` with TLS), comma-separated.
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
    /// PEM file of the certificate authority that signed etcd's certificate (TLS to etcd).
    #[arg(long)]
    cacert: Option<String>,
    /// PEM client certificate, for a cluster started with `--client-cert-auth` (with `--key`).
    #[arg(long, requires = "key")]
    cert: Option<String>,
    /// The client certificate's PEM private key.
    #[arg(long, requires = "cert")]
    key: Option<String>,
    /// `user:password` for a cluster with authentication (else the environment's
    /// FLOODGATE_ETCD_USER, which keeps the password off the command line).
    #[arg(long, env = "FLOODGATE_ETCD_USER", hide_env_values = true)]
    user: Option<String>,
}

async fn register(args: RegisterArgs) -> Result<()> {
    let RegisterArgs {
        etcd: endpoints,
        prefix,
        address,
        weight,
        priority,
        ttl,
        id,
        cacert,
        cert,
        key,
        user,
    } = args;
    let ttl: std::time::Duration = ttl.into();
    floodgate_observe::init_logging();
    if !prefix.starts_with('/') || !prefix.ends_with('/') {
        return Err(anyhow!("--prefix: must start and end with \"/\""));
    }
    address
        .parse::<std::net::SocketAddr>()
        .map_err(|_| anyhow!("--address: {address:?} is not ip:port"))?;
    let (username, password) = match user.as_deref().map(|u| u.split_once(':')) {
        None => (None, None),
        Some(Some((name, password))) => (Some(name.to_string()), Some(password.to_string())),
        Some(None) => return Err(anyhow!("--user: expected user:password")),
    };
    if cert.is_some() && cacert.is_none() {
        return Err(anyhow!("--cert: needs --cacert (TLS to etcd)"));
    }
    let tls = cacert.map(|ca| floodgate_config::EtcdTlsConfig {
        ca,
        cert,
        key,
        server_name: None,
    });
    let settings = floodgate_config::EtcdDiscoveryConfig {
        prefix: prefix.clone(),
        endpoints,
        username,
        password,
        timeout: floodgate_config::HumanDuration::from_secs(5),
        tls,
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

fn validate(path: &Path) -> Result<()> {
    let config = checked(path)?;
    for warning in warnings(&config) {
        eprintln!("{}: warning: {warning}", path.display());
    }
    println!("{}: configuration is valid", path.display());
    Ok(())
}
