//! `cors`: Cross-Origin Resource Sharing (the Fetch standard's CORS protocol). Preflights are
//! answered at the gateway and never forwarded; actual requests from allowed origins get the CORS
//! response fields, whoever answers them.

use floodgate_config::{FieldError, HumanDuration};
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderName, HeaderValue, Method};
use serde::Deserialize;

use crate::build_ctx::BuildCtx;
use crate::context::RequestCtx;
use crate::heads::{RequestHead, ResponseHead};
use crate::policy::NoCredential;
use crate::policy::{Flow, Policy};

mod origins;
mod preflight;

use origins::Origins;

/// `plugins.cors`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Allowed origins: exact (`https://app.example.com`), one wildcard label run
    /// (`https://*.example.com`: any subdomain, at any depth, same scheme and port), or `*` (every
    /// origin). Default: none.
    #[serde(default)]
    pub allow_origins: Vec<String>,
    /// Allowed origins as regular expressions, each matched against the whole `Origin` value.
    /// Default: none.
    #[serde(default)]
    pub allow_origin_regex: Vec<String>,
    /// Methods a preflight may ask for; `*` for any. Default `GET, HEAD, POST, PUT, PATCH, DELETE`.
    #[serde(default = "default_methods")]
    pub allow_methods: Vec<String>,
    /// Request header fields a preflight may ask for; `*` (the default) allows whichever it asks.
    #[serde(default = "default_headers")]
    pub allow_headers: Vec<String>,
    /// Response header fields scripts may read beyond the CORS-safelisted ones. Default: none.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// Let scripts send and read credentials (cookies, `Authorization`). Refused together with the
    /// origin `*`. Default `false`.
    #[serde(default)]
    pub allow_credentials: bool,
    /// How long a browser may cache a preflight's answer (`Access-Control-Max-Age`, whole seconds).
    /// Default `5s`.
    #[serde(default = "default_max_age")]
    pub max_age: HumanDuration,
}

fn default_methods() -> Vec<String> {
    ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
        .map(String::from)
        .to_vec()
}

fn default_headers() -> Vec<String> {
    vec!["*".to_string()]
}

fn default_max_age() -> HumanDuration {
    HumanDuration::from_secs(5)
}

/// The built plugin: origin rules, and the response fields that do not depend on the request.
pub struct Cors {
    origins: Origins,
    /// `None`: any method (the requested one is echoed).
    methods: Option<Vec<Method>>,
    methods_value: HeaderValue,
    /// `None`: any header (the requested ones are echoed).
    headers: Option<Vec<HeaderName>>,
    headers_value: Option<HeaderValue>,
    expose: Option<HeaderValue>,
    credentials: bool,
    max_age: HeaderValue,
}

impl Policy for Cors {
    const NAME: &'static str = "cors";
    const PRIORITY: u16 = 4000;
    type Config = CorsConfig;
    type Credential = NoCredential;

