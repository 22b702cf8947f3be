//! `cors`: Cross-Origin Resource Sharing (the Fetch standard's CORS protocol). Preflights are
//! answered at the gateway and never forwarded; actual requests from allowed origins get the CORS
//! response fields, whoever answers them.

use floodgate_config::{FieldError, HumanDuration};
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderName, HeaderValue, Method, StatusCode};
use regex::Regex;
use serde::Deserialize;

use crate::answer::Answer;
use crate::build::BuildCtx;
use crate::context::RequestCtx;
use crate::heads::{RequestHead, ResponseHead};
use crate::policy::{Flow, Policy};
use crate::registry::NoCredential;

/// `plugins.cors`.
#[derive(Debug, Deserialize)]
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

/// Which origins are allowed.
struct Origins {
    any: bool,
    /// Lowercase.
    exact: Vec<Box<str>>,
    wildcards: Vec<Wildcard>,
    regexes: Vec<Regex>,
}

/// `scheme://*.suffix[:port]`, split at the `*`.
struct Wildcard {
    /// `https://`.
    scheme: Box<str>,
    /// `.example.com` or `.example.com:8443`.
    suffix: Box<str>,
}

impl Policy for Cors {
    const NAME: &'static str = "cors";
    const PRIORITY: u16 = 4000;
    type Config = CorsConfig;
    type Credential = NoCredential;

