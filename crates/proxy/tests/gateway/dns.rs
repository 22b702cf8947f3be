//! Targets given by name, resolved by a real DNS server the test runs on 127.0.0.1 and changes while
//! the gateway serves: every address gets traffic, traffic follows new records, a name server that
//! stops answering leaves the last addresses in use, no request waits on a resolution, and a reload
//! keeps what the resolved targets have shown.
//!
//! A DNS record carries no port, so a name's two servers listen on the same port of 127.0.0.1 and
//! 127.0.0.2.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use floodgate_testkit::{eventually, send, FnUpstream, Proto, TestDns, TestGateway};
use http::{Request, Response};
use http_body_util::Full;
use serde_json::Value;

const NAME: &str = "app.floodgate.test";

/// What one of a name's servers saw.
#[derive(Default)]
struct Seen {
    requests: AtomicUsize,
    probes: AtomicUsize,
    /// The status it answers requests with.
    status: AtomicU16,
}

/// A server answering with its own address and the `Host` it was sent, as `ip host`.
async fn server(addr: SocketAddr, seen: Arc<Seen>) -> FnUpstream {
    seen.status.store(200, Ordering::SeqCst);
    FnUpstream::start_on(addr, move |req: Request<_>| {
        let seen = seen.clone();
        async move {
            let probe = req
                .headers()
                .get("user-agent")
                .is_some_and(|v| v == "floodgate-health-check");
            let counter = if probe { &seen.probes } else { &seen.requests };
            counter.fetch_add(1, Ordering::SeqCst);
            let host = req
                .headers()
                .get("host")
                .and_then(|h| h.to_str().ok())
                .unwrap_or("-")
                .to_owned();
            Response::builder()
                .status(if probe {
                    200
                } else {
                    seen.status.load(Ordering::SeqCst)
                })
                .body(Full::new(Bytes::from(format!("{} {host}", addr.ip()))))
                .unwrap()
        }
    })
    .await
}

/// Two servers of the name, on one port of 127.0.0.1 and 127.0.0.2.
struct Servers {
    port: u16,
    one: Arc<Seen>,
    two: Arc<Seen>,
    _running: (FnUpstream, FnUpstream),
}

async fn servers() -> Servers {
    let (one, two) = (Arc::new(Seen::default()), Arc::new(Seen::default()));
    let first = server(SocketAddr::from(([127, 0, 0, 1], 0)), one.clone()).await;
    let port = first.addr.port();
    let second = server(SocketAddr::from(([127, 0, 0, 2], port)), two.clone()).await;
    Servers {
        port,
        one,
        two,
        _running: (first, second),
    }
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|ip| ip.parse().unwrap()).collect()
}

/// A gateway whose one upstream is `NAME:port`, resolved by `dns` with answers used 100ms at
/// least (the server's TTL is 0) and each new request on a new upstream connection, so a
/// connection that looked the name up would show.
fn config(dns: &TestDns, port: u16, timeout: &str, upstream_extra: &str) -> String {
    format!(
        r#"
workers: 1
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
dns: {{ nameservers: ["{ns}"], timeout: {timeout}, min_ttl: 100ms, retry_interval: 100ms }}
upstreams:
  - id: app
    targets: [{{ address: "{NAME}:{port}" }}]
    keepalive: {{ max_idle_per_target: 0 }}
{upstream_extra}routes:
  - {{ id: app, paths: ["/*"], upstream: app, preserve_host: false }}
"#,
        ns = dns.nameserver(),
    )
}

