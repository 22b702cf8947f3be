//! `redirect`: answer with a redirect instead of forwarding: to a URI from a template
//! (`https://new.example.com/users/${id}`), or from plain HTTP to HTTPS on the same host.

use floodgate_config::FieldError;
use http::header::{HOST, LOCATION};
use http::{HeaderValue, StatusCode, Uri};
use serde::Deserialize;

use crate::answer::Answer;
use crate::build_ctx::BuildCtx;
use crate::context::RequestCtx;
use crate::heads::RequestHead;
use crate::policy::NoCredential;
use crate::policy::{Flow, Policy};
use crate::template::Template;

/// `plugins.redirect`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedirectConfig {
    /// Where to: a template of an absolute `http(s)://` URI or an absolute path. Not with
    /// `http_to_https`. Default: none.
    #[serde(default)]
    pub uri: Option<String>,
    /// Redirect requests that did not come over TLS to `https://` on the same host, path and query;
    /// requests over TLS are forwarded. Default `false`.
    #[serde(default)]
    pub http_to_https: bool,
    /// The port in the HTTPS URI, with `http_to_https` (left out when 443). Default: none (443).
    #[serde(default)]
    pub https_port: Option<u16>,
    /// 301, 302, 307 or 308. Default 302 for `uri`, 301 for `http_to_https`.
    #[serde(default)]
    pub status: Option<u16>,
}

/// The built plugin.
pub struct Redirect {
    target: Target,
    status: StatusCode,
}

enum Target {
    Uri(Template),
    /// `:port` to put after the host, empty for 443.
    Https {
        port: Box<str>,
    },
}

impl Policy for Redirect {
    const NAME: &'static str = "redirect";
    const PRIORITY: u16 = 2600;
    type Config = RedirectConfig;
    type Credential = NoCredential;

    fn build(config: RedirectConfig, cx: &mut BuildCtx<'_>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let target = match (config.uri, config.http_to_https) {
            (Some(_), true) => {
                errors.push(cx.error("uri", "give either uri or http_to_https, not both"));
                None
            }
            (None, false) => {
                errors.push(cx.error("", "give uri or http_to_https: true"));
                None
            }
            (Some(text), false) => {
                match Template::parse(&text, &cx.scope).and_then(|t| location(&text, t)) {
                    Ok(template) => Some(Target::Uri(template)),
                    Err(message) => {
                        errors.push(cx.error("uri", message));
                        None
                    }
                }
            }
            (None, true) => Some(Target::Https {
                port: match config.https_port {
                    None | Some(443) => "".into(),
                    Some(port) => format!(":{port}").into(),
                },
            }),
        };
        if config.https_port.is_some() && !config.http_to_https {
            errors.push(cx.error("https_port", "applies to http_to_https only"));
        }
        let default = if config.http_to_https { 301 } else { 302 };
        let status = match config.status.unwrap_or(default) {
            code @ (301 | 302 | 307 | 308) => StatusCode::from_u16(code).ok(),
            code => {
                errors.push(cx.error(
                    "status",
                    format!("{code} is not a redirect status (301, 302, 307 or 308)"),
                ));
                None
            }
        };
        match (target, status) {
            (Some(target), Some(status)) if errors.is_empty() => Ok(Self { target, status }),
            _ => Err(errors),
        }
    }

    fn request(&self, req: &mut RequestHead<'_>, ctx: &mut RequestCtx) -> Flow {
        let location = match &self.target {
            Target::Uri(template) => HeaderValue::from_str(&template.render_uri(ctx)),
            Target::Https { port } => {
                if ctx.tls {
                    return Flow::Continue;
                }
                // The host routing used: the target's authority (HTTP/2's `:authority`, an
                // absolute-form target), else `Host` (RFC 9112 §3.2.2).
                let host = match req.uri.authority() {
                    Some(authority) => Some(authority.as_str()),
                    None => req.headers.get(HOST).and_then(|v| v.to_str().ok()),
                };
                let Some(host) = host.and_then(host_of) else {
                    return Flow::Respond(Answer::error(
                        StatusCode::BAD_REQUEST,
                        "invalid host",
                        "invalid_host",
                    ));
                };
                let path = req
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .filter(|p| p.starts_with('/'))
                    .unwrap_or("/");
                HeaderValue::from_str(&format!("https://{host}{port}{path}"))
            }
        };
        // Variables are percent-encoded and the host checked, so this cannot fail; if it did, no
        // Location is better than a broken one.
        let Ok(location) = location else {
            return Flow::Respond(Answer::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "redirect target unavailable",
                "redirect_invalid",
            ));
        };
        Flow::Respond(Answer::empty(self.status, "redirect").with_header(LOCATION, location))
    }
}

