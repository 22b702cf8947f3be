//! Building a table: accepted inputs, attached values and the errors for routes that cannot match.

use std::sync::Arc;

use http::{HeaderMap, Method};

use super::{get, route, table, RouteBuilder};
use crate::{RouteTable, RouterError};

fn build_error(config: floodgate_config::RouteConfig) -> RouterError {
    RouteTable::build([(config, ())]).unwrap_err()
}

#[test]
fn builds_from_borrowed_configs_with_caller_values() {
    let configs = [route("a", &["/a"]), route("b", &["/b"])];
    let t = RouteTable::build(configs.iter().zip([Arc::new(1), Arc::new(2)])).unwrap();
    let value = t.lookup(None, "/b", &Method::GET, &HeaderMap::new());
    assert_eq!(value.map(|v| **v), Some(2));
    assert_eq!(t.len(), 2);
    assert!(!t.is_empty());
}

#[test]
fn builds_from_owned_configs() {
    let t = table([route("a", &["/a"])]);
    assert_eq!(get(&t, None, "/a"), Some("a"));
    assert_eq!(t.len(), 1);
}

#[test]
fn repeated_paths_and_hosts_in_one_route_are_harmless() {
    let t =
        table([route("dup", &["/a", "/a", "/b/*", "/b/*"]).hosts(&["x.com", "X.com", "x.com."])]);
    assert_eq!(get(&t, Some("x.com"), "/a"), Some("dup"));
    assert_eq!(get(&t, Some("x.com"), "/b/c"), Some("dup"));
    assert_eq!(t.len(), 1);
}

#[test]
fn invalid_path_names_route_and_index() {
    let error = build_error(route("users", &["/ok", "no-slash"]));
    assert!(
        matches!(&error, RouterError::InvalidPath { route, index: 1, .. } if route == "users"),
        "{error:?}"
    );
    assert!(error.to_string().starts_with("route \"users\": paths[1]: "));
}

#[test]
fn route_without_paths_is_rejected() {
    let error = build_error(route("empty", &[]));
    assert_eq!(
        error,
        RouterError::NoPaths {
            route: "empty".into()
        }
    );
}

#[test]
fn invalid_host_names_route_and_index() {
    for bad in ["a.*.com", "api.example.com:8080", "", "*"] {
        let error = build_error(route("r", &["/"]).hosts(&["ok.com", bad]));
        assert!(
            matches!(&error, RouterError::InvalidHost { route, index: 1, .. } if route == "r"),
            "{bad:?}: {error:?}"
        );
    }
}

#[test]
fn invalid_method_names_route_and_index() {
    let error = build_error(route("r", &["/"]).methods(&["GET", "NOT A METHOD"]));
    assert_eq!(
        error,
        RouterError::InvalidMethod {
            route: "r".into(),
            index: 1,
            method: "NOT A METHOD".into()
        }
    );
}

#[test]
fn invalid_header_names_route_and_header() {
    let error = build_error(route("r", &["/"]).header("bad name", "1"));
    assert!(
        matches!(&error, RouterError::InvalidHeader { route, name, .. } if route == "r" && name == "bad name"),
        "{error:?}"
    );
    let error = build_error(route("r", &["/"]).header("x-ok", "bad\u{7f}value"));
    assert!(
        matches!(error, RouterError::InvalidHeader { .. }),
        "{error:?}"
    );
}

#[test]
fn first_invalid_route_stops_the_build() {
    let result = RouteTable::build([(route("good", &["/"]), ()), (route("bad", &["oops"]), ())]);
    assert!(matches!(result, Err(RouterError::InvalidPath { route, .. }) if route == "bad"));
}
