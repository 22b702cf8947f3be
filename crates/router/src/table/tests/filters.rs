//! Method and header conditions, and requests that no route matches.

use http::Method;

use super::{get, route, send, table, RouteBuilder};

#[test]
fn method_filter_rejects_other_methods() {
    let t = table([route("read", &["/x"]).methods(&["GET", "HEAD"])]);
    assert_eq!(send(&t, None, Method::GET, "/x", &[]), Some("read"));
    assert_eq!(send(&t, None, Method::HEAD, "/x", &[]), Some("read"));
    assert_eq!(send(&t, None, Method::POST, "/x", &[]), None);
    assert_eq!(send(&t, None, Method::DELETE, "/x", &[]), None);
}

#[test]
fn get_brings_head_but_a_route_listing_head_itself_comes_first() {
    // GET alone takes HEAD, before a broader pattern without a method set.
    let t = table([
        route("catch-all", &["/*"]),
        route("read", &["/docs/*"]).methods(&["GET"]),
    ]);
    assert_eq!(send(&t, None, Method::HEAD, "/docs/a", &[]), Some("read"));
    assert_eq!(
        send(&t, None, Method::POST, "/docs/a", &[]),
        Some("catch-all")
    );
    // On one pattern, a route that lists HEAD wins it over one that only implies it, in any order.
    for routes in [
        [
            route("get", &["/x"]).methods(&["GET"]),
            route("head", &["/x"]).methods(&["HEAD"]),
        ],
        [
            route("head", &["/x"]).methods(&["HEAD"]),
            route("get", &["/x"]).methods(&["GET"]),
        ],
    ] {
        let t = table(routes);
        assert_eq!(send(&t, None, Method::HEAD, "/x", &[]), Some("head"));
        assert_eq!(send(&t, None, Method::GET, "/x", &[]), Some("get"));
    }
    // An implied HEAD still beats a broader pattern's explicit one: precedence by pattern first.
    let t = table([
        route("head-all", &["/*"]).methods(&["HEAD"]),
        route("read", &["/docs/*"]).methods(&["GET"]),
    ]);
    assert_eq!(send(&t, None, Method::HEAD, "/docs/a", &[]), Some("read"));
}

#[test]
fn empty_method_set_accepts_any_method() {
    let t = table([route("all", &["/x"])]);
    for method in [Method::GET, Method::POST, Method::PATCH, Method::OPTIONS] {
        assert_eq!(
            send(&t, None, method.clone(), "/x", &[]),
            Some("all"),
            "{method}"
        );
    }
}

#[test]
fn header_filter_requires_exact_value() {
    let t = table([route("canary", &["/x"]).header("x-canary", "true")]);
    assert_eq!(
        send(&t, None, Method::GET, "/x", &[("x-canary", "true")]),
        Some("canary")
    );
    assert_eq!(
        send(&t, None, Method::GET, "/x", &[("x-canary", "TRUE")]),
        None
    );
    assert_eq!(
        send(&t, None, Method::GET, "/x", &[("x-canary", "truex")]),
        None
    );
    assert_eq!(send(&t, None, Method::GET, "/x", &[]), None);
}

#[test]
fn header_names_compare_case_insensitively() {
    let t = table([route("canary", &["/x"]).header("X-Canary", "true")]);
    assert_eq!(
        send(&t, None, Method::GET, "/x", &[("X-CANARY", "true")]),
        Some("canary")
    );
}

#[test]
fn every_listed_header_must_match() {
    let t = table([route("both", &["/x"]).header("x-a", "1").header("x-b", "2")]);
    assert_eq!(
        send(&t, None, Method::GET, "/x", &[("x-a", "1"), ("x-b", "2")]),
        Some("both")
    );
    assert_eq!(send(&t, None, Method::GET, "/x", &[("x-a", "1")]), None);
    assert_eq!(
        send(&t, None, Method::GET, "/x", &[("x-a", "1"), ("x-b", "3")]),
        None
    );
}

#[test]
fn failed_conditions_fall_through_to_a_less_specific_pattern() {
    let t = table([
        route("prefix", &["/users/*"]),
        route("param-post", &["/users/{id}"]).methods(&["POST"]),
        route("exact-canary", &["/users/me"]).header("x-canary", "true"),
    ]);
    assert_eq!(
        send(&t, None, Method::GET, "/users/me", &[("x-canary", "true")]),
        Some("exact-canary")
    );
    assert_eq!(
        send(&t, None, Method::POST, "/users/me", &[]),
        Some("param-post")
    );
    assert_eq!(
        send(&t, None, Method::GET, "/users/me", &[]),
        Some("prefix")
    );
}

#[test]
fn failed_conditions_fall_through_to_a_shorter_prefix() {
    let t = table([
        route("root", &["/*"]),
        route("api-get", &["/api/*"]).methods(&["GET"]),
    ]);
    assert_eq!(send(&t, None, Method::GET, "/api/x", &[]), Some("api-get"));
    assert_eq!(send(&t, None, Method::PUT, "/api/x", &[]), Some("root"));
}

#[test]
fn request_matching_no_route_is_none() {
    let t = table([
        route("users", &["/users"]).hosts(&["api.example.com"]),
        route("get", &["/get"]).methods(&["GET"]),
    ]);
    assert_eq!(get(&t, Some("api.example.com"), "/orders"), None);
    assert_eq!(get(&t, Some("other.example.com"), "/users"), None);
    assert_eq!(send(&t, None, Method::POST, "/get", &[]), None);
    assert_eq!(get(&t, None, "*"), None);
}

#[test]
fn empty_table_matches_nothing() {
    let t = table([]);
    assert!(t.is_empty());
    assert_eq!(t.len(), 0);
    assert_eq!(get(&t, Some("example.com"), "/"), None);
    assert_eq!(get(&t, None, "/"), None);
}