    fn build(config: CorsConfig, cx: &mut BuildCtx<'_>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut origins = Origins {
            any: false,
            exact: Vec::new(),
            wildcards: Vec::new(),
            regexes: Vec::new(),
        };
        for (i, origin) in config.allow_origins.iter().enumerate() {
            let field = format!("allow_origins[{i}]");
            match parse_origin(origin) {
                Ok(OriginRule::Any) => origins.any = true,
                Ok(OriginRule::Exact(o)) => origins.exact.push(o.into()),
                Ok(OriginRule::Wildcard(w)) => origins.wildcards.push(w),
                Err(message) => errors.push(cx.error(&field, message)),
            }
        }
        for (i, pattern) in config.allow_origin_regex.iter().enumerate() {
            // Anchored: an origin must match as a whole, or `https://a\.example\.com` would also allow
            // `https://a.example.com.attacker.net`.
            match Regex::new(&format!("^(?:{pattern})$")) {
                Ok(regex) => origins.regexes.push(regex),
                Err(e) => errors.push(cx.error(&format!("allow_origin_regex[{i}]"), e.to_string())),
            }
        }
        if config.allow_origins.is_empty() && config.allow_origin_regex.is_empty() {
            errors.push(cx.error(
                "allow_origins",
                "list at least one origin (in allow_origins or allow_origin_regex)",
            ));
        }
        if origins.any && config.allow_credentials {
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
        if !errors.is_empty() {
            return Err(errors);
        }
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
        let allow = if self.origins.any {
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
        if !answered_here && !self.origins.any {
            resp.headers
                .append(VARY, HeaderValue::from_static("Origin"));
        }
    }
}

impl Cors {
    /// The answer to a preflight: 204 with the CORS fields when the origin, method and header fields
    /// asked for are all allowed, else 403.
    fn preflight(&self, req: &RequestHead<'_>, origin: Option<&HeaderValue>) -> Answer {
        let refused = || {
            Answer::error(
                StatusCode::FORBIDDEN,
                "cross-origin request not allowed",
                "preflight_refused",
            )
        };
        let Some(allow_origin) = origin.and_then(|o| self.allow_origin(o)) else {
            return refused();
        };
        let Some(method) = single(req.headers, &ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
        else {
            return refused();
        };
        if !self.allows_method(&method) {
            return refused();
        }
        let requested = req.headers.get_all(ACCESS_CONTROL_REQUEST_HEADERS);
        let allow_headers = match &self.headers {
            None => {
                // `*` echoes what was asked, which also works with credentials (where a literal `*`
                // means only a field named `*`). Several fields are one list (RFC 9110 §5.3).
                let mut joined = Vec::new();
                for value in requested.iter() {
                    if !joined.is_empty() {
                        joined.extend_from_slice(b", ");
                    }
                    joined.extend_from_slice(value.as_bytes());
                }
                if joined.is_empty() {
                    None
                } else {
                    HeaderValue::from_bytes(&joined).ok()
                }
            }
            Some(allowed) => {
                let all_allowed = requested.iter().all(|value| {
                    value.to_str().is_ok_and(|list| {
                        list.split(',')
                            .map(str::trim)
                            .filter(|name| !name.is_empty())
                            .all(|name| {
                                allowed
                                    .iter()
                                    .any(|a| a.as_str().eq_ignore_ascii_case(name))
                            })
                    })
                });
                if !all_allowed {
                    return refused();
                }
                self.headers_value.clone()
            }
        };
        let methods = match &self.methods {
            Some(_) => self.methods_value.clone(),
            None => HeaderValue::from_str(method.as_str())
                .unwrap_or_else(|_| self.methods_value.clone()),
        };
        let mut answer = Answer::empty(StatusCode::NO_CONTENT, "preflight")
            .with_header(ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin)
            .with_header(ACCESS_CONTROL_ALLOW_METHODS, methods);
        if let Some(headers) = allow_headers {
            answer = answer.with_header(ACCESS_CONTROL_ALLOW_HEADERS, headers);
        }
        if self.credentials {
            answer = answer.with_header(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        answer
            .with_header(ACCESS_CONTROL_MAX_AGE, self.max_age.clone())
            .with_header(
                VARY,
                HeaderValue::from_static(
                    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
                ),
            )
    }

    /// The `Access-Control-Allow-Origin` value for `origin`, `None` when it is not allowed.
    fn allow_origin(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        if self.origins.any {
            return Some(HeaderValue::from_static("*"));
        }
        let text = origin.to_str().ok()?;
        if self
            .origins
            .exact
            .iter()
            .any(|o| o.eq_ignore_ascii_case(text))
            || self.origins.wildcards.iter().any(|w| w.matches(text))
            || self.origins.regexes.iter().any(|r| r.is_match(text))
        {
            return Some(origin.clone());
        }
        None
    }

    fn allows_method(&self, method: &Method) -> bool {
        // GET, HEAD and POST are CORS-safelisted: a browser sends them whatever the preflight says.
        let safelisted = [Method::GET, Method::HEAD, Method::POST].contains(method);
        safelisted
            || self
                .methods
                .as_ref()
                .is_none_or(|list| list.contains(method))
    }
}

impl Wildcard {
    fn matches(&self, origin: &str) -> bool {
        let Some(host) = strip_prefix_ignore_case(origin, &self.scheme) else {
            return false;
        };
        let Some(label) = strip_suffix_ignore_case(host, &self.suffix) else {
            return false;
        };
        // One or more whole DNS labels: no `:`, `/`, `@` or empty label can slip in.
        !label.is_empty()
            && label
                .split('.')
                .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

fn strip_suffix_ignore_case<'a>(text: &'a str, suffix: &str) -> Option<&'a str> {
    let at = text.len().checked_sub(suffix.len())?;
    let tail = text.get(at..)?;
    tail.eq_ignore_ascii_case(suffix).then(|| &text[..at])
}

enum OriginRule {
    Any,
    Exact(String),
    Wildcard(Wildcard),
}

/// An `allow_origins` entry: `*`, `scheme://host[:port]`, or `scheme://*.host[:port]`.
fn parse_origin(text: &str) -> Result<OriginRule, String> {
    if text == "*" {
        return Ok(OriginRule::Any);
    }
    if text == "null" {
        return Ok(OriginRule::Exact(text.to_string()));
    }
    let Some((scheme, host)) = text.split_once("://") else {
        return Err(format!(
            "{text:?} is not an origin (scheme://host[:port], as in \"https://app.example.com\")"
        ));
    };
    let valid_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    let valid_host = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]*".contains(&b));
    if !valid_scheme || !valid_host {
        return Err(format!(
            "{text:?} is not an origin (scheme://host[:port], no path, as in \"https://app.example.com\")"
        ));
    }
    match host.matches('*').count() {
        0 => Ok(OriginRule::Exact(text.to_ascii_lowercase())),
        1 if host.starts_with("*.") && host.len() > 2 => Ok(OriginRule::Wildcard(Wildcard {
            scheme: format!("{}://", scheme.to_ascii_lowercase()).into(),
            suffix: host[1..].to_ascii_lowercase().into(),
        })),
        _ => Err(format!(
            "{text:?}: a wildcard stands for the leading labels only, as in \"https://*.example.com\""
        )),
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
    use http::{HeaderMap, Uri};

    use super::*;
    use crate::chain::Chain;
    use crate::heads::ResponseHeaders;
    use crate::template::fixture::{chain, ctx, errors};

    const CONFIG: &str = r#"{cors: {allow_origins: ["https://app.example", "https://*.example.com"], allow_origin_regex: ['https://[a-z]+\.example\.org'], allow_headers: [X-Token, Content-Type], expose_headers: [X-Trace], allow_credentials: true, max_age: 10m}}"#;

    fn cors(config: &str) -> Arc<Chain> {
        chain("[\"/*\"]", config)
    }

    /// Runs the request phase; the answer, if any, and the fields set for the response.
    fn request(
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

    fn preflight(chain: &Arc<Chain>, origin: &str, method: &str, asked: Option<&str>) -> Answer {
        let mut fields = vec![
            ("origin", origin),
            ("access-control-request-method", method),
        ];
        fields.extend(asked.map(|h| ("access-control-request-headers", h)));
        request(chain, Method::OPTIONS, &fields)
            .0
            .expect("answered")
    }

    fn fields(answer: &Answer) -> Vec<(String, String)> {
        answer
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn origins_match_exactly_by_wildcard_and_by_anchored_regex() {
        let chain = cors(CONFIG);
        let allowed = |origin: &str| {
            let (answer, ctx) = request(&chain, Method::GET, &[("origin", origin)]);
            assert!(answer.is_none());
            !ctx.response_headers.is_empty()
        };
        assert!(allowed("https://app.example"));
        assert!(allowed("HTTPS://APP.example"));
        assert!(allowed("https://a.example.com"));
        assert!(allowed("https://a.b.example.com"));
        assert!(allowed("https://api.example.org"));
        assert!(!allowed("http://app.example"));
        assert!(!allowed("https://app.example:8443"));
        assert!(!allowed("https://app.example.attacker.net"));
        assert!(!allowed("https://example.com"));
        assert!(!allowed("https://.example.com"));
        assert!(!allowed("https://evil.example.com.attacker.net"));
        assert!(!allowed("https://a.example.com:444"));
        assert!(!allowed("https://a@b.example.com"));
        assert!(!allowed("https://a..example.com"));
        assert!(!allowed("https://api.example.org.attacker.net"));
        assert!(!allowed("https://x.https://api.example.org"));
        assert!(!allowed("null"));
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
    fn preflights_are_answered_with_exact_fields() {
        let chain = cors(CONFIG);
        let answer = preflight(
            &chain,
            "https://a.example.com",
            "PUT",
            Some("x-token,content-type"),
        );
        assert_eq!(answer.status, StatusCode::NO_CONTENT);
        assert_eq!(answer.reason, "preflight");
        assert!(answer.body.is_empty() && answer.error.is_none());
        assert_eq!(
            fields(&answer),
            pairs(&[
                ("access-control-allow-origin", "https://a.example.com"),
                (
                    "access-control-allow-methods",
                    "GET, HEAD, POST, PUT, PATCH, DELETE"
                ),
                ("access-control-allow-headers", "x-token, content-type"),
                ("access-control-allow-credentials", "true"),
                ("access-control-max-age", "600"),
                (
                    "vary",
                    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
                ),
            ])
        );
        // Header names compare case-insensitively; none asked is fine.
        let answer = preflight(&chain, "https://app.example", "DELETE", Some("X-TOKEN"));
        assert_eq!(answer.status, StatusCode::NO_CONTENT);
        let answer = preflight(&chain, "https://app.example", "PATCH", None);
        assert_eq!(answer.status, StatusCode::NO_CONTENT);
    }

    #[test]
    fn preflights_asking_too_much_are_refused() {
        let chain = cors(
            r#"{cors: {allow_origins: ["https://app.example"], allow_methods: [PUT], allow_headers: [X-Token]}}"#,
        );
        let refused = |answer: Answer| {
            assert_eq!(answer.status, StatusCode::FORBIDDEN);
            assert_eq!(answer.reason, "preflight_refused");
            assert!(answer.error.is_some());
            assert!(answer.headers.is_empty(), "no CORS fields");
        };
        refused(preflight(&chain, "https://evil.example", "PUT", None));
        refused(preflight(&chain, "https://app.example", "DELETE", None));
        refused(preflight(
            &chain,
            "https://app.example",
            "PUT",
            Some("x-token, x-other"),
        ));
        refused(preflight(&chain, "https://app.example", "bad method", None));
        // GET, HEAD and POST are safelisted: a browser sends them whatever the answer lists.
        let answer = preflight(&chain, "https://app.example", "POST", Some("X-Token"));
        assert_eq!(answer.status, StatusCode::NO_CONTENT);
        assert_eq!(answer.headers[ACCESS_CONTROL_ALLOW_METHODS], "PUT");
        assert_eq!(answer.headers[ACCESS_CONTROL_ALLOW_HEADERS], "x-token");
        assert_eq!(answer.headers[ACCESS_CONTROL_MAX_AGE], "5");
        assert!(!answer
            .headers
            .contains_key(ACCESS_CONTROL_ALLOW_CREDENTIALS));
    }

    #[test]
    fn star_headers_echo_what_was_asked_and_any_origin_sends_star() {
        let chain = cors(r#"{cors: {allow_origins: ["*"], allow_methods: ["*"]}}"#);
        let answer = preflight(&chain, "https://any.example", "PROPFIND", Some("x-a, x-b"));
        assert_eq!(answer.status, StatusCode::NO_CONTENT);
        assert_eq!(answer.headers[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert_eq!(answer.headers[ACCESS_CONTROL_ALLOW_METHODS], "PROPFIND");
        assert_eq!(answer.headers[ACCESS_CONTROL_ALLOW_HEADERS], "x-a, x-b");
        let (_, ctx) = request(&chain, Method::GET, &[]);
        assert_eq!(
            ctx.response_headers,
            [(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"))]
        );
    }

    #[test]
    fn vary_origin_is_appended_to_the_upstreams_vary() {
        let chain = cors(CONFIG);
        let (_, ctx) = request(&chain, Method::GET, &[("origin", "https://app.example")]);
        let mut map = HeaderMap::new();
        let mut raw = raw_fields_of(
            b"Vary: Accept-Encoding\r\nAccess-Control-Allow-Origin: https://up\r\n\r\n",
        )
        .unwrap();
        let mut status = StatusCode::OK;
        let mut head = ResponseHead {
            status: &mut status,
            headers: ResponseHeaders::new(&mut map, &mut raw),
        };
        chain.response(&mut head, &ctx);
        let vary: Vec<_> = map.get_all(VARY).iter().collect();
        assert_eq!(vary, ["Accept-Encoding", "Origin"]);
        assert_eq!(map[ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example");
        // A preflight answered here keeps its own Vary only.
        let (answer, ctx) = request(
            &chain,
            Method::OPTIONS,
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "GET"),
            ],
        );
        let mut answer = answer.unwrap();
        let mut raw = Default::default();
        let mut status = answer.status;
        let mut head = ResponseHead {
            status: &mut status,
            headers: ResponseHeaders::new(&mut answer.headers, &mut raw),
        };
        chain.response(&mut head, &ctx);
        assert_eq!(answer.headers.get_all(VARY).iter().count(), 1);
        // With `*` alone nothing varies.
        let any = cors(r#"{cors: {allow_origins: ["*"]}}"#);
        let (_, ctx) = request(&any, Method::GET, &[("origin", "https://x.example")]);
        let mut map = HeaderMap::new();
        let mut raw = Default::default();
        let mut status = StatusCode::OK;
        let mut head = ResponseHead {
            status: &mut status,
            headers: ResponseHeaders::new(&mut map, &mut raw),
        };
        any.response(&mut head, &ctx);
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
