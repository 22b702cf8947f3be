//! The admin REST API of the real binary, over real sockets: reading the running configuration and its
//! resources with secrets masked, replacing it whole (with `If-Match`), every refusal and its status, the
//! history and a rollback, and the API key. After each refusal the gateway still serves, unchanged.

use std::net::SocketAddr;
use std::process::Command;

use bytes::Bytes;
use floodgate_testkit::{send, Floodgate, MockUpstream, Proto, TestResponse};
use http::{Method, Request};
use http_body_util::Full;
use serde_json::{json, Value};

const ADMIN_KEY: &str = "admin-key-5e0f1c";
const ALICE_KEY: &str = "alice-key-93b1";
const JWT_SECRET: &str = "a-shared-secret-of-at-least-32-bytes!";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_floodgate")
}

/// `/api/*` to the upstream, `/keyed/*` behind key-auth (alice's key), `/jwt/*` behind jwt-auth with a
/// shared secret, a global cors plugin, and the admin API behind `admin_key` when given.
fn config(
    listener: SocketAddr,
    admin: SocketAddr,
    upstream: &MockUpstream,
    admin_key: &str,
) -> String {
    format!(
        r#"
workers: 1
listeners: [{{ name: main, address: "{listener}" }}]
admin: {{ address: "{admin}"{admin_key} }}
upstreams: [{{ id: backend, targets: [{{ address: "{}" }}] }}]
routes:
  - {{ id: api, paths: ["/api/*"], upstream: backend }}
  - {{ id: keyed, paths: ["/keyed/*"], upstream: backend, plugins: {{ key-auth: {{}} }} }}
  - id: jwt
    paths: ["/jwt/*"]
    upstream: backend
    plugins: {{ jwt-auth: {{ algorithms: [HS256], secret: "{JWT_SECRET}" }} }}
consumers:
  - {{ id: alice, credentials: {{ key-auth: {{ key: "{ALICE_KEY}" }} }} }}
global_plugins:
  cors: {{ allow_origins: ["https://app.example.com"] }}
"#,
        upstream.address(),
        admin_key = if admin_key.is_empty() {
            String::new()
        } else {
            format!(", api_key: \"{admin_key}\"")
        },
    )
}

async fn start(upstream: &MockUpstream) -> Floodgate {
    Floodgate::start(bin(), |l, a| config(l, a, upstream, ADMIN_KEY)).await
}

/// A request to the admin API with the right key.
async fn admin(gw: &Floodgate, method: Method, path: &str, body: Option<&[u8]>) -> TestResponse {
    admin_with(gw, method, path, body, &[("x-api-key", ADMIN_KEY)]).await
}

async fn admin_with(
    gw: &Floodgate,
    method: Method,
    path: &str,
    body: Option<&[u8]>,
    headers: &[(&str, &str)],
) -> TestResponse {
    let mut req = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(Full::new(Bytes::copy_from_slice(body.unwrap_or_default())))
        .expect("request");
    send(gw.admin, Proto::H1, req).await.expect("admin request")
}

async fn status_at(gw: &Floodgate, path: &str, headers: &[(&str, &str)]) -> u16 {
    let mut req = Request::get(path);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(Full::new(Bytes::new())).expect("request");
    send(gw.listener, Proto::H1, req)
        .await
        .expect("request to the listener")
        .status
        .as_u16()
}

/// The gateway serves as its first configuration says: `/api/*` open, `/keyed/*` with alice's key only.
async fn assert_serves_the_first_config(gw: &Floodgate) {
    assert_eq!(status_at(gw, "/api/x", &[]).await, 200);
    assert_eq!(status_at(gw, "/keyed/x", &[]).await, 401);
    assert_eq!(
        status_at(gw, "/keyed/x", &[("apikey", ALICE_KEY)]).await,
        200
    );
    assert_eq!(status_at(gw, "/v2/x", &[]).await, 404);
}

fn assert_error(res: &TestResponse, status: u16, message_part: &str) {
    assert_eq!(res.status.as_u16(), status, "{}", res.text());
    assert_eq!(res.header("content-type"), Some("application/json"));
    let error = res.json()["error"].as_str().unwrap_or_default().to_string();
    assert!(
        error.contains(message_part),
        "{error:?} lacks {message_part:?}"
    );
}

fn no_secret_in(text: &str) {
    for secret in [ADMIN_KEY, ALICE_KEY, JWT_SECRET] {
        assert!(!text.contains(secret), "{secret} shown in {text}");
    }
}

