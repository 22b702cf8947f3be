//! The command line as a user meets it: `--version`, `schema`, `validate` with every kind of mistake, and
//! `run` with a bad file or with no file at all (the embedded default configuration).

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use floodgate_testkit::{send, Proto, TestResponse};
use http::Request;
use http_body_util::Full;

const BIN: &str = env!("CARGO_BIN_EXE_floodgate");

fn floodgate(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run the floodgate binary")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// Writes `yaml` to a temporary file and runs `floodgate validate -c` on it.
fn validate(yaml: &str) -> Output {
    let mut file = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile()
        .expect("temp file");
    file.write_all(yaml.as_bytes()).expect("write config");
    floodgate(&["validate", "-c", &file.path().display().to_string()])
}

/// Runs `validate` on `yaml`, expects it to fail and returns what it printed on stderr.
fn validate_fails(yaml: &str) -> String {
    let output = validate(yaml);
    let err = stderr(&output);
    assert!(
        !output.status.success(),
        "validate accepted an invalid file; stdout: {} stderr: {err}",
        stdout(&output)
    );
    err
}

fn assert_reports(err: &str, expected: &str) {
    assert!(
        err.contains(expected),
        "expected {expected:?} in the error output:\n{err}"
    );
}

const LISTENER: &str = "listeners: [{ name: main, address: \"127.0.0.1:18080\" }]\n";

#[test]
fn version_flag_prints_the_version() {
    let output = floodgate(&["--version"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output).trim(),
        format!("floodgate {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn schema_prints_a_json_schema_with_listeners_and_routes() {
    let output = floodgate(&["schema"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let schema: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("schema output is JSON");
    let properties = schema["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("schema has no properties: {schema}"));
    assert!(properties.contains_key("listeners"), "{schema}");
    assert!(properties.contains_key("routes"), "{schema}");
}

/// Every plugin's configuration and credentials are described field by field, wherever plugins are
/// configured, and every reference in the schema resolves.
#[test]
fn schema_describes_every_plugin_and_its_credentials() {
    let output = floodgate(&["schema"]);
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    for at in [
        "/properties/global_plugins",
        "/$defs/RouteConfig/properties/plugins",
        "/$defs/ConsumerConfig/properties/plugins",
    ] {
        let plugins = schema.pointer(at).unwrap_or_else(|| panic!("no {at}"));
        assert_eq!(plugins["additionalProperties"], false, "{at}");
        for name in [
            "jwt-auth",
            "key-auth",
            "rate-limit",
            "cors",
            "traffic-split",
        ] {
            assert!(
                plugins["properties"].get(name).is_some(),
                "{at} lacks {name}"
            );
        }
    }
    let jwt = resolve(
        &schema,
        &schema["$defs"]["RouteConfig"]["properties"]["plugins"]["properties"]["jwt-auth"],
    );
    assert_eq!(jwt["properties"]["key_claim"]["default"], "iss", "{jwt}");
    assert!(
        jwt["required"]
            .as_array()
            .unwrap()
            .contains(&"algorithms".into()),
        "{jwt}"
    );
    let credentials = &schema["$defs"]["ConsumerConfig"]["properties"]["credentials"]["properties"];
    let names: Vec<&String> = credentials.as_object().unwrap().keys().collect();
    assert_eq!(names, ["basic-auth", "jwt-auth", "key-auth"]);
    let key_auth = resolve(&schema, &credentials["key-auth"]);
    assert!(key_auth["properties"].get("key").is_some(), "{key_auth}");
    let mut refs = Vec::new();
    collect_refs(&schema, &mut refs);
    assert!(refs.len() > 20);
    for r in refs {
        assert!(
            schema.pointer(r.trim_start_matches('#')).is_some(),
            "{r} does not resolve"
        );
    }
}

fn resolve<'a>(
    schema: &'a serde_json::Value,
    value: &'a serde_json::Value,
) -> &'a serde_json::Value {
    match value["$ref"].as_str() {
        Some(r) => schema
            .pointer(r.trim_start_matches('#'))
            .expect("reference"),
        None => value,
    }
}

fn collect_refs(value: &serde_json::Value, refs: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", serde_json::Value::String(r)) => refs.push(r.clone()),
                    _ => collect_refs(v, refs),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
        _ => {}
    }
}

#[test]
fn validate_accepts_a_valid_file() {
    let output = validate(
        r#"
workers: 2
shutdown_timeout: 10s
listeners:
  - { name: public, address: "127.0.0.1:18080" }
admin: { address: "127.0.0.1:19180" }
upstreams:
  - id: users
    targets: [{ address: "10.0.0.5:8000", weight: 3 }, { address: "users.internal:8000" }]
routes:
  - id: users-api
    hosts: ["api.example.com", "*.example.com"]
    paths: ["/users", "/users/*", "/v1/users/{id}"]
    methods: [GET, POST]
    upstream: users
    timeout: 15s
  - { id: hello, paths: ["/hello"], respond: { status: 200, body: "hi" } }
"#,
    );
    assert!(
        output.status.success(),
        "valid file rejected: {}",
        stderr(&output)
    );
    assert_reports(&stdout(&output), "configuration is valid");
}

#[test]
fn validate_warns_of_a_guarded_method_beside_an_open_route_and_still_accepts_the_file() {
    let output = validate(&format!(
        "{LISTENER}upstreams: [{{ id: u, targets: [{{ address: \"127.0.0.1:1\" }}] }}]\n\
         routes:\n  - {{ id: all, paths: [\"/*\"], upstream: u }}\n  - {{ id: admin, paths: [\"/admin/*\"], methods: [GET], upstream: u, plugins: {{ key-auth: {{}} }} }}\n"
    ));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_reports(
        &stderr(&output),
        "warning: routes[1].methods: only GET of route \"admin\"'s paths are authenticated: other methods on paths it shares with route \"all\" (routes[0]) reach that route without authentication",
    );
    assert_reports(&stdout(&output), "configuration is valid");
}

#[test]
fn validate_reports_an_unknown_field_with_its_path() {
    let err = validate_fails(&format!(
        "{LISTENER}routes: [{{ id: r, paths: [\"/\"], respond: {{ body: x }}, colour: red }}]\n"
    ));
    assert_reports(&err, "routes[0].colour: unknown field `colour`");
}

#[test]
fn validate_reports_a_missing_upstream_reference() {
    let err = validate_fails(&format!(
        "{LISTENER}upstreams: [{{ id: users, targets: [{{ address: \"127.0.0.1:1\" }}] }}]\n\
         routes:\n  - {{ id: a, paths: [\"/a\"], upstream: users }}\n  - {{ id: b, paths: [\"/b\"], upstream: users }}\n  - {{ id: c, paths: [\"/c\"], upstream: usr }}\n"
    ));
    assert_reports(&err, "routes[2].upstream: no upstream with id \"usr\"");
}

#[test]
fn validate_reports_duplicate_ids() {
    let err = validate_fails(&format!(
        "{LISTENER}upstreams:\n  - {{ id: u, targets: [{{ address: \"127.0.0.1:1\" }}] }}\n  - {{ id: u, targets: [{{ address: \"127.0.0.1:2\" }}] }}\n\
         routes:\n  - {{ id: r, paths: [\"/a\"], upstream: u }}\n  - {{ id: r, paths: [\"/b\"], upstream: u }}\n"
    ));
    assert_reports(&err, "upstreams[1].id: duplicate upstream id \"u\"");
    assert_reports(&err, "routes[1].id: duplicate route id \"r\"");
}

#[test]
fn validate_reports_a_bad_address() {
    let err = validate_fails("listeners: [{ name: main, address: \"localhost\" }]\n");
    assert_reports(
        &err,
        "listeners[0].address: invalid address \"localhost\", expected ip:port such as \"127.0.0.1:8080\"",
    );
}

#[test]
fn validate_reports_bad_dns_settings_with_their_paths() {
    let err = validate_fails(&format!(
        "{LISTENER}dns: {{ nameservers: [\"10.0.0.2\"], min_ttl: 1m, max_ttl: 10s, timeout: 0s }}\n\
         upstreams: [{{ id: u, targets: [{{ address: \"users.internal:8000\" }}] }}]\n"
    ));
    assert_reports(
        &err,
        "dns.nameservers[0]: invalid name server \"10.0.0.2\", expected ip:port such as \"10.0.0.2:53\"",
    );
    assert_reports(&err, "dns.timeout: must be greater than zero");
    assert_reports(&err, "dns.max_ttl: must be at least min_ttl (1m)");
}

#[test]
fn validate_reports_a_bad_duration() {
    let err = validate_fails(&format!(
        "{LISTENER}routes: [{{ id: r, paths: [\"/\"], respond: {{ body: x }}, timeout: soon }}]\n"
    ));
    assert_reports(&err, "routes[0].timeout: invalid duration \"soon\"");
}

#[test]
fn validate_reports_empty_targets() {
    let err = validate_fails(&format!(
        "{LISTENER}upstreams: [{{ id: u, targets: [] }}]\nroutes: [{{ id: r, paths: [\"/\"], upstream: u }}]\n"
    ));
    assert_reports(
        &err,
        "upstreams[0].targets: at least one target is required (or discovery)",
    );
}

#[test]
fn validate_reports_an_invalid_path_pattern() {
    let err = validate_fails(&format!(
        "{LISTENER}routes:\n  - {{ id: a, paths: [\"users\"], respond: {{ body: a }} }}\n  - {{ id: b, paths: [\"/a/*/b\"], respond: {{ body: b }} }}\n"
    ));
    assert_reports(
        &err,
        "routes[0].paths[0]: path \"users\" must start with \"/\"",
    );
    assert_reports(
        &err,
        "routes[1].paths[0]: path \"/a/*/b\": \"*\" is only allowed as the last segment",
    );
}

#[test]
fn validate_reports_conflicting_routes() {
    let err = validate_fails(&format!(
        "{LISTENER}routes:\n  - {{ id: a, paths: [\"/x\"], methods: [GET], respond: {{ body: a }} }}\n  - {{ id: b, paths: [\"/x\"], methods: [GET], respond: {{ body: b }} }}\n"
    ));
    assert_reports(
        &err,
        "routes[1]: conflicts with route \"a\": same host, path \"/x\", methods and headers",
    );
}

#[test]
fn validate_reports_every_error_at_once() {
    let err = validate_fails(
        r#"
listeners:
  - { name: a, address: "127.0.0.1:18080" }
  - { name: a, address: "localhost" }
upstreams:
  - { id: u, targets: [] }
routes:
  - { id: r, paths: ["/"], upstream: usr }
"#,
    );
    assert_reports(&err, "invalid configuration (4 errors)");
    for expected in [
        "listeners[1].name: duplicate listener name \"a\"",
        "listeners[1].address: invalid address \"localhost\"",
        "upstreams[0].targets: at least one target is required (or discovery)",
        "routes[0].upstream: no upstream with id \"usr\"",
    ] {
        assert_reports(&err, expected);
    }
}

#[test]
fn validate_reports_a_missing_tls_certificate_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.pem").display().to_string();
    let err = validate_fails(&format!(
        "listeners:\n  - name: tls\n    address: \"127.0.0.1:18443\"\n    tls:\n      certificates: [{{ cert: \"{missing}\", key: \"{missing}\" }}]\n\
         routes: [{{ id: r, paths: [\"/\"], respond: {{ body: x }} }}]\n"
    ));
    assert_reports(&err, "listeners[0].tls.certificates[0].cert");
}

#[test]
fn validate_reports_a_missing_upstream_ca_file_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("ca.pem").display().to_string();
    let err = validate_fails(&format!(
        "listeners: [{{ name: main, address: \"127.0.0.1:18080\" }}]\n\
         upstreams:\n  - {{ id: secure, targets: [{{ address: \"127.0.0.1:9443\" }}], tls: {{ ca_file: \"{missing}\" }} }}\n\
         routes: [{{ id: r, paths: [\"/\"], upstream: secure }}]\n"
    ));
    assert_reports(&err, "upstreams[0].tls.ca_file");
    // The route that uses the broken upstream is not reported a second time as a dangling reference.
    assert!(!err.contains("no upstream with id"), "{err}");
}

#[test]
fn validate_reports_an_unreadable_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nope.yaml").display().to_string();
    let output = floodgate(&["validate", "-c", &missing]);
    assert!(!output.status.success());
    assert_reports(&stderr(&output), &missing);
}

