//! Every YAML example in the documentation goes through the parser, the validator and the snapshot
//! build (plugins included) that `floodgate run` uses. A fragment (only `routes:`, one plugin's
//! settings) is completed first: a listener, and an upstream for each id it names, are added.
//! Examples that start with `# invalid` show what validation refuses, and must be refused.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use floodgate_observe::Metrics;
use floodgate_proxy::{BuildInputs, Snapshot};
use serde_json::{json, Value};

/// A route's fields: an example of only these is a route's (`headers` is a route field before it is
/// a plugin).
const ROUTE_FIELDS: &[&str] = &[
    "hosts",
    "paths",
    "methods",
    "headers",
    "timeout",
    "preserve_host",
    "max_body_bytes",
    "upgrades",
    "method_override",
    "retries",
];

fn docs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.push(root.join("README.md"));
    files.sort();
    files
}

fn yaml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match current.as_mut() {
            None if line.trim_end() == "```yaml" => current = Some(String::new()),
            None => {}
            Some(_) if line.trim_end() == "```" => blocks.extend(current.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    blocks
}

/// Every string under a key named `key`, anywhere in `value`.
fn strings_under(value: &Value, key: &str, found: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == key {
                    if let Value::String(s) = v {
                        found.insert(s.clone());
                    }
                }
                strings_under(v, key, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| strings_under(v, key, found)),
        _ => {}
    }
}

/// The example as a whole configuration.
fn completed(block: &Value) -> Value {
    let Value::Object(map) = block else {
        panic!("an example that is not a mapping: {block}");
    };
    let mut config = if map
        .keys()
        .all(|k| floodgate_config::TOP_LEVEL_FIELDS.contains(&k.as_str()))
    {
        block.clone()
    } else if !map.keys().all(|k| ROUTE_FIELDS.contains(&k.as_str()))
        && map.keys().all(|k| {
            floodgate_plugins::PLUGIN_PRIORITIES
                .iter()
                .any(|(n, _)| n == k)
        })
    {
        // One plugin's settings: on a route of its own.
        json!({ "routes": [{ "id": "example", "paths": ["/*"], "upstream": "example", "plugins": block }] })
    } else {
        // A route's fields.
        let mut route = map.clone();
        route.insert("id".into(), json!("example"));
        route.insert("paths".into(), json!(["/*"]));
        route.insert("upstream".into(), json!("example"));
        json!({ "routes": [route] })
    };
    let object = config.as_object_mut().unwrap();
    object
        .entry("listeners")
        .or_insert_with(|| json!([{ "name": "example", "address": "127.0.0.1:0" }]));
    let mut named = BTreeSet::new();
    if let Some(routes) = object.get("routes") {
        strings_under(routes, "upstream", &mut named);
    }
    strings_under(&Value::Object(object.clone()), "upstream_id", &mut named);
    let upstreams = object.entry("upstreams").or_insert_with(|| json!([]));
    let defined: BTreeSet<String> = upstreams
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["id"].as_str().map(str::to_owned))
        .collect();
    for id in named.difference(&defined) {
        upstreams
            .as_array_mut()
            .unwrap()
            .push(json!({ "id": id, "targets": [{ "address": "127.0.0.1:1" }] }));
    }
    config
}

/// Problems that only mean the example names a file or a key the reader has and this test has not.
fn names_a_missing_file(message: &str) -> bool {
    message.contains("No such file") || message.contains("cannot read")
}

#[test]
fn every_yaml_example_in_the_docs_is_a_valid_configuration() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in docs() {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, block) in yaml_blocks(&text).iter().enumerate() {
            let invalid = block.trim_start().starts_with("# invalid");
            let parsed: Value = match serde_yaml_ng::from_str(block) {
                Ok(value) => value,
                Err(e) => {
                    failures.push(format!("{}[{i}]: not YAML: {e}", file.display()));
                    continue;
                }
            };
            let config = completed(&parsed);
            let outcome = floodgate_config::parse_yaml(&config.to_string())
                .map_err(|e| e.to_string())
                .and_then(|config| {
                    Snapshot::build(
                        &config,
                        &Metrics::new(1),
                        1,
                        None,
                        BuildInputs::validating(),
                    )
                    .map(|_| ())
                    .map_err(|errors| {
                        let real: Vec<String> = errors
                            .iter()
                            .map(ToString::to_string)
                            .filter(|e| !names_a_missing_file(e))
                            .collect();
                        real.join("; ")
                    })
                    .or_else(|e| if e.is_empty() { Ok(()) } else { Err(e) })
                });
            checked += 1;
            match (invalid, outcome) {
                (false, Err(e)) => failures.push(format!("{}[{i}]: {e}\n{block}", file.display())),
                (true, Ok(())) => failures.push(format!(
                    "{}[{i}]: `# invalid` example accepted",
                    file.display()
                )),
                _ => {}
            }
        }
    }
    assert!(checked >= 40, "found only {checked} examples");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
