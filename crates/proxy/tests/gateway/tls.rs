//! TLS on both sides of the gateway: listener certificates picked by SNI, ALPN, handshake failures that
//! leave the gateway serving, upstream TLS verification, and start-up errors for unusable certificates.

use std::net::SocketAddr;

use bytes::Bytes;
use floodgate_testkit::{
    free_port, presented_certificate, raw_exchange, send, MockUpstream, Proto, TestCerts,
    TestGateway,
};
use http::{Request, Version};
use http_body_util::Full;
use tokio::net::TcpStream;

/// A gateway with a TLS listener serving `a.test` (the default) and `b.test`, and a plain listener, both
/// routing `/api/*` to one upstream.
struct TlsListener {
    a: TestCerts,
    b: TestCerts,
    upstream: MockUpstream,
    gw: TestGateway,
}

impl TlsListener {
    async fn start() -> TlsListener {
        let a = TestCerts::new(&["a.test"]);
        let b = TestCerts::new(&["b.test"]);
        let upstream = MockUpstream::http("plain").await;
        let gw = TestGateway::start(&format!(
            r#"
workers: 2
listeners:
  - name: secure
    address: "127.0.0.1:0"
    tls:
      certificates:
        - {{ cert: "{}", key: "{}" }}
        - {{ cert: "{}", key: "{}" }}
  - {{ name: plain, address: "127.0.0.1:{}" }}
admin: {{ address: "127.0.0.1:0" }}
upstreams:
  - id: backend
    targets: [{{ address: "{}" }}]
routes:
  - {{ id: api, paths: ["/api/*"], upstream: backend }}
"#,
            a.cert(),
            a.key(),
            b.cert(),
            b.key(),
            // Only one listener on port 0: see `tls_and_plain_listeners_on_port_zero_are_both_served`.
            free_port(),
            upstream.address()
        ));
        TlsListener { a, b, upstream, gw }
    }

    fn addr(&self) -> SocketAddr {
        self.gw.addr("secure")
    }

    /// A proper HTTP/1.1 request over TLS that must succeed: the gateway is still serving.
    async fn assert_serves(&self) {
        let res = send(
            self.addr(),
            tls(false, "a.test", &self.a),
            get("/api/still-up"),
        )
        .await
        .expect("request after the failure");
        assert_eq!(res.status, 200);
        assert_eq!(res.json()["upstream"], self.upstream.name);
    }
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path).body(Full::new(Bytes::new())).unwrap()
}

fn tls(h2: bool, server_name: &str, trusted: &TestCerts) -> Proto {
    Proto::Tls {
        h2,
        server_name: server_name.to_string(),
        root: trusted.cert_der.clone(),
    }
}

#[tokio::test]
async fn sni_selects_the_certificate_for_that_name() {
    let gw = TlsListener::start().await;
    let addr = gw.addr();
    assert_eq!(presented_certificate(addr, "a.test").await, gw.a.cert_der);
    assert_eq!(presented_certificate(addr, "b.test").await, gw.b.cert_der);
    // Names compare case-insensitively (RFC 6066 §3: host names are ASCII, case does not matter).
    assert_eq!(presented_certificate(addr, "B.Test").await, gw.b.cert_der);

    // A client that trusts only B reaches b.test, and refuses a.test, which is served with A.
    let res = send(addr, tls(false, "b.test", &gw.b), get("/api/b"))
        .await
        .expect("b.test with B trusted");
    assert_eq!(res.status, 200);
    let err = send(addr, tls(false, "a.test", &gw.b), get("/api/a"))
        .await
        .expect_err("a.test must be served with A, which the client does not trust");
    assert!(err.starts_with("tls:"), "unexpected error: {err}");
    let res = send(addr, tls(false, "a.test", &gw.a), get("/api/a"))
        .await
        .expect("a.test with A trusted");
    assert_eq!(res.status, 200);
}

#[tokio::test]
async fn unknown_or_missing_sni_gets_the_first_certificate() {
    let gw = TlsListener::start().await;
    let addr = gw.addr();
    assert_eq!(presented_certificate(addr, "c.test").await, gw.a.cert_der);
    // Connecting by IP address sends no SNI.
    assert_eq!(
        presented_certificate(addr, "127.0.0.1").await,
        gw.a.cert_der
    );
    gw.assert_serves().await;
}

