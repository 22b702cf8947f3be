//! The `floodgate` binary as a child process, for tests of what only the whole program does: signals, the
//! admin API's changes, the command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::client::get;
use crate::free_port;

/// How long to keep polling for an effect before giving up: a safety net for a broken test, not a
/// timing assertion.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A `floodgate run -c FILE` process with its listener and admin on free ports; killed when dropped.
pub struct Floodgate {
    child: Option<Child>,
    dir: tempfile::TempDir,
    config: PathBuf,
    log: PathBuf,
    /// The `main` listener's address.
    pub listener: SocketAddr,
    /// The admin listener's address.
    pub admin: SocketAddr,
}

impl Floodgate {
    /// Starts the binary `bin` (a test's `env!("CARGO_BIN_EXE_floodgate")`) on a config built by
    /// `yaml(listener, admin)` and waits until it is ready.
    pub async fn start(bin: &str, yaml: impl Fn(SocketAddr, SocketAddr) -> String) -> Floodgate {
        Self::start_with_env(bin, &[], yaml).await
    }

    /// [`Floodgate::start`] with environment variables `env` set for the process.
    pub async fn start_with_env(
        bin: &str,
        env: &[(&str, &str)],
        yaml: impl Fn(SocketAddr, SocketAddr) -> String,
    ) -> Floodgate {
        let listener: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("floodgate.yaml");
        let log = dir.path().join("floodgate.log");
        std::fs::write(&config, yaml(listener, admin)).expect("write config");
        let child = Command::new(bin)
            .args(["run", "-c", &config.display().to_string()])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn floodgate");
        let gateway = Floodgate {
            child: Some(child),
            dir,
            config,
            log,
            listener,
            admin,
        };
        gateway.wait_ready().await;
        gateway
    }

    /// What the process wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> String {
        self.child.as_ref().expect("running").id().to_string()
    }

    /// Replaces the config file. Written next to it and renamed, so the gateway never reads half a file.
    pub fn write_config(&self, yaml: &str) {
        let next = self.dir.path().join("next.yaml");
        std::fs::write(&next, yaml).expect("write config");
        std::fs::rename(&next, &self.config).expect("replace config");
    }

    /// Sends the signal `name` (`HUP`, `TERM`, ...).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        self.poll("/readyz never answered 200", || async {
            get(self.admin, "/readyz")
                .await
                .is_ok_and(|r| r.status == 200)
        })
        .await;
    }

    /// The admin listener's `/metrics` text.
    pub async fn metrics(&self) -> String {
        get(self.admin, "/metrics")
            .await
            .map(|r| r.text())
            .unwrap_or_default()
    }

    /// Polls `check` until it holds; panics with `what` and the gateway's log after [`PATIENCE`].
    pub async fn poll<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + PATIENCE;
        while !check().await {
            assert!(Instant::now() < deadline, "{what}; log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits for the process to exit without blocking the test's runtime.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE * 2;
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "floodgate did not exit; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Floodgate {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Floodgate {
    /// The configuration file the process was started with.
    pub fn config_path(&self) -> &Path {
        &self.config
    }
}
