//! [`Parsed`]: the resources under the prefix, each parsed once when its key changes, so that a
//! change to one resource of thousands parses one, not thousands.
//!
//! The configuration they make is then put together from the parsed resources and checked as a
//! whole ([`Config::validate`]). Anything unusual (a value that is not a resource, a configuration
//! that does not validate) sends the caller to [`super::assemble`], which finds and leaves out the
//! resources at fault; the common case, every resource sound, never goes through it.

use std::collections::BTreeMap;
use std::sync::Arc;

use floodgate_config::{
    parse_item_json, CertificateResource, Config, ConsumerConfig, RouteConfig, UpstreamConfig,
};
use serde_json::Value;

use super::Resources;
use crate::Kind;

/// One key's resource, parsed.
#[derive(Debug, Clone)]
enum Item {
    Route(Arc<RouteConfig>),
    Upstream(Arc<UpstreamConfig>),
    Consumer(Arc<ConsumerConfig>),
    Certificate(Arc<CertificateResource>),
    /// A global plugin: its name and configuration.
    Plugin(String, Value),
    /// A key that names no kind of resource: not the gateway's business.
    Foreign,
    /// A value that is not a sound resource: [`super::assemble`] says why.
    Unsound,
}

/// The parsed resources by key below the prefix.
#[derive(Debug, Default)]
pub struct Parsed {
    items: BTreeMap<String, Item>,
    unsound: usize,
}

impl Parsed {
    /// Every resource of `resources` parsed.
    pub fn of(resources: &Resources) -> Self {
        let mut parsed = Parsed::default();
        for (key, value) in resources {
            parsed.set(key, Some(value));
        }
        parsed
    }

    /// Records the value at `key` (`None`: deleted).
    pub fn set(&mut self, key: &str, value: Option<&[u8]>) {
        let item = value.map(|value| parse(key, value));
        let was_unsound = matches!(self.items.get(key), Some(Item::Unsound));
        let is_unsound = matches!(item, Some(Item::Unsound));
        match item {
            Some(item) => self.items.insert(key.to_string(), item),
            None => self.items.remove(key),
        };
        self.unsound = self.unsound + usize::from(is_unsound) - usize::from(was_unsound);
    }

    /// The configuration `bootstrap` makes with every resource, when each is sound and together they
    /// validate; `None` otherwise. `valid`, a configuration that passed validation (the one in
    /// service), makes it a check of what changed since.
    pub fn config(&self, bootstrap: &Config, valid: Option<&Config>) -> Option<Config> {
        if self.unsound > 0 {
            return None;
        }
        let mut config = bootstrap.clone();
        let (mut routes, mut upstreams, mut consumers) = (Vec::new(), Vec::new(), Vec::new());
        let mut certificates = Vec::new();
        for item in self.items.values() {
            match item {
                Item::Route(route) => routes.push(route.clone()),
                Item::Upstream(upstream) => upstreams.push(upstream.clone()),
                Item::Consumer(consumer) => consumers.push(consumer.clone()),
                Item::Certificate(certificate) => certificates.push(certificate.clone()),
                Item::Plugin(name, value) => {
                    config.global_plugins.insert(name.clone(), value.clone());
                }
                Item::Foreign | Item::Unsound => {}
            }
        }
        // As `assemble` places them: a section with resources replaces the file's (which has none).
        if !routes.is_empty() {
            config.routes = routes;
        }
        if !upstreams.is_empty() {
            config.upstreams = upstreams;
        }
        if !consumers.is_empty() {
            config.consumers = consumers;
        }
        if !certificates.is_empty() {
            config.certificates = certificates;
        }
        match valid {
            Some(valid) => config.validate_change(valid).ok()?,
            None => config.validate().ok()?,
        }
        Some(config)
    }
}