#[tokio::test]
async fn alpn_picks_http2_or_http11_and_upstream_sees_https() {
    let gw = TlsListener::start().await;
    let res = send(gw.addr(), tls(true, "a.test", &gw.a), get("/api/h2"))
        .await
        .unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(res.version, Version::HTTP_2);
    let echo = res.json();
    assert_eq!(echo["headers"]["x-forwarded-proto"], "https");
    assert_eq!(echo["uri"], "/api/h2");
    // The :authority (the SNI name here) becomes the upstream's Host.
    assert_eq!(echo["headers"]["host"], "a.test");

    let res = send(gw.addr(), tls(false, "b.test", &gw.b), get("/api/h1"))
        .await
        .unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(res.version, Version::HTTP_11);
    assert_eq!(res.json()["headers"]["x-forwarded-proto"], "https");

    // The plain listener of the same gateway still says http.
    let res = send(gw.gw.addr("plain"), Proto::H1, get("/api/plain"))
        .await
        .unwrap();
    assert_eq!(res.json()["headers"]["x-forwarded-proto"], "http");
}

#[tokio::test]
async fn plain_http_on_tls_port_is_closed_and_gateway_keeps_serving() {
    let gw = TlsListener::start().await;
    let reply = raw_exchange(
        gw.addr(),
        b"GET /api/x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    // At most a TLS alert record (content type 21) comes back, never an HTTP answer.
    assert!(
        reply.is_empty() || reply.as_bytes()[0] == 21,
        "not a TLS alert: {reply:?}"
    );
    assert!(!reply.contains("HTTP/1.1"), "got an HTTP answer: {reply:?}");
    assert_eq!(gw.upstream.requests(), 0);
    gw.assert_serves().await;
    assert_eq!(gw.upstream.requests(), 1);
}

#[tokio::test]
async fn untrusted_certificate_fails_handshake_and_gateway_keeps_serving() {
    let gw = TlsListener::start().await;
    let stranger = TestCerts::new(&["a.test"]);
    let err = send(gw.addr(), tls(true, "a.test", &stranger), get("/api/x"))
        .await
        .expect_err("a client trusting another certificate must fail the handshake");
    assert!(err.starts_with("tls:"), "unexpected error: {err}");
    assert_eq!(gw.upstream.requests(), 0);
    // A handshake the client aborts halfway (TCP connected, then closed) does not hurt either.
    drop(TcpStream::connect(gw.addr()).await.unwrap());
    gw.assert_serves().await;
}

#[tokio::test]
async fn tls_and_plain_listeners_on_port_zero_are_both_served() {
    // Validation lets several listeners use port 0 ("the kernel picks a free port for each"); each must
    // then be its own listener, with its own TLS settings.
    let a = TestCerts::new(&["a.test"]);
    let upstream = MockUpstream::http("plain").await;
    let gw = TestGateway::start(&format!(
        r#"
workers: 1
listeners:
  - name: secure
    address: "127.0.0.1:0"
    tls:
      certificates: [{{ cert: "{}", key: "{}" }}]
  - {{ name: plain, address: "127.0.0.1:0" }}
admin: {{ address: "127.0.0.1:0" }}
upstreams:
  - id: backend
    targets: [{{ address: "{}" }}]
routes:
  - {{ id: api, paths: ["/api/*"], upstream: backend }}
"#,
        a.cert(),
        a.key(),
        upstream.address()
    ));
    let secure = gw.gateway().local_addr("secure");
    let plain = gw.gateway().local_addr("plain");
    assert!(
        secure.is_some() && plain.is_some(),
        "listeners known to the gateway: secure {secure:?}, plain {plain:?}"
    );
    let (secure, plain) = (secure.unwrap(), plain.unwrap());
    assert_ne!(secure, plain);
    let res = send(secure, tls(true, "a.test", &a), get("/api/tls"))
        .await
        .expect("TLS on the TLS listener");
    assert_eq!(res.json()["headers"]["x-forwarded-proto"], "https");
    let res = send(plain, Proto::H1, get("/api/plain"))
        .await
        .expect("cleartext on the plain listener");
    assert_eq!(res.json()["headers"]["x-forwarded-proto"], "http");
}

#[tokio::test]
async fn missing_certificate_file_fails_start_naming_the_field() {
    let a = TestCerts::new(&["a.test"]);
    let yaml = format!(
        r#"
listeners:
  - name: secure
    address: "127.0.0.1:0"
    tls:
      certificates:
        - {{ cert: "{}/missing.pem", key: "{}" }}
admin: {{ address: "127.0.0.1:0" }}
"#,
        a.cert_path.parent().unwrap().display(),
        a.key()
    );
    let err = TestGateway::try_start(&yaml)
        .err()
        .expect("a missing certificate file must stop the start");
    assert!(
        err.contains("listeners[0].tls.certificates[0].cert"),
        "error does not name the field: {err}"
    );
    assert!(
        err.contains("missing.pem"),
        "error does not name the file: {err}"
    );
}

#[tokio::test]
async fn key_of_another_certificate_fails_start_naming_the_field() {
    let a = TestCerts::new(&["a.test"]);
    let b = TestCerts::new(&["b.test"]);
    let yaml = format!(
        r#"
listeners:
  - name: secure
    address: "127.0.0.1:0"
    tls:
      certificates:
        - {{ cert: "{}", key: "{}" }}
admin: {{ address: "127.0.0.1:0" }}
"#,
        a.cert(),
        b.key()
    );
    let err = TestGateway::try_start(&yaml)
        .err()
        .expect("a key that does not match its certificate must stop the start");
    assert!(
        err.contains("listeners[0].tls.certificates[0].key"),
        "error does not name the field: {err}"
    );
}

/// A gateway with one plain listener and a route per upstream: `/{id}/*` goes to upstream `id`.
fn upstreams_gateway(upstreams: &[(&str, String)]) -> TestGateway {
    let mut yaml = String::from(
        r#"
workers: 1
listeners: [{ name: main, address: "127.0.0.1:0" }]
admin: { address: "127.0.0.1:0" }
upstreams:
"#,
    );
    for (id, body) in upstreams {
        yaml.push_str(&format!("  - id: {id}\n{body}"));
    }
    yaml.push_str("routes:\n");
    for (id, _) in upstreams {
        yaml.push_str(&format!(
            "  - {{ id: {id}, paths: [\"/{id}/*\"], upstream: {id} }}\n"
        ));
    }
    TestGateway::start(&yaml)
}

/// The body of an upstream entry (after its id) with one target and extra indented lines.
fn upstream_entry(target: &str, extra: &str) -> String {
    format!("    targets: [{{ address: \"{target}\" }}]\n{extra}")
}

#[tokio::test]
async fn upstream_tls_is_verified_against_ca_file() {
    let localhost = TestCerts::new(&["localhost"]);
    let by_ip = TestCerts::new(&["127.0.0.1"]);
    let secure = MockUpstream::tls("secure", &localhost).await;
    let secure_ip = MockUpstream::tls("secure-ip", &by_ip).await;
    let gw = upstreams_gateway(&[
        // The target is an IP address; `sni` names the certificate's host.
        (
            "sni",
            upstream_entry(
                &secure.address(),
                &format!(
                    "    tls: {{ ca_file: \"{}\", sni: localhost }}\n",
                    localhost.cert()
                ),
            ),
        ),
        // Without `sni`, the target's host name is sent and verified.
        (
            "byname",
            upstream_entry(
                &format!("localhost:{}", secure.addr.port()),
                &format!("    tls: {{ ca_file: \"{}\" }}\n", localhost.cert()),
            ),
        ),
        // Without `sni`, an IP target is verified against the certificate's IP address.
        (
            "byip",
            upstream_entry(
                &secure_ip.address(),
                &format!("    tls: {{ ca_file: \"{}\" }}\n", by_ip.cert()),
            ),
        ),
    ]);
    let addr = gw.addr("main");
    for (path, name) in [
        ("/sni/x", "secure"),
        ("/byname/x", "secure"),
        ("/byip/x", "secure-ip"),
    ] {
        let res = send(addr, Proto::H1, get(path)).await.unwrap();
        assert_eq!(res.status, 200, "{path}: {}", res.text());
        let echo = res.json();
        assert_eq!(echo["upstream"], name, "{path}");
        assert_eq!(echo["headers"]["x-forwarded-proto"], "http", "{path}");
    }
}

#[tokio::test]
async fn upstream_certificate_from_another_ca_is_502_json() {
    let localhost = TestCerts::new(&["localhost"]);
    let other = TestCerts::new(&["localhost"]);
    let secure = MockUpstream::tls("secure", &localhost).await;
    let gw = upstreams_gateway(&[
        (
            "wrongca",
            upstream_entry(
                &secure.address(),
                &format!(
                    "    tls: {{ ca_file: \"{}\", sni: localhost }}\n",
                    other.cert()
                ),
            ),
        ),
        // The right CA, but a name the certificate is not valid for.
        (
            "wrongname",
            upstream_entry(
                &secure.address(),
                &format!(
                    "    tls: {{ ca_file: \"{}\", sni: other.test }}\n",
                    localhost.cert()
                ),
            ),
        ),
        (
            "good",
            upstream_entry(
                &secure.address(),
                &format!(
                    "    tls: {{ ca_file: \"{}\", sni: localhost }}\n",
                    localhost.cert()
                ),
            ),
        ),
    ]);
    let addr = gw.addr("main");
    for path in ["/wrongca/x", "/wrongname/x"] {
        let res = send(addr, Proto::H1, get(path)).await.unwrap();
        assert_eq!(res.status, 502, "{path}: {}", res.text());
        assert_eq!(res.header("content-type"), Some("application/json"));
        let body = res.json();
        assert_eq!(body["error"], "upstream connection failed");
        assert_eq!(body["request_id"], res.header("x-request-id").unwrap());
    }
    // The refused handshakes never carried a request.
    assert_eq!(secure.requests(), 0);
    let res = send(addr, Proto::H1, get("/good/x")).await.unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(secure.requests(), 1);
}

#[tokio::test]
async fn insecure_skip_verify_accepts_any_upstream_certificate() {
    let certs = TestCerts::new(&["somewhere.else"]);
    let secure = MockUpstream::tls("secure", &certs).await;
    let gw = upstreams_gateway(&[(
        "insecure",
        upstream_entry(
            &secure.address(),
            "    tls: { insecure_skip_verify: true }\n",
        ),
    )]);
    let res = send(gw.addr("main"), Proto::H1, get("/insecure/x"))
        .await
        .unwrap();
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["upstream"], "secure");
}

