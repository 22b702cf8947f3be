//! `{param}` paths as a trie of segments, searched literal child first with backtracking.
//!
//! Trying the literal child before the param child means that, of two patterns matching the same
//! path, the one with a literal at the first position where they differ wins (`/users/me` and
//! `/users/me/{x}` beat `/users/{id}` and `/users/{id}/{x}`). Backtracking means that a literal branch
//! which fails deeper down, or whose routes all fail their method or header conditions, does not hide
//! a param branch that succeeds.

use floodgate_config::PathSegment;

use crate::candidates::Candidates;
use crate::Map;

/// The param patterns of one host tier.
#[derive(Debug, Clone, Default)]
pub(crate) struct SegmentTrie {
    root: Node,
    len: usize,
}

#[derive(Debug, Clone, Default)]
struct Node {
    literals: Map<Box<str>, Node>,
    param: Option<Box<Node>>,
    /// Routes whose pattern ends at this node.
    routes: Candidates,
}

impl SegmentTrie {
    /// Adds `route` under the pattern `segments` (as parsed from `/a/{b}/c`, without the leading `/`).
    pub(crate) fn insert(&mut self, segments: &[PathSegment], route: usize) {
        let mut node = &mut self.root;
        for segment in segments {
            node = match segment {
                PathSegment::Literal(literal) => {
                    node.literals.entry(literal.as_str().into()).or_default()
                }
                PathSegment::Param(_) => node.param.get_or_insert_with(Box::default),
            };
        }
        node.routes.push(route);
        self.len += 1;
    }

    /// Whether no pattern was inserted, so a lookup can skip the walk.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Visits every candidate list, to order them once the whole table is known.
    pub(crate) fn for_each_candidates_mut(&mut self, visit: &mut impl FnMut(&mut Candidates)) {
        self.root.for_each_candidates_mut(visit);
    }

    /// Finds the first route, in precedence order, that matches `path` and that `accept` takes from
    /// the candidate list at the pattern's end.
    pub(crate) fn find(
        &self,
        path: &str,
        accept: &mut impl FnMut(&Candidates) -> Option<usize>,
    ) -> Option<usize> {
        // Patterns start with `/`; a path that does not (`*` in `OPTIONS *`) has no segments to match.
        let rest = path.strip_prefix('/')?;
        self.root.find(Some(rest), accept)
    }
}

impl Node {
    fn for_each_candidates_mut(&mut self, visit: &mut impl FnMut(&mut Candidates)) {
        visit(&mut self.routes);
        for child in self.literals.values_mut() {
            child.for_each_candidates_mut(visit);
        }
        if let Some(child) = &mut self.param {
            child.for_each_candidates_mut(visit);
        }
    }

    /// `rest` is what follows the `/` before the next segment, or `None` once the path is used up.
    ///
    /// Recursion depth is bounded by the trie's depth (the longest pattern), not by the request path.
    fn find(
        &self,
        rest: Option<&str>,
        accept: &mut impl FnMut(&Candidates) -> Option<usize>,
    ) -> Option<usize> {
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

    fn trie(patterns: &[&str]) -> SegmentTrie {
        let mut trie = SegmentTrie::default();
        for (route, pattern) in patterns.iter().enumerate() {
            let PathPattern::Params(segments) = PathPattern::parse(pattern).unwrap() else {
                panic!("{pattern} is not a param pattern");
            };
            trie.insert(&segments, route);
        }
        trie
    }

    fn first(trie: &SegmentTrie, path: &str) -> Option<usize> {
        trie.find(path, &mut |routes| routes.first())
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
        let mut skip_one = |routes: &Candidates| routes.iter().find(|&r| r != 1);
        assert_eq!(t.find("/items/5", &mut skip_one), Some(0));
        assert_eq!(first(&t, "/items/5"), Some(1));
    }

    #[test]
    fn path_without_leading_slash_matches_nothing() {
        let t = trie(&["/{any}"]);
        assert_eq!(first(&t, "*"), None);
        assert_eq!(first(&t, "/x"), Some(0));
    }
}
