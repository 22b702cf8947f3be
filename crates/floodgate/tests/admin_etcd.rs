//! The admin API's writes when the configuration comes from etcd, against the real binary and a real
//! etcd: each status a write can get, what reaches etcd (read back with the etcd client), and that the
//! gateway serves a change as soon as its write is answered.

use std::net::SocketAddr;

use bytes::Bytes;
use floodgate_testkit::{
    get, presented_certificate, send, Floodgate, MockUpstream, Proto, TestEtcd, TestResponse,
};
use http::{Method, Request};
use http_body_util::Full;
use serde_json::{json, Value};

const PREFIX: &str = "/fg";
const ADMIN_KEY: &str = "etcd-admin-key";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_floodgate")
}

fn bootstrap(
    listener: SocketAddr,
    admin: SocketAddr,
    etcd: &TestEtcd,
    dir: &std::path::Path,
) -> String {
    format!(
        r#"
workers: 1
listeners: [{{ name: main, address: "{listener}" }}]
admin: {{ address: "{admin}", api_key: "{ADMIN_KEY}" }}
config_source:
  type: etcd
  etcd: {{ endpoints: ["{}"], prefix: "{PREFIX}", timeout: 2s, copy_file: "{}" }}
"#,
        etcd.endpoint(),
        dir.join("copy.json").display()
    )
}

async fn admin(
    gw: &Floodgate,
    method: Method,
    path: &str,
    body: Option<Value>,
    if_match: Option<&str>,
) -> TestResponse {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("/floodgate/admin{path}"))
        .header("x-api-key", ADMIN_KEY);
    if let Some(tag) = if_match {
        req = req.header("if-match", tag);
    }
    let body = body
        .map(|b| serde_json::to_vec(&b).unwrap())
        .unwrap_or_default();
    let req = req.body(Full::new(Bytes::from(body))).expect("request");
    send(gw.admin, Proto::H1, req).await.expect("admin request")
}

async fn status(gw: &Floodgate, path: &str) -> u16 {
    get(gw.listener, path)
        .await
        .expect("request")
        .status
        .as_u16()
}

/// The value etcd holds at `<prefix>/<key>`, as JSON.
async fn in_etcd(etcd: &TestEtcd, key: &str) -> Option<Value> {
    let mut client = etcd.client().await.expect("client");
    let response = client
        .get(format!("{PREFIX}/{key}"), None)
        .await
        .expect("get");
    response
        .kvs()
        .first()
        .map(|kv| serde_json::from_slice(kv.value()).expect("JSON in etcd"))
}

async fn start() -> (TestEtcd, MockUpstream, tempfile::TempDir, Floodgate) {
    let etcd = TestEtcd::start().await;
    let upstream = MockUpstream::http("backend").await;
    etcd.put(
        &format!("{PREFIX}/upstreams/backend"),
        &format!(
            r#"{{"targets": [{{"address": "{}"}}]}}"#,
            upstream.address()
        ),
    )
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let gw = Floodgate::start(bin(), |l, a| bootstrap(l, a, &etcd, dir.path())).await;
    (etcd, upstream, dir, gw)
}

async fn put_api_route(gw: &Floodgate) {
    let res = admin(
        gw,
        Method::PUT,
        "/routes/api",
        Some(route("api", "/api")),
        None,
    )
    .await;
    assert_eq!(res.status, 201, "{}", res.text());
}

fn route(id: &str, prefix: &str) -> Value {
    json!({ "id": id, "paths": [format!("{prefix}/*")], "upstream": "backend" })
}

#[tokio::test]
async fn routes_are_created_changed_and_deleted_through_etcd_with_revisions_as_tags() {
    let (etcd, _upstream, _dir, gw) = start().await;

    let created = admin(&gw, Method::POST, "/routes", Some(route("v2", "/v2")), None).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let tag = created.header("etag").expect("etag").to_string();
    // Answered once it is in service here.
    assert_eq!(status(&gw, "/v2/x").await, 200);
    assert_eq!(
        in_etcd(&etcd, "routes/v2").await.expect("in etcd")["paths"][0],
        "/v2/*"
    );

    let again = admin(&gw, Method::POST, "/routes", Some(route("v2", "/v2")), None).await;
    assert_eq!(again.status, 409, "{}", again.text());
    assert!(again.text().contains("already exists"));
    let read = admin(&gw, Method::GET, "/routes/v2", None, None).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.header("etag"), Some(tag.as_str()));

    let stale = admin(
        &gw,
        Method::PUT,
        "/routes/v2",
        Some(route("v2", "/v9")),
        Some("\"1\""),
    )
    .await;
    assert_eq!(stale.status, 412, "{}", stale.text());
    let patched = admin(
        &gw,
        Method::PATCH,
        "/routes/v2",
        Some(json!({ "paths": ["/v3/*"] })),
        Some(&tag),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.text());
    assert_ne!(patched.header("etag"), Some(tag.as_str()));
    assert_eq!(status(&gw, "/v3/x").await, 200);
    assert_eq!(status(&gw, "/v2/x").await, 404);
    // The old tag is stale now.
    let late = admin(&gw, Method::DELETE, "/routes/v2", None, Some(&tag)).await;
    assert_eq!(late.status, 412);

    let deleted = admin(&gw, Method::DELETE, "/routes/v2", None, None).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert_eq!(status(&gw, "/v3/x").await, 404);
    assert!(in_etcd(&etcd, "routes/v2").await.is_none());
    let gone = admin(&gw, Method::DELETE, "/routes/v2", None, None).await;
    assert_eq!(gone.status, 404);
}

