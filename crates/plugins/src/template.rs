//! [`Template`]: a configured value with per-request variables (`X-User: $consumer`,
//! `/users/${id}`), split into parts once at build and rendered per request without parsing.
//!
//! | variable | value |
//! |---|---|
//! | `$request_id` | the request's id (`X-Request-Id`) |
//! | `$client_ip` | the client's address as the gateway believes it ([`RequestCtx::client_ip`]) |
//! | `$consumer` | the id of the consumer an authentication plugin named; empty when none |
//! | `$route` | the matched route's id |
//! | `${name}` | the route path's `{name}` segment; empty when the path matched has none |
//! | `$$` | a literal `$` |

use std::io::Write;

use bytes::Bytes;
use floodgate_config::PathPattern;
use http::HeaderValue;

use crate::build_ctx::Scope;
use crate::context::RequestCtx;

/// A value template, compiled once per snapshot.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Box<[Part]>,
    /// The whole value when it has no variable, ready to clone per request.
    fixed: Option<HeaderValue>,
    /// Bytes the literal parts take, to size the buffer a render writes into.
    literal_len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(Box<str>),
    RequestId,
    ClientIp,
    Consumer,
    Route,
    Param(Box<str>),
}

const VARIABLES: &str = "$request_id, $client_ip, $consumer, $route, ${param}, $$";

