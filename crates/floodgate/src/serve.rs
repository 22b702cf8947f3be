//! `floodgate run`: the gateway itself, wired to its configuration's source (the file or etcd), the admin
//! API, the service registry and the signals. Its main thread owns the `Gateway` and applies every change
//! (SIGHUP, the admin API, etcd) one at a time.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::{anyhow, Context, Result};
use floodgate_admin::{AdminApi, AdminState, ApiKey, EtcdWrites};
use floodgate_config::{default_config, AdminConfig, Config, ConfigError, EtcdSourceConfig};
use floodgate_observe::Metrics;
use floodgate_proxy::{BuildInputs, Gateway, GatewayError, Snapshot};
use floodgate_store::etcd::{EtcdSource, EtcdWriter, StartedFrom, Validator};
use floodgate_store::registry::RegistryFollower;
use floodgate_store::{Applier, ApplyError, ApplyRequest, ChangeSource, ConfigVersions};
use tokio::signal::unix::{signal, SignalKind};

use crate::config_file::{load, log_new_warnings, log_warnings};
use crate::schema;

/// How many applied configurations the admin API's history keeps, the running one included.
const HISTORY_SIZE: usize = 32;

/// Runs the gateway on the file at `path` (the built-in configuration without one) until SIGTERM or
/// SIGINT, then drains it.
pub fn run(path: Option<&Path>) -> Result<()> {
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
    // to it before they are applied, and the admin API's writes before they reach etcd. Both run
    // `Config::validate` first, so the route table need not be built to check it again. Once the
    // gateway runs, the check builds only what differs from the snapshot in service.
    let running: Arc<OnceLock<RunningSnapshot>> = Arc::default();
    let validate: Arc<Validator> = {
        let running = running.clone();
        Arc::new(move |config: &Config| {
            let previous = running.get().map(|running| running());
            let inputs = BuildInputs {
                previous: previous.as_deref(),
                ..BuildInputs::checking()
            };
            Snapshot::build(config, &Metrics::new(1), 1, None, inputs).map(drop)
        })
    };
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
    let _ = running.set(Box::new(gateway.running_snapshot()));
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
            // Without a handler SIGUSR1 would end the process: logrotate's hook must not do that.
            let mut reopen = signal(SignalKind::user_defined1())?;
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
                    _ = reopen.recv() => gateway.reopen_access_log(),
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

/// The snapshot in service, when asked.
type RunningSnapshot = Box<dyn Fn() -> Arc<Snapshot> + Send + Sync>;

/// Applies `config` to the running gateway (whose configuration is `running`), counting the reload
/// either way. Returns the new shutdown timeout when it was applied.
fn apply(
    config: &Config,
    running: &Config,
    gateway: &mut Gateway,
    metrics: &Arc<Metrics>,
) -> Result<std::time::Duration, GatewayError> {
    log_new_warnings(config, running);
    let started = std::time::Instant::now();
    let applied = gateway.reload(config);
    metrics.record_config_apply(started.elapsed());
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
    let outcome = match apply(&config, &versions.current().config, gateway, metrics) {
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
    match apply(&config, &versions.current().config, gateway, metrics) {
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
