//! The spans' way out: a bounded queue that requests push to without waiting, drained by one task
//! that sends batches to the collector over OTLP.
//!
//! A slow or dead collector fills the queue; spans past it are dropped and counted, so a request
//! never waits for tracing. Each batch has `export_timeout` to go out, and is not retried: a retry
//! would hold the queue while new spans are dropped.

use std::sync::Arc;
use std::time::Duration;

use floodgate_config::{TraceProtocol, TracingConfig};
use floodgate_observe::TracingMetrics;
use opentelemetry_otlp::{RetryPolicy, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use opentelemetry_sdk::Resource;
use tokio::sync::mpsc;

/// Largest batch sent at once.
const BATCH_SPANS: usize = 512;

/// The handle requests push spans to. Dropping the last one ends the drain task once it has sent
/// what is queued.
pub struct SpanQueue {
    tx: mpsc::Sender<SpanData>,
    metrics: Arc<TracingMetrics>,
}

impl SpanQueue {
    /// Starts the exporter `config` describes on `runtime` (the gRPC client must be built inside a
    /// runtime). Fails when the exporter cannot be built (an `https://` endpoint over gRPC without
    /// TLS support, for one).
    pub fn start(
        config: &TracingConfig,
        runtime: &tokio::runtime::Handle,
        metrics: Arc<TracingMetrics>,
    ) -> Result<Arc<SpanQueue>, String> {
        let timeout = config.export_timeout.get();
        let exporter = {
            let _inside = runtime.enter();
            match config.protocol {
                TraceProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(config.endpoint.clone())
                    .with_timeout(timeout)
                    .with_retry_policy(RetryPolicy::disabled())
                    .build(),
                TraceProtocol::Http => opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_endpoint(config.http_traces_url())
                    .with_timeout(timeout)
                    .with_retry_policy(RetryPolicy::disabled())
                    .build(),
            }
        };
        let mut exporter = exporter.map_err(|e| format!("cannot start the OTLP exporter: {e}"))?;
        exporter.set_resource(
            &Resource::builder_empty()
                .with_service_name(config.service_name.clone())
                .build(),
        );
        metrics.set_in_use();
        let (tx, rx) = mpsc::channel(config.queue_spans);
        runtime.spawn(drain(rx, exporter, timeout, metrics.clone()));
        Ok(Arc::new(SpanQueue { tx, metrics }))
    }

    /// Queues `spans` for export; those that do not fit are dropped and counted.
    pub fn push(&self, spans: Vec<SpanData>) {
        for span in spans {
            if self.tx.try_send(span).is_err() {
                self.metrics.dropped();
            }
        }
    }
}

async fn drain(
    mut rx: mpsc::Receiver<SpanData>,
    exporter: opentelemetry_otlp::SpanExporter,
    timeout: Duration,
    metrics: Arc<TracingMetrics>,
) {
    let mut batch = Vec::with_capacity(BATCH_SPANS);
    let mut failing = false;
    while rx.recv_many(&mut batch, BATCH_SPANS).await > 0 {
        let n = batch.len() as u64;
        let sent = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_SPANS));
        // The exporter has its own deadline; this one also covers a connection that never opens.
        match tokio::time::timeout(timeout + Duration::from_millis(100), exporter.export(sent))
            .await
        {
            Ok(Ok(())) => {
                metrics.exported(n);
                if failing {
                    failing = false;
                    tracing::info!("span export succeeds again");
                }
            }
            Ok(Err(error)) => {
                metrics.failed(n);
                if !failing {
                    failing = true;
                    tracing::warn!(%error, "span export failed; spans are lost until it succeeds");
                }
            }
            Err(_) => {
                metrics.failed(n);
                if !failing {
                    failing = true;
                    tracing::warn!(
                        ?timeout,
                        "span export timed out; spans are lost until it succeeds"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
impl SpanQueue {
    /// A queue with no exporter: the test reads what was pushed from the receiver.
    pub(crate) fn for_tests() -> (Arc<SpanQueue>, mpsc::Receiver<SpanData>) {
        let (tx, rx) = mpsc::channel(64);
        let queue = SpanQueue {
            tx,
            metrics: Arc::default(),
        };
        (Arc::new(queue), rx)
    }
}
