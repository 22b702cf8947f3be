//! Field names that differ only by `_` for `-`.
//!
//! Servers that hand fields to applications under environment-style names (CGI, WSGI, Rack, PHP:
//! `HTTP_X_USER`) read `X-User` and `X_User` as the same field, so a client's `X_User` can stand in
//! for an `X-User` the gateway sets or removes. nginx drops every name with `_` by default; floodgate
//! keeps such fields, but never beside a field the gateway sets or removes itself.

use http::{HeaderMap, HeaderName};

/// Whether `candidate` is a different spelling of `name` that reads the same once each `_` is read as
/// `-` (both lowercase, as a `HeaderName` is). `name` itself is not its own twin.
pub fn is_underscore_twin(candidate: &[u8], name: &[u8]) -> bool {
    candidate.len() == name.len()
        && candidate != name
        && candidate
            .iter()
            .zip(name)
            .all(|(&c, &n)| c == n || (c == b'_' && n == b'-'))
}

/// Removes every field whose name is an underscore twin of one of `names` (the fields of those
/// names themselves are left alone). Costs one scan of the names; allocates only when a twin is found.
pub fn remove_underscore_twins(headers: &mut HeaderMap, names: &[&HeaderName]) {
    let mut twins: Vec<HeaderName> = Vec::new();
    for key in headers.keys() {
        let key_bytes = key.as_str().as_bytes();
        if !key_bytes.contains(&b'_') {
            continue;
        }
        if names
            .iter()
            .any(|name| is_underscore_twin(key_bytes, name.as_str().as_bytes()))
        {
            twins.push(key.clone());
        }
    }
    for twin in &twins {
        headers.remove(twin);
    }
}

/// Removes the fields named `name` and those of its underscore twins.
pub fn remove_with_twins(headers: &mut HeaderMap, name: &HeaderName) {
    headers.remove(name);
    if name.as_str().contains('-') {
        remove_underscore_twins(headers, &[name]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn a_twin_differs_only_by_underscores_where_the_name_has_dashes() {
        assert!(is_underscore_twin(b"x_user", b"x-user"));
        assert!(is_underscore_twin(b"x_forwarded-for", b"x-forwarded-for"));
        assert!(is_underscore_twin(b"x-forwarded_for", b"x-forwarded-for"));
        assert!(!is_underscore_twin(b"x-user", b"x-user"), "itself");
        assert!(
            !is_underscore_twin(b"x-user", b"x_user"),
            "only `_` read as `-`"
        );
        assert!(!is_underscore_twin(b"x_users", b"x-user"));
        assert!(!is_underscore_twin(b"y_user", b"x-user"));
    }

    #[test]
    fn twins_go_and_everything_else_stays() {
        let mut headers = HeaderMap::new();
        for name in [
            "x-user",
            "x_user",
            "x-user_id",
            "x_other",
            "x_user_",
            "accept",
        ] {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        headers.append("x_user", HeaderValue::from_static("second"));
        remove_with_twins(&mut headers, &HeaderName::from_static("x-user"));
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "x-user_id", "x_other", "x_user_"]);

        remove_underscore_twins(&mut headers, &[&HeaderName::from_static("x-user-id")]);
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "x_other", "x_user_"]);
    }
}
