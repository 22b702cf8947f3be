//! [`Consumer`]s: the clients an authentication plugin can identify, each with its credentials and
//! optional plugins of its own.

use std::collections::HashMap;
use std::sync::Arc;

use crate::registry::{Credential, Plugin};

/// A consumer (`consumers[]` in the configuration), built once per snapshot.
pub struct Consumer {
    /// Its id: in the access log, and usable as a rate-limit key.
    pub id: Arc<str>,
    /// Its credentials, one per authentication plugin.
    pub credentials: Vec<Credential>,
    /// Its own plugins, sorted by priority; they replace a route's plugins of the same name.
    pub(crate) plugins: Box<[Arc<Plugin>]>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials are secrets: never in a debug line.
        f.debug_struct("Consumer").field("id", &self.id).finish()
    }
}

/// All consumers of a snapshot.
#[derive(Default)]
pub struct Consumers {
    list: Vec<Arc<Consumer>>,
    by_id: HashMap<Arc<str>, Arc<Consumer>>,
}

impl Consumers {
    /// The consumers of `list` (ids are unique: checked when the configuration is validated).
    pub fn new(list: Vec<Arc<Consumer>>) -> Self {
        let by_id = list.iter().map(|c| (c.id.clone(), c.clone())).collect();
        Self { list, by_id }
    }

    /// The consumer with this id.
    pub fn get(&self, id: &str) -> Option<&Arc<Consumer>> {
        self.by_id.get(id)
    }

    /// Every consumer, in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Consumer>> {
        self.list.iter()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}
