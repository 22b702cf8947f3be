//! `rewrite`: the path and `Host` the upstream receives: a prefix stripped, a regex replaced, or a
//! whole new path from a template (`/users/${id}`).

use std::borrow::Cow;

use floodgate_config::FieldError;
use http::uri::{Authority, PathAndQuery};
use http::HeaderValue;
use regex::Regex;
use serde::Deserialize;

use crate::build_ctx::BuildCtx;
use crate::context::RequestCtx;
use crate::heads::UpstreamRequest;
use crate::policy::NoCredential;
use crate::policy::Policy;
use crate::template::Template;

/// `plugins.rewrite`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RewriteConfig {
    /// A leading path removed at a segment boundary (`/api`: `/api/users` becomes `/users`, `/api`
    /// becomes `/`, `/apix` is left alone). Default: none.
    #[serde(default)]
    pub strip_prefix: Option<String>,
    /// The whole new path, a template (`/users/${id}`). A `?` in it gives the query too, replacing
    /// the client's; otherwise the client's query is kept. Not with `strip_prefix` or `regex`.
    /// Default: none.
    #[serde(default)]
    pub path: Option<String>,
    /// A regex replacement on the path (after `strip_prefix`). Default: none.
    #[serde(default)]
    pub regex: Option<RegexRewriteConfig>,
    /// The `Host` (HTTP/1.1) or `:authority` (HTTP/2) sent upstream, `host[:port]`. Default: the
    /// client's.
    #[serde(default)]
    pub host: Option<String>,
}

/// `plugins.rewrite.regex`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegexRewriteConfig {
    /// The regex searched for in the path (not anchored unless it says so); its first match is
    /// replaced.
    pub pattern: String,
    /// What replaces the match: text with `$1` or `${name}` for the pattern's groups (`${1}x` when a
    /// letter follows), `$$` for a dollar sign.
    pub replacement: String,
}

/// The built plugin.
pub struct Rewrite {
    path: PathRewrite,
    host: Option<HeaderValue>,
}

enum PathRewrite {
    None,
    /// Strip and/or replace; the query is kept.
    Edit {
        /// Without a trailing `/`.
        strip_prefix: Option<Box<str>>,
        regex: Option<(Regex, Box<str>)>,
    },
    /// A new path; `query` when the template gives one.
    Template {
        template: Template,
        query: bool,
    },
}

impl Policy for Rewrite {
    const NAME: &'static str = "rewrite";
    const PRIORITY: u16 = 1008;
    type Config = RewriteConfig;
    type Credential = NoCredential;

    fn build(config: RewriteConfig, cx: &mut BuildCtx<'_>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let RewriteConfig {
            strip_prefix,
            path,
            regex,
            host,
        } = config;
        if strip_prefix.is_none() && path.is_none() && regex.is_none() && host.is_none() {
            errors.push(cx.error("", "set at least one of strip_prefix, path, regex, host"));
        }
        let path = match (path, strip_prefix, regex) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                errors.push(cx.error(
                    "path",
                    "replaces the whole path: it does not combine with strip_prefix or regex",
                ));
                PathRewrite::None
            }
            (Some(text), None, None) => match path_template(&text, cx) {
                Ok(rewrite) => rewrite,
                Err(message) => {
                    errors.push(cx.error("path", message));
                    PathRewrite::None
                }
            },
            (None, None, None) => PathRewrite::None,
            (None, strip, regex) => {
                let strip_prefix = strip.and_then(|p| match prefix(&p) {
                    Ok(p) => Some(p),
                    Err(message) => {
                        errors.push(cx.error("strip_prefix", message));
                        None
                    }
                });
                let regex = regex.and_then(|r| match regex_rewrite(&r) {
                    Ok(r) => Some(r),
                    Err((field, message)) => {
                        errors.push(cx.error(field, message));
                        None
                    }
                });
                PathRewrite::Edit {
                    strip_prefix,
                    regex,
                }
            }
        };
        let host = host.and_then(|h| match host_value(&h) {
            Ok(value) => Some(value),
            Err(message) => {
                errors.push(cx.error("host", message));
                None
            }
        });
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self { path, host })
    }

    fn upstream_request(&self, req: &mut UpstreamRequest<'_>, ctx: &RequestCtx) {
        if let Some(host) = &self.host {
            *req.host = host.clone();
        }
        if let Some(path) = self.rewritten(req.path.as_str(), ctx) {
            *req.path = path;
        }
    }
}