/// The servers that answered `count` requests, each of which must have succeeded.
async fn answered_by(gw: &TestGateway, count: usize) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for i in 0..count {
        let req = Request::get(format!("/r/{i}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let res = send(gw.addr("main"), Proto::H1, req).await.unwrap();
        assert_eq!(res.status, 200, "request {i}: {}", res.text());
        seen.insert(res.text().split(' ').next().unwrap_or_default().to_owned());
    }
    seen
}

fn status(gw: &TestGateway) -> Value {
    serde_json::from_str(&gw.gateway().upstream_status_source()()).unwrap()
}

/// The app upstream's targets in `/status/upstreams`.
fn targets(gw: &TestGateway) -> Vec<Value> {
    status(gw)["upstreams"][0]["targets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn addresses(gw: &TestGateway) -> Vec<String> {
    targets(gw)
        .iter()
        .map(|t| t["address"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// `floodgate_dns_resolutions_total{upstream="app",result=...}`, 0 when not listed.
fn resolutions(gw: &TestGateway, result: &str) -> u64 {
    let prefix =
        format!("floodgate_dns_resolutions_total{{upstream=\"app\",result=\"{result}\"}} ");
    gw.metrics
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(&prefix)?.parse().ok())
        .unwrap_or(0)
}

fn set(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn every_address_of_a_name_gets_traffic_with_the_name_as_host() {
    let servers = servers().await;
    let dns = TestDns::start();
    dns.set(NAME, &ips(&["127.0.0.1", "127.0.0.2"]));
    let gw = TestGateway::start(&config(&dns, servers.port, "1s", ""));
    assert_eq!(answered_by(&gw, 20).await, set(&["127.0.0.1", "127.0.0.2"]));
    let req = Request::get("/host").body(Full::new(Bytes::new())).unwrap();
    let res = send(gw.addr("main"), Proto::H1, req).await.unwrap();
    assert!(
        res.text().ends_with(&format!(" {NAME}:{}", servers.port)),
        "the upstream is sent the name, not the address: {}",
        res.text()
    );
    let port = servers.port;
    assert_eq!(
        addresses(&gw),
        [format!("127.0.0.1:{port}"), format!("127.0.0.2:{port}")]
    );
    for target in targets(&gw) {
        assert_eq!(target["name"], format!("{NAME}:{port}"));
    }
    assert!(resolutions(&gw, "success") >= 1);
}

#[tokio::test]
async fn traffic_follows_a_name_whose_records_change() {
    let servers = servers().await;
    let dns = TestDns::start();
    dns.set(NAME, &ips(&["127.0.0.1"]));
    let gw = TestGateway::start(&config(&dns, servers.port, "1s", ""));
    assert_eq!(answered_by(&gw, 5).await, set(&["127.0.0.1"]));

    dns.set(NAME, &ips(&["127.0.0.2"]));
    let moved = format!("127.0.0.2:{}", servers.port);
    eventually("the targets to follow the new record", || {
        addresses(&gw) == [moved.clone()]
    })
    .await;
    let before = servers.one.requests.load(Ordering::SeqCst);
    assert_eq!(answered_by(&gw, 10).await, set(&["127.0.0.2"]));
    assert_eq!(servers.one.requests.load(Ordering::SeqCst), before);

    dns.set(NAME, &ips(&["127.0.0.1", "127.0.0.2"]));
    eventually("the targets to follow the added record", || {
        addresses(&gw).len() == 2
    })
    .await;
    assert_eq!(answered_by(&gw, 20).await, set(&["127.0.0.1", "127.0.0.2"]));
}

#[tokio::test]
async fn a_silent_name_server_leaves_the_last_addresses_in_use() {
    let servers = servers().await;
    let dns = TestDns::start();
    dns.set(NAME, &ips(&["127.0.0.1", "127.0.0.2"]));
    let gw = TestGateway::start(&config(&dns, servers.port, "200ms", ""));
    assert_eq!(answered_by(&gw, 10).await.len(), 2);

    dns.silence();
    eventually("resolutions to time out", || {
        resolutions(&gw, "timeout") >= 2
    })
    .await;
    assert_eq!(addresses(&gw).len(), 2);
    assert_eq!(answered_by(&gw, 20).await, set(&["127.0.0.1", "127.0.0.2"]));

    // A name that no longer exists is a failure too: the last addresses stay.
    dns.remove(NAME);
    dns.answer();
    eventually("NXDOMAIN to be counted", || {
        resolutions(&gw, "nxdomain") >= 1
    })
    .await;
    assert_eq!(answered_by(&gw, 20).await, set(&["127.0.0.1", "127.0.0.2"]));
}

#[tokio::test]
async fn no_request_waits_on_a_stalled_resolution() {
    let servers = servers().await;
    let dns = TestDns::start();
    dns.set(NAME, &ips(&["127.0.0.1", "127.0.0.2"]));
    // A resolution the silent server stalls waits a minute for its timeout.
    let gw = TestGateway::start(&config(&dns, servers.port, "60s", ""));
    assert_eq!(answered_by(&gw, 4).await.len(), 2);

    dns.silence();
    let answered = dns.queries();
    eventually("a query to reach the silent server", || {
        dns.queries() > answered
    })
    .await;
    // A resolution is now stalled, and stays so for a minute: every request below opens a new
    // upstream connection, and each gets its answer while no resolution has ended.
    assert_eq!(answered_by(&gw, 20).await, set(&["127.0.0.1", "127.0.0.2"]));
    assert_eq!(resolutions(&gw, "timeout"), 0);
}

#[tokio::test]
async fn a_name_without_an_answer_gets_503_at_once_until_it_resolves() {
    let servers = servers().await;
    let dns = TestDns::start();
    let gw = TestGateway::start(&config(&dns, servers.port, "1s", ""));
    let req = Request::get("/").body(Full::new(Bytes::new())).unwrap();
    let res = send(gw.addr("main"), Proto::H1, req).await.unwrap();
    assert_eq!(res.status, 503, "{}", res.text());
    assert!(res.text().contains("error"), "{}", res.text());
    assert!(addresses(&gw).is_empty());

    dns.set(NAME, &ips(&["127.0.0.2"]));
    eventually("the name to resolve", || addresses(&gw).len() == 1).await;
    assert_eq!(answered_by(&gw, 3).await, set(&["127.0.0.2"]));
}

#[tokio::test]
async fn a_reload_keeps_resolved_targets_and_their_state() {
    let servers = servers().await;
    let dns = TestDns::start();
    dns.set(NAME, &ips(&["127.0.0.1", "127.0.0.2"]));
    let passive = "    health_checks: { passive: { consecutive_5xx: 1, base_ejection_time: 60s, max_ejected_percent: 50 } }\n";
    let gw_config = config(&dns, servers.port, "200ms", passive);
    let mut gw = TestGateway::start(&gw_config);
    servers.two.status.store(500, Ordering::SeqCst);
    let ejected = format!("127.0.0.2:{}", servers.port);
    let is_ejected = |gw: &TestGateway| {
        targets(gw)
            .iter()
            .any(|t| t["address"] == ejected.as_str() && t["ejected"] == true)
    };
    for i in 0..10 {
        let req = Request::get(format!("/eject/{i}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let _ = send(gw.addr("main"), Proto::H1, req).await.unwrap();
        if is_ejected(&gw) {
            break;
        }
    }
    assert!(is_ejected(&gw), "{:?}", targets(&gw));

    // With the name server silent, the reload cannot learn the addresses again: it starts from the
    // ones it has, and the ejected target stays ejected.
    dns.silence();
    let reloaded = gw_config.replace(
        "preserve_host: false }",
        "preserve_host: false, timeout: 20s }",
    );
    assert_ne!(reloaded, gw_config);
    gw.reload(&reloaded).unwrap();
    assert_eq!(addresses(&gw).len(), 2);
    assert!(is_ejected(&gw), "{:?}", targets(&gw));
    assert_eq!(answered_by(&gw, 10).await, set(&["127.0.0.1"]));

    // A reload that changes the upstream but not its names keeps them too.
    let rebalanced = reloaded.replace(
        "    keepalive: { max_idle_per_target: 0 }\n",
        "    keepalive: { max_idle_per_target: 0 }\n    balancer: random\n",
    );
    gw.reload(&rebalanced).unwrap();
    assert_eq!(addresses(&gw).len(), 2);
    assert!(is_ejected(&gw), "{:?}", targets(&gw));
}

#[tokio::test]
async fn active_probes_follow_a_names_addresses() {
    let servers = servers().await;
    let dns = TestDns::start();
    dns.set(NAME, &ips(&["127.0.0.1"]));
    let active = "    health_checks: { active: { path: /healthz, interval: 100ms, jitter: 0s } }\n";
    let gw = TestGateway::start(&config(&dns, servers.port, "1s", active));
    eventually("the first address to be probed", || {
        servers.one.probes.load(Ordering::SeqCst) > 0
    })
    .await;
    assert_eq!(servers.two.probes.load(Ordering::SeqCst), 0);

    dns.set(NAME, &ips(&["127.0.0.2"]));
    eventually("the new address to be probed", || {
        servers.two.probes.load(Ordering::SeqCst) > 0
    })
    .await;
    // A probe the switch caught on its way has landed by the time the new address had a few.
    eventually("the new address to be probed again", || {
        servers.two.probes.load(Ordering::SeqCst) > 3
    })
    .await;
    let stopped = servers.one.probes.load(Ordering::SeqCst);
    let probed = servers.two.probes.load(Ordering::SeqCst);
    eventually("more probes of the new address", || {
        servers.two.probes.load(Ordering::SeqCst) > probed + 3
    })
    .await;
    assert_eq!(
        servers.one.probes.load(Ordering::SeqCst),
        stopped,
        "the address the name left is no longer probed"
    );
    drop(gw);
}
