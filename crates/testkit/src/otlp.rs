//! An OpenTelemetry collector for tests: it takes OTLP trace exports over gRPC (the collector's
//! `TraceService`) or HTTP (`POST /v1/traces`, protobuf), decodes the real protobuf, and keeps the
//! spans. A stalled one accepts connections and never answers, as a hung collector does.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::Mutex;

/// One span as the collector received it, its ids in hex.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// `service.name` of its resource.
    pub service: String,
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits, empty for a root span.
    pub parent_span_id: String,
    /// Its name.
    pub name: String,
    /// OTLP's span kind: 2 server, 3 client.
    pub kind: i32,
    /// Attributes, each value written as text.
    pub attributes: BTreeMap<String, String>,
    /// OTLP's status code: 0 unset, 1 ok, 2 error.
    pub status: i32,
    /// Start and end, in nanoseconds since the epoch.
    pub times: (u64, u64),
}

/// The spans received so far, and how many export calls brought them.
#[derive(Default)]
struct Received {
    spans: Vec<ReceivedSpan>,
    exports: usize,
}

/// A collector on 127.0.0.1.
pub struct OtlpReceiver {
    addr: SocketAddr,
    received: Arc<Mutex<Received>>,
}

struct Grpc {
    received: Arc<Mutex<Received>>,
    stalled: bool,
}

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        if self.stalled {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        record(&self.received, request.into_inner()).await;
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

async fn record(received: &Mutex<Received>, request: ExportTraceServiceRequest) {
    let mut received = received.lock().await;
    received.exports += 1;
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .map(|kv| text(kv.value.as_ref().and_then(|v| v.value.as_ref())))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                received.spans.push(ReceivedSpan {
                    service: service.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name,
                    kind: span.kind,
                    attributes: span
                        .attributes
                        .iter()
                        .map(|kv| {
                            (
                                kv.key.clone(),
                                text(kv.value.as_ref().and_then(|v| v.value.as_ref())),
                            )
                        })
                        .collect(),
                    status: span.status.map_or(0, |s| s.code),
                    times: (span.start_time_unix_nano, span.end_time_unix_nano),
                });
            }
        }
    }
}

fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(n)) => n.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl OtlpReceiver {
    /// A collector taking OTLP over gRPC.
    pub async fn grpc() -> OtlpReceiver {
        Self::start_grpc(false).await
    }

    /// A gRPC collector that accepts every export and never answers it.
    pub async fn stalled_grpc() -> OtlpReceiver {
        Self::start_grpc(true).await
    }

    async fn start_grpc(stalled: bool) -> OtlpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let received = Arc::new(Mutex::new(Received::default()));
        let service = Grpc {
            received: received.clone(),
            stalled,
        };
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(service))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        OtlpReceiver { addr, received }
    }

    /// A collector taking OTLP over HTTP: `POST /v1/traces` with a protobuf body.
    pub async fn http() -> OtlpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let received = Arc::new(Mutex::new(Received::default()));
        let shared = received.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let received = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let received = received.clone();
                            async move {
                                let wanted = req.method() == hyper::Method::POST
                                    && req.uri().path() == "/v1/traces"
                                    && req
                                        .headers()
                                        .get("content-type")
                                        .is_some_and(|ct| ct == "application/x-protobuf");
                                let body = req.into_body().collect().await?.to_bytes();
                                let status = match ExportTraceServiceRequest::decode(body) {
                                    Ok(request) if wanted => {
                                        record(&received, request).await;
                                        200
                                    }
                                    _ => 400,
                                };
                                let reply = ExportTraceServiceResponse {
                                    partial_success: None,
                                }
                                .encode_to_vec();
                                Ok::<_, hyper::Error>(
                                    hyper::Response::builder()
                                        .status(status)
                                        .header("content-type", "application/x-protobuf")
                                        .body(Full::new(Bytes::from(reply)))
                                        .expect("response"),
                                )
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        OtlpReceiver { addr, received }
    }

    /// `http://127.0.0.1:PORT`, the endpoint for the gateway's `tracing` section.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub async fn spans(&self) -> Vec<ReceivedSpan> {
        self.received.lock().await.spans.clone()
    }

    /// Export calls answered so far.
    pub async fn exports(&self) -> usize {
        self.received.lock().await.exports
    }

    /// Waits (up to 10 s) until at least `count` spans have arrived, and returns them all.
    pub async fn wait_for_spans(&self, count: usize) -> Vec<ReceivedSpan> {
        for _ in 0..1000 {
            let spans = self.spans().await;
            if spans.len() >= count {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let spans = self.spans().await;
        assert!(
            spans.len() >= count,
            "{count} spans expected, {} arrived: {spans:#?}",
            spans.len()
        );
        spans
    }
}
