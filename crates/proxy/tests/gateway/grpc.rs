//! gRPC through the gateway: a real tonic client on the h2c listener, a real tonic server behind an
//! `http2` upstream. Unary calls, errors carried in trailers, server streaming, and a dead upstream.

use std::net::SocketAddr;
use std::time::Duration;

use floodgate_testkit::{free_port, grpc_health_server, TestGateway};
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// A safety net for a hung test, never a timing assertion.
const SAFETY: Duration = Duration::from_secs(10);

/// The gateway in front of tonic's health service. Requests with `x-target: down` go to an upstream
/// whose target accepts no connections.
struct GrpcGateway {
    gw: TestGateway,
    _server: JoinHandle<()>,
}

impl GrpcGateway {
    async fn start() -> GrpcGateway {
        let (grpc_addr, server) = grpc_health_server().await;
        let gw = TestGateway::start(&format!(
            r#"
workers: 2
listeners: [{{ name: main, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
upstreams:
  - id: grpc
    protocol: http2
    targets: [{{ address: "{grpc_addr}" }}]
  - id: down
    protocol: http2
    targets: [{{ address: "127.0.0.1:{down}" }}]
routes:
  - {{ id: health, paths: ["/grpc.health.v1.Health/*"], upstream: grpc }}
  - id: health-down
    paths: ["/grpc.health.v1.Health/*"]
    headers: {{ x-target: down }}
    upstream: down
"#,
            down = free_port()
        ));
        GrpcGateway {
            gw,
            _server: server,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.gw.addr("main")
    }

    /// A client on a new h2c connection to the gateway.
    async fn client(&self) -> HealthClient<Channel> {
        let channel = Endpoint::from_shared(format!("http://{}", self.addr()))
            .unwrap()
            .connect()
            .await
            .expect("connect to the gateway");
        HealthClient::new(channel)
    }
}

fn check(service: &str) -> Request<HealthCheckRequest> {
    Request::new(HealthCheckRequest {
        service: service.to_string(),
    })
}

async fn assert_serving(client: &mut HealthClient<Channel>) {
    let response = tokio::time::timeout(SAFETY, client.check(check("floodgate.test")))
        .await
        .expect("safety timeout")
        .expect("check through the gateway");
    assert_eq!(response.get_ref().status, ServingStatus::Serving as i32);
}

#[tokio::test]
async fn unary_call_is_proxied_to_grpc_upstream() {
    let gw = GrpcGateway::start().await;
    let mut client = gw.client().await;
    assert_serving(&mut client).await;
    // Several calls share the client's one HTTP/2 connection.
    for _ in 0..5 {
        assert_serving(&mut client).await;
    }
    // The gateway's own headers come back as response metadata.
    let response = client.check(check("floodgate.test")).await.unwrap();
    let request_id = response.metadata().get("x-request-id");
    assert!(request_id.is_some(), "no x-request-id in the response");
}

#[tokio::test]
async fn grpc_error_status_passes_through() {
    let gw = GrpcGateway::start().await;
    let mut client = gw.client().await;
    let status = tokio::time::timeout(SAFETY, client.check(check("no.such.service")))
        .await
        .expect("safety timeout")
        .expect_err("unknown service must be an error");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    // The error did not break the connection or the gateway.
    assert_serving(&mut client).await;
    assert_serving(&mut gw.client().await).await;
}

#[tokio::test]
async fn server_streaming_call_delivers_messages() {
    let gw = GrpcGateway::start().await;
    let mut client = gw.client().await;
    let watch = tokio::time::timeout(SAFETY, client.watch(check("floodgate.test")))
        .await
        .expect("safety timeout")
        .expect("watch through the gateway");
    let mut stream = watch.into_inner();
    let first = tokio::time::timeout(SAFETY, stream.message())
        .await
        .expect("first message within the safety timeout")
        .expect("stream item")
        .expect("a first message");
    assert_eq!(first.status, ServingStatus::Serving as i32);
    // The stream stays open (Watch never ends by itself) while other calls go through.
    assert_serving(&mut client).await;
    drop(stream);
    assert_serving(&mut client).await;
}

#[tokio::test]
async fn streaming_call_error_status_passes_through() {
    let gw = GrpcGateway::start().await;
    let mut client = gw.client().await;
    let status = tokio::time::timeout(SAFETY, client.watch(check("no.such.service")))
        .await
        .expect("safety timeout")
        .expect_err("watching an unknown service must be an error");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(status.message(), "service not registered");
    assert_serving(&mut client).await;
}

#[tokio::test]
async fn dead_upstream_is_a_grpc_error_and_other_routes_keep_working() {
    let gw = GrpcGateway::start().await;
    let mut client = gw.client().await;
    let mut request = check("floodgate.test");
    request
        .metadata_mut()
        .insert("x-target", "down".parse().unwrap());
    let status = tokio::time::timeout(SAFETY, client.check(request))
        .await
        .expect("safety timeout")
        .expect_err("a call to an upstream that is down must fail");
    // gRPC clients get a trailers-only answer: grpc-status 14 (UNAVAILABLE, gRPC's mapping of 502)
    // with the gateway's reason as the message.
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.message(), "upstream connection failed");
    // Same connection, working route.
    assert_serving(&mut client).await;
    assert_serving(&mut gw.client().await).await;
}
