//! Real Redis topologies for tests: a Redis Cluster of a few masters, and a master watched by one
//! Sentinel. Every process listens on 127.0.0.1 on free ports, keeps nothing on disk but its own
//! temporary directory, and is killed when its helper is dropped.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;
use crate::redis_server::{commands_processed, connection, keys};

/// How long a topology may take to form before the test gives up.
const READY: Duration = Duration::from_secs(30);

/// Starts `redis-server` with `args`, its log in `log`. Panics when the binary is missing.
fn spawn_redis(args: &[String], log: &Path) -> Child {
    Command::new("redis-server")
        .args(args)
        .arg("--logfile")
        .arg(log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot run redis-server: install Debian's redis-server (scripts/test.sh does)")
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A port for a cluster node: free, with its cluster bus port (the port + 10000) free too and
/// below 65536. The bus port is claimed as [`free_port`] claims its ports (a lock file held until
/// the process exits), so no other test is handed it.
fn cluster_port() -> u16 {
    for _ in 0..100 {
        let port = free_port();
        let Some(bus) = port.checked_add(10_000) else {
            continue;
        };
        let dir = std::env::temp_dir().join("floodgate-test-ports");
        let Ok(lock) = File::create(dir.join(format!("{bus}.lock"))) else {
            continue;
        };
        if lock.try_lock().is_err() || TcpListener::bind(("127.0.0.1", bus)).is_err() {
            continue;
        }
        std::mem::forget(lock);
        return port;
    }
    panic!("no port with a free cluster bus port (port + 10000)");
}

/// A Redis Cluster of masters without replicas (`redis-server --cluster-enabled yes` processes
/// joined by `redis-cli --cluster create`); every node killed when dropped.
pub struct TestRedisCluster {
    nodes: Vec<Child>,
    ports: Vec<u16>,
    dir: tempfile::TempDir,
}

impl TestRedisCluster {
    /// Starts `masters` nodes, joins them into one cluster sharing the 16384 slots, and waits
    /// until every node reports `cluster_state:ok`. Panics, with the nodes' logs, when that takes
    /// more than 30 s, and when the binaries are missing (the test command, `scripts/test.sh`,
    /// installs Debian's `redis-server`, which brings `redis-cli`).
    pub async fn start(masters: usize) -> TestRedisCluster {
        assert!(
            masters >= 3,
            "redis-cli --cluster create needs 3 masters at least"
        );
        let deadline = Instant::now() + READY;
        let mut cluster = TestRedisCluster {
            nodes: Vec::new(),
            ports: Vec::new(),
            dir: tempfile::tempdir().expect("redis cluster dir"),
        };
        for _ in 0..masters {
            let port = cluster_port();
            let dir = cluster.dir.path();
            let args = [
                "--cluster-enabled".into(),
                "yes".into(),
                "--cluster-config-file".into(),
                dir.join(format!("nodes-{port}.conf")).display().to_string(),
                "--port".into(),
                port.to_string(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--save".into(),
                String::new(),
                "--appendonly".into(),
                "no".into(),
                "--dir".into(),
                dir.display().to_string(),
            ];
            let log = dir.join(format!("redis-{port}.log"));
            // Pushed at once: a panic below drops the cluster, which kills what has started.
            cluster.nodes.push(spawn_redis(&args, &log));
            cluster.ports.push(port);
        }
        for url in cluster.urls() {
            while connection(&url).await.is_err() {
                assert!(
                    Instant::now() < deadline,
                    "redis cluster node {url} did not start: {}",
                    cluster.log()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        cluster.create(deadline).await;
        for url in cluster.urls() {
            loop {
                if let Ok(mut connection) = connection(&url).await {
                    let info: redis::RedisResult<String> = redis::cmd("CLUSTER")
                        .arg("INFO")
                        .query_async(&mut connection)
                        .await;
                    if info.is_ok_and(|info| info.lines().any(|l| l.trim() == "cluster_state:ok")) {
                        break;
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "redis cluster node {url} never reported cluster_state:ok: {}",
                    cluster.log()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        cluster
    }

    /// `redis-cli --cluster create` over every node, masters only.
    async fn create(&self, deadline: Instant) {
        let nodes: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let run = tokio::process::Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let left = deadline.saturating_duration_since(Instant::now());
        let output = match tokio::time::timeout(left, run).await {
            Ok(output) => output.expect("cannot run redis-cli: install Debian's redis-server"),
            Err(_) => panic!(
                "redis-cli --cluster create did not finish in time: {}",
                self.log()
            ),
        };
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed ({}):\n{}{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
    }

    /// `redis://127.0.0.1:PORT` of every node.
    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// The keys under `pattern` (`KEYS` on every node, together).
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        let mut found = Vec::new();
        for url in self.urls() {
            found.extend(keys(&url, pattern).await);
        }
        found
    }

    /// Every node's log, each under its port.
    fn log(&self) -> String {
        self.ports
            .iter()
            .map(|port| {
                let log = read_log(&self.dir.path().join(format!("redis-{port}.log")));
                format!("\n--- node {port} ---\n{log}")
            })
            .collect()
    }
}

impl Drop for TestRedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            kill(node);
        }
    }
}

/// A Redis master and one Sentinel watching it as `mymaster` (a quorum of one); both killed when
/// dropped.
pub struct TestRedisSentinel {
    master: Option<Child>,
    sentinel: Option<Child>,
    master_port: u16,
    sentinel_port: u16,
    dir: tempfile::TempDir,
}

impl TestRedisSentinel {
    /// The name the sentinel knows the master by.
    pub const MASTER_NAME: &'static str = "mymaster";

    /// Starts the master, then the sentinel, and waits until the sentinel names the master's
    /// address for `mymaster`. Panics, with both logs, when that takes more than 30 s, and when
    /// the binary is missing (the test command, `scripts/test.sh`, installs Debian's
    /// `redis-server`).
    pub async fn start() -> TestRedisSentinel {
        let deadline = Instant::now() + READY;
        let mut topology = TestRedisSentinel {
            master: None,
            sentinel: None,
            master_port: free_port(),
            sentinel_port: free_port(),
            dir: tempfile::tempdir().expect("redis sentinel dir"),
        };
        let dir = topology.dir.path().to_path_buf();
        let master_dir = dir.join("master");
        std::fs::create_dir_all(&master_dir).expect("redis master dir");
        let args = [
            "--port".into(),
            topology.master_port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            master_dir.display().to_string(),
        ];
        topology.master = Some(spawn_redis(&args, &dir.join("master.log")));
        let master_url = topology.master_url();
        while connection(&master_url).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "redis master did not start: {}",
                topology.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // The sentinel rewrites its configuration file (its state, its id): it lives in the
        // writable temporary directory.
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {sentinel}\n\
                 bind 127.0.0.1\n\
                 dir \"{dir}\"\n\
                 sentinel monitor {name} 127.0.0.1 {master} 1\n\
                 sentinel down-after-milliseconds {name} 5000\n",
                sentinel = topology.sentinel_port,
                dir = dir.display(),
                name = Self::MASTER_NAME,
                master = topology.master_port,
            ),
        )
        .expect("write sentinel.conf");
        let sentinel = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .arg("--logfile")
            .arg(dir.join("sentinel.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "cannot run redis-server: install Debian's redis-server (scripts/test.sh does)",
            );
        topology.sentinel = Some(sentinel);
        let sentinel_url = topology.sentinel_url();
        let expected = topology.master_port.to_string();
        loop {
            if let Ok(mut connection) = connection(&sentinel_url).await {
                let addr: redis::RedisResult<Option<Vec<String>>> = redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(Self::MASTER_NAME)
                    .query_async(&mut connection)
                    .await;
                if let Ok(Some(addr)) = addr {
                    if addr.get(1) == Some(&expected) {
                        return topology;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis sentinel never named the master: {}",
                topology.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `redis://127.0.0.1:SENTINEL_PORT`: the sentinel's own address.
    pub fn sentinel_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.sentinel_port)
    }

    /// The master's address.
    pub fn master_address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.master_port))
    }

    /// The master's `INFO stats` `total_commands_processed`: every command it ran, the sentinel's
    /// `PING`s and `INFO`s among them (the `INFO` asking is counted after it answers).
    pub async fn master_commands_processed(&self) -> u64 {
        commands_processed(&self.master_url()).await
    }

    /// The keys under `pattern` on the master (`KEYS`).
    pub async fn master_keys(&self, pattern: &str) -> Vec<String> {
        keys(&self.master_url(), pattern).await
    }

    fn master_url(&self) -> String {
        format!("redis://{}/0", self.master_address())
    }

    /// The master's log and the sentinel's.
    fn log(&self) -> String {
        let dir = self.dir.path();
        format!(
            "\n--- master ---\n{}\n--- sentinel ---\n{}",
            read_log(&dir.join("master.log")),
            read_log(&dir.join("sentinel.log"))
        )
    }
}

impl Drop for TestRedisSentinel {
    fn drop(&mut self) {
        for mut child in [self.sentinel.take(), self.master.take()]
            .into_iter()
            .flatten()
        {
            kill(&mut child);
        }
    }
}
