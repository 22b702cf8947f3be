//! The answer to a CORS preflight: which requests may follow, or a refusal.

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, VARY,
};
use http::{HeaderValue, Method, StatusCode};

use super::{single, Cors};
use crate::answer::Answer;
use crate::heads::RequestHead;

impl Cors {
    /// The answer to a preflight: 204 with the CORS fields when the origin, method and header fields
    /// asked for are all allowed, else 403.
    pub(super) fn preflight(&self, req: &RequestHead<'_>, origin: Option<&HeaderValue>) -> Answer {
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

#[cfg(test)]
mod tests {
    use super::super::tests::{cors, fields, pairs, preflight, request, CONFIG};
    use super::*;

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
}
