//! Active health checks against real targets that the tests start, fail, kill and restart: a target
//! leaves service within interval x threshold and returns after it recovers, under steady load and
//! with no client error; gRPC and TCP probes; probes that survive a reload.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use floodgate_testkit::config::{head, target_list};
use floodgate_testkit::{
    eventually, free_port, grpc_health_server, send, MockUpstream, Proto, TestGateway,
};
use http::Request;
use http_body_util::Full;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// A target on a fixed port that answers every request, its health path included, with the status
/// it is set to, and that can be killed (its listener and every open connection) and started again.
struct Target {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    requests: Arc<AtomicUsize>,
    probes: Arc<AtomicUsize>,
    tasks: JoinSet<()>,
}

impl Target {
    async fn start(addr: SocketAddr) -> Target {
        let mut target = Target {
            addr,
            status: Arc::new(AtomicU16::new(200)),
            requests: Arc::default(),
            probes: Arc::default(),
            tasks: JoinSet::new(),
        };
        target.listen().await;
        target
    }

    async fn listen(&mut self) {
        let listener = TcpListener::bind(self.addr).await.expect("bind target");
        let (status, requests, probes) = (
            self.status.clone(),
            self.requests.clone(),
            self.probes.clone(),
        );
        self.tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let (status, requests, probes) = (status.clone(), requests.clone(), probes.clone());
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<_>| {
                        let probe = req
                            .headers()
                            .get("user-agent")
                            .is_some_and(|v| v == "floodgate-health-check");
                        if probe {
                            probes.fetch_add(1, Ordering::SeqCst);
                        } else {
                            requests.fetch_add(1, Ordering::SeqCst);
                        }
                        // Like nginx: an HTTP/1.1 request without `Host`, or not in origin form,
                        // is refused.
                        let well_formed =
                            req.headers().contains_key("host") && req.uri().authority().is_none();
                        let res = http::Response::builder()
                            .status(if well_formed {
                                status.load(Ordering::SeqCst)
                            } else {
                                400
                            })
                            .header("x-upstream", "target")
                            .body(Full::new(Bytes::from_static(b"ok")));
                        std::future::ready(res)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    }

    /// Closes the listener and every connection, as a killed process would.
    async fn kill(&mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }

    fn address(&self) -> String {
        self.addr.to_string()
    }
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn config(targets: &[String], health: &str, route: &str) -> String {
    let targets = target_list(targets);
    head(2)
        + &format!(
            "upstreams:\n  - id: pool\n    targets: [{}]\n    health_checks: {health}\n\
         routes:\n  - {{ id: r, paths: [\"/*\"], upstream: pool{route} }}\n",
            targets
        )
}

fn healthy(gw: &TestGateway, target: &str) -> Option<bool> {
    let prefix =
        format!("floodgate_upstream_target_healthy{{upstream=\"pool\",target=\"{target}\"}} ");
    gw.metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(|v| v == "1"))
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path).body(Full::new(Bytes::new())).unwrap()
}

/// `n` GETs from `clients` concurrent clients: how many got each status.
async fn load(addr: SocketAddr, clients: usize, n: usize) -> Vec<u16> {
    let mut tasks = JoinSet::new();
    for _ in 0..clients {
        tasks.spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..n / clients {
                let res = send(addr, Proto::H1, get("/x")).await;
                statuses.push(res.map_or(0, |r| r.status.as_u16()));
            }
            statuses
        });
    }
    let mut all = Vec::new();
    while let Some(statuses) = tasks.join_next().await {
        all.extend(statuses.unwrap());
    }
    all
}

const PROBE: &str = "{ active: { type: http, path: /healthz, interval: 200ms, timeout: 200ms, healthy_threshold: 2, unhealthy_threshold: 2 }, panic_threshold: 0 }";

