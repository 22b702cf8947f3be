//! Among routes with the same host tier and pattern: more conditions first, then config order.

use http::Method;

use super::{get, route, send, table, RouteBuilder};

#[test]
fn route_with_more_conditions_wins_on_same_pattern() {
    let t = table([
        route("plain", &["/api/*"]),
        route("get", &["/api/*"]).methods(&["GET"]),
        route("get-canary", &["/api/*"])
            .methods(&["GET"])
            .header("x-canary", "true"),
    ]);
    assert_eq!(
        send(&t, None, Method::GET, "/api/x", &[("x-canary", "true")]),
        Some("get-canary")
    );
    assert_eq!(send(&t, None, Method::GET, "/api/x", &[]), Some("get"));
    assert_eq!(send(&t, None, Method::POST, "/api/x", &[]), Some("plain"));
}

#[test]
fn method_set_counts_as_one_condition_whatever_its_size() {
    let t = table([
        route("many-methods", &["/x"]).methods(&["GET", "POST", "PUT", "DELETE"]),
        route("two-headers", &["/x"])
            .header("x-a", "1")
            .header("x-b", "2"),
    ]);
    let both = [("x-a", "1"), ("x-b", "2")];
    assert_eq!(
        send(&t, None, Method::GET, "/x", &both),
        Some("two-headers")
    );
    assert_eq!(send(&t, None, Method::GET, "/x", &[]), Some("many-methods"));
}

#[test]
fn config_order_breaks_ties_between_equal_conditions() {
    let t = table([
        route("first", &["/x"]).header("x-a", "1"),
        route("second", &["/x"]).header("x-b", "1"),
    ]);
    let both = [("x-a", "1"), ("x-b", "1")];
    assert_eq!(send(&t, None, Method::GET, "/x", &both), Some("first"));
    let swapped = table([
        route("second", &["/x"]).header("x-b", "1"),
        route("first", &["/x"]).header("x-a", "1"),
    ]);
    assert_eq!(
        send(&swapped, None, Method::GET, "/x", &both),
        Some("second")
    );
}

#[test]
fn config_order_breaks_ties_without_conditions() {
    let t = table([route("first", &["/x"]), route("second", &["/x"])]);
    assert_eq!(get(&t, None, "/x"), Some("first"));
}

#[test]
fn conditions_never_beat_a_more_specific_path() {
    let t = table([
        route("prefix-with-headers", &["/users/*"])
            .methods(&["GET"])
            .header("x-a", "1")
            .header("x-b", "1"),
        route("exact-plain", &["/users/me"]),
    ]);
    let both = [("x-a", "1"), ("x-b", "1")];
    assert_eq!(
        send(&t, None, Method::GET, "/users/me", &both),
        Some("exact-plain")
    );
}

#[test]
fn conditions_never_beat_a_more_specific_host() {
    let t = table([
        route("any-with-header", &["/"]).header("x-a", "1"),
        route("wild-plain", &["/"]).hosts(&["*.example.com"]),
    ]);
    assert_eq!(
        send(&t, Some("a.example.com"), Method::GET, "/", &[("x-a", "1")]),
        Some("wild-plain")
    );
}

#[test]
fn order_is_the_same_on_every_build() {
    let routes = || {
        (0..20).map(|i| {
            let r = route(&format!("r{i}"), &["/same"]);
            if i % 3 == 0 {
                r.header(&format!("x-{i}"), "1")
            } else {
                r
            }
        })
    };
    let headers: Vec<(String, &str)> = (0..20).map(|i| (format!("x-{i}"), "1")).collect();
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    for _ in 0..10 {
        let t = table(routes());
        assert_eq!(send(&t, None, Method::GET, "/same", &headers), Some("r0"));
        assert_eq!(send(&t, None, Method::GET, "/same", &[]), Some("r1"));
    }
}
