//! [`Origins`]: which `Origin` values the `cors` plugin allows: exact origins, one leading wildcard,
//! anchored regexes, or every origin.

use regex::Regex;

/// The allowed origins, parsed and compiled once per snapshot.
pub(super) struct Origins {
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

impl Origins {
    /// Parses `allow_origins` and compiles `allow_origin_regex`; errors are `(field, message)`.
    pub(super) fn parse(
        allow_origins: &[String],
        allow_origin_regex: &[String],
    ) -> Result<Self, Vec<(String, String)>> {
        let mut origins = Origins {
            any: false,
            exact: Vec::new(),
            wildcards: Vec::new(),
            regexes: Vec::new(),
        };
        let mut errors = Vec::new();
        for (i, origin) in allow_origins.iter().enumerate() {
            match parse_origin(origin) {
                Ok(Rule::Any) => origins.any = true,
                Ok(Rule::Exact(o)) => origins.exact.push(o.into()),
                Ok(Rule::Wildcard(w)) => origins.wildcards.push(w),
                Err(message) => errors.push((format!("allow_origins[{i}]"), message)),
            }
        }
        for (i, pattern) in allow_origin_regex.iter().enumerate() {
            // Anchored: an origin must match as a whole, or `https://a\.example\.com` would also allow
            // `https://a.example.com.attacker.net`.
            match Regex::new(&format!("^(?:{pattern})$")) {
                Ok(regex) => origins.regexes.push(regex),
                Err(e) => errors.push((format!("allow_origin_regex[{i}]"), e.to_string())),
            }
        }
        if errors.is_empty() {
            Ok(origins)
        } else {
            Err(errors)
        }
    }

    /// Whether every origin is allowed (`*`).
    pub(super) fn any(&self) -> bool {
        self.any
    }

    /// Whether `origin` is allowed.
    pub(super) fn allows(&self, origin: &str) -> bool {
        self.any
            || self.exact.iter().any(|o| o.eq_ignore_ascii_case(origin))
            || self.wildcards.iter().any(|w| w.matches(origin))
            || self.regexes.iter().any(|r| r.is_match(origin))
    }
}

impl Wildcard {
    fn matches(&self, origin: &str) -> bool {
        let Some(host) = strip_prefix_ignore_case(origin, &self.scheme) else {
            return false;
        };
        let Some(labels) = strip_suffix_ignore_case(host, &self.suffix) else {
            return false;
        };
        // One or more whole DNS labels: no `:`, `/`, `@` or empty label can slip in.
        !labels.is_empty()
            && labels
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

enum Rule {
    Any,
    Exact(String),
    Wildcard(Wildcard),
}

/// An `allow_origins` entry: `*`, `null`, `scheme://host[:port]`, or `scheme://*.host[:port]`.
fn parse_origin(text: &str) -> Result<Rule, String> {
    if text == "*" {
        return Ok(Rule::Any);
    }
    if text == "null" {
        return Ok(Rule::Exact(text.to_string()));
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
        0 => Ok(Rule::Exact(text.to_ascii_lowercase())),
        1 if host.starts_with("*.") && host.len() > 2 => Ok(Rule::Wildcard(Wildcard {
            scheme: format!("{}://", scheme.to_ascii_lowercase()).into(),
            suffix: host[1..].to_ascii_lowercase().into(),
        })),
        _ => Err(format!(
            "{text:?}: a wildcard stands for the leading labels only, as in \"https://*.example.com\""
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(list: &[&str], regexes: &[&str]) -> Origins {
        let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        let regexes: Vec<String> = regexes.iter().map(|s| s.to_string()).collect();
        Origins::parse(&list, &regexes).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn origins_match_exactly_by_wildcard_and_by_anchored_regex() {
        let o = origins(
            &["https://app.example", "https://*.example.com"],
            &[r"https://[a-z]+\.example\.org"],
        );
        for allowed in [
            "https://app.example",
            "HTTPS://APP.example",
            "https://a.example.com",
            "https://a.b.example.com",
            "https://A-1.Example.COM",
            "https://api.example.org",
        ] {
            assert!(o.allows(allowed), "{allowed}");
        }
        for refused in [
            "http://app.example",
            "https://app.example:8443",
            "https://app.example.attacker.net",
            "https://example.com",
            "https://.example.com",
            "https://evil.example.com.attacker.net",
            "https://a.example.com:444",
            "http://a.example.com",
            "https://a@b.example.com",
            "https://a:1.example.com",
            "https://a..example.com",
            "https://a/.example.com",
            "https://api.example.org.attacker.net",
            "https://x.https://api.example.org",
            "https://api.example.org/",
            "null",
            "",
        ] {
            assert!(!o.allows(refused), "{refused}");
        }
        assert!(!o.any());
    }

    #[test]
    fn ports_null_and_star() {
        let o = origins(&["https://*.example.com:8443", "null"], &[]);
        assert!(o.allows("https://a.example.com:8443"));
        assert!(!o.allows("https://a.example.com"));
        assert!(o.allows("null"));
        let any = origins(&["*"], &[]);
        assert!(any.any() && any.allows("https://whatever.example"));
    }

    #[test]
    fn entries_that_are_not_origins_are_refused_by_index() {
        let list: Vec<String> = [
            "app.example",
            "https://a.*.example",
            "https://x/y",
            "https://*.",
            "https://*",
            "ht tp://a",
            "https://**.a",
            "https://ok.example",
        ]
        .map(String::from)
        .to_vec();
        let errors = match Origins::parse(&list, &["(".to_string()]) {
            Err(errors) => errors,
            Ok(_) => panic!("refused"),
        };
        let fields: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "allow_origins[0]",
                "allow_origins[1]",
                "allow_origins[2]",
                "allow_origins[3]",
                "allow_origins[4]",
                "allow_origins[5]",
                "allow_origins[6]",
                "allow_origin_regex[0]",
            ]
        );
    }
}
