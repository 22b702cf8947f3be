//! [`Consumer`]s: the clients an authentication plugin can identify, each with its credentials.
//! A consumer's own plugins are kept by the chains ([`crate::Chain`]), by the consumer's index.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

/// A consumer (`consumers[]` in the configuration), built once per snapshot.
pub struct Consumer {
    /// Its id: in the access log, and usable as a rate-limit key.
    pub id: Arc<str>,
    /// Its place in `consumers`, which also indexes its own plugins in every chain.
    pub index: usize,
    /// Its credentials by authentication plugin name, each as that plugin parsed it (read back with
    /// [`Consumer::credential`] when the plugin is built, never on the request path).
    credentials: Vec<(&'static str, Arc<dyn Any + Send + Sync>)>,
}

impl Consumer {
    /// A consumer with these parsed credentials.
    pub fn new(
        id: Arc<str>,
        index: usize,
        credentials: Vec<(&'static str, Arc<dyn Any + Send + Sync>)>,
    ) -> Self {
        Self {
            id,
            index,
            credentials,
        }
    }

    /// The consumer's credential for plugin `name`, as that plugin's credential type.
    pub fn credential<T: Any>(&self, name: &str) -> Option<&T> {
        self.credentials
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, c)| c.downcast_ref::<T>())
    }
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
