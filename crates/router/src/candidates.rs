//! The routes that share one host tier and one path pattern, in the order they are tried.

use std::cmp::Reverse;
use std::sync::Arc;

use crate::route::Route;

/// The routes of one (host tier, path pattern), most conditions first, then config order.
///
/// Kept in that order as routes come and go, so a lookup only walks the list until a route's
/// methods and headers match. A change makes a new list; the old one stays with the table it is in.
#[derive(Debug)]
pub(crate) struct Candidates<T>(Arc<[Arc<Route<T>>]>);

impl<T> Clone for Candidates<T> {
    fn clone(&self) -> Self {
        Candidates(self.0.clone())
    }
}

impl<T> Default for Candidates<T> {
    fn default() -> Self {
        Candidates(Arc::new([]))
    }
}

impl<T> Candidates<T> {
    /// With `route` in its place; a route listing the same path or host twice is kept once.
    pub(crate) fn with(&self, route: &Arc<Route<T>>) -> Self {
        if self.0.iter().any(|r| Arc::ptr_eq(r, route)) {
            return self.clone();
        }
        let key = |r: &Route<T>| (Reverse(r.weight()), r.order());
        let at = self.0.partition_point(|r| key(r) < key(route));
        let mut routes = Vec::with_capacity(self.0.len() + 1);
        routes.extend(self.0[..at].iter().cloned());
        routes.push(route.clone());
        routes.extend(self.0[at..].iter().cloned());
        Candidates(routes.into())
    }

    /// Without `route`.
    pub(crate) fn without(&self, route: &Arc<Route<T>>) -> Self {
        Candidates(
            self.0
                .iter()
                .filter(|r| !Arc::ptr_eq(r, route))
                .cloned()
                .collect(),
        )
    }

    /// How many routes.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no route is left.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The routes in the order they are tried.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Route<T>> + '_ {
        self.0.iter().map(|r| &**r)
    }
}

/// `accept` as a lookup takes it: a route it picks lives as long as the list it was picked from.
/// Spelt out because a closure's own signature would not tie the two lifetimes together.
pub(crate) fn acceptor<'a, T: 'a>(
    accept: impl FnMut(&'a Candidates<T>) -> Option<&'a Route<T>>,
) -> impl FnMut(&'a Candidates<T>) -> Option<&'a Route<T>> {
    accept
}
