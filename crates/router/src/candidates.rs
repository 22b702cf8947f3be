//! The routes that share one host tier and one path pattern, in the order they are tried.

use std::cmp::Reverse;

/// Route indices for one (host tier, path pattern), most conditions first, then config order.
///
/// Ordering happens once at build time, so a lookup only walks the list until a route's methods and
/// headers match.
#[derive(Debug, Clone, Default)]
pub(crate) struct Candidates(Vec<usize>);

impl Candidates {
    /// Appends a route; routes arrive in config order, so a route listing the same path or host twice
    /// shows up as a repeat of the last entry and is kept once.
    pub(crate) fn push(&mut self, route: usize) {
        if self.0.last() != Some(&route) {
            self.0.push(route);
        }
    }

    /// Sorts by descending weight; the sort is stable, which keeps config order among equal weights.
    pub(crate) fn order_by_weight(&mut self, weight: impl Fn(usize) -> usize) {
        self.0.sort_by_key(|&route| Reverse(weight(route)));
        self.0.shrink_to_fit();
    }

    /// The routes in the order they are tried.
    pub(crate) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().copied()
    }

    /// The route tried first.
    #[cfg(test)]
    pub(crate) fn first(&self) -> Option<usize> {
        self.0.first().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_route_is_kept_once() {
        let mut c = Candidates::default();
        c.push(3);
        c.push(3);
        c.push(5);
        assert_eq!(c.iter().collect::<Vec<_>>(), [3, 5]);
    }

    #[test]
    fn heavier_routes_first_then_config_order() {
        let mut c = Candidates::default();
        for route in 0..5 {
            c.push(route);
        }
        let weights = [0, 2, 1, 2, 0];
        c.order_by_weight(|route| weights[route]);
        assert_eq!(c.iter().collect::<Vec<_>>(), [1, 3, 2, 0, 4]);
    }
}