impl Template {
    /// Compiles `text`. A `${name}` must be a parameter of the route's paths when the plugin is
    /// configured on a route; elsewhere (global, consumer) it is empty on routes without it.
    pub fn parse(text: &str, scope: &Scope<'_>) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            literal.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (part, used) = if let Some(braced) = after.strip_prefix('{') {
                let Some(end) = braced.find('}') else {
                    return Err(format!("{text:?}: \"${{\" without its closing \"}}\""));
                };
                let name = &braced[..end];
                if name.is_empty() || !name.bytes().all(is_name_byte) {
                    return Err(format!(
                        "{text:?}: ${{{name}}} is not a parameter name (letters, digits, _)"
                    ));
                }
                check_param(name, scope)?;
                (Some(Part::Param(name.into())), end + 2)
            } else if after.starts_with('$') {
                literal.push('$');
                (None, 1)
            } else {
                let len = after.bytes().take_while(|b| is_name_byte(*b)).count();
                let part = match &after[..len] {
                    "request_id" => Part::RequestId,
                    "client_ip" => Part::ClientIp,
                    "consumer" => Part::Consumer,
                    "route" => Part::Route,
                    "" => {
                        return Err(format!(
                            "{text:?}: a lone \"$\"; write \"$$\" for a dollar sign"
                        ))
                    }
                    other => {
                        return Err(format!(
                            "{text:?}: unknown variable ${other} (known: {VARIABLES})"
                        ))
                    }
                };
                (Some(part), len)
            };
            if let Some(part) = part {
                if !literal.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut literal).into()));
                }
                parts.push(part);
            }
            rest = &after[used..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Text(literal.into()));
        }
        let literal_len = parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.len(),
                _ => 0,
            })
            .sum();
        let fixed = match parts.as_slice() {
            [] => Some(HeaderValue::from_static("")),
            [Part::Text(t)] => HeaderValue::from_str(t).ok(),
            _ => None,
        };
        Ok(Self {
            parts: parts.into_boxed_slice(),
            fixed,
            literal_len,
        })
    }

    /// The literal text before the first variable (the whole value when it has none).
    pub fn leading_text(&self) -> &str {
        match self.parts.first() {
            Some(Part::Text(t)) => t,
            _ => "",
        }
    }

    /// The literal parts, in order.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Text(t) => Some(&**t),
            _ => None,
        })
    }

    /// The value with every variable standing as `x`: what build-time checks of the literal text
    /// (a path's shape, a URI's scheme) look at.
    pub fn sample(&self) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t,
                _ => "x",
            })
            .collect()
    }

    /// Checks that the literal parts may stand in a header field value (no control characters), so a
    /// render can fail only through a variable's value.
    pub fn check_header_text(&self) -> Result<(), String> {
        for text in self.texts() {
            if HeaderValue::from_str(text).is_err() {
                return Err(format!(
                    "{text:?} holds characters a header value cannot (control characters)"
                ));
            }
        }
        Ok(())
    }

    /// The value as a header field value; `None` when a variable's value makes it invalid (the
    /// caller skips the field).
    pub fn header_value(&self, ctx: &RequestCtx) -> Option<HeaderValue> {
        if let Some(fixed) = &self.fixed {
            return Some(fixed.clone());
        }
        let mut out = Vec::with_capacity(self.literal_len + 16 * self.parts.len());
        self.render(ctx, false, &mut out);
        HeaderValue::from_maybe_shared(Bytes::from(out)).ok()
    }

    /// The value for a URI (a path, a `Location`): variables' values are percent-encoded as one path
    /// segment, so whatever a client put in them stays inside the segment it fills: it cannot add a
    /// `/`, `?`, `#`, `\`, a space or a line break. Percent escapes already in them are kept.
    pub fn render_uri(&self, ctx: &RequestCtx) -> String {
        let mut out = Vec::with_capacity(self.literal_len + 16 * self.parts.len());
        self.render(ctx, true, &mut out);
        // Literal parts come from a `&str` and encoded variables are ASCII: always UTF-8.
        String::from_utf8(out).unwrap_or_default()
    }

    fn render(&self, ctx: &RequestCtx, uri: bool, out: &mut Vec<u8>) {
        for part in self.parts.iter() {
            let value: &[u8] = match part {
                Part::Text(t) => {
                    out.extend_from_slice(t.as_bytes());
                    continue;
                }
                Part::ClientIp => {
                    // Writing into a Vec cannot fail; an IP address needs no encoding.
                    let _ = write!(out, "{}", ctx.client_ip);
                    continue;
                }
                Part::RequestId => ctx.request_id.as_bytes(),
                Part::Consumer => ctx.consumer_id().map_or(&b""[..], |id| id.as_bytes()),
                Part::Route => ctx.route.as_bytes(),
                Part::Param(name) => ctx.params.get(name).unwrap_or("").as_bytes(),
            };
            if uri {
                encode_segment(value, out);
            } else {
                out.extend_from_slice(value);
            }
        }
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Refuses `${name}` on a route none of whose paths has `{name}`: it would always be empty.
fn check_param(name: &str, scope: &Scope<'_>) -> Result<(), String> {
    let Scope::Route { paths, .. } = scope else {
        return Ok(());
    };
    let declared = paths.iter().any(|path| match PathPattern::parse(path) {
        Ok(PathPattern::Params(segments)) => segments
            .iter()
            .any(|s| matches!(s, floodgate_config::PathSegment::Param(p) if p == name)),
        _ => false,
    });
    if declared {
        Ok(())
    } else {
        Err(format!(
            "${{{name}}}: none of the route's paths has a {{{name}}} parameter"
        ))
    }
}

/// Appends `value` percent-encoded as one path segment (RFC 3986 `pchar`): unreserved characters,
/// sub-delimiters, `:` and `@` as they are, a `%` that starts a valid escape as it is, everything
/// else escaped.
fn encode_segment(value: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for (i, &b) in value.iter().enumerate() {
        let plain = b.is_ascii_alphanumeric()
            || b"-._~!$&'()*+,;=:@".contains(&b)
            || (b == b'%'
                && value.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && value.get(i + 2).is_some_and(u8::is_ascii_hexdigit));
        if plain {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// Chains built from YAML, and request contexts, for the plugins' unit tests.
#[cfg(test)]
pub(crate) mod fixture {
    use std::sync::Arc;

    use floodgate_config::FieldError;
    use http::HeaderValue;

    use crate::build::build_plugins;
    use crate::chain::Chain;
    use crate::context::RequestCtx;
    use crate::state::StateStore;
    use crate::stats::PluginStats;

    /// A configuration with one route `r` (paths `paths`) carrying `plugins` (YAML of the
    /// `plugins:` map, one line), and `extra` appended at the top level (consumers).
    pub fn yaml(paths: &str, plugins: &str, extra: &str) -> String {
        format!(
            "listeners: [{{name: l, address: \"127.0.0.1:1\"}}]\nroutes:\n  - id: r\n    paths: {paths}\n    respond: {{status: 200}}\n    plugins: {plugins}\n{extra}"
        )
    }

    /// Builds the plugins of `text`.
    pub fn build(text: &str) -> Result<crate::PluginSet, Vec<FieldError>> {
        let config = floodgate_config::parse_yaml(text)
            .map_err(|e| vec![FieldError::new("config", format!("{e:?}"))])?;
        build_plugins(
            &config,
            &StateStore::new(),
            None,
            &Arc::new(PluginStats::default()),
        )
    }

    /// The chain of route `r`, with `plugins` on paths `paths`.
    pub fn chain(paths: &str, plugins: &str) -> Arc<Chain> {
        chain_with(&yaml(paths, plugins, ""))
    }

    /// A chain without plugins on route `r` with `paths`, for contexts carrying path parameters.
    pub fn bare_chain(paths: &[&str]) -> Arc<Chain> {
        Arc::new(Chain::new(
            "r".into(),
            Vec::new(),
            paths.iter().copied(),
            Arc::new([]),
        ))
    }

    /// The chain of the first route of `text`.
    pub fn chain_with(text: &str) -> Arc<Chain> {
        match build(text) {
            Ok(set) => set.routes[0].clone().expect("the route has plugins"),
            Err(errors) => panic!("{errors:?}"),
        }
    }

    /// The errors building `plugins` on paths `paths` gives, as `path: message` lines.
    pub fn errors(paths: &str, plugins: &str) -> Vec<String> {
        match build(&yaml(paths, plugins, "")) {
            Ok(_) => Vec::new(),
            Err(errors) => errors
                .iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect(),
        }
    }

    /// A request context on `chain` for `path`, from 192.0.2.7, id `req-1`, over TLS when `tls`.
    pub fn ctx(chain: &Arc<Chain>, path: &str, tls: bool) -> Box<RequestCtx> {
        chain.start(
            "192.0.2.7".parse().expect("an address"),
            HeaderValue::from_static("req-1"),
            0,
            tls,
            path,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::fixture::{bare_chain, ctx};
    use super::*;
    use crate::consumer::Consumer;

    fn route_scope(paths: &[String]) -> Scope<'_> {
        Scope::Route { id: "r", paths }
    }

    #[test]
    fn parses_variables_params_and_dollars() {
        let paths = vec!["/users/{id}".to_string()];
        let t = Template::parse(
            "a-$request_id/${id}$$x$route.$consumer;$client_ip",
            &route_scope(&paths),
        )
        .unwrap();
        assert_eq!(
            &*t.parts,
            &[
                Part::Text("a-".into()),
                Part::RequestId,
                Part::Text("/".into()),
                Part::Param("id".into()),
                Part::Text("$x".into()),
                Part::Route,
                Part::Text(".".into()),
                Part::Consumer,
                Part::Text(";".into()),
                Part::ClientIp,
            ]
        );
        assert!(t.fixed.is_none());
        assert_eq!(t.sample(), "a-x/x$xx.x;x");
        assert_eq!(t.leading_text(), "a-");
        let fixed = Template::parse("plain $$5", &Scope::Global).unwrap();
        assert_eq!(fixed.fixed.as_ref().unwrap(), "plain $5");
    }

    #[test]
    fn refuses_unknown_variables_lone_dollars_and_undeclared_params() {
        let paths = vec!["/users/{id}".to_string(), "/users".to_string()];
        let scope = route_scope(&paths);
        let unknown = Template::parse("$request", &scope).unwrap_err();
        assert!(unknown.contains("unknown variable $request"), "{unknown}");
        assert!(Template::parse("$request_idx", &scope).is_err());
        assert!(Template::parse("5$", &scope).unwrap_err().contains("lone"));
        assert!(Template::parse("$-", &scope).is_err());
        assert!(Template::parse("${id", &scope)
            .unwrap_err()
            .contains("closing"));
        assert!(Template::parse("${}", &scope).is_err());
        assert!(Template::parse("${a-b}", &scope).is_err());
        let undeclared = Template::parse("${name}", &scope).unwrap_err();
        assert!(undeclared.contains("{name}"), "{undeclared}");
        assert!(Template::parse("${id}", &scope).is_ok());
        // Outside a route the parameter cannot be checked: it renders empty where absent.
        assert!(Template::parse("${name}", &Scope::Global).is_ok());
        assert!(Template::parse("${name}", &Scope::Consumer { id: "c" }).is_ok());
    }

    #[test]
    fn renders_header_values_and_skips_invalid_ones() {
        let chain = bare_chain(&["/users/{id}"]);
        let mut ctx = ctx(&chain, "/users/42", false);
        let paths = vec!["/users/{id}".to_string()];
        let t = Template::parse(
            "$route|$request_id|$client_ip|${id}|$consumer|",
            &route_scope(&paths),
        )
        .unwrap();
        assert_eq!(t.header_value(&ctx).unwrap(), "r|req-1|192.0.2.7|42||");
        ctx.consumer = Some(Arc::new(Consumer::new("alice".into(), 0, Vec::new())));
        assert_eq!(t.header_value(&ctx).unwrap(), "r|req-1|192.0.2.7|42|alice|");
        ctx.request_id = HeaderValue::from_static("a\tb");
        let id = Template::parse("<$request_id>", &Scope::Global).unwrap();
        assert_eq!(id.header_value(&ctx).unwrap().as_bytes(), b"<a\tb>");
        // A value that cannot be a header value is skipped, never a panic.
        assert!(Template::parse("a\nb", &Scope::Global)
            .unwrap()
            .check_header_text()
            .is_err());
        assert!(Template::parse("a\nb", &Scope::Global)
            .unwrap()
            .header_value(&ctx)
            .is_none());
    }

    #[test]
    fn uri_rendering_keeps_a_value_inside_its_segment() {
        let mut out = Vec::new();
        encode_segment(b"a/b?c#d\\e f%2Fg%zz\r\n\xc3\xa9:@!", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a%2Fb%3Fc%23d%5Ce%20f%2Fg%25zz%0D%0A%C3%A9:@!"
        );
        let chain = bare_chain(&["/users/{id}"]);
        let ctx = ctx(&chain, "/users/a%20b", false);
        let paths = vec!["/users/{id}".to_string()];
        let t = Template::parse("/u/${id}?by=$client_ip", &route_scope(&paths)).unwrap();
        assert_eq!(t.render_uri(&ctx), "/u/a%20b?by=192.0.2.7");
    }
}
