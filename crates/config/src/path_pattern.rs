//! Route path patterns: `/exact`, `/prefix/*` and `/users/{id}`, parsed once and shared with the router.

use std::fmt;

/// One segment of a parsed path pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSegment {
    /// A literal segment that must equal the request's segment.
    Literal(String),
    /// `{name}`: any one non-empty segment.
    Param(String),
}

/// A parsed route path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathPattern {
    /// Matches this path only.
    Exact(String),
    /// `/prefix/*`: matches every path that starts with `prefix/` (the string kept here, with its `/`).
    Prefix(String),
    /// A path with one or more `{param}` segments.
    Params(Vec<PathSegment>),
}

impl PathPattern {
    /// Parses a route path, explaining what is wrong when it is not a valid pattern.
    pub fn parse(pattern: &str) -> Result<Self, String> {
        if !pattern.starts_with('/') {
            return Err(format!("path {pattern:?} must start with \"/\""));
        }
        if pattern.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "path {pattern:?} contains whitespace or control characters"
            ));
        }
        if pattern.contains('?') || pattern.contains('#') {
            return Err(format!(
                "path {pattern:?} must not contain a query or fragment"
            ));
        }
        if let Some(prefix) = pattern.strip_suffix("/*") {
            if prefix.contains('*') || prefix.contains('{') || prefix.contains('}') {
                return Err(format!(
                    "path {pattern:?}: a prefix path cannot also hold \"*\" or {{params}}"
                ));
            }
            return Ok(PathPattern::Prefix(format!("{prefix}/")));
        }
        if pattern.contains('*') {
            return Err(format!(
                "path {pattern:?}: \"*\" is only allowed as the last segment, as in \"/prefix/*\""
            ));
        }
        if !pattern.contains('{') && !pattern.contains('}') {
            return Ok(PathPattern::Exact(pattern.to_string()));
        }
        let mut segments = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        for segment in pattern[1..].split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let valid =
                    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    return Err(format!(
                        "path {pattern:?}: parameter {{{name}}} must be a name of letters, digits or _"
                    ));
                }
                if names.contains(&name) {
                    return Err(format!(
                        "path {pattern:?}: parameter {{{name}}} appears twice"
                    ));
                }
                names.push(name);
                segments.push(PathSegment::Param(name.to_string()));
            } else if segment.contains('{') || segment.contains('}') {
                return Err(format!(
                    "path {pattern:?}: a parameter must be a whole segment, as in \"/users/{{id}}\""
                ));
            } else {
                segments.push(PathSegment::Literal(segment.to_string()));
            }
        }
        Ok(PathPattern::Params(segments))
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathPattern::Exact(p) => f.write_str(p),
            PathPattern::Prefix(p) => write!(f, "{p}*"),
            PathPattern::Params(segments) => {
                for s in segments {
                    match s {
                        PathSegment::Literal(l) => write!(f, "/{l}")?,
                        PathSegment::Param(n) => write!(f, "/{{{n}}}")?,
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind() {
        assert_eq!(
            PathPattern::parse("/users").unwrap(),
            PathPattern::Exact("/users".into())
        );
        assert_eq!(
            PathPattern::parse("/users/*").unwrap(),
            PathPattern::Prefix("/users/".into())
        );
        assert_eq!(
            PathPattern::parse("/*").unwrap(),
            PathPattern::Prefix("/".into())
        );
        assert_eq!(
            PathPattern::parse("/v1/users/{id}").unwrap(),
            PathPattern::Params(vec![
                PathSegment::Literal("v1".into()),
                PathSegment::Literal("users".into()),
                PathSegment::Param("id".into()),
            ])
        );
    }

    #[test]
    fn round_trips_through_display() {
        for p in ["/users", "/users/*", "/v1/users/{id}/posts"] {
            assert_eq!(PathPattern::parse(p).unwrap().to_string(), p);
        }
    }

    #[test]
    fn rejects_invalid_patterns() {
        for bad in [
            "users",
            "/a/*/b",
            "/a*",
            "/u/{id",
            "/u/x{id}",
            "/u/{}",
            "/u/{a}/{a}",
            "/a b",
            "/a?x=1",
            "/{id}/*",
        ] {
            assert!(PathPattern::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
