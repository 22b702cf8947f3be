//! Field names that read the same once `_` and `-` are read as one character.
//!
//! Servers that hand fields to applications under environment-style names (CGI, WSGI, Rack, PHP:
//! `HTTP_X_USER`) read `X-User` and `X_User` as the same field, so a client's `X_User` can stand in
//! for an `X-User` the gateway sets, removes or checks, and a client's `X-User` for a configured
//! `X_User`. nginx drops every name with `_` by default; floodgate keeps such fields, but never
//! beside a field the gateway sets, removes or checks itself.

use http::{HeaderMap, HeaderName};

/// Whether `candidate` is a different spelling of `name` that reads the same once every `_` and `-`
/// are read as the same character (both lowercase, as a `HeaderName` is). `name` itself is not its
/// own twin.
pub fn is_twin(candidate: &[u8], name: &[u8]) -> bool {
    candidate.len() == name.len()
        && candidate != name
        && candidate
            .iter()
            .zip(name)
            .all(|(&c, &n)| c == n || (is_joiner(c) && is_joiner(n)))
}

/// Whether any name can be a twin of `name`: only one with a `-` or a `_` can.
pub fn can_have_twins(name: &[u8]) -> bool {
    name.iter().copied().any(is_joiner)
}

fn is_joiner(byte: u8) -> bool {
    byte == b'-' || byte == b'_'
}

/// Whether `headers` has a twin of `name`: one pass over the names. Callers that look on every
/// request check [`can_have_twins`] once, at build time, and skip the pass for names without any.
pub fn has_twin(headers: &HeaderMap, name: &HeaderName) -> bool {
    twins(headers, name).next().is_some()
}

/// The names of `headers` that are twins of `name`. One pass over the names, each passed over at a
/// length comparison unless it is as long as `name`; nothing is allocated.
pub fn twins<'h>(
    headers: &'h HeaderMap,
    name: &'h HeaderName,
) -> impl Iterator<Item = &'h HeaderName> + 'h {
    let name = name.as_str().as_bytes();
    headers
        .keys()
        .filter(move |key| is_twin(key.as_str().as_bytes(), name))
}

/// Removes every field whose name is a twin of one of `names` (the fields of those names themselves
/// are left alone). Costs one scan of the names; allocates only when a twin is found.
pub fn remove_twins(headers: &mut HeaderMap, names: &[&HeaderName]) {
    // A twin of a name spelled with `-` alone has a `_`: for such names (the gateway's own fields),
    // a name without `_` is passed over at one byte search.
    let any_underscore = names.iter().any(|name| name.as_str().contains('_'));
    let mut found: Vec<HeaderName> = Vec::new();
    for key in headers.keys() {
        let key_bytes = key.as_str().as_bytes();
        if !any_underscore && !key_bytes.contains(&b'_') {
            continue;
        }
        if names
            .iter()
            .any(|name| is_twin(key_bytes, name.as_str().as_bytes()))
        {
            found.push(key.clone());
        }
    }
    for twin in &found {
        headers.remove(twin);
    }
}

/// Removes the fields named `name` and those of its twins.
pub fn remove_with_twins(headers: &mut HeaderMap, name: &HeaderName) {
    headers.remove(name);
    if can_have_twins(name.as_str().as_bytes()) {
        remove_twins(headers, &[name]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn a_twin_reads_the_same_once_underscores_and_dashes_are_one() {
        assert!(is_twin(b"x_user", b"x-user"));
        assert!(is_twin(b"x_forwarded-for", b"x-forwarded-for"));
        assert!(is_twin(b"x-forwarded_for", b"x-forwarded-for"));
        assert!(is_twin(b"x-user", b"x_user"), "both ways");
        assert!(is_twin(b"x_api-key", b"x-api_key"));
        assert!(!is_twin(b"x-user", b"x-user"), "itself");
        assert!(!is_twin(b"x_users", b"x-user"));
        assert!(!is_twin(b"y_user", b"x-user"));
        assert!(
            !is_twin(b"xxuser", b"x-user"),
            "only `_` and `-` are joined"
        );
        assert!(!is_twin(b"x.user", b"x_user"));
        assert!(can_have_twins(b"x-token") && can_have_twins(b"x_token"));
        assert!(!can_have_twins(b"authorization"));
    }

    fn map(names: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for name in names {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        headers
    }

    fn left(headers: &HeaderMap) -> Vec<&str> {
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        left
    }

    #[test]
    fn twins_go_and_everything_else_stays() {
        let mut headers = map(&[
            "x-user",
            "x_user",
            "x-user_id",
            "x_other",
            "x_user_",
            "accept",
        ]);
        headers.append("x_user", HeaderValue::from_static("second"));
        remove_with_twins(&mut headers, &HeaderName::from_static("x-user"));
        assert_eq!(
            left(&headers),
            ["accept", "x-user_id", "x_other", "x_user_"]
        );

        remove_twins(&mut headers, &[&HeaderName::from_static("x-user-id")]);
        assert_eq!(left(&headers), ["accept", "x_other", "x_user_"]);
    }

    #[test]
    fn a_configured_name_with_underscores_has_dashed_twins() {
        let mut headers = map(&["x-token", "x_token", "x-token_", "x-tokens"]);
        let name = HeaderName::from_static("x_token");
        let found: Vec<&str> = twins(&headers, &name).map(HeaderName::as_str).collect();
        assert_eq!(found, ["x-token"]);
        remove_twins(&mut headers, &[&name]);
        assert_eq!(left(&headers), ["x-token_", "x-tokens", "x_token"]);
        remove_with_twins(&mut headers, &HeaderName::from_static("x_token-"));
        assert_eq!(left(&headers), ["x-tokens", "x_token"]);
    }
}
