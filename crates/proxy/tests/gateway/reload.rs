//! Reloading a running gateway: new routes and listeners take effect, a bad configuration changes nothing,
//! and connections opened before the reload (downloads, WebSockets, keep-alive) carry on.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use floodgate_testkit::{
    free_port, read_body, send, send_on, MockUpstream, Proto, TestCerts, TestGateway,
};
use futures_util::{SinkExt, StreamExt};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// Two upstreams, `a` and `b`, a `main` listener, `extra` listeners appended, and routes `(id, path, upstream)`.
fn config(
    a: &MockUpstream,
    b: &MockUpstream,
    routes: &[(&str, &str, &str)],
    extra: &str,
) -> String {
    let routes: String = routes
        .iter()
        .map(|(id, path, upstream)| {
            format!("  - {{ id: {id}, paths: [\"{path}\"], upstream: {upstream} }}\n")
        })
        .collect();
    format!(
        "workers: 2\nlisteners:\n  - {{ name: main, address: \"127.0.0.1:0\" }}\n{extra}\
         admin: {{ address: \"127.0.0.1:0\" }}\n\
         upstreams:\n  - {{ id: a, targets: [{{ address: \"{}\" }}] }}\n  - {{ id: b, targets: [{{ address: \"{}\" }}] }}\n\
         routes:\n{routes}",
        a.address(),
        b.address()
    )
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .body(Full::new(Bytes::new()))
        .expect("request")
}

/// The status and answering upstream (`x-upstream`) of `GET path`, or None when the request failed.
async fn answer(addr: SocketAddr, path: &str) -> Option<(u16, Option<String>)> {
    let res = send(addr, Proto::H1, get(path)).await.ok()?;
    Some((
        res.status.as_u16(),
        res.header("x-upstream").map(str::to_string),
    ))
}

fn ok_from(upstream: &str) -> Option<(u16, Option<String>)> {
    Some((200, Some(upstream.to_string())))
}