#[tokio::test]
async fn upstream_protocol_over_tls_is_chosen_by_config_or_alpn() {
    let certs = TestCerts::new(&["localhost"]);
    let secure = MockUpstream::tls("secure", &certs).await;
    let tls_line = format!(
        "    tls: {{ ca_file: \"{}\", sni: localhost }}\n",
        certs.cert()
    );
    let gw = upstreams_gateway(&[
        (
            "h2",
            upstream_entry(
                &secure.address(),
                &format!("    protocol: http2\n{tls_line}"),
            ),
        ),
        (
            "h1",
            upstream_entry(
                &secure.address(),
                &format!("    protocol: http1\n{tls_line}"),
            ),
        ),
        // No protocol: ALPN offers both and the upstream (which prefers h2) picks.
        ("alpn", upstream_entry(&secure.address(), &tls_line)),
    ]);
    let addr = gw.addr("main");
    for (path, version) in [
        ("/h2/x", "HTTP/2.0"),
        ("/h1/x", "HTTP/1.1"),
        ("/alpn/x", "HTTP/2.0"),
    ] {
        // Each client protocol reaches the upstream in the upstream's protocol.
        for proto in [Proto::H1, Proto::H2c] {
            let res = send(addr, proto.clone(), get(path)).await.unwrap();
            assert_eq!(res.status, 200, "{path} {proto:?}: {}", res.text());
            let echo = res.json();
            assert_eq!(echo["version"], version, "{path} {proto:?}");
            // HTTP/2 carries an absolute URI (scheme https), HTTP/1.1 the origin form.
            let uri = echo["uri"].as_str().unwrap();
            assert!(uri.ends_with(path), "{path} {proto:?}: {uri}");
            assert_eq!(uri.starts_with("https://"), version == "HTTP/2.0", "{uri}");
            // The forwarding headers reach either protocol's upstream, once each.
            let headers = &echo["headers"];
            assert_eq!(headers["x-forwarded-for"], "127.0.0.1", "{path} {proto:?}");
            assert_eq!(headers["x-forwarded-proto"], "http", "{path} {proto:?}");
            assert_eq!(
                headers["x-request-id"],
                res.header("x-request-id").unwrap(),
                "{path} {proto:?}"
            );
        }
    }
}

#[tokio::test]
async fn tls_http11_upstream_connection_is_kept_alive_and_reused() {
    let certs = TestCerts::new(&["localhost"]);
    let secure = MockUpstream::tls("secure", &certs).await;
    let gw = upstreams_gateway(&[(
        "h1",
        upstream_entry(
            &secure.address(),
            &format!(
                "    protocol: http1\n    tls: {{ ca_file: \"{}\", sni: localhost }}\n",
                certs.cert()
            ),
        ),
    )]);
    // TLS 1.3 servers send session tickets after the handshake, unasked: an idle pooled connection
    // with such bytes waiting is still reusable.
    for _ in 0..4 {
        let res = send(gw.addr("main"), Proto::H1, get("/h1/x"))
            .await
            .unwrap();
        assert_eq!(res.status, 200, "{}", res.text());
        assert_eq!(res.json()["version"], "HTTP/1.1");
    }
    assert_eq!(
        secure.connections(),
        1,
        "one TLS connection carried every request"
    );
}
