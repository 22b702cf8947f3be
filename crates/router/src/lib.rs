//! floodgate's compiled route table: host, path, method and header matching.
//!
//! [`RouteTable::build`] compiles the `routes` of a configuration once, and [`RouteTable::rebuild`] a
//! changed configuration's from the table before at the cost of the change; [`RouteTable::lookup`] then picks
//! the route for each request without scanning the routes and without allocating. The crate knows
//! nothing about upstreams, plugins or responses: each route carries a value of the caller's type `T`,
//! and the lookup hands that value back. It does not rewrite paths, decode percent-escapes or extract
//! `{param}` values.
//!
//! # When a route matches
//!
//! All of a route's conditions must hold:
//!
//! - **host**: when the route lists hosts, the request's host is one of them. The request host comes
//!   from `Host` or `:authority`; its port and a trailing dot are ignored and it compares
//!   case-insensitively. `*.example.com` matches `a.example.com` and `a.b.example.com`, not
//!   `example.com`. A route without hosts matches any host, and requests without one.
//! - **path**: one of the route's paths matches `uri.path()` (the query is never part of it), byte for
//!   byte. `/users` matches only `/users`; `/users/{id}` matches `/users/` followed by one non-empty
//!   segment; `/users/*` matches `/users/` and everything below it, but not `/users`; `/*` matches
//!   every path.
//! - **method**: the route's method set contains the request method; an empty set allows any method.
//!   A set with `GET` allows `HEAD` too; among routes of one pattern, one that lists `HEAD` itself is
//!   chosen for a `HEAD` before one that has it only through `GET`.
//! - **headers**: each listed header is present with exactly the listed value. Names are
//!   case-insensitive, values are not; a header sent several times matches when any one of its values
//!   does.
//!
//! # Which route wins
//!
//! Precedence is fixed at build time and never depends on hash order:
//!
//! 1. Host tier: the exact host, then wildcard hosts from the longest suffix to the shortest, then
//!    routes without hosts. When no route in a tier matches the request, the next tier is tried.
//! 2. Within a tier, path kind: an exact path, then a `{param}` path, then a prefix path.
//! 3. Among `{param}` paths, the one with a literal segment where the others have a param, at the first
//!    position where they differ (`/users/me/{tab}` before `/users/{id}/posts`). If that branch has no
//!    route matching the request, the search backtracks to the param branch.
//! 4. Among prefixes, the longer one (`/api/v1/*` before `/api/*` before `/*`).
//! 5. Among routes with the same pattern, the one with more conditions: a non-empty method set counts
//!    one, each header one.
//! 6. Then the route listed first.
//!
//! A route that fails its method or header conditions does not stop the search: the next candidate in
//! the order above is tried, so the result is the first route in precedence order that matches.
//!
//! # Cost of a lookup
//!
//! Exact hosts and wildcard suffixes are hash-map keys (one lookup per label of the request host);
//! exact paths and prefixes are hash-map keys (one lookup per `/` in the request path, up to the longest
//! configured prefix); `{param}` paths live in a segment trie. Each (tier, pattern) keeps its routes
//! sorted, so only routes sharing the winning pattern have their methods and headers checked.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::disallowed_types, clippy::disallowed_methods)]

mod candidates;
mod conditions;
mod error;
mod host;
mod path_index;
mod route;
mod segment_trie;
mod shards;
mod table;

pub use error::RouterError;
pub use table::{NextRoute, RouteTable};
