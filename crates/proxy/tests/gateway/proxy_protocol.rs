//! The PROXY protocol on listeners behind an L4 load balancer: v1 and v2 headers name the client that
//! upstreams see in `X-Forwarded-For` and the access log shows, over HTTP/1.1, h2c and TLS; a connection
//! without a valid header is closed and the next one served; a listener without `proxy_protocol` treats a
//! PROXY line as a bad request.

use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use floodgate_testkit::{
    eventually, free_port, read_to_close, send, MockUpstream, Proto, TestCerts, TestGateway,
};
use http::{Request, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// A gateway with three listeners: `lb` (cleartext, PROXY protocol), `lb_tls` (TLS for `a.test`, PROXY
/// protocol) and `direct` (cleartext, no PROXY protocol), an access log, and `/api/*` routed to an
/// upstream that echoes the request's headers.
struct BehindLoadBalancer {
    certs: TestCerts,
    log: TempFile,
    gw: TestGateway,
    _upstream: MockUpstream,
}

impl BehindLoadBalancer {
    async fn start() -> BehindLoadBalancer {
        let certs = TestCerts::new(&["a.test"]);
        let upstream = MockUpstream::http("backend").await;
        let log = TempFile::new("proxy-protocol-access.log");
        let gw = TestGateway::start(&format!(
            r#"
workers: 2
listeners:
  - {{ name: lb, address: "127.0.0.1:0", proxy_protocol: true }}
  - name: lb_tls
    address: "127.0.0.1:{}"
    proxy_protocol: true
    tls:
      certificates: [{{ cert: "{}", key: "{}" }}]
  - {{ name: direct, address: "127.0.0.1:{}" }}
admin: {{ address: "127.0.0.1:0" }}
timeouts: {{ client_header: 2s }}
access_log: {{ path: {:?} }}
upstreams:
  - {{ id: backend, targets: [{{ address: "{}" }}] }}
routes:
  - {{ id: api, paths: ["/api/*"], upstream: backend }}
"#,
            free_port(),
            certs.cert(),
            certs.key(),
            free_port(),
            log.0.display().to_string(),
            upstream.address()
        ));
        BehindLoadBalancer {
            certs,
            log,
            gw,
            _upstream: upstream,
        }
    }

    /// `GET path` over `proto` on the PROXY protocol listener (the TLS one for `Tls`), on a connection that
    /// starts with `header`; returns the status and the `X-Forwarded-For` the upstream received.
    async fn get_behind(&self, header: &[u8], proto: Via, path: &str) -> (u16, String) {
        let listener = if matches!(proto, Via::TlsH1 | Via::TlsH2) {
            "lb_tls"
        } else {
            "lb"
        };
        let mut tcp = TcpStream::connect(self.gw.addr(listener)).await.unwrap();
        tcp.write_all(header).await.unwrap();
        let (status, body) = match proto {
            Via::H1 => request(tcp, false, "http", path).await,
            Via::H2c => request(tcp, true, "http", path).await,
            Via::TlsH1 | Via::TlsH2 => {
                let h2 = matches!(proto, Via::TlsH2);
                let tls = tls_connect(&self.certs, h2, tcp).await;
                assert_eq!(
                    tls.get_ref().1.alpn_protocol(),
                    Some(if h2 { &b"h2"[..] } else { b"http/1.1" })
                );
                request(tls, h2, "https", path).await
            }
        };
        let forwarded = body["headers"]["x-forwarded-for"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        (status, forwarded)
    }

    /// The access log's `client_ip` for the request to `path`.
    async fn logged_client(&self, path: &str) -> String {
        let find = || {
            std::fs::read_to_string(&self.log.0)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|l| l["path"] == path)
        };
        eventually(&format!("an access log line for {path}"), || {
            find().is_some()
        })
        .await;
        find().unwrap()["client_ip"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn metric(&self, line: &str) -> bool {
        self.gw.metrics.render().lines().any(|l| l == line)
    }

    /// A good connection on the cleartext PROXY listener is served: hostile ones before it broke nothing.
    async fn assert_serves(&self) {
        let header = b"PROXY TCP4 192.0.2.1 10.0.0.1 40000 80\r\n";
        assert_eq!(
            self.get_behind(header, Via::H1, "/api/still-serving").await,
            (200, "192.0.2.1".to_string())
        );
    }
}

#[derive(Debug, Clone, Copy)]
enum Via {
    H1,
    H2c,
    TlsH1,
    TlsH2,
}

/// Sends `GET path` over `io` (HTTP/2 when `h2`) and returns the status and the upstream's JSON echo.
async fn request<I>(io: I, h2: bool, scheme: &str, path: &str) -> (u16, Value)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let response = if h2 {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .expect("h2 handshake");
        tokio::spawn(conn);
        let req = Request::get(format!("{scheme}://a.test{path}"))
            .version(Version::HTTP_2)
            .body(Full::new(Bytes::new()))
            .unwrap();
        sender.send_request(req).await.expect("h2 request")
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .expect("h1 handshake");
        tokio::spawn(conn);
        let req = Request::get(path)
            .header("host", "a.test")
            .body(Full::new(Bytes::new()))
            .unwrap();
        sender.send_request(req).await.expect("h1 request")
    };
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, json)
}

async fn tls_connect(
    certs: &TestCerts,
    h2: bool,
    tcp: TcpStream,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certs.cert_der.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![if h2 {
        b"h2".to_vec()
    } else {
        b"http/1.1".to_vec()
    }];
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("a.test").unwrap(), tcp)
        .await
        .expect("TLS handshake after the PROXY header")
}

