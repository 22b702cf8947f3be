//! Reading and removing one parameter of a request's query string (credentials sent as `?apikey=`).
//!
//! A parameter's name is matched as the upstream's framework will read it, decoded as form data
//! (`%XX` escapes, `+` for a space): `api%6Bey=` is the parameter `apikey`. Matching the raw bytes would
//! let a client slip a second, unchecked `apikey` past `hide_credentials` to an upstream that decodes it.

/// The raw value of the first parameter `name` of `query` (the value is not percent-decoded).
pub fn param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    params(query, name).next()
}

/// The raw values of every parameter `name` of `query`, in order.
pub fn params<'q, 'n>(
    query: Option<&'q str>,
    name: &'n str,
) -> impl Iterator<Item = &'q str> + use<'q, 'n> {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(move |pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            names(key, name).then_some(value)
        })
}

/// Whether the raw parameter name `raw` decodes to `name`. A `%` not followed by two hex digits stands
/// for itself, as the WHATWG URL standard's form decoding reads it.
fn names(raw: &str, name: &str) -> bool {
    let (raw, mut name) = (raw.as_bytes(), name.as_bytes());
    let mut at = 0;
    while at < raw.len() {
        let (byte, width) = match raw[at] {
            b'+' => (b' ', 1),
            b'%' => match (raw.get(at + 1).and_then(hex), raw.get(at + 2).and_then(hex)) {
                (Some(high), Some(low)) => (high << 4 | low, 3),
                _ => (b'%', 1),
            },
            other => (other, 1),
        };
        match name.split_first() {
            Some((&expected, rest)) if expected == byte => name = rest,
            _ => return false,
        }
        at += width;
    }
    name.is_empty()
}

fn hex(digit: &u8) -> Option<u8> {
    (*digit as char).to_digit(16).map(|value| value as u8)
}

/// `path_and_query` without any parameter `name`; `None` when it has none (nothing to change).
pub fn without_param(path_and_query: &str, name: &str) -> Option<String> {
    let (path, query) = path_and_query.split_once('?')?;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !names(pair.split_once('=').map_or(*pair, |(k, _)| k), name))
        .collect();
    if kept.len() == query.split('&').count() {
        return None;
    }
    let mut out = String::with_capacity(path_and_query.len());
    out.push_str(path);
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_removes_a_parameter() {
        assert_eq!(param(Some("a=1&apikey=k&b"), "apikey"), Some("k"));
        assert_eq!(param(Some("apikeyx=1"), "apikey"), None);
        assert_eq!(param(None, "apikey"), None);
        assert_eq!(
            without_param("/p?a=1&apikey=k&b=2", "apikey").unwrap(),
            "/p?a=1&b=2"
        );
        assert_eq!(without_param("/p?apikey=k", "apikey").unwrap(), "/p");
        assert_eq!(without_param("/p?a=1", "apikey"), None);
        assert_eq!(without_param("/p", "apikey"), None);
    }

    #[test]
    fn a_name_is_matched_as_the_upstream_decodes_it() {
        assert_eq!(param(Some("api%6Bey=k"), "apikey"), Some("k"));
        assert_eq!(param(Some("%61%70%69%6b%65%79=k"), "apikey"), Some("k"));
        assert_eq!(param(Some("api+key=k"), "api key"), Some("k"));
        assert_eq!(param(Some("api%20key=k"), "api key"), Some("k"));
        assert_eq!(
            without_param("/p?apikey=good&api%6Bey=forged&b=2", "apikey").unwrap(),
            "/p?b=2"
        );
        // Not escapes: a lone `%`, a short or non-hex one, and an escape that decodes to a different name.
        assert_eq!(param(Some("a%=1"), "a%"), Some("1"));
        assert_eq!(param(Some("a%4=1"), "a%4"), Some("1"));
        assert_eq!(param(Some("a%zz=1"), "a%zz"), Some("1"));
        assert_eq!(param(Some("apikey%00=k"), "apikey"), None);
        assert_eq!(param(Some("apike=k"), "apikey"), None);
        assert_eq!(param(Some("apikey="), "apikey"), Some(""));
    }

    #[test]
    fn every_value_of_a_repeated_parameter_is_listed() {
        let all: Vec<&str> = params(Some("apikey=a&b=1&api%6Bey=c&apikey"), "apikey").collect();
        assert_eq!(all, ["a", "c", ""]);
        assert_eq!(params(None, "apikey").count(), 0);
    }
}