#[tokio::test]
async fn a_killed_target_leaves_service_without_client_errors_and_returns_after_a_restart() {
    let ports = [free_port(), free_port(), free_port()];
    let mut targets = Vec::new();
    for port in ports {
        targets.push(Target::start(local(port)).await);
    }
    let addresses: Vec<String> = targets.iter().map(Target::address).collect();
    // Retrying on another target needs no wait, so the backoff is short. Eight clients on two workers
    // can all meet the dead target at once: the budget lets each retry once (Envoy's default floor of
    // 3 retries in flight would turn a few of them into 502s, which is the budget doing its job).
    let route = ", retries: { attempts: 3, retry_on: [connect_failure, reset], backoff: { base: 1ms, max: 2ms }, budget: { percent: 100, min_retries: 8 } }";
    let gw = TestGateway::start(&config(&addresses, PROBE, route));
    let addr = gw.addr("main");
    eventually("every target probed", || {
        targets.iter().all(|t| t.probes.load(Ordering::SeqCst) >= 1)
    })
    .await;

    // Steady load, and one target killed in the middle of it.
    let traffic = tokio::spawn(load(addr, 8, 10_000));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed_at = Instant::now();
    targets[2].kill().await;
    eventually("the killed target marked down", || {
        healthy(&gw, &addresses[2]) == Some(false)
    })
    .await;
    // interval x unhealthy_threshold is 400 ms; the bound is loose so a loaded machine cannot fail
    // it, and still far below what a missing probe would take (never).
    let took = killed_at.elapsed();
    assert!(took < Duration::from_secs(5), "marked down after {took:?}");
    let statuses = traffic.await.unwrap();
    assert_eq!(statuses.len(), 10_000);
    let errors: Vec<&u16> = statuses.iter().filter(|s| **s != 200).collect();
    let text = gw.metrics.render();
    let retry_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("floodgate_upstream_retr"))
        .collect();
    assert!(
        errors.is_empty(),
        "{} client errors: {:?} {retry_lines:?}",
        errors.len(),
        &errors[..errors.len().min(10)]
    );

    // Back on its port: two passed probes and it takes traffic again.
    let before = targets[2].requests.load(Ordering::SeqCst);
    targets[2].listen().await;
    eventually("the restarted target back in service", || {
        healthy(&gw, &addresses[2]) == Some(true)
    })
    .await;
    let statuses = load(addr, 4, 300).await;
    assert!(statuses.iter().all(|s| *s == 200));
    assert!(targets[2].requests.load(Ordering::SeqCst) > before);
}

#[tokio::test]
async fn a_target_whose_health_path_fails_gets_no_traffic_until_it_passes_again() {
    let ports = [free_port(), free_port()];
    let a = Target::start(local(ports[0])).await;
    let b = Target::start(local(ports[1])).await;
    let probe = "{ active: { path: /healthz, statuses: [200], interval: 100ms, healthy_threshold: 1, unhealthy_threshold: 1 }, panic_threshold: 0 }";
    let gw = TestGateway::start(&config(&[a.address(), b.address()], probe, ""));
    let addr = gw.addr("main");
    b.status.store(503, Ordering::SeqCst);
    eventually("b marked down", || {
        healthy(&gw, &b.address()) == Some(false)
    })
    .await;
    let before = b.requests.load(Ordering::SeqCst);
    let statuses = load(addr, 2, 40).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(b.requests.load(Ordering::SeqCst), before);
    b.status.store(200, Ordering::SeqCst);
    eventually("b back", || healthy(&gw, &b.address()) == Some(true)).await;
    load(addr, 2, 40).await;
    assert!(b.requests.load(Ordering::SeqCst) > before);
}

