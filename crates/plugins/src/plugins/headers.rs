//! `headers`: add, set and remove header fields of the request sent upstream and of the response sent
//! back, with values from templates (`X-Consumer: $consumer`).

use std::collections::BTreeMap;

use floodgate_config::FieldError;
use http::{HeaderMap, HeaderName};
use serde::Deserialize;

use crate::build_ctx::BuildCtx;
use crate::context::RequestCtx;
use crate::heads::{ResponseHead, UpstreamRequest};
use crate::policy::NoCredential;
use crate::policy::Policy;
use crate::template::Template;

/// `plugins.headers`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeadersConfig {
    /// Changes to the request sent upstream. Default: none.
    #[serde(default)]
    pub request: HeaderOpsConfig,
    /// Changes to the response sent to the client. Default: none.
    #[serde(default)]
    pub response: HeaderOpsConfig,
}

/// The changes to one side's header fields, applied in this order: `remove`, `set`, `add`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderOpsConfig {
    /// Fields to add, keeping those already there: name to value template. Default: none.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    /// Fields to set, replacing every field of that name: name to value template. Default: none.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Names of fields to remove. Default: none.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// Fields that frame the message or belong to one connection: the proxy owns them, and a value set
/// here would desynchronise the two ends or smuggle a request (RFC 9110 §7.6.1, RFC 9112 §6).
const REFUSED: &[&str] = &[
    "connection",
    "content-length",
    "host",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Fields the gateway writes on the request after this plugin has run, from what it knows of the
/// client: a value set here would never arrive, so configuring one is a mistake.
const WRITTEN_BY_GATEWAY: &[&str] = &[
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-request-id",
];

/// The built plugin.
pub struct Headers {
    request: HeaderOps,
    response: HeaderOps,
}

/// One side's changes, names parsed and templates compiled.
struct HeaderOps {
    remove: Vec<HeaderName>,
    set: Vec<(HeaderName, Template)>,
    add: Vec<(HeaderName, Template)>,
}

impl Policy for Headers {
    const NAME: &'static str = "headers";
    const PRIORITY: u16 = 900;
    type Config = HeadersConfig;
    type Credential = NoCredential;

    fn build(config: HeadersConfig, cx: &mut BuildCtx<'_>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let request = HeaderOps::build(&config.request, "request", cx, &mut errors);
        let response = HeaderOps::build(&config.response, "response", cx, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self { request, response })
    }

    fn upstream_request(&self, req: &mut UpstreamRequest<'_>, ctx: &RequestCtx) {
        apply(&self.request, ctx, RequestFields(req.headers));
    }

    fn response(&self, resp: &mut ResponseHead<'_>, ctx: &RequestCtx) {
        apply(&self.response, ctx, ResponseFields(&mut resp.headers));
    }
}

impl HeaderOps {
    fn build(
        config: &HeaderOpsConfig,
        side: &str,
        cx: &BuildCtx<'_>,
        errors: &mut Vec<FieldError>,
    ) -> Self {
        let request = side == "request";
        let mut remove = Vec::new();
        for (i, text) in config.remove.iter().enumerate() {
            let field = format!("{side}.remove[{i}]");
            remove.extend(header_name(text, &field, request, cx, errors));
        }
        Self {
            remove,
            set: templates(&config.set, &format!("{side}.set"), request, cx, errors),
            add: templates(&config.add, &format!("{side}.add"), request, cx, errors),
        }
    }
}

fn header_name(
    text: &str,
    field: &str,
    request: bool,
    cx: &BuildCtx<'_>,
    errors: &mut Vec<FieldError>,
) -> Option<HeaderName> {
    match HeaderName::from_bytes(text.as_bytes()) {
        Err(_) => {
            errors.push(cx.error(field, format!("{text:?} is not a header name")));
            None
        }
        Ok(name) if REFUSED.contains(&name.as_str()) => {
            errors.push(cx.error(
                field,
                format!("{text} frames the message or belongs to one connection: the gateway manages it"),
            ));
            None
        }
        Ok(name) if request && WRITTEN_BY_GATEWAY.contains(&name.as_str()) => {
            errors.push(cx.error(
                field,
                format!("{text} is written by the gateway after this plugin runs"),
            ));
            None
        }
        Ok(name) => Some(name),
    }
}

fn templates(
    map: &BTreeMap<String, String>,
    at: &str,
    request: bool,
    cx: &BuildCtx<'_>,
    errors: &mut Vec<FieldError>,
) -> Vec<(HeaderName, Template)> {
    let mut list = Vec::with_capacity(map.len());
    for (text, value) in map {
        let field = format!("{at}.{text}");
        let Some(name) = header_name(text, &field, request, cx, errors) else {
            continue;
        };
        let template = Template::parse(value, &cx.scope).and_then(|t| {
            t.check_header_text()?;
            Ok(t)
        });
        match template {
            Ok(template) => list.push((name, template)),
            Err(message) => errors.push(cx.error(&field, message)),
        }
    }
    list
}

/// A side's header fields, as the two phases hold them.
trait Fields {
    fn remove(&mut self, name: &HeaderName);
    fn set(&mut self, name: HeaderName, value: http::HeaderValue);
    fn append(&mut self, name: HeaderName, value: http::HeaderValue);
}

struct RequestFields<'a>(&'a mut HeaderMap);