#[tokio::test]
async fn reads_the_running_config_and_its_resources_with_every_secret_masked() {
    let upstream = MockUpstream::http("backend").await;
    let gw = start(&upstream).await;

    let res = admin(&gw, Method::GET, "/floodgate/admin/config", None).await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert!(res.header("etag").is_some_and(|t| t.starts_with('"')));
    assert_eq!(res.header("x-floodgate-config-version"), Some("1"));
    no_secret_in(&res.text());
    let config = res.json();
    assert_eq!(config["routes"][1]["id"], "keyed");
    assert_eq!(config["admin"]["api_key"], "******");
    assert_eq!(
        config["consumers"][0]["credentials"]["key-auth"]["key"],
        "******"
    );
    assert_eq!(
        config["routes"][2]["plugins"]["jwt-auth"]["secret"],
        "******"
    );

    let routes = admin(&gw, Method::GET, "/floodgate/admin/routes", None).await;
    assert_eq!(routes.status, 200);
    assert_eq!(routes.json()["total"], 3);
    assert_eq!(routes.json()["items"][0]["id"], "api");
    let route = admin(&gw, Method::GET, "/floodgate/admin/routes/keyed", None).await;
    assert_eq!(route.status, 200);
    assert!(route.header("etag").is_some());
    assert_eq!(route.json()["paths"], json!(["/keyed/*"]));
    let upstreams = admin(&gw, Method::GET, "/floodgate/admin/upstreams/backend", None).await;
    assert_eq!(
        upstreams.json()["targets"][0]["address"],
        upstream.address().to_string()
    );
    let alice = admin(&gw, Method::GET, "/floodgate/admin/consumers/alice", None).await;
    assert_eq!(alice.json()["credentials"]["key-auth"]["key"], "******");
    let jwt = admin(&gw, Method::GET, "/floodgate/admin/routes/jwt", None).await;
    assert_eq!(jwt.json()["plugins"]["jwt-auth"]["secret"], "******");
    let cors = admin(
        &gw,
        Method::GET,
        "/floodgate/admin/global_plugins/cors",
        None,
    )
    .await;
    assert_eq!(cors.json()["allow_origins"][0], "https://app.example.com");
    let plugins = admin(&gw, Method::GET, "/floodgate/admin/global_plugins", None).await;
    assert_eq!(plugins.json()["items"][0]["id"], "cors");
    for listing in [&routes, &alice, &jwt, &plugins] {
        no_secret_in(&listing.text());
    }

    assert_error(
        &admin(&gw, Method::GET, "/floodgate/admin/routes/nope", None).await,
        404,
        "no route with id \"nope\"",
    );
    let schema = admin(&gw, Method::GET, "/floodgate/admin/schema", None).await;
    assert_eq!(schema.status, 200);
    assert_eq!(
        schema.header("content-type"),
        Some("application/schema+json")
    );
    assert!(schema
        .json()
        .pointer("/$defs/RouteConfig/properties/plugins/properties/jwt-auth")
        .is_some());
    assert_error(
        &admin(&gw, Method::GET, "/floodgate/admin/widgets", None).await,
        404,
        "no such admin resource",
    );
    assert_serves_the_first_config(&gw).await;
}

#[tokio::test]
async fn the_api_key_is_required_once_set_and_never_shown_or_logged() {
    let upstream = MockUpstream::http("backend").await;
    let gw = start(&upstream).await;
    for headers in [
        &[][..],
        &[("x-api-key", "wrong")][..],
        &[("x-api-key", "admin-key-5e0f1")][..],
        &[("authorization", ADMIN_KEY)][..],
    ] {
        let res = admin_with(&gw, Method::GET, "/floodgate/admin/config", None, headers).await;
        assert_error(&res, 401, "X-API-Key");
        assert_eq!(res.header("www-authenticate"), Some("X-API-Key"));
    }
    let res = admin_with(
        &gw,
        Method::POST,
        "/floodgate/admin/config",
        Some(b"{}"),
        &[],
    )
    .await;
    assert_error(&res, 401, "X-API-Key");
    // Health, readiness and metrics stay open to load balancers and scrapers.
    for open in ["/healthz", "/readyz", "/metrics"] {
        let res = admin_with(&gw, Method::GET, open, None, &[]).await;
        assert_eq!(res.status, 200, "{open}");
    }
    assert_eq!(
        admin(&gw, Method::GET, "/floodgate/admin/config", None)
            .await
            .status,
        200
    );
    no_secret_in(&gw.log());
    assert_serves_the_first_config(&gw).await;
}

#[tokio::test]
async fn without_a_key_on_loopback_the_api_is_open() {
    let upstream = MockUpstream::http("backend").await;
    let gw = Floodgate::start(bin(), |l, a| config(l, a, &upstream, "")).await;
    let res = admin_with(&gw, Method::GET, "/floodgate/admin/routes", None, &[]).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["total"], 3);
}