#[tokio::test]
async fn grpc_probes_ask_the_standard_health_service() {
    let (grpc, _server) = grpc_health_server().await;
    let not_grpc = MockUpstream::http("plain").await;
    let probe = "{ active: { type: grpc, interval: 100ms, healthy_threshold: 1, unhealthy_threshold: 1 }, panic_threshold: 0 }";
    let targets = [grpc.to_string(), not_grpc.address()];
    let yaml = config(&targets, probe, "").replace(
        "    health_checks:",
        "    protocol: http2\n    health_checks:",
    );
    let gw = TestGateway::start(&yaml);
    eventually("the plain HTTP target fails its gRPC probe", || {
        healthy(&gw, &not_grpc.address()) == Some(false)
    })
    .await;
    assert_eq!(healthy(&gw, &grpc.to_string()), Some(true));
    // A service the server does not know is not SERVING.
    let probe = "{ active: { type: grpc, service: no.such.Service, interval: 100ms, healthy_threshold: 1, unhealthy_threshold: 1 }, panic_threshold: 0 }";
    let yaml = config(&[grpc.to_string()], probe, "").replace(
        "    health_checks:",
        "    protocol: http2\n    health_checks:",
    );
    let gw = TestGateway::start(&yaml);
    eventually("an unknown service fails", || {
        healthy(&gw, &grpc.to_string()) == Some(false)
    })
    .await;
}

#[tokio::test]
async fn tcp_probes_find_a_dead_port_and_a_reload_keeps_the_probe_running() {
    let live = Target::start(local(free_port())).await;
    let dead = format!("127.0.0.1:{}", free_port());
    let probe = "{ active: { type: tcp, interval: 100ms, healthy_threshold: 1, unhealthy_threshold: 1 }, panic_threshold: 0 }";
    let mut gw = TestGateway::start(&config(&[live.address(), dead.clone()], probe, ""));
    eventually("the dead port marked down", || {
        healthy(&gw, &dead) == Some(false)
    })
    .await;
    // A reload that changes only the route keeps the probes (and the target stays down).
    gw.reload(&config(
        &[live.address(), dead.clone()],
        probe,
        ", timeout: 20s",
    ))
    .unwrap();
    assert_eq!(healthy(&gw, &dead), Some(false));
    let statuses = load(gw.addr("main"), 2, 20).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // A reload that drops the probes ends them: the dead target is tried again (and fails).
    gw.reload(&config(&[live.address(), dead.clone()], "{}", ""))
        .unwrap();
    let statuses = load(gw.addr("main"), 1, 4).await;
    assert!(statuses.contains(&502), "{statuses:?}");
}

#[tokio::test]
async fn a_backup_level_takes_traffic_only_while_the_first_is_down() {
    let primary = Target::start(local(free_port())).await;
    let backup = Target::start(local(free_port())).await;
    let yaml = format!(
        "workers: 1\nlisteners: [{{ name: main, address: \"127.0.0.1:0\" }}]\n\
         admin: {{ address: \"127.0.0.1:0\" }}\n\
         upstreams:\n  - id: pool\n    targets: [{{ address: \"{}\" }}, {{ address: \"{}\", priority: 1 }}]\n\
         \x20   health_checks: {{ active: {{ path: /healthz, interval: 100ms, healthy_threshold: 1, unhealthy_threshold: 1 }}, panic_threshold: 0 }}\n\
         routes:\n  - {{ id: r, paths: [\"/*\"], upstream: pool }}\n",
        primary.address(),
        backup.address()
    );
    let gw = TestGateway::start(&yaml);
    let addr = gw.addr("main");
    load(addr, 1, 20).await;
    assert_eq!(backup.requests.load(Ordering::SeqCst), 0);
    assert_eq!(primary.requests.load(Ordering::SeqCst), 20);
    primary.status.store(503, Ordering::SeqCst);
    eventually("the primary marked down", || {
        healthy(&gw, &primary.address()) == Some(false)
    })
    .await;
    let statuses = load(addr, 1, 20).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(backup.requests.load(Ordering::SeqCst), 20);
    primary.status.store(200, Ordering::SeqCst);
    eventually("the primary back", || {
        healthy(&gw, &primary.address()) == Some(true)
    })
    .await;
    load(addr, 1, 20).await;
    assert_eq!(backup.requests.load(Ordering::SeqCst), 20);
}
