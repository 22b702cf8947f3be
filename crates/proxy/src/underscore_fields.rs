//! A listener's rule for request fields named with `_` (`listeners[].underscores_in_headers`).
//!
//! CGI-style servers (CGI, WSGI, Rack, PHP) hand fields to applications as `HTTP_*` variables, where
//! `X_User` and `X-User` are one name. The gateway always removes the `_` spellings of the fields it
//! writes or reads itself (see `headers.rs`); this rule covers every other field, for upstreams whose
//! applications trust fields a front proxy is expected to control.

use floodgate_config::UnderscoresInHeaders;
use http::{HeaderMap, HeaderName};

/// Applies `rule` to `headers`: `false` when the request must be refused. Callers skip it under
/// `allow`, so the common case never scans the names.
pub fn apply(headers: &mut HeaderMap, rule: UnderscoresInHeaders) -> bool {
    let mut underscored = headers
        .keys()
        .filter(|name| name.as_str().as_bytes().contains(&b'_'));
    let Some(first) = underscored.next() else {
        return true;
    };
    match rule {
        UnderscoresInHeaders::Allow => true,
        UnderscoresInHeaders::Reject => false,
        UnderscoresInHeaders::Drop => {
            // Collected first: the map cannot change while its names are borrowed.
            let names: Vec<HeaderName> =
                std::iter::once(first).chain(underscored).cloned().collect();
            for name in names {
                headers.remove(&name);
            }
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use floodgate_config::UnderscoresInHeaders;
    use http::{HeaderMap, HeaderValue};

    use super::apply;

    fn fields() -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("x-user", "a"),
            ("x_user", "b"),
            ("x_user", "c"),
            ("_", "d"),
            ("accept", "e"),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn drop_removes_every_value_of_every_underscored_name() {
        let mut headers = fields();
        assert!(apply(&mut headers, UnderscoresInHeaders::Drop));
        let left: Vec<_> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes()))
            .collect();
        assert_eq!(left, [("x-user", &b"a"[..]), ("accept", b"e")]);
    }

    #[test]
    fn reject_refuses_and_changes_nothing() {
        let mut headers = fields();
        assert!(!apply(&mut headers, UnderscoresInHeaders::Reject));
        assert_eq!(headers, fields());
    }

    #[test]
    fn names_without_underscores_pass_every_rule() {
        for rule in [
            UnderscoresInHeaders::Allow,
            UnderscoresInHeaders::Drop,
            UnderscoresInHeaders::Reject,
        ] {
            let mut headers = HeaderMap::new();
            headers.insert("x-user", HeaderValue::from_static("a"));
            assert!(apply(&mut headers, rule));
            assert_eq!(headers.len(), 1);
        }
        let mut headers = fields();
        assert!(apply(&mut headers, UnderscoresInHeaders::Allow));
        assert_eq!(headers, fields());
    }
}
