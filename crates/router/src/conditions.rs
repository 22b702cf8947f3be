//! The parts of a route checked after host and path: its methods and required headers.

use std::collections::BTreeMap;

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method};

/// A route's method set and header requirements, parsed once at build time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conditions {
    /// Empty: any method.
    methods: Vec<Method>,
    /// `HEAD` is in `methods` only because `GET` is.
    implied_head: bool,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// Why a configured condition could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConditionError {
    Method { index: usize, method: String },
    Header { name: String, reason: String },
}

impl Conditions {
    /// Parses methods and headers as they appear in `RouteConfig`.
    pub(crate) fn parse(
        methods: &[String],
        headers: &BTreeMap<String, String>,
    ) -> Result<Self, ConditionError> {
        let mut parsed_methods = Vec::with_capacity(methods.len());
        for (index, method) in methods.iter().enumerate() {
            // Methods are case-sensitive (RFC 9110 §9.1): `get` is an extension method, not GET.
            let parsed =
                Method::from_bytes(method.as_bytes()).map_err(|_| ConditionError::Method {
                    index,
                    method: method.clone(),
                })?;
            if !parsed_methods.contains(&parsed) {
                parsed_methods.push(parsed);
            }
        }
        // A route for GET serves HEAD too (RFC 9110 §9.3.2: HEAD is GET without the body), as nginx's
        // `limit_except GET` and most routers read it: otherwise a HEAD of a GET-only route guarded by
        // authentication falls through to a broader route without it.
        let implied_head =
            parsed_methods.contains(&Method::GET) && !parsed_methods.contains(&Method::HEAD);
        if implied_head {
            parsed_methods.push(Method::HEAD);
        }
        let mut parsed_headers = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            let header_error = |reason: &str| ConditionError::Header {
                name: name.clone(),
                reason: reason.to_string(),
            };
            // `from_bytes` lowercases, which makes configured names case-insensitive as HTTP requires.
            let parsed_name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| header_error("not a valid header name"))?;
            let parsed_value = HeaderValue::from_str(value)
                .map_err(|_| header_error("not a valid header value"))?;
            parsed_headers.push((parsed_name, parsed_value));
        }
        Ok(Conditions {
            methods: parsed_methods,
            implied_head,
            headers: parsed_headers,
        })
    }

    /// How specific the route is beyond host and path: a method set counts 1, each header 1.
    pub(crate) fn weight(&self) -> usize {
        usize::from(!self.methods.is_empty()) + self.headers.len()
    }

    /// Whether a `HEAD` request is this route's only through its `GET`: a route listing `HEAD` itself
    /// on the same pattern is tried before it.
    pub(crate) fn head_only_implied(&self) -> bool {
        self.implied_head
    }

    /// Whether a request with this method and these headers satisfies every condition.
    ///
    /// A header sent several times matches when any one of its values is exactly the required value.
    pub(crate) fn matches(&self, method: &Method, headers: &HeaderMap) -> bool {
        (self.methods.is_empty() || self.methods.contains(method))
            && self
                .headers
                .iter()
                .all(|(name, expected)| headers.get_all(name).iter().any(|value| value == expected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conditions(methods: &[&str], headers: &[(&str, &str)]) -> Conditions {
        Conditions::parse(
            &methods.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
            &headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
        .unwrap()
    }

    fn request_headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn empty_method_set_accepts_any_method() {
        let any = conditions(&[], &[]);
        for method in [Method::GET, Method::DELETE, Method::OPTIONS] {
            assert!(any.matches(&method, &HeaderMap::new()));
        }
    }

    #[test]
    fn method_set_accepts_only_its_members() {
        let c = conditions(&["GET", "POST"], &[]);
        assert!(c.matches(&Method::GET, &HeaderMap::new()));
        assert!(c.matches(&Method::POST, &HeaderMap::new()));
        assert!(!c.matches(&Method::PUT, &HeaderMap::new()));
        assert!(
            c.matches(&Method::HEAD, &HeaderMap::new()),
            "GET implies HEAD"
        );
        let post = conditions(&["POST"], &[]);
        assert!(!post.matches(&Method::HEAD, &HeaderMap::new()));
        assert!(!post.matches(&Method::GET, &HeaderMap::new()));
    }

    #[test]
    fn header_names_are_case_insensitive_and_values_exact() {
        let c = conditions(&[], &[("X-Canary", "true")]);
        assert!(c.matches(&Method::GET, &request_headers(&[("x-canary", "true")])));
        assert!(c.matches(&Method::GET, &request_headers(&[("X-CANARY", "true")])));
        assert!(!c.matches(&Method::GET, &request_headers(&[("x-canary", "True")])));
        assert!(!c.matches(&Method::GET, &request_headers(&[("x-canary", "true ")])));
        assert!(!c.matches(&Method::GET, &request_headers(&[("x-canary", "")])));
        assert!(!c.matches(&Method::GET, &HeaderMap::new()));
    }

    #[test]
    fn every_required_header_must_be_present() {
        let c = conditions(&[], &[("x-a", "1"), ("x-b", "2")]);
        assert!(c.matches(
            &Method::GET,
            &request_headers(&[("x-a", "1"), ("x-b", "2")])
        ));
        assert!(!c.matches(&Method::GET, &request_headers(&[("x-a", "1")])));
    }

    #[test]
    fn repeated_header_matches_when_any_value_is_exact() {
        let c = conditions(&[], &[("x-tenant", "blue")]);
        let repeated = request_headers(&[("x-tenant", "red"), ("x-tenant", "blue")]);
        assert!(c.matches(&Method::GET, &repeated));
    }

    #[test]
    fn weight_counts_method_set_once_and_each_header() {
        assert_eq!(conditions(&[], &[]).weight(), 0);
        assert_eq!(conditions(&["GET", "POST", "PUT"], &[]).weight(), 1);
        assert_eq!(conditions(&["GET"], &[("a", "1"), ("b", "2")]).weight(), 3);
    }

    #[test]
    fn invalid_methods_and_headers_are_reported() {
        let methods = vec!["GET".to_string(), "BAD METHOD".to_string()];
        assert_eq!(
            Conditions::parse(&methods, &BTreeMap::new()),
            Err(ConditionError::Method {
                index: 1,
                method: "BAD METHOD".into()
            })
        );
        let bad_name = BTreeMap::from([("x bad".to_string(), "1".to_string())]);
        assert!(matches!(
            Conditions::parse(&[], &bad_name),
            Err(ConditionError::Header { .. })
        ));
        let bad_value = BTreeMap::from([("x-ok".to_string(), "line\nbreak".to_string())]);
        assert!(matches!(
            Conditions::parse(&[], &bad_value),
            Err(ConditionError::Header { .. })
        ));
    }
}