fn refuses(result: std::io::Result<TcpStream>) -> bool {
    matches!(result, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
}

/// Polls until `addr` refuses connections. Removed listeners close on the workers' own threads, after
/// `reload` returns; the limit is a safety net for a broken test, not a timing assertion.
async fn wait_refused(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !refuses(TcpStream::connect(addr).await) {
        assert!(Instant::now() < deadline, "{addr} kept accepting");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn reload_swaps_routes() {
    let (a, b) = (MockUpstream::http("a").await, MockUpstream::http("b").await);
    let mut gw = TestGateway::start(&config(&a, &b, &[("old", "/old/*", "a")], ""));
    let addr = gw.addr("main");
    assert_eq!(answer(addr, "/old/x").await, ok_from("a"));
    assert_eq!(answer(addr, "/new/x").await.map(|r| r.0), Some(404));

    gw.reload(&config(
        &a,
        &b,
        &[("new", "/new/*", "b"), ("moved", "/old/*", "b")],
        "",
    ))
    .expect("reload");
    assert_eq!(answer(addr, "/new/x").await, ok_from("b"));
    assert_eq!(answer(addr, "/old/x").await, ok_from("b"));
    assert_eq!(gw.addr("main"), addr, "the kept listener moved");
}

#[tokio::test]
async fn reload_with_a_missing_tls_certificate_fails_and_changes_nothing() {
    let (a, b) = (MockUpstream::http("a").await, MockUpstream::http("b").await);
    let mut gw = TestGateway::start(&config(&a, &b, &[("old", "/old/*", "a")], ""));
    let addr = gw.addr("main");
    // A file next to real certificates, in a fresh directory, that was never written.
    let certs = TestCerts::new(&["localhost"]);
    let missing = certs
        .cert_path
        .with_file_name("missing.pem")
        .display()
        .to_string();
    let tls = format!(
        "  - name: secure\n    address: \"127.0.0.1:0\"\n    tls:\n      certificates: [{{ cert: \"{missing}\", key: \"{missing}\" }}]\n"
    );

    let err = gw
        .reload(&config(&a, &b, &[("new", "/new/*", "b")], &tls))
        .expect_err("a missing certificate must fail the reload");
    assert!(
        err.contains("listeners[1].tls.certificates[0].cert"),
        "{err}"
    );
    assert_eq!(answer(addr, "/old/x").await, ok_from("a"));
    assert_eq!(answer(addr, "/new/x").await.map(|r| r.0), Some(404));
    assert!(gw.gateway().local_addr("secure").is_none());
}

#[tokio::test]
async fn reload_with_a_listener_address_in_use_fails_and_changes_nothing() {
    let (a, b) = (MockUpstream::http("a").await, MockUpstream::http("b").await);
    let mut gw = TestGateway::start(&config(&a, &b, &[("old", "/old/*", "a")], ""));
    let addr = gw.addr("main");
    // Another socket (without SO_REUSEPORT) already holds this address.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_addr = taken.local_addr().expect("addr");
    let extra = format!("  - {{ name: second, address: \"{taken_addr}\" }}\n");

    let err = gw
        .reload(&config(&a, &b, &[("new", "/new/*", "b")], &extra))
        .expect_err("binding a taken address must fail the reload");
    assert!(
        err.contains(&format!(
            "listeners[1].address: cannot listen on {taken_addr}"
        )),
        "{err}"
    );
    assert_eq!(answer(addr, "/old/x").await, ok_from("a"));
    assert_eq!(answer(addr, "/new/x").await.map(|r| r.0), Some(404));
    assert!(gw.gateway().local_addr("second").is_none());
    // The gateway still reloads once the problem is gone.
    drop(taken);
    gw.reload(&config(&a, &b, &[("new", "/new/*", "b")], ""))
        .expect("reload");
    assert_eq!(answer(addr, "/new/x").await, ok_from("b"));
}

/// Listener sockets carry `SO_REUSEPORT`, which would let a new listener bind the port that a port-0 one
/// was given and then split its connections: the reload is refused instead.
#[tokio::test]
async fn reload_with_a_listener_on_the_port_another_listener_was_given_fails() {
    let (a, b) = (MockUpstream::http("a").await, MockUpstream::http("b").await);
    let mut gw = TestGateway::start(&config(&a, &b, &[("old", "/old/*", "a")], ""));
    let main = gw.addr("main");
    let extra = format!("  - {{ name: second, address: \"{main}\" }}\n");

    let err = gw
        .reload(&config(&a, &b, &[("new", "/new/*", "b")], &extra))
        .expect_err("a second listener on main's port must fail the reload");
    assert_eq!(
        err,
        format!("listeners[1].address: cannot listen on {main}: listener \"main\" is bound to it")
    );
    assert!(gw.gateway().local_addr("second").is_none());
    for _ in 0..8 {
        assert_eq!(answer(main, "/old/x").await, ok_from("a"));
    }
    // The same listener on a port of its own is taken.
    let second: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let extra = format!("  - {{ name: second, address: \"{second}\" }}\n");
    gw.reload(&config(&a, &b, &[("new", "/new/*", "b")], &extra))
        .expect("reload");
    assert_eq!(answer(second, "/new/x").await, ok_from("b"));
    assert_eq!(answer(main, "/new/x").await, ok_from("b"));
}

#[tokio::test]
async fn reload_keeps_inflight_stream() {
    const TOTAL: usize = 20_000_000;
    let (a, b) = (MockUpstream::http("a").await, MockUpstream::http("b").await);
    let mut gw = TestGateway::start(&config(&a, &b, &[("old", "/stream/*", "a")], ""));
    let addr = gw.addr("main");
    let response = send_on(addr, Proto::H1, get(&format!("/stream/{TOTAL}")))
        .await
        .expect("download starts");
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    // Part of the body, so the download is under way (held back by this slow reader) during the reload.
    let received = read_body(&mut body, 1_000_000)
        .await
        .expect("download under way");
    assert!(received >= 1_000_000);

    // The route the download came through goes away.
    gw.reload(&config(&a, &b, &[("new", "/new/*", "b")], ""))
        .expect("reload");
    assert_eq!(answer(addr, "/stream/1").await.map(|r| r.0), Some(404));

    let rest = read_body(&mut body, usize::MAX)
        .await
        .expect("download completes");
    assert_eq!(received + rest, TOTAL);
}

#[tokio::test]
async fn reload_keeps_open_websocket() {
    let (a, b) = (MockUpstream::http("a").await, MockUpstream::http("b").await);
    let mut gw = TestGateway::start(&config(&a, &b, &[("ws", "/ws", "a")], ""));
    let addr = gw.addr("main");
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut ws, response) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), tcp)
        .await
        .expect("websocket handshake through the gateway");
    assert_eq!(response.status(), 101);
    ws.send(Message::text("before")).await.expect("send");
    assert_eq!(
        ws.next().await.expect("echo").expect("frame"),
        Message::text("before")
    );

    // The WebSocket's route is gone after this reload; the open tunnel is not.
    gw.reload(&config(&a, &b, &[("new", "/new/*", "b")], ""))
        .expect("reload");
    assert_eq!(answer(addr, "/new/x").await, ok_from("b"));
    for text in ["after", "and again"] {
        ws.send(Message::text(text)).await.expect("send");
        assert_eq!(
            ws.next().await.expect("echo").expect("frame"),
            Message::text(text)
        );
    }
    ws.close(None).await.expect("close");
}

