//! A resource read, put or removed in a typed [`Config`]: one resource serialised or parsed, not the
//! whole configuration (which, at ten thousand routes, costs tens of milliseconds each way).

use floodgate_config::{parse_item_json, Config, FieldError};
use serde_json::Value;

use crate::Kind;

/// The position of the resource `id` of `kind` in `config`'s list of them, and the list's length.
fn position(kind: Kind, config: &Config, id: &str) -> (Option<usize>, usize) {
    fn find<T>(items: &[T], id: &str, id_of: impl Fn(&T) -> &str) -> (Option<usize>, usize) {
        (items.iter().position(|item| id_of(item) == id), items.len())
    }
    match kind {
        Kind::Routes => find(&config.routes, id, |r| &r.id),
        Kind::Upstreams => find(&config.upstreams, id, |u| &u.id),
        Kind::Consumers => find(&config.consumers, id, |c| &c.id),
        Kind::Certificates => find(&config.certificates, id, |c| &c.id),
        Kind::GlobalPlugins => (None, 0),
    }
}

/// Serialises one item, when there is one at `at`.
fn item_json<T: serde::Serialize>(items: &[T], at: Option<usize>) -> Option<Value> {
    serde_json::to_value(items.get(at?)?).ok()
}

impl Kind {
    /// The resource `id` of `config` as JSON (for a global plugin, its configuration), the same value
    /// [`Kind::get`] finds in the configuration written as JSON.
    pub fn get_in(self, config: &Config, id: &str) -> Option<Value> {
        let (at, _) = position(self, config, id);
        match self {
            Kind::Routes => item_json(&config.routes, at),
            Kind::Upstreams => item_json(&config.upstreams, at),
            Kind::Consumers => item_json(&config.consumers, at),
            Kind::Certificates => item_json(&config.certificates, at),
            Kind::GlobalPlugins => config.global_plugins.get(id).cloned(),
        }
    }

    /// The field path the resource `id` has in `config`, or would have once added
    /// (`routes[3]`, `global_plugins.cors`).
    pub fn path_in(self, config: &Config, id: &str) -> String {
        let (at, len) = position(self, config, id);
        self.path_at(id, at.unwrap_or(len))
    }

    /// The field path of the resource `id` at place `at` of its list.
    fn path_at(self, id: &str, at: usize) -> String {
        match self {
            Kind::GlobalPlugins => format!("global_plugins.{id}"),
            _ => format!("{}[{at}]", self.segment()),
        }
    }

    /// Puts `resource` (JSON, its `id` set) in `config` as the resource `id`, parsed as a file's
    /// would be, replacing the one with that id or adding it at the end; its field path
    /// (`routes[3]`, `global_plugins.cors`), with the errors found parsing it when it does not parse.
    pub fn put_in(
        self,
        config: &mut Config,
        id: &str,
        resource: &Value,
    ) -> (String, Result<(), Vec<FieldError>>) {
        let (at, len) = position(self, config, id);
        let at = at.unwrap_or(len);
        let path = self.path_at(id, at);
        let text = resource.to_string();
        let text = text.as_bytes();
        let parsed = match self {
            Kind::Routes => parse_item_json(&path, text).map(|r| place(&mut config.routes, at, r)),
            Kind::Upstreams => {
                parse_item_json(&path, text).map(|u| place(&mut config.upstreams, at, u))
            }
            Kind::Consumers => {
                parse_item_json(&path, text).map(|c| place(&mut config.consumers, at, c))
            }
            Kind::Certificates => {
                parse_item_json(&path, text).map(|c| place(&mut config.certificates, at, c))
            }
            Kind::GlobalPlugins => {
                config
                    .global_plugins
                    .insert(id.to_string(), resource.clone());
                Ok(())
            }
        };
        (path, parsed)
    }

    /// Takes the resource `id` out of `config`; whether it was there.
    pub fn remove_in(self, config: &mut Config, id: &str) -> bool {
        let (Some(at), _) = position(self, config, id) else {
            return self == Kind::GlobalPlugins && config.global_plugins.remove(id).is_some();
        };
        match self {
            Kind::Routes => drop(config.routes.remove(at)),
            Kind::Upstreams => drop(config.upstreams.remove(at)),
            Kind::Consumers => drop(config.consumers.remove(at)),
            Kind::Certificates => drop(config.certificates.remove(at)),
            Kind::GlobalPlugins => {}
        }
        true
    }
}

fn place<T>(items: &mut Vec<T>, at: usize, item: T) {
    if at < items.len() {
        items[at] = item;
    } else {
        items.push(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> Config {
        floodgate_config::parse_yaml(
            r#"
listeners: [{ name: a, address: "127.0.0.1:0" }]
upstreams: [{ id: u, targets: [{ address: "127.0.0.1:1" }] }]
routes:
  - { id: one, paths: ["/one"], upstream: u }
  - { id: two, paths: ["/two"], upstream: u, timeout: 5s }
global_plugins: { cors: { allow_origins: ["https://a.example"] } }
"#,
        )
        .unwrap()
    }

    #[test]
    fn typed_and_json_reads_agree() {
        let config = config();
        let json = serde_json::to_value(&config).unwrap();
        for (kind, id) in [
            (Kind::Routes, "two"),
            (Kind::Upstreams, "u"),
            (Kind::GlobalPlugins, "cors"),
        ] {
            assert_eq!(kind.get_in(&config, id), kind.get(&json, id).ok(), "{id}");
        }
        assert_eq!(Kind::Routes.get_in(&config, "nope"), None);
    }

    #[test]
    fn a_put_replaces_in_place_or_adds_at_the_end_as_the_json_put_does() {
        let mut typed = config();
        let mut json = serde_json::to_value(&typed).unwrap();
        let two = json!({ "id": "two", "paths": ["/2"], "upstream": "u" });
        let three = json!({ "id": "three", "paths": ["/3"], "upstream": "u" });
        for (id, resource) in [("two", two), ("three", three)] {
            let (path, parsed) = Kind::Routes.put_in(&mut typed, id, &resource);
            assert_eq!(parsed, Ok(()));
            assert_eq!(path, Kind::Routes.put(&mut json, id, resource));
        }
        let reread = floodgate_config::parse_json(&serde_json::to_vec(&json).unwrap()).unwrap();
        assert_eq!(typed, reread);
        let (path, parsed) =
            Kind::Routes.put_in(&mut typed, "four", &json!({ "id": "four", "paths": 3 }));
        assert_eq!(path, "routes[3]");
        assert_eq!(parsed.unwrap_err()[0].path, "routes[3].paths");
        assert!(Kind::Routes.remove_in(&mut typed, "one"));
        assert!(!Kind::Routes.remove_in(&mut typed, "one"));
        assert!(Kind::GlobalPlugins.remove_in(&mut typed, "cors"));
    }
}
