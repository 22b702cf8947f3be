//! `{param}` paths as a trie of segments, searched literal child first with backtracking.
//!
//! Trying the literal child before the param child means that, of two patterns matching the same
//! path, the one with a literal at the first position where they differ wins (`/users/me` and
//! `/users/me/{x}` beat `/users/{id}` and `/users/{id}/{x}`). Backtracking means that a literal branch
//! which fails deeper down, or whose routes all fail their method or header conditions, does not hide
//! a param branch that succeeds.

use std::sync::Arc;

use floodgate_config::PathSegment;

use crate::candidates::Candidates;
use crate::route::Route;
use crate::shards::ShardedMap;

/// The param patterns of one host tier. Nodes are shared with the tables this one was made from: a
/// change copies the nodes on its pattern's way down, not the trie.
#[derive(Debug)]
pub(crate) struct SegmentTrie<T> {
    root: Arc<Node<T>>,
    len: usize,
}

#[derive(Debug)]
struct Node<T> {
    literals: ShardedMap<Box<str>, Arc<Node<T>>>,
    param: Option<Arc<Node<T>>>,
    /// Routes whose pattern ends at this node.
    routes: Candidates<T>,
}

impl<T> Clone for SegmentTrie<T> {
    fn clone(&self) -> Self {
        SegmentTrie {
            root: self.root.clone(),
            len: self.len,
        }
    }
}

impl<T> Default for SegmentTrie<T> {
    fn default() -> Self {
        SegmentTrie {
            root: Arc::default(),
            len: 0,
        }
    }
}

impl<T> Clone for Node<T> {
    fn clone(&self) -> Self {
        Node {
            literals: self.literals.clone(),
            param: self.param.clone(),
            routes: self.routes.clone(),
        }
    }
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Node {
            literals: ShardedMap::default(),
            param: None,
            routes: Candidates::default(),
        }
    }
}

impl<T> SegmentTrie<T> {
    /// Adds `route` under the pattern `segments` (as parsed from `/a/{b}/c`, without the leading `/`).
    pub(crate) fn insert(&mut self, segments: &[PathSegment], route: &Arc<Route<T>>) {
        let mut node = Arc::make_mut(&mut self.root);
        for segment in segments {
            let child = match segment {
                PathSegment::Literal(literal) => {
                    node.literals.entry_or_default(literal.as_str().into())
                }
                PathSegment::Param(_) => node.param.get_or_insert_with(Arc::default),
            };
            node = Arc::make_mut(child);
        }
        let before = node.routes.len();
        node.routes = node.routes.with(route);
        self.len += node.routes.len() - before;
    }

    /// Takes `route` out from under `segments`, and the nodes left with nothing below them.
    pub(crate) fn remove(&mut self, segments: &[PathSegment], route: &Arc<Route<T>>) {
        if Node::remove(&mut self.root, segments, route) {
            self.len -= 1;
        }
    }

    /// Whether no pattern is registered, so a lookup can skip the walk.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Finds the first route, in precedence order, that matches `path` and that `accept` takes from
    /// the candidate list at the pattern's end.
    pub(crate) fn find<'a>(
        &'a self,
        path: &str,
        accept: &mut impl FnMut(&'a Candidates<T>) -> Option<&'a Route<T>>,
    ) -> Option<&'a Route<T>> {
        // Patterns start with `/`; a path that does not (`*` in `OPTIONS *`) has no segments to match.
        let rest = path.strip_prefix('/')?;
        self.root.find(Some(rest), accept)
    }
}

impl<T> Node<T> {
    fn is_empty(&self) -> bool {
        self.routes.is_empty() && self.literals.is_empty() && self.param.is_none()
    }

    /// Whether `route` was found (and removed). Only the nodes on `segments`' way are copied.
    fn remove(node: &mut Arc<Self>, segments: &[PathSegment], route: &Arc<Route<T>>) -> bool {
        let Some((segment, rest)) = segments.split_first() else {
            let routes = node.routes.without(route);
            let found = routes.len() < node.routes.len();
            if found {
                Arc::make_mut(node).routes = routes;
            }
            return found;
        };
        match segment {
            PathSegment::Literal(literal) => {
                if node.literals.get(literal.as_str()).is_none() {
                    return false;
                }
                let node = Arc::make_mut(node);
                let Some(child) = node.literals.get_mut(literal.as_str()) else {
                    return false;
                };
                let found = Node::remove(child, rest, route);
                if child.is_empty() {
                    node.literals.remove(literal.as_str());
                }
                found
            }
            PathSegment::Param(_) => {
                if node.param.is_none() {
                    return false;
                }
                let node = Arc::make_mut(node);
                let Some(child) = node.param.as_mut() else {
                    return false;
                };
                let found = Node::remove(child, rest, route);
                if child.is_empty() {
                    node.param = None;
                }
                found
            }
        }
    }

