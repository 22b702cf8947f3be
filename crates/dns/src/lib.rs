//! Resolution of upstream target names, in the background and never on a request's way.
//!
//! A [`NameResolver`] asks the configured name servers (hickory-resolver, on tokio) for one host's
//! addresses; a [`HostRecords`] keeps the last answer of one host and says when to ask again: after
//! the answer's TTL within the configured bounds, or after the retry interval when asking failed, in
//! which case the last answer stays in use (serve-stale, RFC 8767); [`follow`] runs that for a set of
//! hosts and reports each change.
//!
//! This crate does not know about upstreams, balancers or connections: the proxy turns each answer
//! into targets.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::disallowed_types, clippy::disallowed_methods)]

mod follow;
mod records;
mod resolver;
mod ttl;

pub use follow::{follow, refresh, Hosts};
pub use records::{HostRecords, Resolution};
pub use resolver::{Answer, NameResolver, ResolveError};
pub use ttl::TtlBounds;
