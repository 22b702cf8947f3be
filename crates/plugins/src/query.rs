//! Reading and removing one parameter of a request's query string (credentials sent as `?apikey=`).

/// The raw value of the first parameter `name` of `query` (not percent-decoded).
pub fn param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

/// `path_and_query` without any parameter `name`; `None` when it has none (nothing to change).
pub fn without_param(path_and_query: &str, name: &str) -> Option<String> {
    let (path, query) = path_and_query.split_once('?')?;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| pair.split_once('=').map_or(*pair, |(k, _)| k) != name)
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
}
