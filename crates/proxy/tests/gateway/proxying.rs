//! Basic proxying over HTTP/1.1 and h2c: headers, forwarding rules, routing and direct answers.

use bytes::Bytes;
use floodgate_testkit::{send, MockUpstream, Proto, TestGateway};
use http::Request;
use http_body_util::Full;

fn config(upstream: &MockUpstream) -> String {
    format!(
        r#"
workers: 2
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
upstreams:
  - id: backend
    targets: [{{ address: "{}" }}]
routes:
  - {{ id: api, paths: ["/api/*"], upstream: backend }}
  - {{ id: hello, paths: ["/hello"], methods: [GET], respond: {{ status: 200, body: "hi there" }} }}
  - {{ id: rewrite, paths: ["/rewrite/*"], upstream: backend, preserve_host: false }}
"#,
        upstream.address()
    )
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path).body(Full::new(Bytes::new())).unwrap()
}

#[tokio::test]
async fn http1_request_is_forwarded_with_forwarding_headers() {
    let upstream = MockUpstream::http("one").await;
    let gw = TestGateway::start(&config(&upstream));
    let addr = gw.addr("main");
    let req = Request::get("/api/users?id=7")
        .header("host", "api.example.com")
        .header("x-forwarded-for", "10.1.1.1")
        .header("connection", "keep-alive, x-drop-me")
        .header("x-drop-me", "secret")
        .header("keep-alive", "timeout=5")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = send(addr, Proto::H1, req).await.unwrap();
    assert_eq!(res.status, 200);
    let echo = res.json();
    assert_eq!(echo["uri"], "/api/users?id=7");
    assert_eq!(echo["version"], "HTTP/1.1");
    let headers = &echo["headers"];
    assert_eq!(headers["host"], "api.example.com");
    assert_eq!(headers["x-forwarded-for"], "10.1.1.1, 127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-forwarded-host"], "api.example.com");
    assert!(
        headers.get("x-drop-me").is_none(),
        "Connection-named header forwarded: {headers}"
    );
    assert!(headers.get("keep-alive").is_none());
    assert!(headers.get("connection").is_none());
    // The request id the upstream saw is the one returned to the client.
    let id = res.header("x-request-id").expect("request id returned");
    assert_eq!(headers["x-request-id"], id);
    assert_eq!(id.len(), 36);
    // Hop-by-hop headers from the upstream do not reach the client.
    assert!(res.headers.get("keep-alive").is_none());
    assert_eq!(res.header("x-upstream"), Some("one"));
}

/// An upstream that reads field names as `HTTP_*` variables (CGI, WSGI, Rack, PHP) reads
/// `X_Forwarded_For` as `X-Forwarded-For`: a client's underscore spelling of a field the gateway writes
/// never reaches it, while other names with underscores do.
#[tokio::test]
async fn underscore_spellings_of_the_gateways_own_fields_are_dropped() {
    let upstream = MockUpstream::http("one").await;
    let gw = TestGateway::start(&config(&upstream));
    let addr = gw.addr("main");
    for proto in [Proto::H1, Proto::H2c] {
        let req = Request::get("/api/x")
            .header("host", "api.example.com")
            .header("x_forwarded_for", "6.6.6.6")
            .header("x-forwarded_for", "6.6.6.7")
            .header("x_forwarded_proto", "https")
            .header("x_forwarded_host", "evil.example")
            .header("x_request_id", "forged")
            .header("x_tenant", "kept")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let res = send(addr, proto.clone(), req).await.unwrap();
        assert_eq!(res.status, 200);
        let echo = res.json();
        let headers = echo["headers"].as_object().unwrap();
        let mut names: Vec<&str> = headers
            .keys()
            .map(String::as_str)
            .filter(|n| n.starts_with('x'))
            .collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "x-forwarded-for",
                "x-forwarded-host",
                "x-forwarded-proto",
                "x-request-id",
                "x_tenant"
            ],
            "{proto:?}: {headers:?}"
        );
        assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "api.example.com");
        assert_eq!(headers["x_tenant"], "kept");
    }
    let res = send(addr, Proto::H1, get("/api/after")).await.unwrap();
    assert_eq!(res.status, 200);
}

#[tokio::test]
async fn client_request_id_is_preserved() {
    let upstream = MockUpstream::http("one").await;
    let gw = TestGateway::start(&config(&upstream));
    let req = Request::get("/api/x")
        .header("x-request-id", "client-abc-123")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = send(gw.addr("main"), Proto::H1, req).await.unwrap();
    assert_eq!(res.header("x-request-id"), Some("client-abc-123"));
    assert_eq!(res.json()["headers"]["x-request-id"], "client-abc-123");
}

