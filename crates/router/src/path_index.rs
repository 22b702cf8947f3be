//! The paths of one host tier: exact paths, `{param}` paths and prefixes, each found without a scan.

use floodgate_config::PathPattern;

use crate::candidates::Candidates;
use crate::segment_trie::SegmentTrie;
use crate::Map;

/// Every path pattern registered under one host tier (one exact host, one wildcard suffix, or no host).
#[derive(Debug, Clone, Default)]
pub(crate) struct PathIndex {
    exact: Map<Box<str>, Candidates>,
    params: SegmentTrie,
    /// Keys keep their trailing `/`, so a request path's prefix up to any `/` is a direct lookup.
    prefixes: Map<Box<str>, Candidates>,
    /// Length of the longest key in `prefixes`; boundaries past it cannot match and are not tried.
    longest_prefix: usize,
}

impl PathIndex {
    /// Registers `route` under `pattern`.
    pub(crate) fn insert(&mut self, pattern: &PathPattern, route: usize) {
        match pattern {
            PathPattern::Exact(path) => self
                .exact
                .entry(path.as_str().into())
                .or_default()
                .push(route),
            PathPattern::Params(segments) => self.params.insert(segments, route),
            PathPattern::Prefix(prefix) => {
                self.longest_prefix = self.longest_prefix.max(prefix.len());
                self.prefixes
                    .entry(prefix.as_str().into())
                    .or_default()
                    .push(route);
            }
        }
    }

    /// Orders every candidate list once all routes are in.
    pub(crate) fn order_by_weight(&mut self, weight: &impl Fn(usize) -> usize) {
        let mut order = |candidates: &mut Candidates| candidates.order_by_weight(weight);
        self.exact.values_mut().for_each(&mut order);
        self.prefixes.values_mut().for_each(&mut order);
        self.params.for_each_candidates_mut(&mut order);
    }

    /// Finds the first route that `accept` takes, trying the exact path, then `{param}` patterns, then
    /// prefixes from longest to shortest; each step runs only when the ones before it found nothing.
    pub(crate) fn find(
        &self,
        path: &str,
        accept: &mut impl FnMut(&Candidates) -> Option<usize>,
    ) -> Option<usize> {
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

    fn index(patterns: &[&str]) -> PathIndex {
        let mut index = PathIndex::default();
        for (route, pattern) in patterns.iter().enumerate() {
            index.insert(&PathPattern::parse(pattern).unwrap(), route);
        }
        index
    }

    fn first(index: &PathIndex, path: &str) -> Option<usize> {
        index.find(path, &mut |routes| routes.first())
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
        let mut not_exact = |routes: &Candidates| routes.iter().find(|&r| r != 2);
        assert_eq!(i.find("/users/me", &mut not_exact), Some(1));
        let mut prefix_only = |routes: &Candidates| routes.iter().find(|&r| r == 0);
        assert_eq!(i.find("/users/me", &mut prefix_only), Some(0));
    }

    #[test]
    fn non_ascii_path_does_not_split_a_character() {
        let i = index(&["/caf\u{e9}/*"]);
        assert_eq!(first(&i, "/caf\u{e9}/menu"), Some(0));
        assert_eq!(first(&i, "/caf\u{e9}"), None);
    }
}
