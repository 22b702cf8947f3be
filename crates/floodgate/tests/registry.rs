//! The service registry with the real binary, a real etcd and `floodgate register` processes: instances
//! that register get traffic, one that stops (or whose lease expires) loses it, a reload keeps the
//! registered targets, and an upstream with no instance answers 503.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use floodgate_testkit::{get, Floodgate, MockUpstream, TestEtcd};

const BIN: &str = env!("CARGO_BIN_EXE_floodgate");
const PREFIX: &str = "/services/users/";

fn config(listener: SocketAddr, admin: SocketAddr, etcd: &TestEtcd) -> String {
    format!(
        r#"
workers: 1
listeners: [{{ name: main, address: "{listener}" }}]
admin: {{ address: "{admin}" }}
upstreams:
  - id: users
    discovery: {{ etcd: {{ prefix: "{PREFIX}", endpoints: ["{}"] }} }}
routes:
  - {{ id: users, paths: ["/users/*"], upstream: users }}
"#,
        etcd.endpoint()
    )
}

/// A `floodgate register` process for `address`; killed when dropped.
struct Registration(Child);

impl Registration {
    fn start(etcd: &TestEtcd, address: String) -> Registration {
        let child = Command::new(BIN)
            .args(["register", "--etcd", &etcd.endpoint(), "--prefix", PREFIX])
            .args(["--address", &address, "--ttl", "2s"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run floodgate register");
        Registration(child)
    }

    fn terminate(&mut self) -> Option<i32> {
        let pid = self.0.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        self.0.wait().expect("wait").code()
    }

    fn crash(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.crash();
    }
}

/// Which upstreams answered 20 requests (`x-upstream`), or `None` for a request that was not a 200.
async fn answering(gw: &Floodgate) -> BTreeSet<Option<String>> {
    let mut seen = BTreeSet::new();
    for i in 0..20 {
        let res = get(gw.listener, &format!("/users/{i}"))
            .await
            .expect("request");
        seen.insert(if res.status == 200 {
            res.header("x-upstream").map(str::to_string)
        } else {
            None
        });
    }
    seen
}

fn only(names: &[&str]) -> BTreeSet<Option<String>> {
    names.iter().map(|n| Some(n.to_string())).collect()
}

#[tokio::test]
async fn registered_instances_get_traffic_and_lose_it_when_they_go() {
    let etcd = TestEtcd::start().await;
    let (a, b) = (MockUpstream::http("a").await, MockUpstream::http("b").await);
    let gw = Floodgate::start(BIN, |l, c| config(l, c, &etcd)).await;
    let none = get(gw.listener, "/users/x").await.expect("request");
    assert_eq!(none.status, 503, "{}", none.text());

    let mut first = Registration::start(&etcd, a.address());
    gw.poll("the first instance never got traffic", || async {
        answering(&gw).await == only(&["a"])
    })
    .await;
    let mut second = Registration::start(&etcd, b.address());
    gw.poll("the second instance never got traffic", || async {
        answering(&gw).await == only(&["a", "b"])
    })
    .await;

    // A reload keeps the registered targets: no request in between finds none.
    gw.signal("HUP");
    for _ in 0..5 {
        assert_eq!(answering(&gw).await, only(&["a", "b"]));
    }

    // Stopped, an instance unregisters at once.
    assert_eq!(first.terminate(), Some(0));
    gw.poll("the stopped instance kept its traffic", || async {
        answering(&gw).await == only(&["b"])
    })
    .await;
    // Crashed, its lease runs out (2s) and it goes too.
    second.crash();
    gw.poll("the crashed instance's lease never expired", || async {
        answering(&gw).await == BTreeSet::from([None])
    })
    .await;

    // A value written by hand (etcdctl put) is an instance as well; a bad one is left out.
    etcd.put(
        &format!("{PREFIX}manual"),
        &format!(r#"{{"address": "{}", "weight": 3}}"#, b.address()),
    )
    .await;
    etcd.put(
        &format!("{PREFIX}broken"),
        r#"{"address": "users.internal:80"}"#,
    )
    .await;
    gw.poll("the hand-written instance never got traffic", || async {
        answering(&gw).await == only(&["b"])
    })
    .await;
}

#[tokio::test]
async fn register_reaches_an_etcd_over_tls_with_its_certificate_authority() {
    let etcd = TestEtcd::start_tls().await;
    let ca = etcd.certs().expect("tls").cert_path.display().to_string();
    let key = format!("{PREFIX}10.0.0.7:8000");
    let mut client = etcd.client().await.expect("an etcd client");
    let registered = |with_ca: bool| {
        let mut command = Command::new(BIN);
        command
            .args(["register", "--etcd", &etcd.endpoint(), "--prefix", PREFIX])
            .args(["--address", "10.0.0.7:8000", "--ttl", "2s"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if with_ca {
            command.args(["--cacert", &ca]);
        }
        Registration(command.spawn().expect("run floodgate register"))
    };
    // Without the certificate authority the registration never lands.
    let without = registered(false);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let found = client.get(key.as_str(), None).await.expect("get");
    assert!(found.kvs().is_empty());
    drop(without);
    // With it, it does.
    let _with = registered(true);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let found = client.get(key.as_str(), None).await.expect("get");
        if let Some(kv) = found.kvs().first() {
            let value: serde_json::Value = serde_json::from_slice(kv.value()).expect("JSON");
            assert_eq!(value["address"], "10.0.0.7:8000");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never registered over TLS"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