    /// `rest` is what follows the `/` before the next segment, or `None` once the path is used up.
    ///
    /// Recursion depth is bounded by the trie's depth (the longest pattern), not by the request path.
    fn find<'a>(
        &'a self,
        rest: Option<&str>,
        accept: &mut impl FnMut(&'a Candidates<T>) -> Option<&'a Route<T>>,
    ) -> Option<&'a Route<T>> {
        let Some(rest) = rest else {
            return accept(&self.routes);
        };
        let (segment, next) = match rest.split_once('/') {
            Some((segment, next)) => (segment, Some(next)),
            None => (rest, None),
        };
        if let Some(child) = self.literals.get(segment) {
            if let Some(route) = child.find(next, accept) {
                return Some(route);
            }
        }
        // A param stands for one non-empty segment: `/users/{id}` does not match `/users/`.
        match &self.param {
            Some(child) if !segment.is_empty() => child.find(next, accept),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use floodgate_config::PathPattern;

    use super::*;

    use crate::route::tests::route;

    fn segments(pattern: &str) -> Vec<PathSegment> {
        let PathPattern::Params(segments) = PathPattern::parse(pattern).unwrap() else {
            panic!("{pattern} is not a param pattern");
        };
        segments
    }

    fn trie(patterns: &[&str]) -> SegmentTrie<usize> {
        let mut trie = SegmentTrie::default();
        for (i, pattern) in patterns.iter().enumerate() {
            trie.insert(&segments(pattern), &route(i));
        }
        trie
    }

    fn first(trie: &SegmentTrie<usize>, path: &str) -> Option<usize> {
        trie.find(path, &mut |routes| routes.iter().next())
            .map(|r| r.value)
    }

    #[test]
    fn param_matches_exactly_one_non_empty_segment() {
        let t = trie(&["/users/{id}"]);
        assert_eq!(first(&t, "/users/42"), Some(0));
        assert_eq!(first(&t, "/users/"), None);
        assert_eq!(first(&t, "/users"), None);
        assert_eq!(first(&t, "/users/42/posts"), None);
        assert_eq!(first(&t, "/users/42/"), None);
    }

    #[test]
    fn trailing_slash_is_a_segment_of_its_own() {
        let t = trie(&["/users/{id}/"]);
        assert_eq!(first(&t, "/users/42/"), Some(0));
        assert_eq!(first(&t, "/users/42"), None);
    }

    #[test]
    fn literal_beats_param_at_first_differing_segment() {
        let t = trie(&["/users/{id}/posts", "/users/me/{tab}"]);
        assert_eq!(first(&t, "/users/me/posts"), Some(1));
        assert_eq!(first(&t, "/users/42/posts"), Some(0));
    }

    #[test]
    fn failed_literal_branch_backtracks_to_param() {
        let t = trie(&["/a/{x}/c", "/a/b/{y}/d"]);
        // The literal `b` branch needs two more segments; the path has one, so `{x}` must take over.
        assert_eq!(first(&t, "/a/b/c"), Some(0));
        assert_eq!(first(&t, "/a/b/z/d"), Some(1));
    }

    #[test]
    fn rejected_candidates_backtrack_to_param() {
        let t = trie(&["/{kind}/{id}", "/items/{id}"]);
        let mut skip_one = crate::candidates::acceptor(|routes: &Candidates<usize>| {
            routes.iter().find(|r| r.value != 1)
        });
        assert_eq!(t.find("/items/5", &mut skip_one).map(|r| r.value), Some(0));
        assert_eq!(first(&t, "/items/5"), Some(1));
    }

    #[test]
    fn path_without_leading_slash_matches_nothing() {
        let t = trie(&["/{any}"]);
        assert_eq!(first(&t, "*"), None);
        assert_eq!(first(&t, "/x"), Some(0));
    }

    #[test]
    fn a_copy_keeps_its_routes_when_the_original_loses_them() {
        let mut t = SegmentTrie::default();
        let (a, b) = (route(0), route(1));
        t.insert(&segments("/a/{x}/c"), &a);
        t.insert(&segments("/a/{x}/d"), &b);
        let copy = t.clone();
        t.remove(&segments("/a/{x}/c"), &a);
        assert_eq!(first(&t, "/a/1/c"), None);
        assert_eq!(first(&t, "/a/1/d"), Some(1));
        assert_eq!(first(&copy, "/a/1/c"), Some(0));
        t.remove(&segments("/a/{x}/d"), &b);
        assert!(t.is_empty());
        assert!(t.root.is_empty(), "emptied nodes are pruned");
        assert_eq!(first(&copy, "/a/1/d"), Some(1));
        // Removing what is not there changes nothing.
        t.remove(&segments("/a/{x}/d"), &b);
        assert!(t.is_empty());
    }
}