#[tokio::test]
async fn the_key_can_come_from_an_environment_variable_which_must_be_set() {
    let upstream = MockUpstream::http("backend").await;
    let gw = Floodgate::start_with_env(
        bin(),
        &[("FLOODGATE_TEST_ADMIN_KEY", "from-the-env")],
        |l, a| {
            config(l, a, &upstream, "").replace(
                &format!("admin: {{ address: \"{a}\" }}"),
                &format!("admin: {{ address: \"{a}\", api_key_env: FLOODGATE_TEST_ADMIN_KEY }}"),
            )
        },
    )
    .await;
    let headers = [("x-api-key", "from-the-env")];
    let res = admin_with(&gw, Method::GET, "/floodgate/admin/routes", None, &headers).await;
    assert_eq!(res.status, 200);
    let res = admin_with(&gw, Method::GET, "/floodgate/admin/routes", None, &[]).await;
    assert_eq!(res.status, 401);

    // Unset, the process refuses to start and names the field.
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("floodgate.yaml");
    std::fs::write(
        &file,
        "listeners: [{ name: a, address: \"127.0.0.1:0\" }]\nadmin: { address: \"127.0.0.1:0\", api_key_env: FLOODGATE_TEST_UNSET_KEY }\n",
    )
    .expect("write");
    let out = Command::new(bin())
        .args(["run", "-c", &file.display().to_string()])
        .env_remove("FLOODGATE_TEST_UNSET_KEY")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "admin.api_key_env: environment variable FLOODGATE_TEST_UNSET_KEY is not set or empty"
        ),
        "{stderr}"
    );
}

/// The running configuration as the API shows it, with `edit` applied, as a body to post back.
async fn edited(gw: &Floodgate, edit: impl FnOnce(&mut Value)) -> (Vec<u8>, String) {
    let res = admin(gw, Method::GET, "/floodgate/admin/config", None).await;
    let etag = res.header("etag").expect("etag").to_string();
    let mut config = res.json();
    edit(&mut config);
    (serde_json::to_vec(&config).expect("json"), etag)
}

fn add_v2_route(config: &mut Value) {
    config["routes"]
        .as_array_mut()
        .expect("routes")
        .push(json!({ "id": "v2", "paths": ["/v2/*"], "upstream": "backend" }));
}

#[tokio::test]
async fn replacing_the_config_applies_it_keeps_masked_secrets_and_records_a_version() {
    let upstream = MockUpstream::http("backend").await;
    let gw = start(&upstream).await;
    let (body, etag) = edited(&gw, add_v2_route).await;

    let res = admin_with(
        &gw,
        Method::POST,
        "/floodgate/admin/config",
        Some(&body),
        &[("x-api-key", ADMIN_KEY), ("if-match", &etag)],
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["version"], 2);
    let new_etag = res.header("etag").expect("etag").to_string();
    assert_ne!(new_etag, etag);

    assert_eq!(status_at(&gw, "/v2/x", &[]).await, 200);
    // Alice's key came back as "******" and was kept, not replaced by the mask.
    assert_eq!(
        status_at(&gw, "/keyed/x", &[("apikey", ALICE_KEY)]).await,
        200
    );
    assert_eq!(
        status_at(&gw, "/keyed/x", &[("apikey", "******")]).await,
        401
    );
    // So was the admin key.
    assert_eq!(
        admin(&gw, Method::GET, "/floodgate/admin/routes/v2", None)
            .await
            .status,
        200
    );

    let history = admin(&gw, Method::GET, "/floodgate/admin/history", None)
        .await
        .json();
    assert_eq!(history["total"], 2);
    assert_eq!(history["items"][0]["version"], 2);
    assert_eq!(history["items"][0]["source"], "admin");
    assert_eq!(history["items"][0]["current"], true);
    assert_eq!(history["items"][0]["etag"], new_etag.as_str());
    assert_eq!(history["items"][1]["source"], "file");
    assert_eq!(history["items"][1]["current"], false);
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"floodgate_config_reloads_total{result="success"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_yaml_body_is_read_as_the_file_would_be() {
    let upstream = MockUpstream::http("backend").await;
    let gw = start(&upstream).await;
    let yaml = format!(
        "listeners: [{{ name: main, address: \"{}\" }}]\nadmin: {{ address: \"{}\", api_key: \"******\" }}\nupstreams: [{{ id: backend, targets: [{{ address: \"{}\" }}] }}]\nroutes: [{{ id: only, paths: [\"/only/*\"], upstream: backend }}]\n",
        gw.listener,
        gw.admin,
        upstream.address()
    );
    let req = Request::post("/floodgate/admin/config")
        .header("x-api-key", ADMIN_KEY)
        .header("content-type", "application/yaml")
        .body(Full::new(Bytes::from(yaml)))
        .expect("request");
    let res = send(gw.admin, Proto::H1, req).await.expect("admin");
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(status_at(&gw, "/only/x", &[]).await, 200);
    assert_eq!(status_at(&gw, "/api/x", &[]).await, 404);
}