/// A v2 header: `command` 0 (LOCAL) or 1 (PROXY), `family`, then `payload`.
fn v2(command: u8, family: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.push(0x20 | command);
    out.push(family);
    out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn v2_tcp4(source: [u8; 4], port: u16) -> Vec<u8> {
    let mut payload = source.to_vec();
    payload.extend_from_slice(&[10, 0, 0, 1]);
    payload.extend_from_slice(&port.to_be_bytes());
    payload.extend_from_slice(&443u16.to_be_bytes());
    // A TLV as AWS NLB sends (its VPC endpoint id), which the gateway skips.
    payload.extend_from_slice(&[0xea, 0, 5, 1, b'v', b'p', b'c', b'e']);
    v2(1, 0x11, &payload)
}

fn v2_tcp6(source: &str, port: u16) -> Vec<u8> {
    let mut payload = source.parse::<Ipv6Addr>().unwrap().octets().to_vec();
    payload.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    payload.extend_from_slice(&port.to_be_bytes());
    payload.extend_from_slice(&443u16.to_be_bytes());
    v2(1, 0x21, &payload)
}

/// Writes `bytes` on a new connection to `addr`, then closes its sending side when `close` is set, and
/// returns what the gateway sent before closing the connection.
async fn exchange(addr: SocketAddr, bytes: &[u8], close: bool) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The gateway may close a hostile connection before all of it is written.
    let _ = stream.write_all(bytes).await;
    if close {
        let _ = stream.shutdown().await;
    }
    read_to_close(&mut stream).await
}

/// A path under the system temp dir, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> TempFile {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path: &Path = &std::env::temp_dir();
        TempFile(path.join(format!("floodgate-{}-{nanos}-{name}", std::process::id())))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test]
async fn v1_tcp4_client_reaches_the_upstream_and_the_access_log_over_http1() {
    let gw = BehindLoadBalancer::start().await;
    let header = b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 80\r\n";
    assert_eq!(
        gw.get_behind(header, Via::H1, "/api/v1-tcp4").await,
        (200, "203.0.113.7".to_string())
    );
    assert_eq!(gw.logged_client("/api/v1-tcp4").await, "203.0.113.7");
}

