//! Host tiers: exact host, then wildcard suffixes longest first, then routes without hosts.

use http::Method;

use super::{get, route, send, table, RouteBuilder};

#[test]
fn exact_host_beats_wildcard_host() {
    let t = table([
        route("wild", &["/"]).hosts(&["*.example.com"]),
        route("exact", &["/"]).hosts(&["api.example.com"]),
    ]);
    assert_eq!(get(&t, Some("api.example.com"), "/"), Some("exact"));
    assert_eq!(get(&t, Some("www.example.com"), "/"), Some("wild"));
}

#[test]
fn wildcard_host_beats_hostless_route() {
    let t = table([
        route("any", &["/"]),
        route("wild", &["/"]).hosts(&["*.example.com"]),
    ]);
    assert_eq!(get(&t, Some("api.example.com"), "/"), Some("wild"));
    assert_eq!(get(&t, Some("example.org"), "/"), Some("any"));
}

#[test]
fn longer_wildcard_suffix_beats_shorter() {
    let t = table([
        route("short", &["/"]).hosts(&["*.example.com"]),
        route("long", &["/"]).hosts(&["*.eu.example.com"]),
    ]);
    assert_eq!(get(&t, Some("api.eu.example.com"), "/"), Some("long"));
    assert_eq!(get(&t, Some("a.b.eu.example.com"), "/"), Some("long"));
    assert_eq!(get(&t, Some("api.us.example.com"), "/"), Some("short"));
    // `eu.example.com` itself is not below `*.eu.example.com`, but it is below `*.example.com`.
    assert_eq!(get(&t, Some("eu.example.com"), "/"), Some("short"));
}

#[test]
fn wildcard_matches_subdomains_at_any_depth_but_not_the_bare_domain() {
    let t = table([route("wild", &["/"]).hosts(&["*.example.com"])]);
    assert_eq!(get(&t, Some("a.example.com"), "/"), Some("wild"));
    assert_eq!(get(&t, Some("a.b.example.com"), "/"), Some("wild"));
    assert_eq!(get(&t, Some("a.b.c.example.com"), "/"), Some("wild"));
    assert_eq!(get(&t, Some("example.com"), "/"), None);
    assert_eq!(get(&t, Some("notexample.com"), "/"), None);
    assert_eq!(get(&t, Some("a.example.com.evil.net"), "/"), None);
}

#[test]
fn host_port_case_and_trailing_dot_are_ignored() {
    let t = table([
        route("exact", &["/"]).hosts(&["api.example.com"]),
        route("wild", &["/"]).hosts(&["*.Example.COM"]),
    ]);
    for host in [
        "api.example.com",
        "api.example.com:8080",
        "API.Example.Com",
        "API.EXAMPLE.COM:443",
        "api.example.com.",
        "api.example.com.:8443",
    ] {
        assert_eq!(get(&t, Some(host), "/"), Some("exact"), "{host}");
    }
    assert_eq!(get(&t, Some("WWW.example.com:80"), "/"), Some("wild"));
}

#[test]
fn ip_hosts_match_with_and_without_port() {
    let t = table([
        route("v4", &["/"]).hosts(&["10.0.0.1"]),
        route("v6", &["/"]).hosts(&["::1"]),
    ]);
    assert_eq!(get(&t, Some("10.0.0.1:8080"), "/"), Some("v4"));
    assert_eq!(get(&t, Some("[::1]:8080"), "/"), Some("v6"));
    assert_eq!(get(&t, Some("[::1]"), "/"), Some("v6"));
}

#[test]
fn request_without_host_matches_only_hostless_routes() {
    let t = table([route("exact", &["/"]).hosts(&["api.example.com"])]);
    assert_eq!(get(&t, None, "/"), None);
    let t = table([
        route("exact", &["/"]).hosts(&["api.example.com"]),
        route("any", &["/"]),
    ]);
    assert_eq!(get(&t, None, "/"), Some("any"));
    assert_eq!(get(&t, Some(""), "/"), Some("any"));
}

#[test]
fn host_tier_beats_a_more_specific_path_in_a_later_tier() {
    let t = table([
        route("any-exact-path", &["/users"]),
        route("wild-prefix", &["/*"]).hosts(&["*.example.com"]),
    ]);
    assert_eq!(
        get(&t, Some("api.example.com"), "/users"),
        Some("wild-prefix")
    );
}

#[test]
fn unmatched_path_falls_through_exact_then_wildcard_then_hostless() {
    let t = table([
        route("exact", &["/a"]).hosts(&["api.example.com"]),
        route("wild", &["/b"]).hosts(&["*.example.com"]),
        route("any", &["/c"]),
    ]);
    assert_eq!(get(&t, Some("api.example.com"), "/a"), Some("exact"));
    assert_eq!(get(&t, Some("api.example.com"), "/b"), Some("wild"));
    assert_eq!(get(&t, Some("api.example.com"), "/c"), Some("any"));
    assert_eq!(get(&t, Some("api.example.com"), "/d"), None);
}

#[test]
fn unmatched_path_falls_through_longer_wildcard_to_shorter() {
    let t = table([
        route("long", &["/a"]).hosts(&["*.eu.example.com"]),
        route("short", &["/b"]).hosts(&["*.example.com"]),
    ]);
    assert_eq!(get(&t, Some("x.eu.example.com"), "/a"), Some("long"));
    assert_eq!(get(&t, Some("x.eu.example.com"), "/b"), Some("short"));
}

#[test]
fn failed_method_in_host_tier_falls_through_to_next_tier() {
    let t = table([
        route("exact-get", &["/"])
            .hosts(&["api.example.com"])
            .methods(&["GET"]),
        route("any", &["/"]),
    ]);
    assert_eq!(
        send(&t, Some("api.example.com"), Method::GET, "/", &[]),
        Some("exact-get")
    );
    assert_eq!(
        send(&t, Some("api.example.com"), Method::POST, "/", &[]),
        Some("any")
    );
}

#[test]
fn route_with_exact_and_wildcard_hosts_serves_both_tiers() {
    let t = table([
        route("both", &["/"]).hosts(&["example.com", "*.example.com"]),
        route("any", &["/"]),
    ]);
    assert_eq!(get(&t, Some("example.com"), "/"), Some("both"));
    assert_eq!(get(&t, Some("a.example.com"), "/"), Some("both"));
    assert_eq!(get(&t, Some("example.org"), "/"), Some("any"));
}

#[test]
fn unknown_host_with_only_host_routes_is_none() {
    let t = table([
        route("exact", &["/*"]).hosts(&["api.example.com"]),
        route("wild", &["/*"]).hosts(&["*.example.com"]),
    ]);
    assert_eq!(get(&t, Some("example.org"), "/x"), None);
    assert_eq!(get(&t, Some("localhost:8080"), "/x"), None);
}
