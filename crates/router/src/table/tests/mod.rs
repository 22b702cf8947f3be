//! Behaviour of [`RouteTable`] as the proxy uses it: configs in, one value out per request.

use floodgate_config::RouteConfig;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method};

use super::RouteTable;

mod build;
mod condition_order;
mod filters;
mod host_tiers;
mod large_table;
mod path_precedence;
mod rebuild;

/// A route with only an id and paths; the other conditions are set through [`RouteBuilder`].
///
/// Deserialised rather than written as a struct literal so that fields added to `RouteConfig` later,
/// which all have defaults, do not break these tests.
fn route(id: &str, paths: &[&str]) -> RouteConfig {
    serde_json::from_value(serde_json::json!({ "id": id, "paths": paths, "upstream": "u" }))
        .expect("minimal route config deserialises")
}

trait RouteBuilder {
    fn hosts(self, hosts: &[&str]) -> Self;
    fn methods(self, methods: &[&str]) -> Self;
    fn header(self, name: &str, value: &str) -> Self;
}

impl RouteBuilder for RouteConfig {
    fn hosts(mut self, hosts: &[&str]) -> Self {
        self.hosts = hosts.iter().map(|h| h.to_string()).collect();
        self
    }

    fn methods(mut self, methods: &[&str]) -> Self {
        self.methods = methods.iter().map(|m| m.to_string()).collect();
        self
    }

    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(name.to_string(), value.to_string());
        self
    }
}

/// A table whose value for each route is the route's id.
fn table(routes: impl IntoIterator<Item = RouteConfig>) -> RouteTable<String> {
    RouteTable::build(routes.into_iter().map(|r| {
        let id = r.id.clone();
        (r, id)
    }))
    .expect("test routes are valid")
}

/// The id of the route serving `GET path` on `host`, with no headers.
fn get<'t>(table: &'t RouteTable<String>, host: Option<&str>, path: &str) -> Option<&'t str> {
    send(table, host, Method::GET, path, &[])
}

/// The id of the route serving a request with this method and these headers.
fn send<'t>(
    table: &'t RouteTable<String>,
    host: Option<&str>,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<&'t str> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    table.lookup(host, path, &method, &map).map(String::as_str)
}
