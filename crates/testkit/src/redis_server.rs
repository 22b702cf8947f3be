//! A real Redis server for tests: a free port, no persistence, stopped and started again at will on
//! the same address.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, TestCerts};

/// A `redis-server` process; killed when dropped.
pub struct TestRedis {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    password: Option<String>,
    /// The TLS port and its certificate, when it serves TLS too.
    tls: Option<(u16, TestCerts)>,
}

impl TestRedis {
    /// Starts redis-server and waits until it answers. Panics when the binary is missing (the test
    /// command, `scripts/test.sh`, installs Debian's `redis-server`).
    pub async fn start() -> TestRedis {
        Self::start_with(None).await
    }

    /// Starts one that requires `password` (AUTH).
    pub async fn start_with_password(password: &str) -> TestRedis {
        Self::start_with(Some(password.to_string())).await
    }

    /// Starts one that also serves TLS ([`TestRedis::tls_url`]) with a certificate for `localhost`
    /// and `127.0.0.1` ([`TestRedis::certs`]).
    pub async fn start_tls() -> TestRedis {
        let certs = TestCerts::new(&["localhost", "127.0.0.1"]);
        Self::start_with_tls(None, Some((free_port(), certs))).await
    }

    async fn start_with(password: Option<String>) -> TestRedis {
        Self::start_with_tls(password, None).await
    }

    async fn start_with_tls(password: Option<String>, tls: Option<(u16, TestCerts)>) -> TestRedis {
        let mut redis = TestRedis {
            child: None,
            dir: tempfile::tempdir().expect("redis dir"),
            port: free_port(),
            password,
            tls,
        };
        redis.resume().await;
        redis
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `redis://[:password@]127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@{}/0", self.address()),
            None => format!("redis://{}/0", self.address()),
        }
    }

    /// `rediss://127.0.0.1:TLS_PORT/0`, when it serves TLS.
    pub fn tls_url(&self) -> Option<String> {
        self.tls
            .as_ref()
            .map(|(port, _)| format!("rediss://127.0.0.1:{port}/0"))
    }

    /// The certificate its TLS port presents (clients trust it as their CA).
    pub fn certs(&self) -> Option<&TestCerts> {
        self.tls.as_ref().map(|(_, certs)| certs)
    }

    /// Kills the server (SIGKILL: as a crash would). Its counters are lost, as with a crash of a
    /// Redis without persistence.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on its address, and waits until it answers.
    pub async fn resume(&mut self) {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"));
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        if let Some((port, certs)) = &self.tls {
            command
                .args(["--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
                .arg("--tls-cert-file")
                .arg(&certs.cert_path)
                .arg("--tls-key-file")
                .arg(&certs.key_path)
                .arg("--tls-ca-cert-file")
                .arg(&certs.cert_path);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "cannot run redis-server: install Debian's redis-server (scripts/test.sh does)",
            );
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.connection().await.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not start: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// A connection to this server (authenticated).
    pub async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        connection(&self.url()).await
    }

    /// `INFO stats`' `total_commands_processed`: every command the server ran, pipelined ones
    /// one by one (the `INFO` asking is counted after it answers).
    pub async fn commands_processed(&self) -> u64 {
        commands_processed(&self.url()).await
    }

    /// The keys under `pattern` (`KEYS`).
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        keys(&self.url(), pattern).await
    }
}

/// A connection to the server at `url` that has answered `PING`.
pub(crate) async fn connection(url: &str) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(url)?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    redis::cmd("PING")
        .query_async::<String>(&mut connection)
        .await?;
    Ok(connection)
}

/// `INFO stats`' `total_commands_processed` of the server at `url`.
pub(crate) async fn commands_processed(url: &str) -> u64 {
    let mut connection = connection(url).await.expect("redis connection");
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut connection)
        .await
        .expect("INFO stats");
    info.lines()
        .find_map(|line| line.strip_prefix("total_commands_processed:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("total_commands_processed in INFO stats")
}

/// The keys under `pattern` (`KEYS`) of the server at `url`.
pub(crate) async fn keys(url: &str, pattern: &str) -> Vec<String> {
    let mut connection = connection(url).await.expect("redis connection");
    redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut connection)
        .await
        .expect("KEYS")
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
