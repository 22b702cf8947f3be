//! [`BuildCtx`]: what a plugin's `build` gets besides its configuration.

use std::sync::Arc;

use floodgate_config::FieldError;

use crate::consumer::Consumers;
use crate::state::StateStore;
use crate::stats::PluginStats;

/// Where a plugin instance is configured; part of its state's key.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Under `global_plugins`: one instance shared by every route.
    Global,
    /// Under a route's `plugins`.
    Route {
        /// The route's id.
        id: &'a str,
        /// The route's path patterns (for `{param}` values).
        paths: &'a [String],
    },
    /// Under a consumer's `plugins`.
    Consumer {
        /// The consumer's id.
        id: &'a str,
    },
}

/// What a plugin's `build` gets besides its configuration.
pub struct BuildCtx<'a> {
    /// The path of the plugin's configuration (`routes[3].plugins.jwt-auth`); errors name fields
    /// under it.
    pub at: String,
    /// Where the plugin is configured.
    pub scope: Scope<'a>,
    /// The snapshot's consumers (empty while consumers' own plugins are built).
    pub consumers: &'a Consumers,
    /// Whether some consumer carries its own plugin of this name, which replaces this instance for
    /// that consumer's requests once authentication has named it (never for a consumer's own).
    pub replaced_for_consumers: bool,
    /// The runtime to start background tasks on (key fetches); `None` when only validating.
    pub runtime: Option<tokio::runtime::Handle>,
    /// The process's plugin counters.
    pub stats: &'a Arc<PluginStats>,
    /// The ids of the configuration's upstreams, for plugins that name one.
    pub upstream_ids: &'a std::collections::BTreeSet<&'a str>,
    pub(crate) previous: &'a StateStore,
    pub(crate) next: &'a mut StateStore,
    pub(crate) state_key: String,
}

impl BuildCtx<'_> {
    /// A problem at `field` of the plugin's configuration (`field` empty: the plugin as a whole).
    pub fn error(&self, field: &str, message: impl Into<String>) -> FieldError {
        if field.is_empty() {
            FieldError::new(self.at.clone(), message)
        } else {
            FieldError::new(format!("{}.{field}", self.at), message)
        }
    }

    /// The instance's state named `name`: the one the previous snapshot's instance had when the
    /// plugin's scope and whole configuration are unchanged, else a new one from `make`.
    pub fn state<T: std::any::Any + Send + Sync>(
        &mut self,
        name: &str,
        make: impl FnOnce() -> T,
    ) -> Arc<T> {
        let key = format!("{}|{name}", self.state_key);
        self.next.carry(self.previous, key, make)
    }
}
