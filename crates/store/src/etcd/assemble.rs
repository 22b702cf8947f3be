//! From etcd's keys to a configuration: each resource is put in its place in the file's settings, and a
//! resource that makes the whole invalid is left out (with the reason), so one bad key never takes the
//! rest down.

use std::collections::BTreeMap;

use floodgate_config::{parse_json, Config, FieldError};
use serde_json::Value;

use crate::Kind;

/// Checks a whole configuration beyond its schema (plugins, certificates), as applying it would.
pub type Validator = dyn Fn(&Config) -> Result<(), Vec<FieldError>> + Send + Sync;

/// A resource left out of the configuration, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Its key below the prefix (`routes/api`).
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The keys and values under the prefix, by key below it (`routes/api`): the resources as etcd holds them.
pub type Resources = BTreeMap<String, Vec<u8>>;

/// The most passes over the resources: each leaves out at least one more, and a change rarely breaks more
/// than a few at once.
const MAX_PASSES: usize = 32;

/// The configuration `bootstrap` (the file's own settings) makes with `resources`, and those left out.
/// `Err` when even without the resources at fault it is invalid (the file's settings themselves).
pub fn assemble(
    bootstrap: &Config,
    resources: &Resources,
    validate: &Validator,
) -> Result<(Config, Vec<Skipped>), Vec<FieldError>> {
    let mut skipped: Vec<Skipped> = Vec::new();
    for _ in 0..MAX_PASSES {
        let (document, placed) = document(bootstrap, resources, &mut skipped);
        let text = serde_json::to_vec(&document).unwrap_or_default();
        let errors = match parse_json(&text) {
            Ok(config) => match validate(&config) {
                Ok(()) => return Ok((config, skipped)),
                Err(errors) => errors,
            },
            Err(e) => e.field_errors().to_vec(),
        };
        let mut blamed = 0;
        for error in &errors {
            if let Some(key) = placed.key_at(&error.path) {
                if !skipped.iter().any(|s| s.key == key) {
                    skipped.push(Skipped {
                        key: key.to_string(),
                        reason: error.to_string(),
                    });
                    blamed += 1;
                }
            }
        }
        if blamed == 0 {
            return Err(errors);
        }
    }
    Err(vec![FieldError::new(
        "",
        "too many invalid resources in etcd",
    )])
}

/// Which key each placed resource came from, by its place in the document.
#[derive(Default)]
struct Placed {
    lists: BTreeMap<&'static str, Vec<String>>,
}

impl Placed {
    /// The key of the resource a field path (`routes[2].upstream`, `global_plugins.cors.x`) lies in.
    fn key_at(&self, path: &str) -> Option<String> {
        if let Some(rest) = path.strip_prefix("global_plugins.") {
            let name = rest.split('.').next()?;
            return Some(format!("global_plugins/{name}"));
        }
        let (section, rest) = path.split_once('[')?;
        let index: usize = rest.split(']').next()?.parse().ok()?;
        self.lists.get(section)?.get(index).cloned()
    }
}