impl Rewrite {
    /// The new path and query of `current`; `None` to keep it (nothing to change, or the result is
    /// not a path the upstream may be given).
    fn rewritten(&self, current: &str, ctx: &RequestCtx) -> Option<PathAndQuery> {
        let (path, query) = match current.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (current, None),
        };
        let mut new = match &self.path {
            PathRewrite::None => return None,
            PathRewrite::Template { template, query } => {
                let rendered = template.render_uri(ctx);
                if *query {
                    return checked(rendered);
                }
                rendered
            }
            PathRewrite::Edit {
                strip_prefix,
                regex,
            } => {
                let mut edited = Cow::Borrowed(path);
                if let Some(prefix) = strip_prefix {
                    if let Some(rest) = edited.strip_prefix(&**prefix) {
                        if rest.is_empty() {
                            edited = Cow::Borrowed("/");
                        } else if rest.starts_with('/') {
                            edited = Cow::Owned(rest.to_string());
                        }
                    }
                }
                if let Some((regex, replacement)) = regex {
                    if let Cow::Owned(replaced) = regex.replace(&edited, &**replacement) {
                        edited = Cow::Owned(replaced);
                    }
                }
                match edited {
                    Cow::Borrowed(same) if same == path => return None,
                    other => other.into_owned(),
                }
            }
        };
        if let Some(query) = query {
            new.push('?');
            new.push_str(query);
        }
        checked(new)
    }
}

/// `path` as the path sent upstream, unless it is not one the upstream may be given: it must start
/// with one `/` (`//x` reads as an authority to some servers), hold no fragment, and have no `.` or
/// `..` segment, encoded or not: a rewrite must never step out of where the route sends a request.
fn checked(path: String) -> Option<PathAndQuery> {
    let only_path = path.split('?').next().unwrap_or("");
    let valid = only_path.starts_with('/')
        && !only_path.starts_with("//")
        && !path.contains('#')
        && !only_path.split('/').any(is_dot_segment);
    if !valid {
        return None;
    }
    PathAndQuery::try_from(path).ok()
}

/// Whether `segment` is `.` or `..`, with any dot written `%2e` or `%2E`.
fn is_dot_segment(segment: &str) -> bool {
    let mut rest = segment.as_bytes();
    let mut dots = 0;
    while !rest.is_empty() {
        if rest[0] == b'.' {
            rest = &rest[1..];
        } else if rest.len() >= 3 && rest[0] == b'%' && rest[1] == b'2' && rest[2] | 0x20 == b'e' {
            rest = &rest[3..];
        } else {
            return false;
        }
        dots += 1;
    }
    dots == 1 || dots == 2
}

fn path_template(text: &str, cx: &BuildCtx<'_>) -> Result<PathRewrite, String> {
    let template = Template::parse(text, &cx.scope)?;
    let outside_uri =
        |b: u8| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'#' || b >= 0x80;
    if template.texts().any(|t| t.bytes().any(outside_uri)) {
        return Err(format!(
            "{text:?}: write spaces, \"#\" and other characters outside a URI percent-encoded"
        ));
    }
    // Variables render as one encoded segment each: if the template is a valid path with them as
    // `x`, only their values can make a request's path invalid, and that is checked per request.
    if checked(template.sample()).is_none() {
        return Err(format!(
            "{text:?} must be a path starting with one \"/\", without \".\" or \"..\" segments"
        ));
    }
    let query = template.texts().any(|t| t.contains('?'));
    Ok(PathRewrite::Template { template, query })
}

fn prefix(text: &str) -> Result<Box<str>, String> {
    let trimmed = text.trim_end_matches('/');
    let valid = text.starts_with('/')
        && !trimmed.is_empty()
        && !trimmed
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b"?#".contains(&b));
    if valid {
        Ok(trimmed.into())
    } else {
        Err(format!(
            "{text:?} is not a path prefix (it starts with \"/\", as in \"/api\")"
        ))
    }
}