    fn build(config: CorsConfig, cx: &mut BuildCtx<'_>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let origins = match Origins::parse(&config.allow_origins, &config.allow_origin_regex) {
            Ok(origins) => Some(origins),
            Err(problems) => {
                errors.extend(problems.into_iter().map(|(field, m)| cx.error(&field, m)));
                None
            }
        };
        if config.allow_origins.is_empty() && config.allow_origin_regex.is_empty() {
            errors.push(cx.error(
                "allow_origins",
                "list at least one origin (in allow_origins or allow_origin_regex)",
            ));
        }
        let any = origins.as_ref().is_some_and(Origins::any);
        if any && config.allow_credentials {
            // Echoing every origin with credentials would let any site read its visitors' responses
            // with their cookies: the attack the same-origin policy exists to stop.
            errors.push(cx.error(
                "allow_credentials",
                "cannot be true when allow_origins has \"*\": list the origins that may send credentials",
            ));
        }
        let methods = match parse_list(&config.allow_methods, "allow_methods", cx, |m| {
            Method::from_bytes(m.as_bytes()).ok()
        }) {
            Ok(list) => list,
            Err(e) => {
                errors.extend(e);
                None
            }
        };
        let headers = match parse_list(&config.allow_headers, "allow_headers", cx, |h| {
            HeaderName::from_bytes(h.as_bytes()).ok()
        }) {
            Ok(list) => list,
            Err(e) => {
                errors.extend(e);
                None
            }
        };
        let mut expose = Vec::new();
        for (i, name) in config.expose_headers.iter().enumerate() {
            match HeaderName::from_bytes(name.as_bytes()) {
                Ok(name) => expose.push(name),
                Err(_) => errors.push(cx.error(
                    &format!("expose_headers[{i}]"),
                    format!("{name:?} is not a header name"),
                )),
            }
        }
        let Some(origins) = origins.filter(|_| errors.is_empty()) else {
            return Err(errors);
        };
        let methods_value = match &methods {
            Some(list) => joined(list.iter().map(Method::as_str)),
            None => HeaderValue::from_static("*"),
        };
        let headers_value = headers
            .as_ref()
            .filter(|list| !list.is_empty())
            .map(|list| joined(list.iter().map(HeaderName::as_str)));
        Ok(Self {
            origins,
            methods,
            methods_value,
            headers,
            headers_value,
            expose: (!expose.is_empty()).then(|| joined(expose.iter().map(HeaderName::as_str))),
            credentials: config.allow_credentials,
            max_age: HeaderValue::from(config.max_age.get().as_secs()),
        })
    }

    fn request(&self, req: &mut RequestHead<'_>, ctx: &mut RequestCtx) -> Flow {
        let origin = single(req.headers, &ORIGIN);
        let preflight = *req.method == Method::OPTIONS
            && origin.is_some()
            && req.headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD);
        if preflight {
            return Flow::Respond(self.preflight(req, origin));
        }
        // With `*` every response gets the same fields, with or without `Origin`: nothing varies.
        let allow = if self.origins.any() {
            Some(HeaderValue::from_static("*"))
        } else {
            origin.and_then(|o| self.allow_origin(o))
        };
        if let Some(allow) = allow {
            let fields = &mut ctx.response_headers;
            fields.push((ACCESS_CONTROL_ALLOW_ORIGIN, allow));
            if self.credentials {
                fields.push((
                    ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                ));
            }
            if let Some(expose) = &self.expose {
                fields.push((ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone()));
            }
        }
        Flow::Continue
    }

    fn response(&self, resp: &mut ResponseHead<'_>, ctx: &RequestCtx) {
        // Whether the CORS fields are there depends on `Origin`, so a shared cache must key on it
        // (Fetch standard, "CORS protocol and HTTP caches"), for responses without them too. A preflight
        // answered here has its own `Vary`; with `*` alone nothing depends on `Origin`.
        let answered_here = ctx.rejection.is_some_and(|r| r.plugin == Self::NAME);
        if !answered_here && !self.origins.any() {
            resp.headers
                .append(VARY, HeaderValue::from_static("Origin"));
        }
    }
}

impl Cors {
    /// The `Access-Control-Allow-Origin` value for `origin`, `None` when it is not allowed.
    fn allow_origin(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        if self.origins.any() {
            return Some(HeaderValue::from_static("*"));
        }
        let allowed = origin.to_str().is_ok_and(|text| self.origins.allows(text));
        allowed.then(|| origin.clone())
    }
}

/// A list of methods or header names, `None` for `["*"]`.
fn parse_list<T>(
    items: &[String],
    field: &str,
    cx: &BuildCtx<'_>,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<Vec<T>>, Vec<FieldError>> {
    if items.iter().any(|i| i == "*") {
        return if items.len() == 1 {
            Ok(None)
        } else {
            Err(vec![cx.error(field, "\"*\" stands alone")])
        };
    }
    let mut list = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match parse(item) {
            Some(parsed) => list.push(parsed),
            None => errors.push(cx.error(
                &format!("{field}[{i}]"),
                format!("{item:?} is not valid here"),
            )),
        }
    }
    if errors.is_empty() {
        Ok(Some(list))
    } else {
        Err(errors)
    }
}

