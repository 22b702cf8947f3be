//! What a build with the running snapshot keeps of it, and what it builds again.

use std::sync::Arc;

use floodgate_config::{parse_yaml, Config};
use floodgate_observe::Metrics;

use super::*;

fn config(target_u: &str, route_b_path: &str) -> Config {
    parse_yaml(&format!(
        "listeners: [{{ name: main, address: \"127.0.0.1:0\" }}]\n\
         upstreams:\n\
         \x20 - {{ id: u, targets: [{{ address: \"{target_u}\" }}] }}\n\
         \x20 - {{ id: v, targets: [{{ address: \"127.0.0.1:2\" }}] }}\n\
         routes:\n\
         \x20 - {{ id: a, paths: [\"/a/*\"], upstream: u, plugins: {{ cors: {{ allow_origins: [\"https://a.example\"] }} }} }}\n\
         \x20 - {{ id: b, paths: [\"{route_b_path}\"], upstream: v }}\n\
         \x20 - {{ id: c, paths: [\"/c\"], respond: {{ status: 204 }} }}\n"
    ))
    .expect("valid")
}

fn after(previous: &Snapshot) -> BuildInputs<'_> {
    BuildInputs {
        previous: Some(previous),
        ..BuildInputs::validating()
    }
}

/// The id of the route `snapshot` serves `GET path` with.
fn route_for(snapshot: &Snapshot, path: &str) -> Option<String> {
    snapshot
        .routes
        .lookup(None, path, &http::Method::GET, &http::HeaderMap::new())
        .map(|route| route.id.to_string())
}

fn upstream_of(route: &RouteRuntime) -> &Arc<UpstreamRuntime> {
    match &route.action {
        RouteAction::Forward(upstream) => upstream,
        RouteAction::Respond { .. } => panic!("route {} answers itself", route.id),
    }
}

#[test]
fn an_upstream_changed_is_built_again_with_its_routes_and_the_rest_is_kept() {
    let metrics = Metrics::new(1);
    let first = config("127.0.0.1:1", "/b");
    let running = Snapshot::build(&first, &metrics, 1, None, BuildInputs::validating()).unwrap();
    // The same configuration with upstream `u` given another target: only `u` is new.
    let mut next = first.clone();
    next.upstreams[0] = config("127.0.0.1:9", "/b").upstreams[0].clone();
    let built = Snapshot::build(&next, &metrics, 1, None, after(&running)).unwrap();

    let (old_a, new_a) = (running.routes.get(0).unwrap(), built.routes.get(0).unwrap());
    assert!(!Arc::ptr_eq(old_a, new_a), "route a forwards to the new u");
    assert!(Arc::ptr_eq(upstream_of(new_a), &built.upstreams["u"]));
    assert!(!Arc::ptr_eq(&built.upstreams["u"], &running.upstreams["u"]));
    // Its chain is the one it had: unchanged routes keep their plugins' instances and states.
    let (old_chain, new_chain) = (old_a.plugins.as_ref(), new_a.plugins.as_ref());
    assert!(new_chain.is_some_and(|new| old_chain.is_some_and(|old| Arc::ptr_eq(old, new))));
    for j in [1, 2] {
        assert!(Arc::ptr_eq(
            running.routes.get(j).unwrap(),
            built.routes.get(j).unwrap()
        ));
    }
    assert!(Arc::ptr_eq(&built.upstreams["v"], &running.upstreams["v"]));
    assert_eq!(route_for(&built, "/a/x").as_deref(), Some("a"));
    assert_eq!(route_for(&built, "/b").as_deref(), Some("b"));
}

#[test]
fn a_route_changed_is_built_again_and_its_old_place_is_gone() {
    let metrics = Metrics::new(1);
    let first = config("127.0.0.1:1", "/b");
    let running = Snapshot::build(&first, &metrics, 1, None, BuildInputs::validating()).unwrap();
    let mut next = first.clone();
    next.routes[1] = config("127.0.0.1:1", "/moved").routes[1].clone();
    let built = Snapshot::build(&next, &metrics, 1, None, after(&running)).unwrap();
    assert!(Arc::ptr_eq(
        running.routes.get(0).unwrap(),
        built.routes.get(0).unwrap()
    ));
    assert!(!Arc::ptr_eq(
        running.routes.get(1).unwrap(),
        built.routes.get(1).unwrap()
    ));
    assert_eq!(route_for(&built, "/moved").as_deref(), Some("b"));
    assert_eq!(route_for(&built, "/b"), None);
    assert_eq!(route_for(&running, "/b").as_deref(), Some("b"));
    assert_eq!(route_for(&running, "/moved"), None);
}

#[test]
fn a_check_against_the_running_snapshot_still_finds_a_route_left_without_its_upstream() {
    let metrics = Metrics::new(1);
    let first = config("127.0.0.1:1", "/b");
    let running = Snapshot::build(&first, &metrics, 1, None, BuildInputs::validating()).unwrap();
    let mut next = first.clone();
    next.upstreams.remove(1);
    let inputs = BuildInputs {
        previous: Some(&running),
        ..BuildInputs::checking()
    };
    let errors = Snapshot::build(&next, &metrics, 1, None, inputs)
        .err()
        .expect("route b names an upstream that is gone");
    assert_eq!(errors[0].path, "routes[1].upstream");
}
