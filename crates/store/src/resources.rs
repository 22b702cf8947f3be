//! The resources the admin API serves, read out of a configuration written as JSON: routes, upstreams
//! and consumers (lists of objects with an `id`) and global plugins (a map from plugin name to its
//! configuration).

use serde_json::{json, Value};

/// A kind of resource, as its admin API path names it (`/floodgate/admin/routes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `routes`.
    Routes,
    /// `upstreams`.
    Upstreams,
    /// `consumers`.
    Consumers,
    /// `global_plugins`: each plugin's configuration, by plugin name.
    GlobalPlugins,
}

/// Why a resource could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResourceError {
    /// No resource of that kind has that id.
    #[error("no {kind} with id {id:?}")]
    NotFound {
        /// The kind, as its path names it.
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
}

impl Kind {
    /// Every kind, in the order the configuration lists them.
    pub const ALL: [Kind; 4] = [
        Kind::Upstreams,
        Kind::Routes,
        Kind::Consumers,
        Kind::GlobalPlugins,
    ];

    /// The kind a path segment names.
    pub fn from_segment(segment: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.segment() == segment)
    }

    /// The path segment, which is also the configuration's field.
    pub fn segment(self) -> &'static str {
        match self {
            Kind::Routes => "routes",
            Kind::Upstreams => "upstreams",
            Kind::Consumers => "consumers",
            Kind::GlobalPlugins => "global_plugins",
        }
    }

    /// Every resource of this kind in `config`: `{"items": [...], "total": N}`. A global plugin is listed
    /// as `{"id": NAME, "config": {...}}`.
    pub fn list(self, config: &Value) -> Value {
        let items: Vec<Value> = match (self, config.get(self.segment())) {
            (Kind::GlobalPlugins, Some(Value::Object(plugins))) => plugins
                .iter()
                .map(|(name, plugin)| json!({ "id": name, "config": plugin }))
                .collect(),
            (_, Some(Value::Array(items))) => items.clone(),
            _ => Vec::new(),
        };
        json!({ "total": items.len(), "items": items })
    }

    /// The resource with `id` (for a global plugin, its configuration).
    pub fn get(self, config: &Value, id: &str) -> Result<Value, ResourceError> {
        let found = match (self, config.get(self.segment())) {
            (Kind::GlobalPlugins, Some(Value::Object(plugins))) => plugins.get(id).cloned(),
            (_, Some(Value::Array(items))) => items
                .iter()
                .find(|item| item.get("id").and_then(Value::as_str) == Some(id))
                .cloned(),
            _ => None,
        };
        found.ok_or_else(|| ResourceError::NotFound {
            kind: self.singular(),
            id: id.to_string(),
        })
    }

    fn singular(self) -> &'static str {
        match self {
            Kind::Routes => "route",
            Kind::Upstreams => "upstream",
            Kind::Consumers => "consumer",
            Kind::GlobalPlugins => "global plugin",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_finds_resources_by_id_and_plugins_by_name() {
        let config = json!({
            "routes": [ { "id": "a", "paths": ["/a"] }, { "id": "b", "paths": ["/b"] } ],
            "global_plugins": { "cors": { "allow_origins": ["*"] } }
        });
        assert_eq!(Kind::from_segment("routes"), Some(Kind::Routes));
        assert_eq!(Kind::from_segment("certificates"), None);
        let routes = Kind::Routes.list(&config);
        assert_eq!(routes["total"], 2);
        assert_eq!(routes["items"][1]["id"], "b");
        assert_eq!(Kind::Routes.get(&config, "b").unwrap()["paths"][0], "/b");
        assert_eq!(
            Kind::Routes.get(&config, "c").unwrap_err().to_string(),
            "no route with id \"c\""
        );
        assert_eq!(Kind::Upstreams.list(&config)["total"], 0);
        let plugins = Kind::GlobalPlugins.list(&config);
        assert_eq!(plugins["items"][0]["id"], "cors");
        assert_eq!(
            Kind::GlobalPlugins.get(&config, "cors").unwrap()["allow_origins"][0],
            "*"
        );
    }
}