/// A request field removed or set goes with its twins (`x_user` for `x-user`, and `x-user` for a
/// configured `x_user`): an upstream that reads names as `HTTP_*` variables would take a client's twin
/// for the field configured.
impl Fields for RequestFields<'_> {
    fn remove(&mut self, name: &HeaderName) {
        floodgate_http1::remove_with_twins(self.0, name);
    }
    fn set(&mut self, name: HeaderName, value: http::HeaderValue) {
        // `insert` replaces the fields of the name itself.
        floodgate_http1::remove_twins(self.0, &[&name]);
        self.0.insert(name, value);
    }
    fn append(&mut self, name: HeaderName, value: http::HeaderValue) {
        self.0.append(name, value);
    }
}

struct ResponseFields<'a, 'b>(&'a mut crate::heads::ResponseHeaders<'b>);

impl Fields for ResponseFields<'_, '_> {
    fn remove(&mut self, name: &HeaderName) {
        self.0.remove(name);
    }
    fn set(&mut self, name: HeaderName, value: http::HeaderValue) {
        self.0.set(name, value);
    }
    fn append(&mut self, name: HeaderName, value: http::HeaderValue) {
        self.0.append(name, value);
    }
}

fn apply(ops: &HeaderOps, ctx: &RequestCtx, mut fields: impl Fields) {
    for name in &ops.remove {
        fields.remove(name);
    }
    // A value a variable made invalid (it cannot be a header value) is skipped rather than failing
    // the request; `set` still removes the old fields, so a client's own value never stands in for
    // the one configured.
    for (name, template) in &ops.set {
        match template.header_value(ctx) {
            Some(value) => fields.set(name.clone(), value),
            None => fields.remove(name),
        }
    }
    for (name, template) in &ops.add {
        if let Some(value) = template.header_value(ctx) {
            fields.append(name.clone(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use floodgate_http1::raw_fields_of;
    use http::uri::PathAndQuery;
    use http::{HeaderValue, Method, StatusCode, Uri};

    use super::*;
    use crate::chain::Chain;
    use crate::heads::{RequestHead, ResponseHeaders};
    use crate::template::fixture::{chain, chain_with, ctx, errors, yaml};
    use crate::AddedFields;

    fn upstream(chain: &Arc<Chain>, ctx: &RequestCtx, headers: &mut HeaderMap) {
        let mut path = PathAndQuery::from_static("/users/42");
        let mut host = HeaderValue::from_static("up");
        let mut req = UpstreamRequest {
            method: &Method::GET,
            headers,
            path: &mut path,
            host: &mut host,
        };
        chain.upstream_request(&mut req, ctx);
    }

    fn map(fields: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (n, v) in fields {
            map.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn listed(map: &HeaderMap) -> Vec<String> {
        map.iter()
            .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
            .collect()
    }

    const CONFIG: &str = r#"{headers: {
        request: {add: {X-Via: "gw-$route", X-Id: "${id}"}, set: {X-User: "u-${id}", X-Req: "$request_id"}, remove: [X-Secret, Cookie]},
        response: {add: {Vary: Accept, X-Client: "$client_ip"}, set: {Server: gw}, remove: [X-Powered-By]}}}"#;

    #[test]
    fn request_fields_are_removed_set_and_added() {
        let chain = chain("[\"/users/{id}\"]", CONFIG);
        let ctx = ctx(&chain, "/users/42", false);
        let mut headers = map(&[
            ("x-user", "spoofed"),
            ("x-user", "again"),
            ("x_user", "spoofed by underscore"),
            ("x-via", "client"),
            ("x-secret", "s"),
            ("x_secret", "s"),
            ("x_other", "kept"),
            ("cookie", "c"),
            ("accept", "*/*"),
        ]);
        upstream(&chain, &ctx, &mut headers);
        let mut got = listed(&headers);
        got.sort();
        assert_eq!(
            got,
            [
                "accept: */*",
                "x-id: 42",
                "x-req: req-1",
                "x-user: u-42",
                "x-via: client",
                "x-via: gw-r",
                "x_other: kept",
            ]
        );
    }

    #[test]
    fn response_fields_are_removed_set_and_added_beside_the_upstreams() {
        let chain = chain("[\"/users/{id}\"]", CONFIG);
        let mut ctx = ctx(&chain, "/users/42", false);
        let mut map = HeaderMap::new();
        let mut added = AddedFields::new();
        let mut raw =
            raw_fields_of(b"Server: up\r\nVary: Origin\r\nX-Powered-By: php\r\nX-Keep: 1\r\n\r\n")
                .unwrap();
        let mut status = StatusCode::OK;
        let mut head = ResponseHead {
            status: &mut status,
            headers: ResponseHeaders::new(&mut map, &mut added, &mut raw),
        };
        chain.response(&mut head, &mut ctx);
        assert!(!head
            .headers
            .contains(&HeaderName::from_static("x-powered-by")));
        assert_eq!(
            head.headers.get(&HeaderName::from_static("x-keep")),
            Some(&b"1"[..])
        );
        for (name, value) in added.drain(..) {
            map.append(name, value);
        }
        assert_eq!(map["server"], "gw");
        let vary: Vec<_> = map.get_all("vary").iter().collect();
        assert_eq!(vary, ["Origin", "Accept"]);
        assert_eq!(map["x-client"], "192.0.2.7");
    }

    #[test]
    fn a_consumers_headers_replace_the_routes() {
        let text = yaml(
            "[\"/*\"]",
            "{key-auth: {}, headers: {request: {set: {X-Plan: free}}}}",
            "consumers:\n  - id: alice\n    credentials: {key-auth: {key: alice-key-1}}\n    plugins: {headers: {request: {set: {X-Plan: gold, X-Who: $consumer}}}}\n  - id: bob\n    credentials: {key-auth: {key: bob-key-12}}\n",
        );
        let chain = chain_with(&text);
        let plan = |key: &str| {
            let mut ctx = ctx(&chain, "/x", false);
            let mut headers = map(&[("apikey", key)]);
            let uri = Uri::from_static("/x");
            let mut head = RequestHead {
                method: &Method::GET,
                uri: &uri,
                headers: &mut headers,
            };
            assert!(chain.request(&mut head, &mut ctx).is_none());
            let mut headers = HeaderMap::new();
            upstream(&chain, &ctx, &mut headers);
            listed(&headers)
        };
        assert_eq!(plan("alice-key-1"), ["x-plan: gold", "x-who: alice"]);
        assert_eq!(plan("bob-key-12"), ["x-plan: free"]);
    }

    #[test]
    fn framing_fields_and_bad_names_are_refused_by_field() {
        let at = "routes[0].plugins.headers";
        let got = errors(
            "[\"/users/{id}\"]",
            r#"{headers: {request: {set: {Content-Length: "1", X-Ok: "${nope}"}, add: {"bad name": x}, remove: [Transfer-Encoding]},
                response: {set: {Connection: close, X-Ctl: "a\u0001"}, remove: [Host]}}}"#,
        );
        assert_eq!(got.len(), 7, "{got:?}");
        for prefix in [
            "request.remove[0]: Transfer-Encoding frames the message",
            "request.set.Content-Length: Content-Length frames the message",
            "request.set.X-Ok: ${nope}: none of the route's paths",
            "request.add.bad name: \"bad name\" is not a header name",
            "response.remove[0]: Host frames the message",
            "response.set.Connection: Connection frames the message",
            "response.set.X-Ctl: ",
        ] {
            let want = format!("{at}.{prefix}");
            assert!(
                got.iter().any(|e| e.starts_with(&want)),
                "{want} not in {got:?}"
            );
        }
        let written = errors(
            "[\"/*\"]",
            "{headers: {request: {set: {X-Forwarded-For: x}}, response: {set: {X-Request-Id: y}}}}",
        );
        assert_eq!(
            written,
            [format!("{at}.request.set.X-Forwarded-For: X-Forwarded-For is written by the gateway after this plugin runs")]
        );
        let unknown = errors("[\"/*\"]", "{headers: {request: {append: {}}}}");
        assert!(
            unknown[0].starts_with(&format!("{at}.request")),
            "{unknown:?}"
        );
    }
}
