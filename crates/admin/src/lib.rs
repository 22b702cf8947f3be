//! floodgate's admin listener: `/healthz` (the process is alive), `/readyz` (configuration loaded and
//! listeners bound), `/metrics` (Prometheus text format), `/status/upstreams` (every target's
//! health, JSON) and the admin REST API under `/floodgate/admin/` (see [`api`]).
//!
//! It runs on the main thread's runtime, away from the workers, so a slow scrape never delays a request.
//! It is not the data plane and holds no routing logic.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::disallowed_types, clippy::disallowed_methods)]

mod answer;
pub mod api;
mod api_etcd;
mod api_key;

pub use api::AdminApi;
pub use api_etcd::EtcdWrites;
pub use api_key::ApiKey;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use floodgate_observe::Metrics;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// What the admin endpoints report on.
pub struct AdminState {
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
    /// True once the configuration is loaded and the listeners are bound; false while shutting down.
    pub ready: AtomicBool,
    /// Writes `/status/upstreams`' JSON; `None` answers 404.
    pub upstream_status: Option<Box<dyn Fn() -> String + Send + Sync>>,
    /// The admin REST API; `None` answers 404 under its prefix.
    pub api: Option<AdminApi>,
}

impl AdminState {
    /// State for `metrics`, not ready yet.
    pub fn new(metrics: Arc<Metrics>) -> Arc<AdminState> {
        Self::with_status(metrics, None)
    }

    /// State for `metrics` and the source of `/status/upstreams`, not ready yet.
    pub fn with_status(
        metrics: Arc<Metrics>,
        upstream_status: Option<Box<dyn Fn() -> String + Send + Sync>>,
    ) -> Arc<AdminState> {
        Self::with_api(metrics, upstream_status, None)
    }

    /// State for `metrics`, the source of `/status/upstreams` and the admin REST API, not ready yet.
    pub fn with_api(
        metrics: Arc<Metrics>,
        upstream_status: Option<Box<dyn Fn() -> String + Send + Sync>>,
        api: Option<AdminApi>,
    ) -> Arc<AdminState> {
        Arc::new(AdminState {
            metrics,
            ready: AtomicBool::new(false),
            upstream_status,
            api,
        })
    }

    /// Marks the gateway ready (or not).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }
}

/// Serves the admin endpoints on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move {
                    let in_api = req.uri().path() == api::PREFIX
                        || req.uri().path().starts_with(&format!("{}/", api::PREFIX));
                    let answer = match (&state.api, in_api) {
                        (Some(api), true) => api.respond(req).await,
                        _ => respond(&state, &req),
                    };
                    Ok::<_, Infallible>(answer)
                }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(state: &AdminState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return json(
            StatusCode::METHOD_NOT_ALLOWED,
            "{\"error\":\"method not allowed\"}",
        );
    }
    match req.uri().path() {
        "/healthz" => json(StatusCode::OK, "{\"status\":\"ok\"}"),
        "/readyz" => {
            if state.ready.load(Ordering::Acquire) {
                json(StatusCode::OK, "{\"status\":\"ready\"}")
            } else {
                json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "{\"status\":\"not ready\"}",
                )
            }
        }
        "/metrics" => {
            let mut response = Response::new(Full::new(Bytes::from(state.metrics.render())));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        "/status/upstreams" => match &state.upstream_status {
            Some(status) => {
                let mut response = Response::new(Full::new(Bytes::from(status())));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                response
            }
            None => json(StatusCode::NOT_FOUND, "{\"error\":\"not found\"}"),
        },
        _ => json(StatusCode::NOT_FOUND, "{\"error\":\"not found\"}"),
    }
}

fn json(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