/// Checks a `uri` template: with its variables as `x` it must be a URI, and the scheme and host
/// must come from its literal text, so no request can send the client to another site or scheme:
/// either `http(s)://host` followed by `/`, `?` or `#` before any variable, or a path starting with
/// one `/`.
fn location(text: &str, template: Template) -> Result<Template, String> {
    let sample = template.sample();
    let lead = template.leading_text();
    let fixed = lead.len() == sample.len();
    let lower = lead.to_ascii_lowercase();
    let after_scheme = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    let fixed_origin = match after_scheme {
        Some(rest) if fixed => !rest.is_empty(),
        Some(rest) => rest.find(['/', '?', '#']).is_some_and(|end| end > 0),
        None => lead.starts_with('/') && !lead.starts_with("//") && !lead.starts_with("/\\"),
    };
    let valid_uri = HeaderValue::from_str(&sample).is_ok() && sample.parse::<Uri>().is_ok();
    if fixed_origin && valid_uri {
        Ok(template)
    } else {
        Err(format!(
            "{text:?} must be an http(s):// URI with its host written out, or a path starting with one \"/\"; variables may follow them"
        ))
    }
}

/// The host of a `Host` value, without its port, when it is a DNS name, an IPv4 address or a
/// bracketed IPv6 address: nothing else may go into the `Location` (the proxy checked it already;
/// this keeps a redirect safe on its own).
fn host_of(value: &str) -> Option<&str> {
    let host = if value.starts_with('[') {
        let end = value.find(']')?;
        let (host, rest) = value.split_at(end + 1);
        let inner = &host[1..end];
        let valid = !inner.is_empty()
            && inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b":.".contains(&b));
        (valid && port_ok(rest)).then_some(host)?
    } else {
        let (host, rest) = match value.find(':') {
            Some(at) => value.split_at(at),
            None => (value, ""),
        };
        let valid = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
        (valid && port_ok(rest)).then_some(host)?
    };
    Some(host)
}

