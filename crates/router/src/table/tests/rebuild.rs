//! [`RouteTable::rebuild`]: a table made from the one before answers every request as a table built
//! whole from the same routes would, and leaves the one before as it was.

use floodgate_config::RouteConfig;
use http::Method;

use super::{route, send, table, RouteBuilder};
use crate::{NextRoute, RouteTable};

/// A deterministic stream of numbers below a bound.
struct Draw(u64);

impl Draw {
    fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % bound as u64) as usize
    }
}

const PATHS: &[&str] = &[
    "/a", "/a/*", "/a/{x}", "/a/b/*", "/a/{x}/c", "/b", "/*", "/b/{x}",
];
const HOSTS: &[&str] = &["one.example", "*.example", "Two.Example"];
const METHODS: &[&str] = &["GET", "POST"];

/// A route drawn from a small space, so that routes often share a pattern and compete for it.
fn drawn(draw: &mut Draw, id: &str) -> RouteConfig {
    let paths: Vec<&str> = (0..1 + draw.below(2))
        .map(|_| PATHS[draw.below(PATHS.len())])
        .collect();
    let mut route = route(id, &paths);
    if draw.below(3) == 0 {
        route = route.hosts(&[HOSTS[draw.below(HOSTS.len())]]);
    }
    if draw.below(3) == 0 {
        route = route.methods(&[METHODS[draw.below(METHODS.len())]]);
    }
    if draw.below(4) == 0 {
        route = route.header("x-v", ["1", "2"][draw.below(2)]);
    }
    route
}

/// Every answer of `table` to requests across the drawn space.
fn answers(table: &RouteTable<String>) -> Vec<Option<String>> {
    let mut all = Vec::new();
    for host in [
        None,
        Some("one.example"),
        Some("x.example"),
        Some("two.example:80"),
    ] {
        for path in [
            "/a", "/a/", "/a/1", "/a/b/", "/a/b/c", "/a/1/c", "/b", "/b/2", "/c",
        ] {
            for method in [Method::GET, Method::HEAD, Method::POST, Method::DELETE] {
                for header in [None, Some("1"), Some("2")] {
                    let headers: Vec<(&str, &str)> =
                        header.map(|v| ("x-v", v)).into_iter().collect();
                    all.push(send(table, host, method.clone(), path, &headers).map(str::to_string));
                }
            }
        }
    }
    all
}

/// The routes with `(route, Some(index in the previous list))` for those carried over unchanged.
type Listed = Vec<(RouteConfig, Option<usize>)>;

/// `routes` as the next configuration's, every one kept.
fn all_kept(routes: &[RouteConfig]) -> Listed {
    routes
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, r)| (r, Some(i)))
        .collect()
}

fn rebuilt(previous: &RouteTable<String>, next: &Listed) -> RouteTable<String> {
    previous
        .rebuild(next.iter().map(|(route, kept)| match kept {
            Some(j) => NextRoute::Kept(*j),
            None => NextRoute::New(route, route.id.clone()),
        }))
        .expect("drawn routes are valid")
}

#[test]
fn a_rebuilt_table_answers_as_one_built_whole() {
    let mut draw = Draw(0x2545_f491_4f6c_dd1d);
    for _ in 0..40 {
        let mut routes: Vec<RouteConfig> = (0..12)
            .map(|i| drawn(&mut draw, &format!("r{i}")))
            .collect();
        let mut current = table(routes.clone());
        let mut next_id = 12;
        for _ in 0..8 {
            let before = answers(&current);
            let mut listed: Listed = all_kept(&routes);
            for _ in 0..1 + draw.below(3) {
                match draw.below(3) {
                    0 if !listed.is_empty() => {
                        let at = draw.below(listed.len());
                        let id = listed[at].0.id.clone();
                        listed[at] = (drawn(&mut draw, &id), None);
                    }
                    1 if !listed.is_empty() => {
                        listed.remove(draw.below(listed.len()));
                    }
                    _ => {
                        let at = draw.below(listed.len() + 1);
                        listed.insert(at, (drawn(&mut draw, &format!("r{next_id}")), None));
                        next_id += 1;
                    }
                }
            }
            let next = rebuilt(&current, &listed);
            routes = listed.into_iter().map(|(route, _)| route).collect();
            assert_eq!(
                answers(&next),
                answers(&table(routes.clone())),
                "{routes:#?}"
            );
            assert_eq!(next.len(), routes.len());
            assert_eq!(answers(&current), before, "the table rebuilt from changed");
            current = next;
        }
    }
}

#[test]
fn routes_inserted_at_one_place_again_and_again_keep_config_order() {
    // Same pattern, same weight, overlapping methods: the route listed first wins. Inserting before
    // the first over and over uses up the gap between two order keys, which renumbers them.
    let first = route("first", &["/a"]).methods(&["GET"]);
    let mut routes = vec![first.clone(), route("last", &["/a"]).methods(&["GET"])];
    let mut current = table(routes.clone());
    for i in 0..40 {
        let newest = route(&format!("n{i}"), &["/a"]).methods(&["GET", "POST"]);
        let mut listed: Listed = all_kept(&routes);
        // Each goes right after `first`: between `first` and the one inserted before it.
        listed.insert(1, (newest.methods(&["GET"]), None));
        current = rebuilt(&current, &listed);
        routes = listed.into_iter().map(|(route, _)| route).collect();
        assert_eq!(answers(&current), answers(&table(routes.clone())));
    }
    let mut removed_first: Listed = all_kept(&routes);
    removed_first.remove(0);
    let without_first = rebuilt(&current, &removed_first);
    assert_eq!(super::get(&without_first, None, "/a"), Some("n39"));
    assert_eq!(super::get(&current, None, "/a"), Some("first"));
}

#[test]
fn a_bad_new_route_fails_the_rebuild_and_the_table_is_unchanged() {
    let routes = vec![route("a", &["/a"]), route("b", &["/b"])];
    let current = table(routes.clone());
    let bad = route("c", &["no-slash"]);
    let next = [NextRoute::Kept(0), NextRoute::New(&bad, "c".to_string())];
    assert!(current.rebuild(next).is_err());
    assert_eq!(super::get(&current, None, "/a"), Some("a"));
    // An index the table does not have is ignored.
    let next: [NextRoute<&RouteConfig, String>; 2] = [NextRoute::Kept(7), NextRoute::Kept(1)];
    let kept = current.rebuild(next).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(super::get(&kept, None, "/b"), Some("b"));
    assert_eq!(super::get(&kept, None, "/a"), None);
}