#[tokio::test]
async fn a_write_that_would_break_the_configuration_never_reaches_etcd() {
    let (etcd, _upstream, _dir, gw) = start().await;
    put_api_route(&gw).await;

    let dangling = json!({ "paths": ["/d/*"], "upstream": "nowhere" });
    let res = admin(&gw, Method::PUT, "/routes/dangling", Some(dangling), None).await;
    assert_eq!(res.status, 409, "{}", res.text());
    assert!(
        res.text().contains("no upstream with id \\\"nowhere\\\""),
        "{}",
        res.text()
    );
    assert!(in_etcd(&etcd, "routes/dangling").await.is_none());

    let bad = json!({ "paths": ["/b/*"], "upstream": "backend", "timeout": "soon" });
    let res = admin(&gw, Method::PUT, "/routes/bad", Some(bad), None).await;
    assert_eq!(res.status, 400, "{}", res.text());
    assert!(in_etcd(&etcd, "routes/bad").await.is_none());

    let plugin = json!({ "paths": ["/p/*"], "upstream": "backend", "plugins": { "rate-limit": { "rate": "lots" } } });
    let res = admin(&gw, Method::PUT, "/routes/plugin", Some(plugin), None).await;
    assert_eq!(res.status, 400, "{}", res.text());
    assert!(res.text().contains("plugins.rate-limit"), "{}", res.text());

    let renamed = json!({ "id": "other", "paths": ["/r/*"], "upstream": "backend" });
    let res = admin(&gw, Method::PUT, "/routes/renamed", Some(renamed), None).await;
    assert_eq!(res.status, 400, "{}", res.text());

    let in_use = admin(&gw, Method::DELETE, "/upstreams/backend", None, None).await;
    assert_eq!(in_use.status, 409, "{}", in_use.text());
    assert!(in_use.text().contains("is in use"), "{}", in_use.text());
    assert!(in_etcd(&etcd, "upstreams/backend").await.is_some());

    for body in [&b"{"[..], b"[1]"] {
        let req = Request::put("/floodgate/admin/routes/x")
            .header("x-api-key", ADMIN_KEY)
            .body(Full::new(Bytes::copy_from_slice(body)))
            .expect("request");
        let res = send(gw.admin, Proto::H1, req).await.expect("admin");
        assert_eq!(res.status, 400, "{}", res.text());
    }
    let whole = admin(&gw, Method::POST, "/config", Some(json!({})), None).await;
    assert_eq!(whole.status, 405);
    assert_eq!(status(&gw, "/api/x").await, 200);
}

#[tokio::test]
async fn a_consumer_secret_is_masked_on_read_and_kept_when_written_back_masked() {
    let (etcd, _upstream, _dir, gw) = start().await;
    let consumer = json!({ "credentials": { "key-auth": { "key": "alice-secret-key" } } });
    let res = admin(&gw, Method::PUT, "/consumers/alice", Some(consumer), None).await;
    assert_eq!(res.status, 201, "{}", res.text());
    assert!(!res.text().contains("alice-secret-key"), "{}", res.text());
    let read = admin(&gw, Method::GET, "/consumers/alice", None, None).await;
    let mut shown = read.json();
    assert_eq!(shown["credentials"]["key-auth"]["key"], "******");
    shown["plugins"] = json!({ "headers": { "request": { "set": { "x-team": "a" } } } });
    let res = admin(&gw, Method::PUT, "/consumers/alice", Some(shown), None).await;
    assert_eq!(res.status, 200, "{}", res.text());
    let stored = in_etcd(&etcd, "consumers/alice").await.expect("in etcd");
    assert_eq!(stored["credentials"]["key-auth"]["key"], "alice-secret-key");
}

#[tokio::test]
async fn writes_while_etcd_is_down_are_503_and_the_gateway_serves_on() {
    let (mut etcd, _upstream, _dir, gw) = start().await;
    put_api_route(&gw).await;
    etcd.kill();
    let res = admin(
        &gw,
        Method::PUT,
        "/routes/v2",
        Some(route("v2", "/v2")),
        None,
    )
    .await;
    assert_eq!(res.status, 503, "{}", res.text());
    assert_eq!(status(&gw, "/api/x").await, 200);
    // Reads fall back to what is in service.
    let read = admin(&gw, Method::GET, "/routes/api", None, None).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.json()["paths"][0], "/api/*");
}

