//! A table of a thousand routes, of every kind, still resolves each request to its own route.

use http::Method;

use super::{get, route, send, table, RouteBuilder};

const ROUTES_PER_KIND: usize = 200;

/// Five kinds of route per service, 200 services: 1000 routes whose patterns overlap only where a test
/// below expects precedence to decide.
fn thousand_routes() -> crate::RouteTable<String> {
    let mut routes = Vec::new();
    for i in 0..ROUTES_PER_KIND {
        routes.push(route(&format!("exact-{i}"), &[&format!("/svc{i}/status")]));
        routes.push(route(
            &format!("param-{i}"),
            &[&format!("/svc{i}/items/{{id}}")],
        ));
        routes.push(route(&format!("prefix-{i}"), &[&format!("/svc{i}/*")]));
        routes.push(route(&format!("host-{i}"), &["/*"]).hosts(&[&format!("h{i}.example.com")]));
        routes.push(
            route(&format!("post-{i}"), &[&format!("/svc{i}/items/{{id}}")]).methods(&["POST"]),
        );
    }
    table(routes)
}

#[test]
fn thousand_routes_each_resolve_to_their_own() {
    let t = thousand_routes();
    assert_eq!(t.len(), 5 * ROUTES_PER_KIND);
    for i in 0..ROUTES_PER_KIND {
        let id = |kind: &str| format!("{kind}-{i}");
        assert_eq!(
            get(&t, None, &format!("/svc{i}/status")),
            Some(id("exact").as_str())
        );
        assert_eq!(
            get(&t, None, &format!("/svc{i}/items/7")),
            Some(id("param").as_str())
        );
        assert_eq!(
            send(&t, None, Method::POST, &format!("/svc{i}/items/7"), &[]),
            Some(id("post").as_str())
        );
        assert_eq!(
            get(&t, None, &format!("/svc{i}/items/7/x")),
            Some(id("prefix").as_str())
        );
        assert_eq!(
            get(
                &t,
                Some(&format!("H{i}.example.com:443")),
                &format!("/svc{i}/status")
            ),
            Some(id("host").as_str())
        );
    }
}

#[test]
fn thousand_routes_still_miss_unknown_requests() {
    let t = thousand_routes();
    assert_eq!(
        get(&t, None, &format!("/svc{ROUTES_PER_KIND}/status")),
        None
    );
    assert_eq!(get(&t, None, "/svc1"), None);
    assert_eq!(get(&t, Some("h1.example.org"), "/nothing"), None);
    assert_eq!(get(&t, Some("h1.example.com"), "/anything"), Some("host-1"));
}
