//! docs/operations.md's "A cluster on one machine", run as written: every shell block of the
//! section in order, in an empty directory, with the documented ports swapped for free ones and
//! the documented service (127.0.0.1:9001) played by a mock upstream. Each `# expect:` line of a
//! block must appear in what it printed.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use floodgate_testkit::{free_port, MockUpstream};

const BIN: &str = env!("CARGO_BIN_EXE_floodgate");
const SECTION: &str = "## A cluster on one machine";
/// The ports the section names; each is replaced by a free one.
const PORTS: [u16; 10] = [2379, 2380, 6379, 8081, 8082, 8083, 9181, 9182, 9183, 9001];

/// The section's `sh` blocks, in order.
fn blocks() -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/operations.md");
    let text = std::fs::read_to_string(&path).expect("docs/operations.md");
    let start = text.find(SECTION).expect("the section");
    let rest = &text[start + SECTION.len()..];
    let section = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    let mut blocks = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "```sh" {
            let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            blocks.push(body.join("\n"));
        }
    }
    blocks
}

/// `text` with every documented port (as a whole number) replaced by its stand-in.
fn with_ports(text: &str, ports: &BTreeMap<u16, u16>) -> String {
    let mut out = String::new();
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        let swapped = digits.parse::<u16>().ok().and_then(|p| ports.get(&p));
        match swapped {
            Some(port) => out.push_str(&port.to_string()),
            None => out.push_str(digits),
        }
        digits.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    out
}

/// Process groups started by the steps; all killed when dropped (a failed step leaves nothing).
struct Groups(Vec<u32>);

impl Drop for Groups {
    fn drop(&mut self) {
        for group in &self.0 {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{group}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_walk_through_runs_as_written() {
    let service = MockUpstream::http("app").await;
    let service_port: u16 = service
        .address()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the service's port");
    let ports: BTreeMap<u16, u16> = PORTS
        .iter()
        .map(|&p| (p, if p == 9001 { service_port } else { free_port() }))
        .collect();
    let dir = tempfile::tempdir().expect("a directory");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("bin dir");
    std::os::unix::fs::symlink(BIN, bin.join("floodgate")).expect("floodgate on the PATH");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let work = dir.path().join("cluster");
    std::fs::create_dir(&work).expect("work dir");

    let blocks = blocks();
    assert_eq!(blocks.len(), 8, "the section's steps");
    let mut groups = Groups(Vec::new());
    for (step, block) in blocks.iter().enumerate() {
        let script = with_ports(block, &ports);
        let mut command = tokio::process::Command::new("bash");
        command
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(&work)
            .env("PATH", &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // Its own process group, so what it leaves running in the background can be stopped.
        command.as_std_mut().process_group(0);
        let child = command.spawn().expect("bash");
        groups.0.push(child.id().expect("a pid"));
        let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("step {} did not finish:\n{script}", step + 1))
            .expect("bash ran");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let logs: String = ["gateway-1.log", "etcd.log", "redis.log", "register.log"]
            .iter()
            .filter_map(|f| {
                std::fs::read_to_string(work.join(f))
                    .ok()
                    .map(|t| format!("--- {f}\n{t}"))
            })
            .collect();
        assert!(
            output.status.success(),
            "step {} failed ({}):\n{script}\nstdout:\n{stdout}\nstderr:\n{stderr}\n{logs}",
            step + 1,
            output.status
        );
        let printed: Vec<String> = stdout
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        for expected in block
            .lines()
            .filter_map(|l| l.trim().strip_prefix("# expect: "))
        {
            let expected = with_ports(expected, &ports);
            assert!(
                printed.contains(&expected),
                "step {}: expected the line {expected:?}, printed:\n{stdout}\nstderr:\n{stderr}\n{logs}",
                step + 1
            );
        }
    }
    // The service answered the ten requests the limit let through.
    assert_eq!(service.requests(), 10);
}
