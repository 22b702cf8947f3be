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

use std::sync::Arc;

use floodgate_config::MethodOverride;
use floodgate_router::RouteTable;
use http::{HeaderMap, HeaderName, Method};

use crate::error::ProxyError;
use crate::snapshot::RouteRuntime;

/// The override names, lowercase and with `-` (twins spelled with `_` are the same names).
const NAMES: [&[u8]; 3] = [
    b"x-http-method-override",
    b"x-http-method",
    b"x-method-override",
];

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

/// Applies `route`'s `method_override` to a request carrying an override field: keeps the fields when
/// every method they name routes to `route` as well, else drops them or refuses the request.
pub fn enforce(
    headers: &mut HeaderMap,
    route: &Arc<RouteRuntime>,
    routes: &RouteTable<Arc<RouteRuntime>>,
    host: Option<&str>,
    path: &str,
) -> Result<(), ProxyError> {
    if route.method_override == MethodOverride::Allow {
        return Ok(());
    }
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_override_name(name.as_str().as_bytes()))
        .cloned()
        .collect();
    let routed_here = |method: &Method| {
        routes
            .lookup(host, path, method, headers)
            .is_some_and(|r| Arc::ptr_eq(r, route))
    };
    let all_routed_here = names.iter().all(|name| {
        headers.get_all(name).iter().all(|value| {
            // A list (`DELETE, PUT`, or lines joined by a framework) is read item by item: any item
            // may be the one an upstream takes.
            value.as_bytes().split(|&b| b == b',').all(|item| {
                let item = item.trim_ascii().to_ascii_uppercase();
                Method::from_bytes(&item).is_ok_and(|method| routed_here(&method))
            })
        })
    });
    if all_routed_here {
        return Ok(());
    }
    match route.method_override {
        MethodOverride::Reject => Err(ProxyError::MethodOverride),
        MethodOverride::Drop => {
            for name in &names {
                headers.remove(name);
            }
            Ok(())
        }
        MethodOverride::Allow => Ok(()),
    }
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
}