#[tokio::test]
async fn a_stale_if_match_is_412_and_changes_nothing() {
    let upstream = MockUpstream::http("backend").await;
    let gw = start(&upstream).await;
    let (body, etag) = edited(&gw, add_v2_route).await;
    let headers = [("x-api-key", ADMIN_KEY), ("if-match", etag.as_str())];
    let first = admin_with(
        &gw,
        Method::POST,
        "/floodgate/admin/config",
        Some(&body),
        &headers,
    )
    .await;
    assert_eq!(first.status, 200);
    // A second writer that read the same version loses.
    let (other, _) = edited(&gw, |c| c["routes"].as_array_mut().unwrap().truncate(1)).await;
    let res = admin_with(
        &gw,
        Method::POST,
        "/floodgate/admin/config",
        Some(&other),
        &headers,
    )
    .await;
    assert_error(&res, 412, "changed since it was read");
    let res = admin_with(
        &gw,
        Method::POST,
        "/floodgate/admin/config",
        Some(&other),
        &[
            ("x-api-key", ADMIN_KEY),
            ("if-match", "\"0000000000000000\""),
        ],
    )
    .await;
    assert_error(&res, 412, "changed since it was read");
    assert_eq!(
        status_at(&gw, "/keyed/x", &[("apikey", ALICE_KEY)]).await,
        200
    );
    assert_eq!(status_at(&gw, "/v2/x", &[]).await, 200);
    let history = admin(&gw, Method::GET, "/floodgate/admin/history", None)
        .await
        .json();
    assert_eq!(history["total"], 2);
}

