//! Unit-test fixtures for plugins: one route carrying one plugin, the consumers beside it, and a
//! request run through the route's chain the way the proxy runs it.

use std::net::IpAddr;
use std::sync::Arc;

use floodgate_config::{ConsumerConfig, FieldError};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use serde_json::Value;

use crate::UpstreamRequest;
use crate::{build_plugins, Answer, PluginSet, PluginStats, RequestCtx, RequestHead, StateStore};

const BASE: &str = r#"
listeners: [{ name: l, address: "127.0.0.1:1" }]
upstreams: [{ id: u, targets: [{ address: "127.0.0.1:2" }] }]
routes: [{ id: r, paths: ["/*"], upstream: u }]
"#;

/// Builds a configuration whose one route has plugin `name` with `config`, and these consumers
/// (`{"id": ..., "credentials": {...}}`).
pub(crate) fn build_route(
    name: &str,
    config: Value,
    consumers: Vec<Value>,
) -> Result<PluginSet, Vec<FieldError>> {
    build_with(serde_json::json!({ name: config }), consumers)
}

/// Builds a configuration whose one route has `plugins` (`{"<name>": <config>, ...}`), and these
/// consumers.
pub(crate) fn build_with(
    plugins: Value,
    consumers: Vec<Value>,
) -> Result<PluginSet, Vec<FieldError>> {
    let mut base = floodgate_config::parse_yaml(BASE).expect("the base configuration is valid");
    std::sync::Arc::make_mut(&mut base.routes[0]).plugins =
        serde_json::from_value(plugins).expect("a plugins map");
    base.consumers = consumers
        .into_iter()
        .map(|c| {
            std::sync::Arc::new(serde_json::from_value::<ConsumerConfig>(c).expect("a consumer"))
        })
        .collect();
    build_plugins(
        &base,
        &StateStore::new(),
        None,
        &Arc::new(PluginStats::default()),
    )
}

/// What the chain made of one request.
pub(crate) struct Outcome {
    /// The answer of the `request` phase, if a plugin answered.
    pub answer: Option<Answer>,
    /// The request's context after its phases.
    pub ctx: Box<RequestCtx>,
    /// The request's header fields as they would go upstream.
    pub headers: HeaderMap,
    /// The path and query as they would go upstream (unchanged when a plugin answered).
    pub path: PathAndQuery,
}

impl Outcome {
    /// Ends the request as the proxy does once its response (of `status`) has ended: the `log` phase.
    pub(crate) fn finish(self, set: &PluginSet, status: http::StatusCode) {
        let chain = set.routes[0].as_ref().expect("the route has a chain");
        chain.finish(self.ctx, status);
    }
}

/// Runs a request from `client` with `headers` for `target` through the route's `request` phase and,
/// when no plugin answered, its `upstream_request` phase.
pub(crate) fn request_on(
    set: &PluginSet,
    client: IpAddr,
    headers: &[(&str, &str)],
    target: &str,
) -> Outcome {
    let chain = set.routes[0].as_ref().expect("the route has a chain");
    let uri: Uri = target.parse().expect("a request target");
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            HeaderValue::from_str(value).expect("a header value"),
        );
    }
    let mut ctx = chain.start(
        client,
        HeaderValue::from_static("test"),
        0,
        false,
        uri.path(),
    );
    let mut head = RequestHead {
        method: &Method::GET,
        uri: &uri,
        headers: &mut map,
    };
    let answer = chain.request(&mut head, &mut ctx);
    let mut path = uri.path_and_query().cloned().expect("a path");
    if answer.is_none() {
        let mut host = HeaderValue::from_static("example.com");
        let mut upstream = UpstreamRequest {
            method: &Method::GET,
            headers: &mut map,
            path: &mut path,
            host: &mut host,
        };
        chain.upstream_request(&mut upstream, &ctx);
    }
    Outcome {
        answer,
        ctx,
        headers: map,
        path,
    }
}