#[tokio::test]
async fn h2c_client_reaches_http1_upstream() {
    let upstream = MockUpstream::http("one").await;
    let gw = TestGateway::start(&config(&upstream));
    let res = send(gw.addr("main"), Proto::H2c, get("/api/h2"))
        .await
        .unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(res.version, http::Version::HTTP_2);
    let echo = res.json();
    assert_eq!(echo["version"], "HTTP/1.1");
    assert_eq!(echo["uri"], "/api/h2");
    // The :authority becomes the upstream's Host.
    assert_eq!(echo["headers"]["host"], gw.addr("main").to_string());
}

#[tokio::test]
async fn host_is_rewritten_to_target_when_not_preserved() {
    let upstream = MockUpstream::http("one").await;
    let gw = TestGateway::start(&config(&upstream));
    let req = Request::get("/rewrite/x")
        .header("host", "api.example.com")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = send(gw.addr("main"), Proto::H1, req).await.unwrap();
    assert_eq!(res.json()["headers"]["host"], upstream.address());
    assert_eq!(res.json()["headers"]["x-forwarded-host"], "api.example.com");
}

#[tokio::test]
async fn direct_response_route_answers_itself() {
    let upstream = MockUpstream::http("one").await;
    let gw = TestGateway::start(&config(&upstream));
    let res = send(gw.addr("main"), Proto::H1, get("/hello"))
        .await
        .unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "hi there");
    assert_eq!(upstream.requests(), 0);
}

#[tokio::test]
async fn no_route_is_404_json_and_gateway_keeps_serving() {
    let upstream = MockUpstream::http("one").await;
    let gw = TestGateway::start(&config(&upstream));
    let addr = gw.addr("main");
    let res = send(addr, Proto::H1, get("/nowhere")).await.unwrap();
    assert_eq!(res.status, 404);
    assert_eq!(res.header("content-type"), Some("application/json"));
    let body = res.json();
    assert_eq!(body["error"], "no route matched");
    assert_eq!(body["request_id"], res.header("x-request-id").unwrap());
    // Method filter: POST /hello matches no route either.
    let post = Request::post("/hello")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(addr, Proto::H1, post).await.unwrap().status, 404);
    assert_eq!(
        send(addr, Proto::H1, get("/api/ok")).await.unwrap().status,
        200
    );
}

#[tokio::test]
async fn request_body_and_chunked_body_reach_upstream() {
    let upstream = MockUpstream::http("one").await;
    let gw = TestGateway::start(&config(&upstream));
    let addr = gw.addr("main");
    let body = vec![b'a'; 300_000];
    let req = Request::post("/api/upload")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let res = send(addr, Proto::H1, req).await.unwrap();
    assert_eq!(res.json()["body_len"], 300_000);
    // A chunked body (no Content-Length): a stream of frames.
    let frames =
        futures_util::stream::iter((0..10).map(|_| {
            Ok::<_, std::io::Error>(hyper::body::Frame::data(Bytes::from(vec![b'b'; 1000])))
        }));
    let req = Request::post("/api/chunked")
        .body(http_body_util::StreamBody::new(frames))
        .unwrap();
    let res = send(addr, Proto::H1, req).await.unwrap();
    let echo = res.json();
    assert_eq!(echo["body_len"], 10_000);
    assert_eq!(echo["headers"]["transfer-encoding"], "chunked");
}

#[tokio::test]
async fn upstream_connections_are_reused() {
    let upstream = MockUpstream::http("one").await;
    let gw = TestGateway::start(&config(&upstream).replace("workers: 2", "workers: 1"));
    let addr = gw.addr("main");
    for _ in 0..20 {
        assert_eq!(
            send(addr, Proto::H1, get("/api/again"))
                .await
                .unwrap()
                .status,
            200
        );
    }
    assert_eq!(upstream.requests(), 20);
    assert_eq!(
        upstream.connections(),
        1,
        "sequential requests should share one pooled connection"
    );
}

#[tokio::test]
async fn idle_upstream_connections_expire_after_idle_timeout() {
    let upstream = MockUpstream::http("one").await;
    let yaml = config(&upstream)
        .replace("workers: 2", "workers: 1")
        .replace(
            "    targets: [",
            "    keepalive: { idle_timeout: 100ms }\n    targets: [",
        );
    let gw = TestGateway::start(&yaml);
    let addr = gw.addr("main");
    assert_eq!(
        send(addr, Proto::H1, get("/api/a")).await.unwrap().status,
        200
    );
    assert_eq!(
        send(addr, Proto::H1, get("/api/b")).await.unwrap().status,
        200
    );
    assert_eq!(
        upstream.connections(),
        1,
        "back-to-back requests share the pooled connection"
    );
    // Idle longer than idle_timeout: the pooled connection is closed, not reused.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(
        send(addr, Proto::H1, get("/api/c")).await.unwrap().status,
        200
    );
    assert_eq!(upstream.connections(), 2);
}
