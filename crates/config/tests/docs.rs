//! Keeps the user documentation honest: every field of the schema is described in
//! `docs/configuration.md`, and every example file in `examples/` passes the same parser and validator
//! that `floodgate run` uses. The examples inside the docs, fragments included, are checked with the
//! plugins built too, by the proxy's `docs_examples` test.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every key of every `properties` map anywhere in the schema: the top level, `$defs`, and schemas nested
/// in `anyOf`, `items` and the like.
fn property_names(schema: &Value, names: &mut BTreeSet<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Object(properties)) = map.get("properties") {
                names.extend(properties.keys().cloned());
            }
            for value in map.values() {
                property_names(value, names);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| property_names(v, names)),
        _ => {}
    }
}

/// Every `const` string in the schema: the values of enums such as `balancer` and `hash_on`.
fn enum_values(schema: &Value, values: &mut BTreeSet<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(value)) = map.get("const") {
                values.insert(value.clone());
            }
            for value in map.values() {
                enum_values(value, values);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| enum_values(v, values)),
        _ => {}
    }
}

fn schema() -> Value {
    serde_json::from_str(&floodgate_config::Config::json_schema())
        .expect("Config::json_schema() must be valid JSON")
}

fn configuration_reference() -> String {
    read(&repo_root().join("docs/configuration.md"))
}

#[test]
fn every_schema_field_is_in_the_configuration_reference() {
    let mut names = BTreeSet::new();
    property_names(&schema(), &mut names);
    assert!(
        names.contains("max_header_bytes") && names.contains("insecure_skip_verify"),
        "the walk must reach nested $defs, found only {names:?}"
    );
    let reference = configuration_reference();
    let missing: Vec<&String> = names
        .iter()
        .filter(|name| !reference.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md does not describe these fields (write each as `name`): {missing:?}"
    );
}

#[test]
fn every_enum_value_is_in_the_configuration_reference() {
    let mut values = BTreeSet::new();
    enum_values(&schema(), &mut values);
    assert!(values.contains("consistent_hash"), "found only {values:?}");
    let reference = configuration_reference();
    let missing: Vec<&String> = values
        .iter()
        .filter(|value| !reference.contains(&format!("`{value}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md does not list these values (write each as `value`): {missing:?}"
    );
}

#[test]
fn every_example_file_is_a_valid_configuration() {
    let dir = repo_root().join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "expected the example configurations in {}, found {files:?}",
        dir.display()
    );
    let failures: Vec<String> = files
        .iter()
        .filter_map(|path| {
            floodgate_config::parse_yaml(&read(path))
                .err()
                .map(|e| format!("{}: {e}", path.display()))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn validation_error_example_in_the_reference_is_what_validation_says() {
    // The reference quotes this message as the example of the error format; keep it true.
    let err = floodgate_config::parse_yaml(
        r#"
listeners: [{ name: main, address: "127.0.0.1:8080" }]
upstreams: [{ id: users, targets: [{ address: "127.0.0.1:3000" }] }]
routes:
  - { id: a, paths: ["/a"], upstream: users }
  - { id: b, paths: ["/b"], upstream: users }
  - { id: c, paths: ["/c"], upstream: usr }
"#,
    )
    .expect_err("a route naming a missing upstream is invalid");
    let line = "routes[2].upstream: no upstream with id \"usr\"";
    assert!(err.to_string().contains(line), "{err}");
    assert!(configuration_reference().contains(line));
}
