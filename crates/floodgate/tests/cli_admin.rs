//! `floodgate dump`, `diff` and `apply` against a real running gateway (and a real etcd), with their exit
//! codes: what a CI pipeline would run.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use floodgate_testkit::{get, Floodgate, MockUpstream, TestEtcd};

const BIN: &str = env!("CARGO_BIN_EXE_floodgate");
const KEY: &str = "cli-admin-key";

fn floodgate(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("FLOODGATE_ADMIN_API_KEY", KEY)
        .output()
        .expect("run floodgate")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

/// A file-sourced configuration with the routes `(id, prefix)`.
fn config(
    listener: SocketAddr,
    admin: SocketAddr,
    upstream: &MockUpstream,
    routes: &[(&str, &str)],
) -> String {
    let routes: String = routes
        .iter()
        .map(|(id, prefix)| {
            format!("  - {{ id: {id}, paths: [\"{prefix}/*\"], upstream: backend }}\n")
        })
        .collect();
    format!(
        "workers: 1\nlisteners: [{{ name: main, address: \"{listener}\" }}]\nadmin: {{ address: \"{admin}\", api_key: \"{KEY}\" }}\nupstreams: [{{ id: backend, targets: [{{ address: \"{}\" }}] }}]\nroutes:\n{routes}",
        upstream.address()
    )
}

fn write(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, yaml).expect("write");
    path
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

async fn status(gw: &Floodgate, at: &str) -> u16 {
    get(gw.listener, at).await.expect("request").status.as_u16()
}

#[tokio::test]
async fn dump_diff_and_apply_against_a_running_gateway() {
    let upstream = MockUpstream::http("backend").await;
    let gw = Floodgate::start(BIN, |l, a| config(l, a, &upstream, &[("api", "/api")])).await;
    let admin = gw.admin.to_string();
    let dir = tempfile::tempdir().expect("dir");

    let dump = floodgate(&["dump", "--admin", &admin]);
    assert_eq!(dump.status.code(), Some(0), "{}", text(&dump.stderr));
    let yaml = text(&dump.stdout);
    assert!(yaml.contains("id: api"), "{yaml}");
    assert!(yaml.contains("api_key: '******'"), "{yaml}");
    assert!(!yaml.contains(KEY), "the key is shown: {yaml}");

    let same = write(
        dir.path(),
        "same.yaml",
        &config(gw.listener, gw.admin, &upstream, &[("api", "/api")]),
    );
    let more = write(
        dir.path(),
        "more.yaml",
        &config(
            gw.listener,
            gw.admin,
            &upstream,
            &[("api", "/api"), ("v2", "/v2")],
        ),
    );
    let nothing = floodgate(&["diff", "--admin", &admin, &path(&same)]);
    assert_eq!(
        nothing.status.code(),
        Some(0),
        "{}{}",
        text(&nothing.stdout),
        text(&nothing.stderr)
    );
    assert!(text(&nothing.stdout).is_empty());
    let changes = floodgate(&["diff", "--admin", &admin, &path(&more)]);
    assert_eq!(changes.status.code(), Some(1), "{}", text(&changes.stderr));
    let shown = text(&changes.stdout);
    assert!(
        shown.contains("--- running") && shown.contains(&format!("+++ {}", path(&more))),
        "{shown}"
    );
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with('+') && l.contains("id: v2")),
        "{shown}"
    );
    let files = floodgate(&["diff", &path(&same), &path(&more)]);
    assert_eq!(files.status.code(), Some(1));

    let applied = floodgate(&["apply", "-c", &path(&more), "--admin", &admin]);
    assert_eq!(applied.status.code(), Some(0), "{}", text(&applied.stderr));
    assert!(text(&applied.stdout).contains("applied: version 2"));
    assert_eq!(status(&gw, "/v2/x").await, 200);
    let after = floodgate(&["diff", "--admin", &admin, &path(&more)]);
    assert_eq!(after.status.code(), Some(0), "{}", text(&after.stdout));

    // What a rollback to version 1 would change: v2 goes.
    let rollback = floodgate(&["diff", "--admin", &admin, "--version", "1"]);
    assert_eq!(rollback.status.code(), Some(1));
    let shown = text(&rollback.stdout);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with('-') && l.contains("id: v2")),
        "{shown}"
    );

    // A file that does not validate is refused before the gateway hears of it.
    let bad = write(
        dir.path(),
        "bad.yaml",
        &config(gw.listener, gw.admin, &upstream, &[("bad", "/bad")])
            .replace("upstream: backend }", "upstream: nowhere }"),
    );
    let refused = floodgate(&["apply", "-c", &path(&bad), "--admin", &admin]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("routes[0].upstream: no upstream with id \"nowhere\""),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(status(&gw, "/v2/x").await, 200);
    let broken = floodgate(&["diff", &path(&bad), &path(&same)]);
    assert_eq!(broken.status.code(), Some(2));

    // Without the key, and with no gateway there: 2.
    let keyless = Command::new(BIN)
        .args(["dump", "--admin", &admin])
        .env_remove("FLOODGATE_ADMIN_API_KEY")
        .output()
        .expect("run");
    assert_eq!(keyless.status.code(), Some(2));
    assert!(
        text(&keyless.stderr).contains("401"),
        "{}",
        text(&keyless.stderr)
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let unreachable = floodgate(&["apply", "-c", &path(&more), "--admin", &closed.to_string()]);
    assert_eq!(
        unreachable.status.code(),
        Some(2),
        "{}",
        text(&unreachable.stderr)
    );
    let usage = floodgate(&["diff", &path(&more)]);
    assert_eq!(usage.status.code(), Some(2));
}

#[tokio::test]
async fn apply_to_a_gateway_on_etcd_goes_resource_by_resource() {
    let etcd = TestEtcd::start().await;
    let upstream = MockUpstream::http("backend").await;
    let dir = tempfile::tempdir().expect("dir");
    let copy = dir.path().join("copy.json");
    let gw = Floodgate::start(BIN, |l, a| {
        format!(
            "workers: 1\nlisteners: [{{ name: main, address: \"{l}\" }}]\nadmin: {{ address: \"{a}\", api_key: \"{KEY}\" }}\nconfig_source: {{ type: etcd, etcd: {{ endpoints: [\"{}\"], prefix: /cli, copy_file: \"{}\" }} }}\n",
            etcd.endpoint(),
            copy.display()
        )
    })
    .await;
    let admin = gw.admin.to_string();
    let two = write(
        dir.path(),
        "two.yaml",
        &config(
            gw.listener,
            gw.admin,
            &upstream,
            &[("api", "/api"), ("v2", "/v2")],
        ),
    );
    let applied = floodgate(&["apply", "-c", &path(&two), "--admin", &admin]);
    assert_eq!(applied.status.code(), Some(0), "{}", text(&applied.stderr));
    assert!(
        text(&applied.stdout).contains("3 written, 0 deleted"),
        "{}",
        text(&applied.stdout)
    );
    assert_eq!(status(&gw, "/api/x").await, 200);
    assert_eq!(status(&gw, "/v2/x").await, 200);

    let one = write(
        dir.path(),
        "one.yaml",
        &config(gw.listener, gw.admin, &upstream, &[("api", "/api")]),
    );
    let applied = floodgate(&["apply", "-c", &path(&one), "--admin", &admin]);
    assert_eq!(applied.status.code(), Some(0), "{}", text(&applied.stderr));
    assert!(
        text(&applied.stdout).contains("2 written, 1 deleted"),
        "{}",
        text(&applied.stdout)
    );
    assert_eq!(status(&gw, "/v2/x").await, 404);
    assert_eq!(status(&gw, "/api/x").await, 200);
}
