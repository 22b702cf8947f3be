//! Why a set of routes could not be compiled into a [`RouteTable`](crate::RouteTable).

/// A route that cannot be compiled, named by its id and the index of the offending entry.
///
/// Configuration validation in `floodgate-config` rejects all of these first; the router checks again so
/// that a table built from unvalidated input (tests, the admin API) never silently drops a condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// The route lists no paths, so it could never match.
    #[error("route {route:?}: at least one path is required")]
    NoPaths {
        /// Id of the route.
        route: String,
    },
    /// `paths[index]` is not a valid path pattern.
    #[error("route {route:?}: paths[{index}]: {reason}")]
    InvalidPath {
        /// Id of the route.
        route: String,
        /// Position of the path in the route's `paths`.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// `hosts[index]` is not a host name or `*.suffix` pattern.
    #[error("route {route:?}: hosts[{index}]: {reason}")]
    InvalidHost {
        /// Id of the route.
        route: String,
        /// Position of the host in the route's `hosts`.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// `methods[index]` is not a valid HTTP method token.
    #[error("route {route:?}: methods[{index}]: invalid method {method:?}")]
    InvalidMethod {
        /// Id of the route.
        route: String,
        /// Position of the method in the route's `methods`.
        index: usize,
        /// The method as written.
        method: String,
    },
    /// A header condition whose name or value cannot appear in an HTTP request.
    #[error("route {route:?}: headers.{name}: {reason}")]
    InvalidHeader {
        /// Id of the route.
        route: String,
        /// The header name as written.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
}