#[test]
fn run_with_a_missing_file_fails_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nope.yaml").display().to_string();
    let output = floodgate(&["run", "-c", &missing]);
    assert!(!output.status.success(), "run started without its file");
    assert_reports(&stderr(&output), &format!("cannot read {missing}"));
}

#[test]
fn run_with_an_invalid_file_fails_naming_the_field() {
    let mut file = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile()
        .expect("temp file");
    // Port 0 so that, should run accept this file by mistake, it cannot collide with anything.
    file.write_all(
        b"listeners: [{ name: main, address: \"127.0.0.1:0\" }]\nadmin: { address: \"127.0.0.1:0\" }\n\
          upstreams: [{ id: u, targets: [{ address: \"127.0.0.1:1\" }] }]\n\
          routes: [{ id: r, paths: [\"/\"], upstream: usr }]\n",
    )
    .expect("write config");
    let mut child = Command::new(BIN)
        .args(["run", "-c", &file.path().display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn floodgate run");
    let status = wait_for_exit(&mut child, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("run kept running with an invalid file"));
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().expect("stderr"), &mut err)
        .expect("read stderr");
    assert!(!status.success());
    assert_reports(&err, "routes[0].upstream: no upstream with id \"usr\"");
}

/// Waits for the process to exit (a safety net against a hung test, not a timing assertion); kills it and
/// returns None when it does not.
#[allow(clippy::disallowed_methods)] // a test thread, not a worker
fn wait_for_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn get(
    addr: SocketAddr,
    path: &str,
) -> impl std::future::Future<Output = Result<TestResponse, String>> {
    let req = Request::get(path)
        .body(Full::new(Bytes::new()))
        .expect("request");
    send(addr, Proto::H1, req)
}

/// Polls `path` until it answers 200 (at most 30 s, a safety net for a broken start, not a timing check).
async fn poll_ok(addr: SocketAddr, path: &str, log: &Path) -> TestResponse {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match get(addr, path).await {
            Ok(res) if res.status == 200 => return res,
            other if Instant::now() > deadline => panic!(
                "GET {path} on {addr} never answered 200 (last: {other:?}); log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            ),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Kills the gateway when a failed assertion unwinds past it, so it does not keep the fixed ports.
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn ports_free(addresses: &[&str]) -> bool {
    addresses.iter().all(|a| TcpListener::bind(a).is_ok())
}

#[tokio::test]
async fn run_without_config_serves_the_builtin_welcome_page() {
    // The embedded default binds fixed ports; on a machine where they are taken this test cannot run.
    if !ports_free(&["127.0.0.1:8080", "127.0.0.1:9180"]) {
        eprintln!("skipped: 127.0.0.1:8080 or 127.0.0.1:9180 is busy, the built-in configuration needs both");
        return;
    }
    let log_dir = tempfile::tempdir().expect("temp dir");
    let log = log_dir.path().join("floodgate.log");
    let log_file = std::fs::File::create(&log).expect("log file");
    let child = Command::new(BIN)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("spawn floodgate run");
    let mut guard = KillOnDrop(Some(child));
    let gateway: SocketAddr = "127.0.0.1:8080".parse().expect("addr");
    let admin: SocketAddr = "127.0.0.1:9180".parse().expect("addr");

    let welcome = poll_ok(gateway, "/", &log).await;
    assert!(
        welcome
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{welcome:?}"
    );
    assert!(welcome.text().contains("floodgate"), "{}", welcome.text());
    let any_path = poll_ok(gateway, "/some/other/path", &log).await;
    assert!(any_path.text().contains("floodgate"));
    assert_eq!(poll_ok(admin, "/healthz", &log).await.status, 200);
    assert_eq!(poll_ok(admin, "/readyz", &log).await.status, 200);
    let status = poll_ok(admin, "/status/upstreams", &log).await;
    assert_eq!(status.header("content-type"), Some("application/json"));
    assert!(status.json()["upstreams"].is_array(), "{}", status.text());

    let mut child = guard.0.take().expect("child");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let status =
        tokio::task::spawn_blocking(move || wait_for_exit(&mut child, Duration::from_secs(60)))
            .await
            .expect("waiter");
    let status = status.unwrap_or_else(|| {
        panic!(
            "floodgate did not exit after SIGTERM; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    assert_eq!(
        status.code(),
        Some(0),
        "log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

#[test]
fn validate_reports_bad_access_log_settings_with_their_paths() {
    for (access_log, expected) in [
        (
            "{ path: a.log, format: \"$remote_addr $statuss\" }",
            "access_log.format: unknown variable $statuss",
        ),
        (
            "{ path: a.log, format: jsonl }",
            "access_log.format: unknown format \"jsonl\"",
        ),
        (
            "{ path: a.log, format: \"${status\" }",
            "access_log.format: a `${` is not closed by `}`",
        ),
        (
            "{ path: a.log, success_sample_ratio: 1.5 }",
            "access_log.success_sample_ratio: must be between 0 and 1, got 1.5",
        ),
        ("{ path: \"\" }", "access_log.path: must name a file"),
    ] {
        let err = validate_fails(&format!("{LISTENER}access_log: {access_log}\n"));
        assert_reports(&err, expected);
    }
    let output = validate(&format!(
        "{LISTENER}access_log: {{ path: a.log, format: \"$remote_addr ${{status}} $http_x_tenant\", success_sample_ratio: 0.25 }}\n"
    ));
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn validate_reports_bad_tracing_settings_with_their_paths() {
    let err = validate_fails(&format!(
        "{LISTENER}tracing: {{ endpoint: \"collector:4317\", sample_ratio: -0.5, queue_spans: 4, export_timeout: 0s, keep: {{ slower_than: 0s }} }}\n"
    ));
    assert_reports(
        &err,
        "tracing.endpoint: \"collector:4317\" is not an http:// URL",
    );
    assert_reports(
        &err,
        "tracing.sample_ratio: must be between 0 and 1, got -0.5",
    );
    assert_reports(&err, "tracing.queue_spans: must be between 16 and 1048576");
    assert_reports(&err, "tracing.export_timeout: must be greater than zero");
    assert_reports(&err, "tracing.keep.slower_than: must be greater than zero");
    let err = validate_fails(&format!(
        "{LISTENER}tracing: {{ endpoint: \"http://c:4317\", protocol: thrift }}\n"
    ));
    assert_reports(
        &err,
        "tracing.protocol: unknown variant `thrift`, expected `grpc` or `http`",
    );
    let err = validate_fails(&format!(
        "{LISTENER}tracing: {{ endpoint: \"http://c:4317\", keep: {{ errors: true }} }}\n"
    ));
    assert_reports(&err, "tracing.keep.errors: unknown field `errors`");
    let output = validate(&format!(
        "{LISTENER}tracing: {{ endpoint: \"http://c:4318\", protocol: http, sample_ratio: 0.1, accept: [b3], keep: {{ plugin_rejections: [rate-limit], slower_than: 1s }} }}\n"
    ));
    assert!(output.status.success(), "{}", stderr(&output));
}