fn joined<'a>(items: impl Iterator<Item = &'a str>) -> HeaderValue {
    let text = items.collect::<Vec<_>>().join(", ");
    // Built from methods and header names, which are tokens.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The value of `name` when the request has exactly one such field: two `Origin` fields are not a
/// request a browser sends, and neither is allowed.
fn single<'h>(headers: &'h http::HeaderMap, name: &HeaderName) -> Option<&'h HeaderValue> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    values.next().is_none().then_some(first)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use floodgate_http1::raw_fields_of;
    use http::{HeaderMap, StatusCode, Uri};

    use super::*;
    use crate::answer::Answer;
    use crate::chain::Chain;
    use crate::heads::ResponseHeaders;
    use crate::template::fixture::{chain, ctx, errors};
    use crate::AddedFields;

    pub(super) const CONFIG: &str = r#"{cors: {allow_origins: ["https://app.example", "https://*.example.com"], allow_origin_regex: ['https://[a-z]+\.example\.org'], allow_headers: [X-Token, Content-Type], expose_headers: [X-Trace], allow_credentials: true, max_age: 10m}}"#;

    pub(super) fn cors(config: &str) -> Arc<Chain> {
        chain("[\"/*\"]", config)
    }

    /// Runs the request phase; the answer, if any, and the fields set for the response.
    pub(super) fn request(
        chain: &Arc<Chain>,
        method: Method,
        fields: &[(&str, &str)],
    ) -> (Option<Answer>, Box<RequestCtx>) {
        let mut headers = HeaderMap::new();
        for (name, value) in fields {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let uri = Uri::from_static("/x");
        let mut ctx = ctx(chain, "/x", false);
        let mut head = RequestHead {
            method: &method,
            uri: &uri,
            headers: &mut headers,
        };
        let answer = chain.request(&mut head, &mut ctx);
        (answer, ctx)
    }

    pub(super) fn preflight(
        chain: &Arc<Chain>,
        origin: &str,
        method: &str,
        asked: Option<&str>,
    ) -> Answer {
        let mut fields = vec![
            ("origin", origin),
            ("access-control-request-method", method),
        ];
        fields.extend(asked.map(|h| ("access-control-request-headers", h)));
        request(chain, Method::OPTIONS, &fields)
            .0
            .expect("answered")
    }

    pub(super) fn fields(answer: &Answer) -> Vec<(String, String)> {
        answer
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect()
    }

    pub(super) fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn each_kind_of_origin_rule_allows_through_the_chain() {
        let chain = cors(CONFIG);
        let allowed = |origin: &str| {
            let (answer, ctx) = request(&chain, Method::GET, &[("origin", origin)]);
            assert!(answer.is_none());
            !ctx.response_headers.is_empty()
        };
        assert!(allowed("https://app.example"));
        assert!(allowed("https://a.b.example.com"));
        assert!(allowed("https://api.example.org"));
        assert!(!allowed("https://evil.example.com.attacker.net"));
        assert!(!allowed("https://api.example.org.attacker.net"));
    }

    #[test]
    fn actual_requests_from_allowed_origins_get_the_fields() {
        let chain = cors(CONFIG);
        let (answer, ctx) = request(&chain, Method::POST, &[("origin", "https://app.example")]);
        assert!(answer.is_none());
        let got: Vec<(String, String)> = ctx
            .response_headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        assert_eq!(
            got,
            pairs(&[
                ("access-control-allow-origin", "https://app.example"),
                ("access-control-allow-credentials", "true"),
                ("access-control-expose-headers", "x-trace"),
            ])
        );
        // Without Origin, or from another origin: forwarded without fields.
        assert!(request(&chain, Method::GET, &[])
            .1
            .response_headers
            .is_empty());
        let (answer, ctx) = request(&chain, Method::GET, &[("origin", "https://evil.example")]);
        assert!(answer.is_none() && ctx.response_headers.is_empty());
        // Two Origin fields are not a browser's request.
        let two = [
            ("origin", "https://app.example"),
            ("origin", "https://app.example"),
        ];
        assert!(request(&chain, Method::GET, &two)
            .1
            .response_headers
            .is_empty());
        // OPTIONS without Access-Control-Request-Method is an actual request.
        let (answer, ctx) = request(
            &chain,
            Method::OPTIONS,
            &[("origin", "https://app.example")],
        );
        assert!(answer.is_none() && !ctx.response_headers.is_empty());
    }

    #[test]
    fn vary_origin_is_appended_to_the_upstreams_vary() {
        let chain = cors(CONFIG);
        let (_, mut ctx) = request(&chain, Method::GET, &[("origin", "https://app.example")]);
        let mut map = HeaderMap::new();
        let mut added = AddedFields::new();
        let mut raw = raw_fields_of(
            b"Vary: Accept-Encoding\r\nAccess-Control-Allow-Origin: https://up\r\n\r\n",
        )
        .unwrap();
        let mut status = StatusCode::OK;
        let mut head = ResponseHead {
            status: &mut status,
            headers: ResponseHeaders::new(&mut map, &mut added, &mut raw),
        };
        chain.response(&mut head, &mut ctx);
        for (name, value) in added.drain(..) {
            map.append(name, value);
        }
        let vary: Vec<_> = map.get_all(VARY).iter().collect();
        assert_eq!(vary, ["Accept-Encoding", "Origin"]);
        assert_eq!(map[ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example");
        // A preflight answered here keeps its own Vary only.
        let (answer, mut ctx) = request(
            &chain,
            Method::OPTIONS,
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "GET"),
            ],
        );
        let mut answer = answer.unwrap();
        let mut added = AddedFields::new();
        let mut raw = Default::default();
        let mut status = answer.status;
        let mut head = ResponseHead {
            status: &mut status,
            headers: ResponseHeaders::new(&mut answer.headers, &mut added, &mut raw),
        };
        chain.response(&mut head, &mut ctx);
        for (name, value) in added.drain(..) {
            answer.headers.append(name, value);
        }
        assert_eq!(answer.headers.get_all(VARY).iter().count(), 1);
        // With `*` alone nothing varies.
        let any = cors(r#"{cors: {allow_origins: ["*"]}}"#);
        let (_, mut ctx) = request(&any, Method::GET, &[("origin", "https://x.example")]);
        let mut map = HeaderMap::new();
        let mut added = AddedFields::new();
        let mut raw = Default::default();
        let mut status = StatusCode::OK;
        let mut head = ResponseHead {
            status: &mut status,
            headers: ResponseHeaders::new(&mut map, &mut added, &mut raw),
        };
        any.response(&mut head, &mut ctx);
        for (name, value) in added.drain(..) {
            map.append(name, value);
        }
        assert!(!map.contains_key(VARY));
    }

    #[test]
    fn bad_configurations_name_their_field() {
        let at = "routes[0].plugins.cors";
        let errors = |c: &str| errors("[\"/*\"]", c);
        assert_eq!(
            errors(r#"{cors: {allow_origins: ["*"], allow_credentials: true}}"#),
            [format!("{at}.allow_credentials: cannot be true when allow_origins has \"*\": list the origins that may send credentials")]
        );
        let e = errors(
            r#"{cors: {allow_origins: ["app.example", "https://a.*.example", "https://x/y", "https://*."]}}"#,
        );
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e[0].starts_with(&format!("{at}.allow_origins[0]:")));
        assert!(e[1].starts_with(&format!("{at}.allow_origins[1]:")));
        assert!(e[3].starts_with(&format!("{at}.allow_origins[3]:")));
        let e = errors(r#"{cors: {allow_origin_regex: ["("]}}"#);
        assert!(
            e[0].starts_with(&format!("{at}.allow_origin_regex[0]:")),
            "{e:?}"
        );
        let e = errors(
            r#"{cors: {allow_origins: ["*"], allow_methods: ["G T"], allow_headers: ["*", X-A], expose_headers: ["a b"]}}"#,
        );
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].starts_with(&format!("{at}.allow_methods[0]:")));
        assert!(e[1].starts_with(&format!("{at}.allow_headers:")));
        assert!(e[2].starts_with(&format!("{at}.expose_headers[0]:")));
        assert!(errors("{cors: {}}")[0].starts_with(&format!("{at}.allow_origins:")));
        let e = errors("{cors: {allow_origins: ['*'], max_age: soon}}");
        assert!(e[0].starts_with(&format!("{at}.max_age:")), "{e:?}");
        assert!(errors("{cors: {allow_origins: ['*'], origins: []}}")[0].contains("origins"));
    }
}