fn regex_rewrite(config: &RegexRewriteConfig) -> Result<(Regex, Box<str>), (&'static str, String)> {
    let regex = Regex::new(&config.pattern).map_err(|e| ("regex.pattern", e.to_string()))?;
    let replacement = &config.replacement;
    if replacement.contains(['?', '#']) {
        return Err((
            "regex.replacement",
            "rewrites the path only: it cannot hold \"?\" or \"#\"".to_string(),
        ));
    }
    for group in replacement_groups(replacement) {
        let known = match group.parse::<usize>() {
            Ok(index) => index < regex.captures_len(),
            Err(_) => regex.capture_names().flatten().any(|n| n == group),
        };
        if !known {
            return Err((
                "regex.replacement",
                format!(
                    "refers to group ${group}, which the pattern does not have (write ${{1}}x when a letter follows a group)"
                ),
            ));
        }
    }
    Ok((regex, replacement.as_str().into()))
}

/// The groups a replacement refers to, read as the `regex` crate reads them: `$name` takes the
/// longest run of letters, digits and `_`; `${name}` the text up to `}`; `$$` is a dollar sign.
fn replacement_groups(replacement: &str) -> Vec<&str> {
    let mut groups = Vec::new();
    let mut rest = replacement;
    while let Some(at) = rest.find('$') {
        let after = &rest[at + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            rest = stripped;
        } else if let Some((name, tail)) = after.strip_prefix('{').and_then(|b| b.split_once('}')) {
            groups.push(name);
            rest = tail;
        } else {
            let len = after
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            if len > 0 {
                groups.push(&after[..len]);
            }
            rest = &after[len..];
        }
    }
    groups
}