#[tokio::test]
async fn v1_tcp6_client_reaches_the_upstream_over_h2c() {
    let gw = BehindLoadBalancer::start().await;
    let header = b"PROXY TCP6 2001:db8::7 2001:db8::1 51234 80\r\n";
    assert_eq!(
        gw.get_behind(header, Via::H2c, "/api/v1-tcp6").await,
        (200, "2001:db8::7".to_string())
    );
    assert_eq!(gw.logged_client("/api/v1-tcp6").await, "2001:db8::7");
}

#[tokio::test]
async fn v2_tcp4_and_tcp6_clients_reach_the_upstream_over_every_protocol() {
    let gw = BehindLoadBalancer::start().await;
    for via in [Via::H1, Via::H2c, Via::TlsH1, Via::TlsH2] {
        let path = format!("/api/v2-tcp4-{via:?}");
        assert_eq!(
            gw.get_behind(&v2_tcp4([198, 51, 100, 9], 40001), via, &path)
                .await,
            (200, "198.51.100.9".to_string()),
            "{via:?}"
        );
        assert_eq!(gw.logged_client(&path).await, "198.51.100.9");
        let path = format!("/api/v2-tcp6-{via:?}");
        assert_eq!(
            gw.get_behind(&v2_tcp6("2001:db8::42", 40002), via, &path)
                .await,
            (200, "2001:db8::42".to_string()),
            "{via:?}"
        );
    }
}

#[tokio::test]
async fn v1_header_precedes_the_tls_handshake() {
    let gw = BehindLoadBalancer::start().await;
    let header = b"PROXY TCP4 203.0.113.8 10.0.0.1 51234 443\r\n";
    for via in [Via::TlsH1, Via::TlsH2] {
        assert_eq!(
            gw.get_behind(header, via, "/api/v1-tls").await,
            (200, "203.0.113.8".to_string()),
            "{via:?}"
        );
    }
}

#[tokio::test]
async fn v2_local_and_v1_unknown_keep_the_load_balancers_address() {
    let gw = BehindLoadBalancer::start().await;
    for via in [Via::H1, Via::TlsH2] {
        assert_eq!(
            gw.get_behind(&v2(0, 0x00, &[]), via, "/api/local").await,
            (200, "127.0.0.1".to_string()),
            "{via:?}"
        );
        assert_eq!(
            gw.get_behind(b"PROXY UNKNOWN\r\n", via, "/api/unknown")
                .await,
            (200, "127.0.0.1".to_string()),
            "{via:?}"
        );
    }
}

