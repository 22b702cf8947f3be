//! A real etcd server for tests: its own data directory and free ports, stopped and started again at will
//! (same data, same address), written to with the etcd client.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcd_client::{Certificate, Client, CompactionOptions, ConnectOptions, TlsOptions};

use crate::{free_port, TestCerts};

/// An `etcd` process; killed when dropped.
pub struct TestEtcd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    tls: Option<TestCerts>,
}

impl TestEtcd {
    /// Starts etcd and waits until it answers. Panics when the `etcd` binary is missing (the test
    /// command, `scripts/test.sh`, installs Debian's `etcd-server`).
    pub async fn start() -> TestEtcd {
        Self::start_with(None).await
    }

    /// Starts etcd serving its clients over TLS with a certificate for `localhost` and `127.0.0.1`
    /// ([`TestEtcd::certs`]).
    pub async fn start_tls() -> TestEtcd {
        Self::start_with(Some(TestCerts::new(&["localhost", "127.0.0.1"]))).await
    }

    async fn start_with(tls: Option<TestCerts>) -> TestEtcd {
        let mut etcd = TestEtcd {
            child: None,
            dir: tempfile::tempdir().expect("etcd data dir"),
            client_port: free_port(),
            peer_port: free_port(),
            tls,
        };
        etcd.resume().await;
        etcd
    }

    /// The certificate clients must trust, when it serves TLS.
    pub fn certs(&self) -> Option<&TestCerts> {
        self.tls.as_ref()
    }

    /// The client endpoint, `http://127.0.0.1:PORT` (`https://` with TLS).
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.address())
    }

    /// The client address.
    pub fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.client_port))
    }

    /// Kills the server (SIGKILL: as a crash would), keeping its data.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on its data and address, and waits until it answers.
    pub async fn resume(&mut self) {
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let client = self.endpoint();
        let mut command = Command::new("etcd");
        if let Some(certs) = &self.tls {
            command
                .arg("--cert-file")
                .arg(&certs.cert_path)
                .arg("--key-file")
                .arg(&certs.key_path);
        }
        let child = command
            .args(["--name", "test"])
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("test={peer}")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join("etcd.log")).expect("etcd log"))
            .spawn()
            .expect("cannot run etcd: install Debian's etcd-server (scripts/test.sh does)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut client) = self.client().await {
                if client.status().await.is_ok() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not start: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }

    /// A client of this server.
    pub async fn client(&self) -> Result<Client, etcd_client::Error> {
        let options = self.tls.as_ref().map(|certs| {
            ConnectOptions::new().with_tls(
                TlsOptions::new()
                    .ca_certificate(Certificate::from_pem(&certs.cert_pem))
                    .domain_name("localhost"),
            )
        });
        Client::connect([self.endpoint()], options).await
    }

    /// Puts `value` at `key`; returns the revision it made.
    pub async fn put(&self, key: &str, value: &str) -> i64 {
        let mut client = self.client().await.expect("etcd client");
        let response = client.put(key, value, None).await.expect("etcd put");
        response.header().map_or(0, |h| h.revision())
    }

    /// Deletes `key`.
    pub async fn delete(&self, key: &str) {
        let mut client = self.client().await.expect("etcd client");
        client.delete(key, None).await.expect("etcd delete");
    }

    /// Compacts the history up to `revision`, physically, so watches from before it fail.
    pub async fn compact(&self, revision: i64) {
        let mut client = self.client().await.expect("etcd client");
        client
            .compact(revision, Some(CompactionOptions::new().with_physical()))
            .await
            .expect("etcd compact");
    }
}

impl Drop for TestEtcd {
    fn drop(&mut self) {
        self.kill();
    }
}
