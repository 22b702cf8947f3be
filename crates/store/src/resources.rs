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
    /// `certificates`: certificates with their keys, served by TLS listeners for their names.
    Certificates,
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
    pub const ALL: [Kind; 5] = [
        Kind::Upstreams,
        Kind::Routes,
        Kind::Consumers,
        Kind::GlobalPlugins,
        Kind::Certificates,
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
            Kind::Certificates => "certificates",
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

    /// Puts `resource` in `config` as the resource `id`, replacing the one with that id or adding it at the
    /// end; returns its field path (`routes[3]`, `global_plugins.cors`).
    pub fn put(self, config: &mut Value, id: &str, resource: Value) -> String {
        let Some(fields) = config.as_object_mut() else {
            return String::new();
        };
        if self == Kind::GlobalPlugins {
            let plugins = fields
                .entry("global_plugins")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(plugins) = plugins.as_object_mut() {
                plugins.insert(id.to_string(), resource);
            }
            return format!("global_plugins.{id}");
        }
        let list = fields
            .entry(self.segment())
            .or_insert_with(|| Value::Array(Vec::new()));
        let Some(items) = list.as_array_mut() else {
            return String::new();
        };
        let index = match items
            .iter()
            .position(|item| item.get("id").and_then(Value::as_str) == Some(id))
        {
            Some(index) => {
                items[index] = resource;
                index
            }
            None => {
                items.push(resource);
                items.len() - 1
            }
        };
        format!("{}[{index}]", self.segment())
    }

    /// Takes the resource `id` out of `config`; whether it was there.
    pub fn remove(self, config: &mut Value, id: &str) -> bool {
        match (self, config.get_mut(self.segment())) {
            (Kind::GlobalPlugins, Some(Value::Object(plugins))) => plugins.remove(id).is_some(),
            (_, Some(Value::Array(items))) => {
                let before = items.len();
                items.retain(|item| item.get("id").and_then(Value::as_str) != Some(id));
                items.len() != before
            }
            _ => false,
        }
    }

    /// The name a message gives one resource of this kind (`route`, `global plugin`).
    pub fn singular(self) -> &'static str {
        match self {
            Kind::Routes => "route",
            Kind::Upstreams => "upstream",
            Kind::Consumers => "consumer",
            Kind::GlobalPlugins => "global plugin",
            Kind::Certificates => "certificate",
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
        assert_eq!(Kind::from_segment("certificates"), Some(Kind::Certificates));
        assert_eq!(Kind::from_segment("ssls"), None);
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

    #[test]
    fn put_replaces_by_id_or_adds_and_remove_takes_out() {
        let mut config = json!({ "routes": [ { "id": "a" }, { "id": "b" } ] });
        assert_eq!(
            Kind::Routes.put(&mut config, "b", json!({ "id": "b", "x": 1 })),
            "routes[1]"
        );
        assert_eq!(
            Kind::Routes.put(&mut config, "c", json!({ "id": "c" })),
            "routes[2]"
        );
        assert_eq!(config["routes"][1]["x"], 1);
        assert_eq!(
            Kind::Upstreams.put(&mut config, "u", json!({ "id": "u" })),
            "upstreams[0]"
        );
        assert_eq!(
            Kind::GlobalPlugins.put(&mut config, "cors", json!({})),
            "global_plugins.cors"
        );
        assert!(Kind::Routes.remove(&mut config, "a"));
        assert!(!Kind::Routes.remove(&mut config, "a"));
        assert!(Kind::GlobalPlugins.remove(&mut config, "cors"));
        assert_eq!(Kind::Routes.list(&config)["total"], 2);
    }
}