#[tokio::test]
async fn reload_keeps_keepalive_connection() {
    let (a, b) = (MockUpstream::http("a").await, MockUpstream::http("b").await);
    let mut gw = TestGateway::start(&config(&a, &b, &[("old", "/old/*", "a")], ""));
    let addr = gw.addr("main");
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("handshake");
    let connection = tokio::spawn(conn);
    let request = |path: &str| {
        Request::get(path)
            .header("host", addr.to_string())
            .body(Full::new(Bytes::new()))
            .expect("request")
    };
    let first = sender.send_request(request("/old/x")).await.expect("first");
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-upstream"], "a");
    first.into_body().collect().await.expect("first body");

    gw.reload(&config(&a, &b, &[("new", "/new/*", "b")], ""))
        .expect("reload");

    // Same connection: every request loads the current snapshot, so the new route answers on it.
    sender
        .ready()
        .await
        .expect("connection still open after reload");
    let second = sender
        .send_request(request("/new/x"))
        .await
        .expect("second request on the same connection");
    assert_eq!(second.status(), 200);
    assert_eq!(second.headers()["x-upstream"], "b");
    second.into_body().collect().await.expect("second body");
    assert!(!connection.is_finished(), "the connection was closed");
}

#[tokio::test]
async fn reload_adds_and_removes_a_listener() {
    let (a, b) = (MockUpstream::http("a").await, MockUpstream::http("b").await);
    let mut gw = TestGateway::start(&config(&a, &b, &[("api", "/api/*", "a")], ""));
    let main = gw.addr("main");
    let second: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let extra = format!("  - {{ name: second, address: \"{second}\" }}\n");

    gw.reload(&config(&a, &b, &[("api", "/api/*", "a")], &extra))
        .expect("reload adding a listener");
    assert_eq!(gw.addr("second"), second);
    assert_eq!(answer(second, "/api/x").await, ok_from("a"));
    assert_eq!(answer(main, "/api/x").await, ok_from("a"));

    gw.reload(&config(&a, &b, &[("api", "/api/*", "a")], ""))
        .expect("reload removing a listener");
    assert!(gw.gateway().local_addr("second").is_none());
    wait_refused(second).await;
    assert_eq!(answer(main, "/api/x").await, ok_from("a"));
}

