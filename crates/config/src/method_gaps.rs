//! Warnings (not errors) about routes whose authentication depends on the request's method.
//!
//! A route limited to some methods and guarded by an authentication plugin, beside a broader route
//! without one on paths that overlap, leaves every other method of those paths unauthenticated: a
//! `DELETE /admin/x` misses `methods: [GET]` on `/admin/*` and reaches `/*`. That is sometimes meant
//! (public reads, guarded writes) and sometimes a hole, so the configuration is accepted and the
//! overlap reported.

use crate::{Config, FieldError, PathPattern, PathSegment, RouteConfig};

impl Config {
    /// Every method-restricted route with an authentication plugin (a name in `authenticating`, on the
    /// route or in `global_plugins`) whose paths overlap those of a route without one that takes other
    /// methods. Each warning names the restricted route's `methods` and the other route.
    pub fn method_gap_warnings(&self, authenticating: &[&str]) -> Vec<FieldError> {
        let global_auth = self
            .global_plugins
            .keys()
            .any(|name| authenticating.contains(&name.as_str()));
        if global_auth {
            // Every route authenticates.
            return Vec::new();
        }
        let authenticates = |route: &RouteConfig| {
            route
                .plugins
                .keys()
                .any(|name| authenticating.contains(&name.as_str()))
        };
        let mut warnings = Vec::new();
        for (i, guarded) in self.routes.iter().enumerate() {
            if guarded.methods.is_empty() || !authenticates(guarded) {
                continue;
            }
            for (j, open) in self.routes.iter().enumerate() {
                let other_methods = open.methods.is_empty()
                    || open.methods.iter().any(|m| !allows(&guarded.methods, m));
                if i == j || authenticates(open) || !other_methods || !overlap(guarded, open) {
                    continue;
                }
                warnings.push(FieldError::new(
                    format!("routes[{i}].methods"),
                    format!(
                        "only {} of route {:?}'s paths are authenticated: other methods on paths it \
                         shares with route {:?} (routes[{j}]) reach that route without authentication",
                        guarded.methods.join(", "),
                        guarded.id,
                        open.id,
                    ),
                ));
            }
        }
        warnings
    }
}

/// Whether a route listing `methods` serves `method` (GET brings HEAD, as the router reads it).
fn allows(methods: &[String], method: &str) -> bool {
    methods.iter().any(|m| m == method) || (method == "HEAD" && methods.iter().any(|m| m == "GET"))
}

/// Whether a request could match both routes by host and path (methods and headers aside).
fn overlap(a: &RouteConfig, b: &RouteConfig) -> bool {
    let hosts = a.hosts.is_empty()
        || b.hosts.is_empty()
        || a.hosts
            .iter()
            .any(|x| b.hosts.iter().any(|y| hosts_overlap(x, y)));
    hosts
        && a.paths.iter().any(|p| {
            b.paths
                .iter()
                .any(|q| match (PathPattern::parse(p), PathPattern::parse(q)) {
                    (Ok(p), Ok(q)) => paths_overlap(&p, &q),
                    _ => false,
                })
        })
}

fn hosts_overlap(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    let covers = |wild: &str, name: &str| {
        wild.strip_prefix('*')
            .is_some_and(|suffix| name.ends_with(suffix))
    };
    a == b || covers(&a, &b) || covers(&b, &a)
}

/// One segment of a pattern, for comparing two patterns segment by segment.
enum Piece<'a> {
    Literal(&'a str),
    /// One non-empty segment.
    Any,
    /// Everything from here on (a prefix's `*`).
    Rest,
}

fn pieces(pattern: &PathPattern) -> Vec<Piece<'_>> {
    match pattern {
        PathPattern::Exact(path) => path[1..].split('/').map(Piece::Literal).collect(),
        PathPattern::Prefix(prefix) => {
            // `prefix` ends with `/`: its last split piece is empty and stands for the `*`.
            let mut pieces: Vec<Piece<'_>> = prefix[1..].split('/').map(Piece::Literal).collect();
            pieces.pop();
            pieces.push(Piece::Rest);
            pieces
        }
        PathPattern::Params(segments) => segments
            .iter()
            .map(|s| match s {
                PathSegment::Literal(text) => Piece::Literal(text),
                PathSegment::Param(_) => Piece::Any,
            })
            .collect(),
    }
}