fn document(
    bootstrap: &Config,
    resources: &Resources,
    skipped: &mut Vec<Skipped>,
) -> (Value, Placed) {
    let mut document = serde_json::to_value(bootstrap).unwrap_or(Value::Null);
    let mut placed = Placed::default();
    let mut plugins = serde_json::Map::new();
    let mut lists: BTreeMap<&'static str, Vec<Value>> = BTreeMap::new();
    for (key, value) in resources {
        if skipped.iter().any(|s| &s.key == key) {
            continue;
        }
        let Some((kind, id)) = key
            .split_once('/')
            .and_then(|(kind, id)| Some((Kind::from_segment(kind)?, id)))
            .filter(|(_, id)| !id.is_empty() && !id.contains('/'))
        else {
            // Not a resource (another tool's key under the prefix): not the gateway's business.
            continue;
        };
        let mut value: Value = match serde_json::from_slice(value) {
            Ok(value @ Value::Object(_)) => value,
            Ok(_) => {
                skipped.push(Skipped {
                    key: key.clone(),
                    reason: "the value is not a JSON object".into(),
                });
                continue;
            }
            Err(e) => {
                skipped.push(Skipped {
                    key: key.clone(),
                    reason: format!("the value is not JSON: {e}"),
                });
                continue;
            }
        };
        if kind == Kind::GlobalPlugins {
            plugins.insert(id.to_string(), value);
            continue;
        }
        match value.get("id").and_then(Value::as_str) {
            None => value["id"] = Value::String(id.to_string()),
            Some(own) if own == id => {}
            Some(own) => {
                skipped.push(Skipped {
                    key: key.clone(),
                    reason: format!("its id {own:?} is not the key's {id:?}"),
                });
                continue;
            }
        }
        lists.entry(kind.segment()).or_default().push(value);
        placed
            .lists
            .entry(kind.segment())
            .or_default()
            .push(key.clone());
    }
    if let Value::Object(fields) = &mut document {
        for (section, items) in lists {
            fields.insert(section.to_string(), Value::Array(items));
        }
        if !plugins.is_empty() {
            fields.insert("global_plugins".into(), Value::Object(plugins));
        }
    }
    (document, placed)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The file's settings of the tests: one listener.
    pub(in crate::etcd) fn bootstrap() -> Config {
        floodgate_config::parse_yaml("listeners: [{ name: a, address: \"127.0.0.1:0\" }]\n")
            .unwrap()
    }

    /// Resources from (key, value) pairs.
    pub(in crate::etcd) fn resources(pairs: &[(&str, &str)]) -> Resources {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn accept(_: &Config) -> Result<(), Vec<FieldError>> {
        Ok(())
    }

    #[test]
    fn resources_take_their_ids_from_their_keys_and_bad_ones_are_left_out() {
        let resources = resources(&[
            (
                "upstreams/u",
                r#"{"targets": [{"address": "127.0.0.1:9"}]}"#,
            ),
            ("routes/good", r#"{"paths": ["/good"], "upstream": "u"}"#),
            (
                "routes/dangling",
                r#"{"paths": ["/d"], "upstream": "missing"}"#,
            ),
            ("routes/garbled", "{not json"),
            (
                "routes/renamed",
                r#"{"id": "other", "paths": ["/r"], "upstream": "u"}"#,
            ),
            ("routes/list", "[1]"),
            ("global_plugins/cors", r#"{"allow_origins": ["*"]}"#),
            ("services/users/1", r#"{"address": "10.0.0.1:80"}"#),
        ]);
        let (config, skipped) = assemble(&bootstrap(), &resources, &accept).expect("assembled");
        let routes: Vec<&str> = config.routes.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(routes, ["good"]);
        assert_eq!(config.upstreams[0].id, "u");
        assert!(config.global_plugins.contains_key("cors"));
        let mut keys: Vec<&str> = skipped.iter().map(|s| s.key.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "routes/dangling",
                "routes/garbled",
                "routes/list",
                "routes/renamed"
            ]
        );
        let dangling = skipped.iter().find(|s| s.key == "routes/dangling").unwrap();
        assert!(
            dangling.reason.contains("no upstream with id \"missing\""),
            "{}",
            dangling.reason
        );
    }

    #[test]
    fn what_the_validator_refuses_is_left_out_by_its_path() {
        let resources = resources(&[
            (
                "routes/a",
                r#"{"paths": ["/a"], "respond": {"status": 200}}"#,
            ),
            (
                "routes/b",
                r#"{"paths": ["/b"], "respond": {"status": 200}}"#,
            ),
        ]);
        let refuse_b = |c: &Config| match c.routes.iter().position(|r| r.id == "b") {
            Some(i) => Err(vec![FieldError::new(
                format!("routes[{i}].plugins.x"),
                "bad plugin",
            )]),
            None => Ok(()),
        };
        let (config, skipped) = assemble(&bootstrap(), &resources, &refuse_b).expect("assembled");
        assert_eq!(config.routes.len(), 1);
        assert_eq!(skipped[0].key, "routes/b");
        assert_eq!(skipped[0].reason, "routes[1].plugins.x: bad plugin");
    }
}