#[tokio::test]
async fn a_header_and_a_request_in_one_segment_are_both_read() {
    let gw = BehindLoadBalancer::start().await;
    let mut bytes = b"PROXY TCP4 203.0.113.9 10.0.0.1 51234 80\r\n".to_vec();
    bytes.extend_from_slice(
        b"GET /api/together HTTP/1.1\r\nhost: a.test\r\nconnection: close\r\n\r\n",
    );
    let response = exchange(gw.gw.addr("lb"), &bytes, false).await;
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    assert!(
        response.contains(r#""x-forwarded-for":"203.0.113.9""#),
        "{response}"
    );

    let mut bytes = v2_tcp4([203, 0, 113, 10], 1);
    bytes.extend_from_slice(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    let mut stream = TcpStream::connect(gw.gw.addr("lb")).await.unwrap();
    stream.write_all(&bytes).await.unwrap();
    // The HTTP/2 server answers the preface with its SETTINGS frame (type 4) on stream 0.
    let mut frame_head = [0u8; 9];
    tokio::io::AsyncReadExt::read_exact(&mut stream, &mut frame_head)
        .await
        .unwrap();
    assert_eq!(frame_head[3], 4, "{frame_head:?}");
}

#[tokio::test]
async fn connections_without_a_valid_header_are_closed_and_the_next_is_served() {
    let gw = BehindLoadBalancer::start().await;
    let lb = gw.gw.addr("lb");
    let mut oversized_v1 = b"PROXY UNKNOWN ".to_vec();
    oversized_v1.resize(200, b'x');
    oversized_v1.extend_from_slice(b"\r\n");
    let mut oversized_v2 = V2_SIGNATURE.to_vec();
    oversized_v2.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
    oversized_v2.resize(2000, 0);
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        (
            "no header",
            b"GET /api/x HTTP/1.1\r\nhost: a.test\r\n\r\n".to_vec(),
        ),
        (
            "h2c without a header",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        ),
        ("garbage", b"\x00\xff\x13garbage\r\n\r\n".to_vec()),
        (
            "lowercase v1",
            b"proxy TCP4 203.0.113.7 10.0.0.1 1 80\r\n".to_vec(),
        ),
        (
            "v1 with a bad address",
            b"PROXY TCP4 203.0.113.777 10.0.0.1 1 80\r\nGET / HTTP/1.1\r\n\r\n".to_vec(),
        ),
        (
            "v1 ending in LF alone",
            b"PROXY UNKNOWN\nGET / HTTP/1.1\r\n\r\n".to_vec(),
        ),
        ("oversized v1", oversized_v1),
        ("oversized v2", oversized_v2),
        ("v2 of version 3", {
            let mut h = v2_tcp4([1, 2, 3, 4], 1);
            h[12] = 0x31;
            h
        }),
        ("v2 shorter than its addresses", v2(1, 0x21, &[0; 12])),
    ];
    for (what, bytes) in &hostile {
        assert_eq!(exchange(lb, bytes, false).await, "", "{what}");
    }
    // Cut off partway, then the client closes its side.
    let truncated: Vec<(&str, Vec<u8>)> = vec![
        ("truncated v1", b"PROXY TCP4 203.0.113.7 10.0".to_vec()),
        ("truncated v2", v2_tcp4([1, 2, 3, 4], 1)[..20].to_vec()),
    ];
    for (what, bytes) in &truncated {
        assert_eq!(exchange(lb, bytes, true).await, "", "{what}");
    }
    let rejected = hostile.len() + truncated.len();
    assert!(gw.metric(&format!(
        r#"floodgate_downstream_connections_rejected_total{{reason="proxy_protocol"}} {rejected}"#
    )));
    gw.assert_serves().await;

    // A TLS client that sends no header: its ClientHello is not a header.
    let tls_without_header = send(
        gw.gw.addr("lb_tls"),
        Proto::Tls {
            h2: false,
            server_name: "a.test".into(),
            root: gw.certs.cert_der.clone(),
        },
        Request::get("/api/x")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert!(tls_without_header.is_err(), "{tls_without_header:?}");
    let header = b"PROXY TCP4 192.0.2.2 10.0.0.1 40000 443\r\n";
    assert_eq!(
        gw.get_behind(header, Via::TlsH1, "/api/tls-still-serving")
            .await,
        (200, "192.0.2.2".to_string())
    );
}

#[tokio::test]
async fn a_header_that_stalls_is_closed_at_the_client_header_timeout() {
    let gw = BehindLoadBalancer::start().await;
    let mut stalled = TcpStream::connect(gw.gw.addr("lb")).await.unwrap();
    stalled.write_all(b"PROXY TCP4 203.0.113.7 ").await.unwrap();
    let mut silent = TcpStream::connect(gw.gw.addr("lb")).await.unwrap();
    assert_eq!(read_to_close(&mut stalled).await, "");
    assert_eq!(read_to_close(&mut silent).await, "");
    assert!(gw.metric(r#"floodgate_connection_timeouts_total{kind="client_header"} 2"#));
    gw.assert_serves().await;
}

#[tokio::test]
async fn a_proxy_line_on_a_listener_without_proxy_protocol_is_a_bad_request() {
    let gw = BehindLoadBalancer::start().await;
    let direct = gw.gw.addr("direct");
    let spoof = b"PROXY TCP4 203.0.113.66 10.0.0.1 51234 80\r\n\
                  GET /api/spoof HTTP/1.1\r\nhost: a.test\r\n\r\n";
    let response = exchange(direct, spoof, false).await;
    assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
    assert!(!response.contains("203.0.113.66"), "{response}");

    let served = send(
        direct,
        Proto::H1,
        Request::get("/api/direct")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(served.status, 200);
    assert_eq!(served.json()["headers"]["x-forwarded-for"], "127.0.0.1");
}

#[tokio::test]
async fn a_reload_turns_proxy_protocol_on_for_new_connections() {
    let upstream = MockUpstream::http("backend").await;
    let port = free_port();
    let yaml = |proxy_protocol: bool| {
        format!(
            "workers: 1\n\
             listeners: [{{ name: main, address: \"127.0.0.1:{port}\", proxy_protocol: {proxy_protocol} }}]\n\
             admin: {{ address: \"127.0.0.1:0\" }}\n\
             upstreams: [{{ id: backend, targets: [{{ address: \"{}\" }}] }}]\n\
             routes: [{{ id: api, paths: [\"/api/*\"], upstream: backend }}]\n",
            upstream.address()
        )
    };
    let mut gw = TestGateway::start(&yaml(false));
    let addr = gw.addr("main");
    let with_header = b"PROXY TCP4 203.0.113.5 10.0.0.1 51234 80\r\n\
                        GET /api/x HTTP/1.1\r\nhost: a.test\r\nconnection: close\r\n\r\n";
    let before = exchange(addr, with_header, false).await;
    assert!(before.starts_with("HTTP/1.1 400 "), "{before}");

    gw.reload(&yaml(true)).unwrap();
    let after = exchange(addr, with_header, false).await;
    assert!(after.starts_with("HTTP/1.1 200 "), "{after}");
    assert!(
        after.contains(r#""x-forwarded-for":"203.0.113.5""#),
        "{after}"
    );
    let without_header =
        exchange(addr, b"GET /api/x HTTP/1.1\r\nhost: a.test\r\n\r\n", false).await;
    assert_eq!(without_header, "");
}

#[tokio::test]
async fn real_ip_rules_apply_to_the_address_the_header_names() {
    let upstream = MockUpstream::http("backend").await;
    let log = TempFile::new("proxy-protocol-real-ip.log");
    let gw = TestGateway::start(&format!(
        "workers: 1\n\
         listeners: [{{ name: lb, address: \"127.0.0.1:0\", proxy_protocol: true }}]\n\
         admin: {{ address: \"127.0.0.1:0\" }}\n\
         access_log: {{ path: {:?} }}\n\
         real_ip: {{ trusted_proxies: [\"10.0.0.0/8\"] }}\n\
         upstreams: [{{ id: backend, targets: [{{ address: \"{}\" }}] }}]\n\
         routes: [{{ id: api, paths: [\"/api/*\"], upstream: backend }}]\n",
        log.0.display().to_string(),
        upstream.address()
    ));
    let logged = |path: &'static str| {
        let log = log.0.clone();
        async move {
            let find = || {
                std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .find(|l| l["path"] == path)
            };
            eventually(path, || find().is_some()).await;
            find().unwrap()["client_ip"].as_str().unwrap().to_string()
        }
    };
    let via = |source: &str, path: &str| {
        format!(
            "PROXY TCP4 {source} 10.0.0.1 40000 80\r\n\
             GET {path} HTTP/1.1\r\nhost: a.test\r\nx-forwarded-for: 203.0.113.50\r\n\
             connection: close\r\n\r\n"
        )
    };
    // An internal proxy in front of the load balancer is trusted to report the client.
    let response = exchange(
        gw.addr("lb"),
        via("10.1.2.3", "/api/trusted").as_bytes(),
        false,
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    assert_eq!(logged("/api/trusted").await, "203.0.113.50");
    // A client named by the header is not, whatever it says in X-Forwarded-For.
    let response = exchange(
        gw.addr("lb"),
        via("198.51.100.1", "/api/direct").as_bytes(),
        false,
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    assert_eq!(logged("/api/direct").await, "198.51.100.1");
}
