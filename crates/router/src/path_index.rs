//! The paths of one host tier: exact paths, `{param}` paths and prefixes, each found without a scan.

use std::sync::Arc;

use floodgate_config::PathPattern;

use crate::candidates::Candidates;
use crate::route::Route;
use crate::segment_trie::SegmentTrie;
use crate::shards::ShardedMap;

/// Every path pattern registered under one host tier (one exact host, one wildcard suffix, or no host).
#[derive(Debug)]
pub(crate) struct PathIndex<T> {
    exact: ShardedMap<Box<str>, Candidates<T>>,
    params: SegmentTrie<T>,
    /// Keys keep their trailing `/`, so a request path's prefix up to any `/` is a direct lookup.
    prefixes: ShardedMap<Box<str>, Candidates<T>>,
    /// At least the length of the longest key in `prefixes`; boundaries past it cannot match and are
    /// not tried. A removed prefix leaves it as it was: still a bound.
    longest_prefix: usize,
}

impl<T> Clone for PathIndex<T> {
    fn clone(&self) -> Self {
        PathIndex {
            exact: self.exact.clone(),
            params: self.params.clone(),
            prefixes: self.prefixes.clone(),
            longest_prefix: self.longest_prefix,
        }
    }
}

impl<T> Default for PathIndex<T> {
    fn default() -> Self {
        PathIndex {
            exact: ShardedMap::default(),
            params: SegmentTrie::default(),
            prefixes: ShardedMap::default(),
            longest_prefix: 0,
        }
    }
}

impl<T> PathIndex<T> {
    /// Registers `route` under `pattern`.
    pub(crate) fn insert(&mut self, pattern: &PathPattern, route: &Arc<Route<T>>) {
        match pattern {
            PathPattern::Exact(path) => {
                let candidates = self.exact.entry_or_default(path.as_str().into());
                *candidates = candidates.with(route);
            }
            PathPattern::Params(segments) => self.params.insert(segments, route),
            PathPattern::Prefix(prefix) => {
                self.longest_prefix = self.longest_prefix.max(prefix.len());
                let candidates = self.prefixes.entry_or_default(prefix.as_str().into());
                *candidates = candidates.with(route);
            }
        }
    }

    /// Takes `route` out from under `pattern`.
    pub(crate) fn remove(&mut self, pattern: &PathPattern, route: &Arc<Route<T>>) {
        let map = match pattern {
            PathPattern::Exact(path) => (&mut self.exact, path.as_str()),
            PathPattern::Params(segments) => return self.params.remove(segments, route),
            PathPattern::Prefix(prefix) => (&mut self.prefixes, prefix.as_str()),
        };
        let (map, key) = map;
        let Some(candidates) = map.get_mut(key) else {
            return;
        };
        *candidates = candidates.without(route);
        if candidates.is_empty() {
            map.remove(key);
        }
    }

    /// Whether no pattern is registered.
    pub(crate) fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.params.is_empty() && self.prefixes.is_empty()
    }

    /// Finds the first route that `accept` takes, trying the exact path, then `{param}` patterns, then
    /// prefixes from longest to shortest; each step runs only when the ones before it found nothing.
    pub(crate) fn find<'a>(
        &'a self,
        path: &str,
        accept: &mut impl FnMut(&'a Candidates<T>) -> Option<&'a Route<T>>,
    ) -> Option<&'a Route<T>> {
        if let Some(route) = self.exact.get(path).and_then(&mut *accept) {
            return Some(route);
        }
        if !self.params.is_empty() {
            if let Some(route) = self.params.find(path, accept) {
                return Some(route);
            }
        }
        let bytes = path.as_bytes();
        let window = bytes.get(..bytes.len().min(self.longest_prefix))?;
        window
            .iter()
            .enumerate()
            .rev()
            .filter(|&(_, &b)| b == b'/')
            // `i` indexes an ASCII `/`, so `..=i` ends on a character boundary.
            .filter_map(|(i, _)| self.prefixes.get(path.get(..=i)?))
            .find_map(accept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::route::tests::route;

    fn index(patterns: &[&str]) -> PathIndex<usize> {
        let mut index = PathIndex::default();
        for (i, pattern) in patterns.iter().enumerate() {
            index.insert(&PathPattern::parse(pattern).unwrap(), &route(i));
        }
        index
    }

    fn first(index: &PathIndex<usize>, path: &str) -> Option<usize> {
        index
            .find(path, &mut |routes| routes.iter().next())
            .map(|r| r.value)
    }

    #[test]
    fn exact_path_matches_only_itself() {
        let i = index(&["/users"]);
        assert_eq!(first(&i, "/users"), Some(0));
        assert_eq!(first(&i, "/users/"), None);
        assert_eq!(first(&i, "/Users"), None);
        assert_eq!(first(&i, "/users/1"), None);
    }

    #[test]
    fn prefix_matches_its_directory_and_below_but_not_the_bare_name() {
        let i = index(&["/users/*"]);
        assert_eq!(first(&i, "/users/"), Some(0));
        assert_eq!(first(&i, "/users/anything/below"), Some(0));
        assert_eq!(first(&i, "/users"), None);
        assert_eq!(first(&i, "/usersx/"), None);
    }

    #[test]
    fn root_prefix_matches_every_path() {
        let i = index(&["/*"]);
        for path in ["/", "/a", "/a/b/c", "//"] {
            assert_eq!(first(&i, path), Some(0), "{path}");
        }
        assert_eq!(first(&i, "*"), None);
    }

    #[test]
    fn longer_prefix_beats_shorter() {
        let i = index(&["/*", "/api/*", "/api/v1/*"]);
        assert_eq!(first(&i, "/api/v1/users"), Some(2));
        assert_eq!(first(&i, "/api/v2/users"), Some(1));
        assert_eq!(first(&i, "/other"), Some(0));
    }

    #[test]
    fn exact_beats_param_beats_prefix() {
        let i = index(&["/users/*", "/users/{id}", "/users/me"]);
        assert_eq!(first(&i, "/users/me"), Some(2));
        assert_eq!(first(&i, "/users/42"), Some(1));
        assert_eq!(first(&i, "/users/42/posts"), Some(0));
    }

    #[test]
    fn rejected_exact_candidates_fall_through_to_params_then_prefixes() {
        let i = index(&["/users/*", "/users/{id}", "/users/me"]);
        let mut not_exact = crate::candidates::acceptor(|routes: &Candidates<usize>| {
            routes.iter().find(|r| r.value != 2)
        });
        assert_eq!(
            i.find("/users/me", &mut not_exact).map(|r| r.value),
            Some(1)
        );
        let mut prefix_only = crate::candidates::acceptor(|routes: &Candidates<usize>| {
            routes.iter().find(|r| r.value == 0)
        });
        assert_eq!(
            i.find("/users/me", &mut prefix_only).map(|r| r.value),
            Some(0)
        );
    }

    #[test]
    fn non_ascii_path_does_not_split_a_character() {
        let i = index(&["/caf\u{e9}/*"]);
        assert_eq!(first(&i, "/caf\u{e9}/menu"), Some(0));
        assert_eq!(first(&i, "/caf\u{e9}"), None);
    }
}
