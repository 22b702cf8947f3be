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
        self.method_gaps(authenticating, None)
    }

    /// The warnings of [`Config::method_gap_warnings`] that this configuration has and `previous`
    /// (the one it changes) did not: those of a pair of routes one of which is new (not the same
    /// `Arc` as one of `previous`'s). With the same global plugins, a pair of unchanged routes was
    /// warned about when `previous` was applied; this looks at the new routes' pairs only, so a
    /// change to one route of thousands does not compare every route with every other.
    pub fn new_method_gap_warnings(
        &self,
        authenticating: &[&str],
        previous: &Config,
    ) -> Vec<FieldError> {
        if previous.global_plugins != self.global_plugins {
            return self.method_gap_warnings(authenticating);
        }
        let found = crate::same_items(&previous.routes, &self.routes);
        let new: Vec<usize> = (0..found.len()).filter(|&i| found[i].is_none()).collect();
        if new.is_empty() {
            return Vec::new();
        }
        self.method_gaps(authenticating, Some(&new))
    }

    /// The warnings about each pair of routes, or with `new` (ascending route indices) about each
    /// pair one of which is new.
    fn method_gaps(&self, authenticating: &[&str], new: Option<&[usize]>) -> Vec<FieldError> {
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
            let others: Box<dyn Iterator<Item = usize>> = match new {
                Some(new) if new.binary_search(&i).is_err() => Box::new(new.iter().copied()),
                _ => Box::new(0..self.routes.len()),
            };
            for j in others {
                let open = &self.routes[j];
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

    #[test]
    fn a_change_reports_the_gaps_it_opens_and_not_those_already_reported() {
        let guarded = "  - { id: admin, paths: [\"/admin/*\"], methods: [GET], upstream: u, plugins: { key-auth: {} } }\n";
        let open = "  - { id: all, paths: [\"/*\"], upstream: u }\n";
        let other = "  - { id: other, paths: [\"/other/*\"], upstream: u }\n";
        let before = crate::parse_yaml(&format!("{BASE}routes:\n{guarded}{other}")).unwrap();
        let paths = |w: Vec<FieldError>| w.into_iter().map(|w| w.path).collect::<Vec<_>>();
        // An open catch-all added: the guarded route, unchanged, now has a gap.
        let mut added = before.clone();
        let catch_all = crate::parse_yaml(&format!("{BASE}routes:\n{open}")).unwrap();
        added.routes.push(catch_all.routes[0].clone());
        assert_eq!(
            paths(added.new_method_gap_warnings(AUTH, &before)),
            ["routes[0].methods"]
        );
        assert_eq!(
            paths(added.method_gap_warnings(AUTH)),
            ["routes[0].methods"]
        );
        // Another route changed after that: the gap was reported already.
        let mut changed = added.clone();
        changed.routes[1] = crate::parse_yaml(&format!("{BASE}routes:\n{other}"))
            .unwrap()
            .routes[0]
            .clone();
        assert!(changed.new_method_gap_warnings(AUTH, &added).is_empty());
        assert_eq!(
            paths(changed.method_gap_warnings(AUTH)),
            ["routes[0].methods"]
        );
        // A new guarded route beside the catch-all is reported.
        let mut guarded_too = added.clone();
        let mut second = (*added.routes[0]).clone();
        second.id = "admin2".into();
        second.paths = vec!["/admin2/*".into()];
        guarded_too.routes.push(std::sync::Arc::new(second));
        assert_eq!(
            paths(guarded_too.new_method_gap_warnings(AUTH, &added)),
            ["routes[3].methods"]
        );
    }
}
