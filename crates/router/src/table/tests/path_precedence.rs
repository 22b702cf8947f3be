//! Path precedence within one host tier: exact, then `{param}`, then prefix, longest first.

use http::Method;

use super::{get, route, send, table, RouteBuilder};

#[test]
fn exact_path_beats_param_path() {
    let t = table([
        route("param", &["/users/{id}"]),
        route("exact", &["/users/me"]),
    ]);
    assert_eq!(get(&t, None, "/users/me"), Some("exact"));
    assert_eq!(get(&t, None, "/users/42"), Some("param"));
}

#[test]
fn param_path_beats_prefix_path() {
    let t = table([
        route("prefix", &["/users/*"]),
        route("param", &["/users/{id}"]),
    ]);
    assert_eq!(get(&t, None, "/users/42"), Some("param"));
    assert_eq!(get(&t, None, "/users/42/posts"), Some("prefix"));
    assert_eq!(get(&t, None, "/users/"), Some("prefix"));
}

#[test]
fn exact_path_beats_prefix_path() {
    let t = table([route("prefix", &["/*"]), route("exact", &["/health"])]);
    assert_eq!(get(&t, None, "/health"), Some("exact"));
    assert_eq!(get(&t, None, "/healthz"), Some("prefix"));
}

#[test]
fn literal_segment_beats_param_at_first_differing_position() {
    let t = table([
        route("param-first", &["/users/{id}/posts"]),
        route("literal-first", &["/users/me/{tab}"]),
    ]);
    assert_eq!(get(&t, None, "/users/me/posts"), Some("literal-first"));
    assert_eq!(get(&t, None, "/users/42/posts"), Some("param-first"));
    assert_eq!(get(&t, None, "/users/me/likes"), Some("literal-first"));
}

#[test]
fn param_search_backtracks_when_literal_branch_dead_ends() {
    let t = table([
        route("short", &["/files/{dir}/raw"]),
        route("deep", &["/files/public/{dir}/{name}"]),
    ]);
    assert_eq!(get(&t, None, "/files/public/raw"), Some("short"));
    assert_eq!(get(&t, None, "/files/public/a/b"), Some("deep"));
}

#[test]
fn param_search_backtracks_when_literal_branch_fails_its_method() {
    let t = table([
        route("param", &["/users/{id}/{tab}"]),
        route("literal-post", &["/users/me/{tab}"]).methods(&["POST"]),
    ]);
    assert_eq!(
        send(&t, None, Method::POST, "/users/me/posts", &[]),
        Some("literal-post")
    );
    assert_eq!(
        send(&t, None, Method::GET, "/users/me/posts", &[]),
        Some("param")
    );
}

#[test]
fn param_does_not_match_empty_or_extra_segments() {
    let t = table([route("param", &["/users/{id}"])]);
    assert_eq!(get(&t, None, "/users/"), None);
    assert_eq!(get(&t, None, "/users"), None);
    assert_eq!(get(&t, None, "/users/1/2"), None);
}

#[test]
fn longer_prefix_beats_shorter() {
    let t = table([
        route("root", &["/*"]),
        route("api", &["/api/*"]),
        route("v1", &["/api/v1/*"]),
    ]);
    assert_eq!(get(&t, None, "/api/v1/users/1"), Some("v1"));
    assert_eq!(get(&t, None, "/api/v1/"), Some("v1"));
    assert_eq!(get(&t, None, "/api/v1"), Some("api"));
    assert_eq!(get(&t, None, "/api/v2/users"), Some("api"));
    assert_eq!(get(&t, None, "/api"), Some("root"));
    assert_eq!(get(&t, None, "/"), Some("root"));
}

#[test]
fn prefix_matches_directory_and_below_but_not_bare_name() {
    let t = table([route("users", &["/users/*"])]);
    assert_eq!(get(&t, None, "/users/"), Some("users"));
    assert_eq!(get(&t, None, "/users/anything/below"), Some("users"));
    assert_eq!(get(&t, None, "/users"), None);
    assert_eq!(get(&t, None, "/usersx"), None);
}

#[test]
fn root_prefix_matches_every_path() {
    let t = table([route("root", &["/*"])]);
    for path in ["/", "/a", "/a/b/c/", "/%20x"] {
        assert_eq!(get(&t, None, path), Some("root"), "{path}");
    }
}

#[test]
fn exact_path_is_case_and_slash_sensitive() {
    let t = table([route("exact", &["/users"])]);
    assert_eq!(get(&t, None, "/users"), Some("exact"));
    assert_eq!(get(&t, None, "/users/"), None);
    assert_eq!(get(&t, None, "/Users"), None);
}

#[test]
fn route_with_several_paths_matches_each() {
    let t = table([route("users", &["/users", "/users/*", "/v1/users/{id}"])]);
    assert_eq!(get(&t, None, "/users"), Some("users"));
    assert_eq!(get(&t, None, "/users/1/posts"), Some("users"));
    assert_eq!(get(&t, None, "/v1/users/7"), Some("users"));
    assert_eq!(get(&t, None, "/v1/users"), None);
}

#[test]
fn path_precedence_beats_config_order() {
    let t = table([
        route("prefix", &["/a/*"]),
        route("param", &["/a/{x}"]),
        route("exact", &["/a/b"]),
    ]);
    assert_eq!(get(&t, None, "/a/b"), Some("exact"));
    let reversed = table([
        route("exact", &["/a/b"]),
        route("param", &["/a/{x}"]),
        route("prefix", &["/a/*"]),
    ]);
    assert_eq!(get(&reversed, None, "/a/b"), Some("exact"));
    assert_eq!(get(&reversed, None, "/a/c"), Some("param"));
}