#[tokio::test]
async fn onboarding_an_api_client_is_one_call() {
    let (_etcd, _upstream, _dir, gw) = start().await;
    let partners = json!({ "paths": ["/partners/*"], "upstream": "backend", "plugins": { "jwt-auth": { "algorithms": ["HS256"] } } });
    // Without any consumer credential the plugin has no key at all: refused before etcd.
    let res = admin(
        &gw,
        Method::PUT,
        "/routes/partners",
        Some(partners.clone()),
        None,
    )
    .await;
    assert_eq!(res.status, 400, "{}", res.text());

    let secret = "acme-shared-secret-of-at-least-32-bytes";
    let acme = json!({ "credentials": { "jwt-auth": { "key": "acme", "secret": secret } } });
    let res = admin(&gw, Method::PUT, "/consumers/acme", Some(acme), None).await;
    assert_eq!(res.status, 201, "{}", res.text());
    let res = admin(&gw, Method::PUT, "/routes/partners", Some(partners), None).await;
    assert_eq!(res.status, 201, "{}", res.text());

    let exp = floodgate_testkit::jwt::now() + 600;
    let token = floodgate_testkit::jwt::hs256(secret, json!({ "iss": "acme", "exp": exp }));
    let req = Request::get("/partners/x")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let res = send(gw.listener, Proto::H1, req).await.expect("request");
    assert_eq!(res.status, 200, "{}", res.text());
    let forged = floodgate_testkit::jwt::hs256(
        "someone-elses-secret-of-at-least-32-bytes",
        json!({ "iss": "acme", "exp": exp }),
    );
    let req = Request::get("/partners/x")
        .header("authorization", format!("Bearer {forged}"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let res = send(gw.listener, Proto::H1, req).await.expect("request");
    assert_eq!(res.status, 401);
}

#[tokio::test]
async fn a_certificate_written_through_the_admin_api_is_served_for_its_name_and_its_key_never_shown(
) {
    let etcd = TestEtcd::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let default = floodgate_testkit::TestCerts::new(&["default.test"]);
    let site = floodgate_testkit::TestCerts::new(&["site.example"]);
    let tls_listener = format!(
        "tls: {{ certificates: [{{ cert: \"{}\", key: \"{}\" }}] }} }}]",
        default.cert_path.display(),
        default.key_path.display()
    );
    let gw = Floodgate::start(bin(), |l, a| {
        bootstrap(l, a, &etcd, dir.path()).replace(
            &format!("address: \"{l}\" }}]"),
            &format!("address: \"{l}\", {tls_listener}"),
        )
    })
    .await;
    assert_eq!(
        presented_certificate(gw.listener, "site.example").await,
        default.cert_der
    );

    let certificate = json!({ "cert": site.cert_pem, "key": site.key_pem });
    let res = admin(
        &gw,
        Method::PUT,
        "/certificates/site",
        Some(certificate),
        None,
    )
    .await;
    assert_eq!(res.status, 201, "{}", res.text());
    assert_eq!(res.json()["key"], "******");
    assert_eq!(res.json()["cert"], site.cert_pem.as_str());
    // etcd holds the key itself; the admin API never shows it.
    assert_eq!(
        in_etcd(&etcd, "certificates/site").await.expect("stored")["key"],
        site.key_pem.as_str()
    );
    let read = admin(&gw, Method::GET, "/certificates/site", None, None).await;
    assert_eq!(read.json()["key"], "******");
    let listed = admin(&gw, Method::GET, "/certificates", None, None).await;
    assert_eq!(listed.json()["items"][0]["key"], "******");
    // Served for its name; the listener's own certificate stays the default.
    assert_eq!(
        presented_certificate(gw.listener, "site.example").await,
        site.cert_der
    );
    assert_eq!(
        presented_certificate(gw.listener, "other.test").await,
        default.cert_der
    );

    // Written back masked, the key is kept: only the names change.
    let renamed = json!({ "cert": site.cert_pem, "key": "******", "snis": ["alias.example"] });
    let res = admin(&gw, Method::PUT, "/certificates/site", Some(renamed), None).await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(
        in_etcd(&etcd, "certificates/site").await.expect("stored")["key"],
        site.key_pem.as_str()
    );
    // A key that is not the certificate's, and text that is not PEM, never reach etcd.
    let mismatched = json!({ "cert": site.cert_pem, "key": default.key_pem });
    let res = admin(
        &gw,
        Method::PUT,
        "/certificates/bad",
        Some(mismatched),
        None,
    )
    .await;
    assert_eq!(res.status, 400, "{}", res.text());
    assert_eq!(res.json()["errors"][0]["path"], "certificates[1].key");
    let res = admin(
        &gw,
        Method::PUT,
        "/certificates/bad",
        Some(json!({ "cert": "x", "key": "y" })),
        None,
    )
    .await;
    assert_eq!(res.status, 400, "{}", res.text());
    assert!(in_etcd(&etcd, "certificates/bad").await.is_none());

    let res = admin(&gw, Method::DELETE, "/certificates/site", None, None).await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(
        presented_certificate(gw.listener, "site.example").await,
        default.cert_der
    );
}