/// Whether some path matches both patterns.
fn paths_overlap(a: &PathPattern, b: &PathPattern) -> bool {
    let (a, b) = (pieces(a), pieces(b));
    let mut at = 0;
    loop {
        match (a.get(at), b.get(at)) {
            // `/a/*` needs the `/` after `a`: a path that ends before it does not match.
            (Some(Piece::Rest), Some(_)) | (Some(_), Some(Piece::Rest)) => return true,
            (None, None) => return true,
            (None, Some(_)) | (Some(_), None) => return false,
            (Some(Piece::Literal(x)), Some(Piece::Literal(y))) if x != y => return false,
            (Some(Piece::Literal(x)), Some(Piece::Any))
            | (Some(Piece::Any), Some(Piece::Literal(x)))
                if x.is_empty() =>
            {
                return false
            }
            _ => at += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTH: &[&str] = &["basic-auth", "jwt-auth", "key-auth"];

    fn warnings(yaml: &str) -> Vec<String> {
        let config = crate::parse_yaml(yaml).expect("valid");
        config
            .method_gap_warnings(AUTH)
            .into_iter()
            .map(|w| w.path)
            .collect()
    }

    const BASE: &str = r#"
listeners: [{ name: l, address: "127.0.0.1:1" }]
upstreams: [{ id: u, targets: [{ address: "127.0.0.1:2" }] }]
"#;

    #[test]
    fn a_guarded_method_beside_an_open_catch_all_is_reported() {
        let yaml = format!(
            "{BASE}routes:\n  - {{ id: admin, paths: [\"/admin/*\"], methods: [GET], upstream: u, plugins: {{ key-auth: {{}} }} }}\n  - {{ id: all, paths: [\"/*\"], upstream: u }}\n"
        );
        assert_eq!(warnings(&yaml), ["routes[0].methods"]);
    }

    #[test]
    fn nothing_is_reported_without_an_overlap_or_an_open_method() {
        for routes in [
            // Other paths.
            "  - { id: admin, paths: [\"/admin/*\"], methods: [GET], upstream: u, plugins: { key-auth: {} } }\n  - { id: pub, paths: [\"/public/*\"], upstream: u }\n",
            // Other hosts.
            "  - { id: admin, hosts: [a.test], paths: [\"/*\"], methods: [GET], upstream: u, plugins: { key-auth: {} } }\n  - { id: pub, hosts: [b.test], paths: [\"/*\"], upstream: u }\n",
            // The open route takes only the guarded methods (HEAD comes with GET).
            "  - { id: admin, paths: [\"/admin/*\"], methods: [GET], upstream: u, plugins: { key-auth: {} } }\n  - { id: pub, paths: [\"/*\"], methods: [HEAD], upstream: u }\n",
            // Both authenticate.
            "  - { id: admin, paths: [\"/admin/*\"], methods: [GET], upstream: u, plugins: { key-auth: {} } }\n  - { id: pub, paths: [\"/*\"], upstream: u, plugins: { basic-auth: {} } }\n",
            // No method restriction.
            "  - { id: admin, paths: [\"/admin/*\"], upstream: u, plugins: { key-auth: {} } }\n  - { id: pub, paths: [\"/*\"], upstream: u }\n",
        ] {
            assert!(warnings(&format!("{BASE}routes:\n{routes}")).is_empty(), "{routes}");
        }
        let global = format!(
            "{BASE}global_plugins: {{ jwt-auth: {{ secret: s }} }}\nroutes:\n  - {{ id: admin, paths: [\"/a\"], methods: [GET], upstream: u, plugins: {{ key-auth: {{}} }} }}\n  - {{ id: all, paths: [\"/*\"], upstream: u }}\n"
        );
        assert!(warnings(&global).is_empty());
    }

    #[test]
    fn patterns_overlap_when_some_path_matches_both() {
        let overlap = |a: &str, b: &str| {
            paths_overlap(
                &PathPattern::parse(a).unwrap(),
                &PathPattern::parse(b).unwrap(),
            )
        };
        assert!(overlap("/items/{id}", "/items/*"));
        assert!(overlap("/items/{id}", "/items/42"));
        assert!(overlap("/items/{id}/x", "/{a}/{b}/x"));
        assert!(overlap("/a/b", "/a/b"));
        assert!(!overlap("/items/{id}", "/items/42/x"));
        assert!(!overlap("/items/{id}", "/users/*"));
        assert!(!overlap("/a", "/a/*"));
        assert!(hosts_overlap("*.example.com", "api.example.com"));
        assert!(!hosts_overlap("a.test", "b.test"));
    }
}
