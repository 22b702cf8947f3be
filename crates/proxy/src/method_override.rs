//! Method-override fields: `X-HTTP-Method-Override`, `X-HTTP-Method` and `X-Method-Override`.
//!
//! Express (`method-override`), Rails, ASP.NET Core and Symfony let such a field replace a request's
//! method, so a `POST /items/1` with `X-HTTP-Method-Override: DELETE` is served as a `DELETE`. Routes
//! gate access by method too: the `POST` reaches a public route while a real `DELETE` would have
//! needed credentials. An override is kept only when a request with the method it names would have
//! been routed to the same route, and so met the same plugins; otherwise the route's
//! `method_override` decides (drop the fields, the default, or refuse the request).
//!
//! Upstreams read these names the way they read every field, so `X_HTTP_Method_Override` (an
//! `HTTP_X_HTTP_METHOD_OVERRIDE` to CGI-style servers) is one of them, and they uppercase the value.
//! The query parameter `_method` does the same for Laravel (Symfony's request with its method
//! override on reads it from the query) and for Express's `method-override` set to read it; its name
//! is matched as such upstreams read names (`%5Fmethod`, `.method`, `_METHOD`).

use std::sync::{Arc, LazyLock};

use floodgate_config::MethodOverride;
use floodgate_plugins::query::{form_decoded, ParamName, Separators};
use floodgate_router::RouteTable;
use http::uri::PathAndQuery;
use http::{HeaderName, Method, Request, Uri};

use crate::error::ProxyError;
use crate::snapshot::RouteRuntime;

/// The override names, lowercase and with `-` (twins spelled with `_` are the same names).
const NAMES: [&[u8]; 3] = [
    b"x-http-method-override",
    b"x-http-method",
    b"x-method-override",
];

/// The `_method` parameter, as upstreams read parameter names.
static METHOD_PARAM: LazyLock<ParamName> =
    LazyLock::new(|| ParamName::new("_method", Separators::Ampersand));

/// Whether `query` may carry a `_method` parameter: a parameter's name spells `method` in some case,
/// or holds an escape that could spell it (values are not looked at: escapes there are common). A
/// cheap test for every request with a query; the parameter itself is then looked for by [`enforce`].
pub fn query_may_override(query: &str) -> bool {
    query.split('&').any(|pair| {
        let name = pair
            .split_once('=')
            .map_or(pair, |(name, _)| name)
            .as_bytes();
        name.len() >= 6
            && (name.contains(&b'%') || name.windows(6).any(|w| w.eq_ignore_ascii_case(b"method")))
    })
}

/// Whether the field name `name` (lowercase, as a `HeaderName` is) is a method-override name, in any
/// spelling with `_` for `-`. Costs a length comparison for almost every name: it runs on each field of
/// every request.
pub fn is_override_name(name: &[u8]) -> bool {
    let candidate = match name.len() {
        22 => NAMES[0],
        13 => NAMES[1],
        17 => NAMES[2],
        _ => return false,
    };
    name.first() == Some(&b'x')
        && name
            .iter()
            .zip(candidate)
            .all(|(&n, &c)| n == c || (n == b'_' && c == b'-'))
}

/// Applies `route`'s `method_override` to a request that may carry an override (a field, or a
/// `_method` parameter): keeps them when every method they name routes to `route` as well, else drops
/// them or refuses the request.
pub fn enforce<B>(
    req: &mut Request<B>,
    route: &Arc<RouteRuntime>,
    routes: &RouteTable<Arc<RouteRuntime>>,
    host: Option<&str>,
    path: &str,
) -> Result<(), ProxyError> {
    if route.method_override == MethodOverride::Allow {
        return Ok(());
    }
    let names: Vec<HeaderName> = req
        .headers()
        .keys()
        .filter(|name| is_override_name(name.as_str().as_bytes()))
        .cloned()
        .collect();
    // Scoped: the closures borrow the request, which the drop below changes.
    let (all_routed_here, has_param) = {
        let headers = req.headers();
        let routed_here = |value: &[u8]| {
            // A list (`DELETE, PUT`, or lines joined by a framework) is read item by item: any item may
            // be the one an upstream takes.
            value.split(|&b| b == b',').all(|item| {
                let item = item.trim_ascii().to_ascii_uppercase();
                Method::from_bytes(&item).is_ok_and(|method| {
                    routes
                        .lookup(host, path, &method, headers)
                        .is_some_and(|r| Arc::ptr_eq(r, route))
                })
            })
        };
        let fields_ok = names.iter().all(|name| {
            headers
                .get_all(name)
                .iter()
                .all(|value| routed_here(value.as_bytes()))
        });
        let query = req.uri().query();
        let mut params = METHOD_PARAM.params(query).peekable();
        let has_param = params.peek().is_some();
        let params_ok = params.all(|value| routed_here(&form_decoded(value)));
        (fields_ok && params_ok, has_param)
    };
    if all_routed_here {
        return Ok(());
    }
    match route.method_override {
        MethodOverride::Reject => Err(ProxyError::MethodOverride),
        MethodOverride::Drop => {
            let headers = req.headers_mut();
            for name in &names {
                headers.remove(name);
            }
            if has_param {
                drop_method_params(req.uri_mut())?;
            }
            Ok(())
        }
        MethodOverride::Allow => Ok(()),
    }
}

/// Removes every `_method` parameter from `uri`'s query, keeping everything else byte for byte.
fn drop_method_params(uri: &mut Uri) -> Result<(), ProxyError> {
    let Some(kept) = uri
        .path_and_query()
        .and_then(|pq| METHOD_PARAM.without(pq.as_str()))
    else {
        return Ok(());
    };
    let mut parts = std::mem::take(uri).into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(kept).map_err(|_| ProxyError::BadRequest)?);
    *uri = Uri::from_parts(parts).map_err(|_| ProxyError::BadRequest)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_the_three_names_and_nothing_else() {
        for name in [
            "x-http-method-override",
            "x_http_method_override",
            "x-http_method-override",
            "x-http-method",
            "x_http_method",
            "x-method-override",
            "x_method_override",
        ] {
            assert!(is_override_name(name.as_bytes()), "{name}");
        }
        for name in [
            "x-http-method-overrid",
            "x-http-method-overridden",
            "y-http-method",
            "x-http-methods",
            "x-method_overide",
            "content-length",
            "",
        ] {
            assert!(!is_override_name(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn a_query_that_may_spell_method_is_looked_at() {
        for query in [
            "_method=DELETE",
            "a=1&_METHOD=x",
            "%5Fmethod=x",
            "_m%65thod=x",
            ".method",
        ] {
            assert!(query_may_override(query), "{query}");
        }
        for query in [
            "",
            "a=1&b=2",
            "methd=1",
            "_metho=d",
            "a=%20method",
            "q=_method%3DDELETE",
        ] {
            assert!(!query_may_override(query), "{query}");
        }
    }
}
