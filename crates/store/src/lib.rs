//! Where the running configuration comes from and what it has been: each applied version (bounded
//! history, for rollback), its resources as the admin API shows them (secrets masked), and the channel
//! through which a change reaches the one place that applies configurations.
//!
//! Nothing here is on the request path: the workers read the snapshot built from a configuration, never
//! this crate's state.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::disallowed_types, clippy::disallowed_methods)]

mod apply;
pub mod cluster;
pub mod etcd;
pub mod registry;
mod resources;
mod secrets;
mod typed_resources;
mod versions;

pub use apply::{Applier, ApplyError, ApplyRequest};
pub use resources::{Kind, ResourceError};
pub use secrets::{keep_masked, mask, MASK};
pub use versions::{etag_of, Applied, ChangeSource, ConfigVersions};