fn port_ok(rest: &str) -> bool {
    match rest.strip_prefix(':') {
        None => rest.is_empty(),
        Some(port) => port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()),
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, Method};

    use super::*;
    use crate::template::fixture::{chain, ctx, errors};

    /// The answer to a request for `target` with `Host: host` (none when empty), over TLS or not.
    fn redirect(
        paths: &str,
        config: &str,
        target: &'static str,
        host: &str,
        tls: bool,
    ) -> Option<Answer> {
        let chain = chain(paths, &format!("{{redirect: {config}}}"));
        let uri = Uri::from_static(target);
        let mut ctx = ctx(&chain, uri.path(), tls);
        let mut headers = HeaderMap::new();
        if !host.is_empty() {
            headers.insert(HOST, HeaderValue::from_str(host).unwrap());
        }
        let mut head = RequestHead {
            method: &Method::POST,
            uri: &uri,
            headers: &mut headers,
        };
        chain.request(&mut head, &mut ctx)
    }

    fn location(answer: &Answer) -> (u16, &str) {
        assert_eq!(answer.reason, "redirect");
        assert!(answer.body.is_empty() && answer.error.is_none());
        assert_eq!(answer.headers.len(), 1);
        (
            answer.status.as_u16(),
            answer.headers[LOCATION].to_str().unwrap(),
        )
    }

    #[test]
    fn uri_templates_redirect_with_their_status() {
        let paths = "[\"/users/{id}\"]";
        let config = "{uri: 'https://new.example.com/u/${id}?via=$route'}";
        let answer = redirect(paths, config, "/users/42?x=1", "old.example", false).unwrap();
        assert_eq!(
            location(&answer),
            (302, "https://new.example.com/u/42?via=r")
        );
        for status in [301, 302, 307, 308] {
            let config = format!("{{uri: '/v2/users/${{id}}', status: {status}}}");
            let answer = redirect(paths, &config, "/users/7", "h", true).unwrap();
            assert_eq!(location(&answer), (status, "/v2/users/7"));
        }
        // A parameter's value stays in its segment: no new host, scheme, or line.
        let answer = redirect(
            paths,
            "{uri: '/${id}'}",
            "/users/%5Cevil.example",
            "h",
            false,
        )
        .unwrap();
        assert_eq!(location(&answer).1, "/%5Cevil.example");
        let answer = redirect(paths, "{uri: '/${id}'}", "/users/a%0D%0Ab", "h", false).unwrap();
        assert_eq!(location(&answer).1, "/a%0D%0Ab");
    }

    #[test]
    fn http_to_https_keeps_host_path_and_query() {
        let config = "{http_to_https: true}";
        let answer = redirect("[\"/*\"]", config, "/a/b?c=1", "shop.example:8080", false).unwrap();
        assert_eq!(location(&answer), (301, "https://shop.example/a/b?c=1"));
        let answer = redirect("[\"/*\"]", config, "/", "[::1]:80", false).unwrap();
        assert_eq!(location(&answer), (301, "https://[::1]/"));
        let config = "{http_to_https: true, https_port: 8443, status: 308}";
        let answer = redirect("[\"/*\"]", config, "/x", "shop.example", false).unwrap();
        assert_eq!(location(&answer), (308, "https://shop.example:8443/x"));
        let config = "{http_to_https: true, https_port: 443}";
        let answer = redirect("[\"/*\"]", config, "/x", "shop.example", false).unwrap();
        assert_eq!(location(&answer).1, "https://shop.example/x");
        // Over TLS already: forwarded.
        assert!(redirect("[\"/*\"]", config, "/x", "shop.example", true).is_none());
        // The target's authority wins over Host (HTTP/2's :authority, an absolute-form target).
        let answer = redirect("[\"/*\"]", config, "http://h2.example/p", "", false).unwrap();
        assert_eq!(location(&answer).1, "https://h2.example/p");
        let answer = redirect(
            "[\"/*\"]",
            config,
            "http://h2.example/p",
            "h1.example",
            false,
        )
        .unwrap();
        assert_eq!(location(&answer).1, "https://h2.example/p");
    }

    #[test]
    fn a_host_that_is_not_one_is_refused() {
        for host in [
            "evil.example/x",
            "a@b",
            "a b",
            "[zz]",
            "h:80x",
            "h:123456",
            "",
        ] {
            let answer = redirect("[\"/*\"]", "{http_to_https: true}", "/x", host, false).unwrap();
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{host}");
            assert_eq!(answer.reason, "invalid_host");
            assert!(answer.headers.get(LOCATION).is_none());
        }
    }

    #[test]
    fn bad_configurations_name_their_field() {
        let at = "routes[0].plugins.redirect";
        let e = |config: &str| errors("[\"/users/{id}\"]", &format!("{{redirect: {config}}}"));
        let first = |config: &str| e(config).first().cloned().unwrap_or_default();
        assert!(first("{}").starts_with(&format!("{at}: give uri or")));
        assert!(
            first("{uri: /a, http_to_https: true}").starts_with(&format!("{at}.uri: give either"))
        );
        assert!(first("{uri: /a, https_port: 8443}").starts_with(&format!("{at}.https_port:")));
        assert_eq!(
            first("{uri: /a, status: 303}"),
            format!("{at}.status: 303 is not a redirect status (301, 302, 307 or 308)")
        );
        assert!(first("{http_to_https: true, status: 200}").starts_with(&format!("{at}.status:")));
        for uri in [
            "'${id}'",
            "'https://${id}/'",
            "'https://${id}.example.com/'",
            "'//${id}'",
            "'javascript:${id}'",
            "'x${id}'",
            "'/a b'",
            "'https://'",
        ] {
            let got = first(&format!("{{uri: {uri}}}"));
            assert!(got.starts_with(&format!("{at}.uri: ")), "{uri}: {got}");
        }
        assert!(first("{uri: '/${nope}'}").contains("{nope}"));
        for uri in [
            "'https://a.example'",
            "'https://a.example/${id}'",
            "'http://a.example?id=${id}'",
            "'/${id}'",
            "'/'",
        ] {
            assert!(e(&format!("{{uri: {uri}}}")).is_empty(), "{uri}");
        }
    }
}