/// The resource at `key` (`routes/api`), read as [`super::assemble`] reads it.
fn parse(key: &str, value: &[u8]) -> Item {
    let Some((kind, id)) = key
        .split_once('/')
        .and_then(|(kind, id)| Some((Kind::from_segment(kind)?, id)))
        .filter(|(_, id)| !id.is_empty() && !id.contains('/'))
    else {
        return Item::Foreign;
    };
    let Ok(mut value @ Value::Object(_)) = serde_json::from_slice::<Value>(value) else {
        return Item::Unsound;
    };
    if kind == Kind::GlobalPlugins {
        return Item::Plugin(id.to_string(), value);
    }
    match value.get("id").and_then(Value::as_str) {
        None => value["id"] = Value::String(id.to_string()),
        Some(own) if own == id => {}
        Some(_) => return Item::Unsound,
    }
    let text = value.to_string();
    let path = kind.segment();
    let item = match kind {
        Kind::Routes => parse_item_json(path, text.as_bytes()).map(|r| Item::Route(Arc::new(r))),
        Kind::Upstreams => {
            parse_item_json(path, text.as_bytes()).map(|u| Item::Upstream(Arc::new(u)))
        }
        Kind::Consumers => {
            parse_item_json(path, text.as_bytes()).map(|c| Item::Consumer(Arc::new(c)))
        }
        Kind::Certificates => {
            parse_item_json(path, text.as_bytes()).map(|c| Item::Certificate(Arc::new(c)))
        }
        Kind::GlobalPlugins => unreachable!("returned above"),
    };
    item.unwrap_or(Item::Unsound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd::assemble;
    use crate::etcd::assemble::tests::{bootstrap, resources};

    #[test]
    fn sound_resources_make_the_configuration_assemble_makes() {
        let resources = resources(&[
            (
                "upstreams/b",
                r#"{"targets": [{"address": "127.0.0.1:1"}]}"#,
            ),
            ("routes/x", r#"{"paths": ["/x/*"], "upstream": "b"}"#),
            (
                "routes/a",
                r#"{"id": "a", "paths": ["/a"], "upstream": "b", "timeout": "5s"}"#,
            ),
            (
                "global_plugins/cors",
                r#"{"allow_origins": ["https://a.example"]}"#,
            ),
            ("elsewhere/thing", "not json"),
        ]);
        let expected = assemble(&bootstrap(), &resources, &|_| Ok(())).unwrap().0;
        let mut parsed = Parsed::of(&resources);
        assert_eq!(parsed.config(&bootstrap(), None), Some(expected));
        // One change parses one resource, and the result is still what assemble makes.
        let mut changed = resources.clone();
        changed.insert(
            "routes/x".into(),
            br#"{"paths": ["/y/*"], "upstream": "b"}"#.to_vec(),
        );
        parsed.set("routes/x", changed.get("routes/x").map(Vec::as_slice));
        let expected = assemble(&bootstrap(), &changed, &|_| Ok(())).unwrap().0;
        assert_eq!(parsed.config(&bootstrap(), None), Some(expected));
    }

    #[test]
    fn anything_unsound_sends_the_caller_to_assemble() {
        let mut parsed = Parsed::of(&resources(&[
            (
                "upstreams/b",
                r#"{"targets": [{"address": "127.0.0.1:1"}]}"#,
            ),
            ("routes/x", r#"{"paths": ["/x/*"], "upstream": "b"}"#),
        ]));
        assert!(parsed.config(&bootstrap(), None).is_some());
        for bad in [
            r#"[1]"#,
            r#"{"id": "y", "paths": ["/x"]}"#,
            r#"{"paths": 3}"#,
        ] {
            parsed.set("routes/x", Some(bad.as_bytes()));
            assert_eq!(parsed.config(&bootstrap(), None), None, "{bad}");
        }
        // A route naming a missing upstream parses, but the whole does not validate.
        parsed.set(
            "routes/x",
            Some(br#"{"paths": ["/x/*"], "upstream": "nope"}"#),
        );
        assert_eq!(parsed.config(&bootstrap(), None), None);
        parsed.set("routes/x", None);
        assert!(parsed.config(&bootstrap(), None).is_some());
    }
}
