//! A gateway running in the test process, on real sockets.

use std::collections::hash_map::RandomState;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use floodgate_config::{parse_yaml, Config};
use floodgate_observe::Metrics;
use floodgate_proxy::{Gateway, GatewayError};

/// A TCP port on 127.0.0.1 that is free and stays reserved for this test process until it ends.
///
/// A port bound and released is free only for a moment: another test process binding port 0 may be handed
/// it, and a listener with `SO_REUSEPORT` (the gateway's) would then silently share it with that process,
/// so one test's requests reach another's listener. These ports come from below the kernel's ephemeral
/// range, which port 0 never hands out, and each is claimed with a lock on a file that the kernel releases
/// when the process exits, so two test processes are never handed the same one.
pub fn free_port() -> u16 {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (
        ephemeral_low.saturating_sub(12_000).max(1024),
        ephemeral_low,
    );
    let dir = std::env::temp_dir().join("floodgate-test-ports");
    std::fs::create_dir_all(&dir).expect("port lock directory");
    let span = u64::from(high - low);
    let start = RandomState::new().build_hasher().finish() % span;
    for step in 0..span {
        let port = low + ((start + step) % span) as u16;
        let Ok(lock) = File::create(dir.join(format!("{port}.lock"))) else {
            continue;
        };
        if lock.try_lock().is_err() || TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        // The lock lives as long as its descriptor: kept open until the process exits.
        std::mem::forget(lock);
        return port;
    }
    panic!("no free port in {low}..{high}");
}

/// A gateway started from YAML in this process. Listeners on port 0 get free ports; ask [`TestGateway::addr`].
pub struct TestGateway {
    gateway: Option<Gateway>,
    /// The gateway's metrics.
    pub metrics: Arc<Metrics>,
}

impl TestGateway {
    /// Starts a gateway; panics with the error when the config is invalid.
    pub fn start(yaml: &str) -> TestGateway {
        Self::try_start(yaml).unwrap_or_else(|e| panic!("gateway did not start: {e}"))
    }

    /// Starts a gateway, returning why it could not.
    pub fn try_start(yaml: &str) -> Result<TestGateway, String> {
        let config = parse_yaml(yaml).map_err(|e| e.to_string())?;
        let metrics = Metrics::new(config.worker_count());
        let gateway = Gateway::start(&config, metrics.clone()).map_err(|e| e.to_string())?;
        metrics.set_config_loaded_now();
        Ok(TestGateway {
            gateway: Some(gateway),
            metrics,
        })
    }

    /// The address of the listener named `name`.
    pub fn addr(&self, name: &str) -> SocketAddr {
        self.gateway()
            .local_addr(name)
            .unwrap_or_else(|| panic!("no listener named {name:?}"))
    }

    /// Reloads from YAML, as SIGHUP does with a file.
    /// Like the binary's SIGHUP handling, every outcome is counted in the reload metrics and a success
    /// restarts the config age.
    pub fn reload(&mut self, yaml: &str) -> Result<(), String> {
        let gateway = self.gateway.as_mut().expect("gateway running");
        let result = parse_yaml(yaml)
            .map_err(|e| e.to_string())
            .and_then(|config: Config| {
                gateway
                    .reload(&config)
                    .map_err(|e: GatewayError| e.to_string())
            });
        self.metrics.record_reload(result.is_ok());
        if result.is_ok() {
            self.metrics.set_config_loaded_now();
        }
        result
    }

    /// The running gateway.
    pub fn gateway(&self) -> &Gateway {
        self.gateway.as_ref().expect("gateway running")
    }

    /// Shuts down with a grace period, blocking until the workers stop. Run it on a blocking thread from
    /// async tests (`tokio::task::spawn_blocking`).
    pub fn shutdown(mut self, grace: Duration) {
        if let Some(gateway) = self.gateway.take() {
            gateway.shutdown(grace);
        }
    }

    /// Takes the gateway out, for tests that drive shutdown themselves.
    pub fn into_inner(mut self) -> Gateway {
        self.gateway.take().expect("gateway running")
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(gateway) = self.gateway.take() {
            gateway.shutdown(Duration::ZERO);
        }
    }
}