fn host_value(text: &str) -> Result<HeaderValue, String> {
    let valid = !text.is_empty()
        && !text.contains('@')
        && text.parse::<Authority>().is_ok_and(|a| a.as_str() == text);
    match HeaderValue::from_str(text) {
        Ok(value) if valid => Ok(value),
        _ => Err(format!(
            "{text:?} is not a host[:port] (as in \"backend.internal\" or \"10.0.0.5:8080\")"
        )),
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, Method};

    use super::*;
    use crate::template::fixture::{chain, ctx, errors};

    /// The path and host the upstream gets for a request to `path` on a route with `paths` and
    /// `rewrite` (YAML).
    fn rewrite(paths: &str, config: &str, path: &'static str) -> (String, String) {
        let chain = chain(paths, &format!("{{rewrite: {config}}}"));
        let ctx = ctx(&chain, path.split('?').next().unwrap(), false);
        let mut headers = HeaderMap::new();
        let mut pq = PathAndQuery::from_static(path);
        let mut host = HeaderValue::from_static("client.example");
        chain.upstream_request(
            &mut UpstreamRequest {
                method: &Method::GET,
                headers: &mut headers,
                path: &mut pq,
                host: &mut host,
            },
            &ctx,
        );
        (pq.to_string(), host.to_str().unwrap().to_string())
    }

    fn path(paths: &str, config: &str, path: &'static str) -> String {
        rewrite(paths, config, path).0
    }

    #[test]
    fn strip_prefix_cuts_at_a_segment_boundary_and_keeps_the_query() {
        let config = "{strip_prefix: /api/}";
        assert_eq!(path("[\"/*\"]", config, "/api/users?a=1"), "/users?a=1");
        assert_eq!(path("[\"/*\"]", config, "/api"), "/");
        assert_eq!(path("[\"/*\"]", config, "/api?x"), "/?x");
        assert_eq!(path("[\"/*\"]", config, "/apix/y"), "/apix/y");
        assert_eq!(path("[\"/*\"]", config, "/other"), "/other");
    }

    #[test]
    fn path_templates_take_route_parameters_and_maybe_a_query() {
        let paths = "[\"/v1/users/{id}\"]";
        assert_eq!(
            path(paths, "{path: '/users/${id}'}", "/v1/users/42?x=1"),
            "/users/42?x=1"
        );
        assert_eq!(
            path(
                paths,
                "{path: '/users/${id}?from=$route'}",
                "/v1/users/42?x=1"
            ),
            "/users/42?from=r"
        );
        // A parameter cannot add segments, and dot segments are never produced.
        assert_eq!(
            path(paths, "{path: '/u/${id}'}", "/v1/users/a%2Fb"),
            "/u/a%2Fb"
        );
        assert_eq!(
            path(paths, "{path: '/u/${id}'}", "/v1/users/.."),
            "/v1/users/.."
        );
        assert_eq!(
            path(paths, "{path: '/u/${id}'}", "/v1/users/%2E%2e"),
            "/v1/users/%2E%2e"
        );
        assert_eq!(path(paths, "{path: '/u/${id}x'}", "/v1/users/.."), "/u/..x");
    }

    #[test]
    fn regex_replaces_the_first_match_with_groups() {
        let config =
            r#"{regex: {pattern: '^/old/(\w+)/(?P<rest>.*)$', replacement: '/new/${rest}/$1'}}"#;
        assert_eq!(path("[\"/*\"]", config, "/old/a/b/c?q"), "/new/b/c/a?q");
        assert_eq!(path("[\"/*\"]", config, "/other"), "/other");
        let both = r#"{strip_prefix: /api, regex: {pattern: '^/v\d+', replacement: ''}}"#;
        assert_eq!(path("[\"/*\"]", both, "/api/v2/users"), "/users");
        // A result that is not a path, or that steps up, leaves the path as it was.
        let up = r#"{regex: {pattern: '^/a/', replacement: '/../'}}"#;
        assert_eq!(path("[\"/*\"]", up, "/a/b"), "/a/b");
        let no_slash = r#"{regex: {pattern: '^/a', replacement: 'x'}}"#;
        assert_eq!(path("[\"/*\"]", no_slash, "/a/b"), "/a/b");
        let two = r#"{regex: {pattern: '^/a', replacement: '/'}}"#;
        assert_eq!(path("[\"/*\"]", two, "/a/b"), "/a/b");
    }

    #[test]
    fn host_is_replaced() {
        let (p, host) = rewrite("[\"/*\"]", "{host: 'backend.internal:8080'}", "/x?y");
        assert_eq!(
            (p.as_str(), host.as_str()),
            ("/x?y", "backend.internal:8080")
        );
    }

    #[test]
    fn dot_segments_are_found_however_written() {
        for dot in [".", "..", "%2e", "%2E%2e", ".%2e"] {
            assert!(is_dot_segment(dot), "{dot}");
        }
        for other in ["", "...", "a.", ".a", "%2f", "%2", "%2e%2e%2e"] {
            assert!(!is_dot_segment(other), "{other}");
        }
    }

    #[test]
    fn bad_configurations_name_their_field() {
        let at = "routes[0].plugins.rewrite";
        let e = |config: &str| errors("[\"/users/{id}\"]", &format!("{{rewrite: {config}}}"));
        let first = |config: &str| e(config).first().cloned().unwrap_or_default();
        assert!(first("{}").starts_with(&format!("{at}: set at least one")));
        assert!(first("{path: /a, strip_prefix: /b}").starts_with(&format!("{at}.path: replaces")));
        assert!(first("{path: 'users/${id}'}").starts_with(&format!("{at}.path:")));
        assert!(first("{path: '${id}'}").starts_with(&format!("{at}.path:")));
        assert!(first("{path: '//x'}").starts_with(&format!("{at}.path:")));
        assert!(first("{path: '/a/../${id}'}").starts_with(&format!("{at}.path:")));
        assert!(first("{path: '/a b'}").starts_with(&format!("{at}.path:")));
        assert!(first("{path: '/${nope}'}").contains("{nope}"));
        assert!(first("{strip_prefix: api}").starts_with(&format!("{at}.strip_prefix:")));
        assert!(first("{strip_prefix: /}").starts_with(&format!("{at}.strip_prefix:")));
        assert!(first("{regex: {pattern: '(', replacement: x}}")
            .starts_with(&format!("{at}.regex.pattern:")));
        let group = first("{regex: {pattern: '/(a)', replacement: '/$1x'}}");
        assert!(
            group.starts_with(&format!("{at}.regex.replacement: refers to group $1x")),
            "{group}"
        );
        assert!(first("{regex: {pattern: '/(a)', replacement: '/${2}'}}").contains("$2"));
        assert!(
            first("{regex: {pattern: '/(a)', replacement: '/?q'}}").contains("regex.replacement")
        );
        assert!(e("{regex: {pattern: '/(a)', replacement: '/${1}x$$'}}").is_empty());
        assert!(first("{regex: {pattern: '/'}}").starts_with(&format!("{at}.regex")));
        assert!(first("{host: 'a@b'}").starts_with(&format!("{at}.host:")));
        assert!(first("{host: 'a/b'}").starts_with(&format!("{at}.host:")));
        assert!(first("{host: ''}").starts_with(&format!("{at}.host:")));
    }
}
