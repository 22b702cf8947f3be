//! [`PathParams`]: the `{name}` segments of the route path a request matched.

use std::sync::Arc;

use floodgate_config::{PathPattern, PathSegment};

/// A route's `{param}` values for one request, looked up by name.
#[derive(Debug, Default, Clone)]
pub struct PathParams {
    values: Vec<(Arc<str>, Box<str>)>,
}

impl PathParams {
    /// The value of `{name}`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| &**v)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// A route's path patterns that have `{param}` segments, compiled once per snapshot, to read a
/// request's values from its path.
#[derive(Debug, Default, Clone)]
pub struct ParamPatterns {
    patterns: Vec<Vec<Segment>>,
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(Box<str>),
    Param(Arc<str>),
}

impl ParamPatterns {
    /// The patterns of `paths` with parameters (others carry no values).
    pub fn new<'a>(paths: impl IntoIterator<Item = &'a str>) -> Self {
        let patterns = paths
            .into_iter()
            .filter_map(|p| match PathPattern::parse(p) {
                Ok(PathPattern::Params(segments)) => Some(
                    segments
                        .into_iter()
                        .map(|s| match s {
                            PathSegment::Literal(l) => Segment::Literal(l.into()),
                            PathSegment::Param(n) => Segment::Param(n.into()),
                        })
                        .collect(),
                ),
                _ => None,
            })
            .collect();
        Self { patterns }
    }

    /// Whether the route has any parameter.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The values of the first pattern `path` matches (the router picked the route by one of them).
    pub fn extract(&self, path: &str) -> PathParams {
        let segments: Vec<&str> = match path.strip_prefix('/') {
            Some(rest) => rest.split('/').collect(),
            None => return PathParams::default(),
        };
        'patterns: for pattern in &self.patterns {
            if pattern.len() != segments.len() {
                continue;
            }
            let mut values = Vec::new();
            for (want, got) in pattern.iter().zip(&segments) {
                match want {
                    Segment::Literal(l) if **l == **got => {}
                    Segment::Param(name) if !got.is_empty() => {
                        values.push((name.clone(), Box::from(*got)));
                    }
                    _ => continue 'patterns,
                }
            }
            return PathParams { values };
        }
        PathParams::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_come_from_the_pattern_the_path_matches() {
        let patterns = ParamPatterns::new(["/exact", "/users/{id}/posts/{post}", "/teams/{team}"]);
        let params = patterns.extract("/users/42/posts/7");
        assert_eq!(params.get("id"), Some("42"));
        assert_eq!(params.get("post"), Some("7"));
        assert_eq!(params.get("team"), None);
        assert_eq!(patterns.extract("/teams/red").get("team"), Some("red"));
        assert!(patterns.extract("/teams/").is_empty());
        assert!(patterns.extract("/other").is_empty());
    }
}