#[tokio::test]
async fn an_invalid_config_is_400_with_every_field_at_fault_and_nothing_is_applied() {
    let upstream = MockUpstream::http("backend").await;
    let gw = start(&upstream).await;
    let (body, _) = edited(&gw, |c| {
        add_v2_route(c);
        c["routes"][3]["upstream"] = json!("usr");
        c["upstreams"][0]["targets"][0]["weight"] = json!("heavy");
        c["consumers"][0]["plugins"] = json!({ "jwt-auth": { "secret": "******" } });
    })
    .await;
    let res = admin(&gw, Method::POST, "/floodgate/admin/config", Some(&body)).await;
    assert_error(&res, 400, "invalid configuration");
    let paths: Vec<String> = res.json()["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["path"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(paths, ["consumers[0].plugins.jwt-auth.secret"]);

    // With the stray mask gone, the weight that does not decode is reported: the checks between
    // resources (a route's upstream) run once every field decodes, as for a file.
    let (body, _) = edited(&gw, |c| {
        add_v2_route(c);
        c["routes"][3]["upstream"] = json!("usr");
        c["upstreams"][0]["targets"][0]["weight"] = json!("heavy");
    })
    .await;
    let res = admin(&gw, Method::POST, "/floodgate/admin/config", Some(&body)).await;
    assert_error(&res, 400, "invalid configuration");
    let errors = res.json()["errors"].clone();
    let paths: Vec<&str> = errors
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["path"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(paths, ["upstreams[0].targets[0].weight"], "{errors}");

    let (body, _) = edited(&gw, |c| {
        add_v2_route(c);
        c["routes"][3]["upstream"] = json!("usr");
        c["listeners"][0]["address"] = json!("nowhere");
    })
    .await;
    let res = admin(&gw, Method::POST, "/floodgate/admin/config", Some(&body)).await;
    assert_error(&res, 400, "invalid configuration");
    let messages: Vec<String> = res.json()["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e["path"].as_str().unwrap(),
                e["message"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("listeners[0].address: ")),
        "{messages:?}"
    );
    assert!(
        messages.contains(&"routes[3].upstream: no upstream with id \"usr\"".to_string()),
        "{messages:?}"
    );

    // A plugin's own check runs before anything is applied too.
    let (body, _) = edited(&gw, |c| {
        c["routes"][0]["plugins"] = json!({ "rate-limit": { "rate": "lots" } });
    })
    .await;
    let res = admin(&gw, Method::POST, "/floodgate/admin/config", Some(&body)).await;
    assert_error(&res, 400, "invalid configuration");
    assert!(
        res.text().contains("routes[0].plugins.rate-limit"),
        "{}",
        res.text()
    );

    assert_serves_the_first_config(&gw).await;
    let history = admin(&gw, Method::GET, "/floodgate/admin/history", None)
        .await
        .json();
    assert_eq!(history["total"], 1);
}

#[tokio::test]
async fn malformed_and_oversized_bodies_and_resource_writes_are_refused_and_the_gateway_serves_on()
{
    let upstream = MockUpstream::http("backend").await;
    let gw = start(&upstream).await;
    for bad in [
        &b"{"[..],
        b"",
        b"[1, 2]",
        b"\"config\"",
        b"{\"routes\": 7}",
        b"\xff\xfe",
    ] {
        let res = admin(&gw, Method::POST, "/floodgate/admin/config", Some(bad)).await;
        assert_eq!(
            res.status,
            400,
            "{:?}: {}",
            String::from_utf8_lossy(bad),
            res.text()
        );
        assert_eq!(res.json()["error"], "invalid configuration");
    }
    let huge = vec![b' '; 9 * 1024 * 1024];
    let res = admin(&gw, Method::POST, "/floodgate/admin/config", Some(&huge)).await;
    assert_error(&res, 413, "larger than");

    for (method, path) in [
        (Method::PUT, "/floodgate/admin/routes/api"),
        (Method::PATCH, "/floodgate/admin/routes/api"),
        (Method::DELETE, "/floodgate/admin/upstreams/backend"),
        (Method::POST, "/floodgate/admin/consumers"),
    ] {
        let res = admin(&gw, method.clone(), path, Some(b"{}")).await;
        assert_error(
            &res,
            405,
            "read-only while the configuration comes from a file",
        );
        assert_eq!(res.header("allow"), Some("GET, HEAD"), "{method} {path}");
    }
    for (method, path, allow) in [
        (Method::DELETE, "/floodgate/admin/config", "GET, POST, PUT"),
        (Method::POST, "/floodgate/admin/history", "GET"),
        (Method::GET, "/floodgate/admin/history/1/rollback", "POST"),
    ] {
        let res = admin(&gw, method, path, None).await;
        assert_error(&res, 405, "method not allowed");
        assert_eq!(res.header("allow"), Some(allow));
    }
    assert_serves_the_first_config(&gw).await;
    assert_eq!(
        admin(&gw, Method::GET, "/floodgate/admin/history", None)
            .await
            .json()["total"],
        1
    );
}

#[tokio::test]
async fn a_config_whose_new_listener_cannot_bind_is_409_and_nothing_of_it_is_applied() {
    let upstream = MockUpstream::http("backend").await;
    let gw = start(&upstream).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_addr = taken.local_addr().expect("addr").to_string();
    let (body, _) = edited(&gw, |c| {
        add_v2_route(c);
        c["listeners"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "name": "second", "address": taken_addr }));
    })
    .await;
    let res = admin(&gw, Method::POST, "/floodgate/admin/config", Some(&body)).await;
    assert_error(&res, 409, "listeners[1].address: cannot listen on");
    assert_serves_the_first_config(&gw).await;
    drop(taken);
}

#[tokio::test]
async fn a_rollback_restores_an_earlier_version_as_a_new_one() {
    let upstream = MockUpstream::http("backend").await;
    let gw = start(&upstream).await;
    let (body, _) = edited(&gw, |c| {
        add_v2_route(c);
        c["routes"].as_array_mut().unwrap().remove(0);
    })
    .await;
    let res = admin(&gw, Method::POST, "/floodgate/admin/config", Some(&body)).await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(status_at(&gw, "/api/x", &[]).await, 404);

    let old = admin(&gw, Method::GET, "/floodgate/admin/history/1", None).await;
    assert_eq!(old.status, 200);
    assert_eq!(old.json()["routes"][0]["id"], "api");
    no_secret_in(&old.text());

    let res = admin(
        &gw,
        Method::POST,
        "/floodgate/admin/history/1/rollback",
        None,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["version"], 3);
    assert_serves_the_first_config(&gw).await;
    let history = admin(&gw, Method::GET, "/floodgate/admin/history", None)
        .await
        .json();
    assert_eq!(history["items"][0]["source"], "rollback");
    assert_eq!(history["items"][0]["etag"], history["items"][2]["etag"]);

    for missing in ["99", "x", "-1"] {
        let path = format!("/floodgate/admin/history/{missing}/rollback");
        assert_error(
            &admin(&gw, Method::POST, &path, None).await,
            404,
            "in the history",
        );
    }
    assert_serves_the_first_config(&gw).await;
}