#[tokio::test]
async fn reload_adds_a_second_port_zero_listener() {
    // Validation accepts several listeners on port 0 ("two such listeners never collide").
    let (a, b) = (MockUpstream::http("a").await, MockUpstream::http("b").await);
    let mut gw = TestGateway::start(&config(&a, &b, &[("api", "/api/*", "a")], ""));
    let main = gw.addr("main");
    let extra = "  - { name: second, address: \"127.0.0.1:0\" }\n";

    gw.reload(&config(&a, &b, &[("api", "/api/*", "a")], extra))
        .expect("reload adding a listener");
    let second = gw
        .gateway()
        .local_addr("second")
        .expect("the second port-0 listener is bound");
    assert_ne!(second, main);
    assert_eq!(answer(second, "/api/x").await, ok_from("a"));
    assert_eq!(answer(main, "/api/x").await, ok_from("a"));
}

#[tokio::test]
async fn reload_removing_a_listener_lets_its_inflight_request_finish() {
    let (a, b) = (MockUpstream::http("a").await, MockUpstream::http("b").await);
    let second: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let extra = format!("  - {{ name: second, address: \"{second}\" }}\n");
    let mut gw = TestGateway::start(&config(&a, &b, &[("api", "/*", "a")], &extra));
    let inflight = tokio::spawn(async move { answer(second, "/slow/1500").await });
    let deadline = Instant::now() + Duration::from_secs(30);
    while a.requests() == 0 {
        assert!(Instant::now() < deadline, "the slow request never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    gw.reload(&config(&a, &b, &[("api", "/*", "a")], ""))
        .expect("reload removing the listener");
    assert_eq!(inflight.await.expect("request task"), ok_from("a"));
    wait_refused(second).await;
}

#[tokio::test]
async fn reload_adds_a_tls_listener() {
    let (a, b) = (MockUpstream::http("a").await, MockUpstream::http("b").await);
    let certs = TestCerts::new(&["localhost"]);
    let mut gw = TestGateway::start(&config(&a, &b, &[("api", "/api/*", "a")], ""));
    let tls = format!(
        "  - name: secure\n    address: \"127.0.0.1:{}\"\n    tls:\n      certificates: [{{ cert: \"{}\", key: \"{}\" }}]\n",
        free_port(),
        certs.cert(),
        certs.key()
    );

    gw.reload(&config(&a, &b, &[("api", "/api/*", "a")], &tls))
        .expect("reload adding a TLS listener");
    for h2 in [false, true] {
        let proto = Proto::Tls {
            h2,
            server_name: "localhost".into(),
            root: certs.cert_der.clone(),
        };
        let res = send(gw.addr("secure"), proto, get("/api/x"))
            .await
            .expect("TLS request");
        assert_eq!(res.status, 200);
        assert_eq!(res.header("x-upstream"), Some("a"));
    }
}

#[tokio::test]
async fn two_port_zero_listeners_both_serve_across_reload() {
    let (a, b) = (MockUpstream::http("a").await, MockUpstream::http("b").await);
    let extra = "  - { name: second, address: \"127.0.0.1:0\" }\n";
    let mut gw = TestGateway::start(&config(&a, &b, &[("api", "/api/*", "a")], extra));
    let listeners = || {
        let gateway = gw.gateway();
        (gateway.local_addr("main"), gateway.local_addr("second"))
    };
    let (Some(main), Some(second)) = listeners() else {
        panic!("both port-0 listeners are bound: {:?}", listeners());
    };
    assert_ne!(main, second);
    assert_eq!(answer(main, "/api/x").await, ok_from("a"));
    assert_eq!(answer(second, "/api/x").await, ok_from("a"));

    gw.reload(&config(&a, &b, &[("api", "/api/*", "b")], extra))
        .expect("reload");
    assert_eq!(answer(main, "/api/x").await, ok_from("b"));
    assert_eq!(answer(second, "/api/x").await, ok_from("b"));
}
