//! The configuration's JSON Schema with every plugin's own: `floodgate schema` and the admin API's
//! `/floodgate/admin/schema` describe `plugins.<name>` and `credentials.<name>` field by field, so an
//! editor completes them and refuses what the gateway would.

use floodgate_config::Config;
use serde_json::{json, Value};

/// The whole schema, as JSON text.
pub fn full_schema() -> String {
    let mut schema: Value = serde_json::from_str(&Config::json_schema()).unwrap_or(Value::Null);
    let plugins = floodgate_plugins::plugin_schemas();
    let by_name = |properties: serde_json::Map<String, Value>, what: &str| {
        json!({
            "description": format!("{what}, by plugin name; see docs/plugins.md."),
            "type": "object",
            "properties": properties,
            "additionalProperties": false,
        })
    };
    let configs = by_name(plugins.configs, "Plugin configurations");
    let credentials = by_name(
        plugins.credentials,
        "Credentials of the authentication plugins",
    );
    for pointer in [
        "/properties/global_plugins",
        "/$defs/RouteConfig/properties/plugins",
        "/$defs/ConsumerConfig/properties/plugins",
    ] {
        if let Some(place) = schema.pointer_mut(pointer) {
            *place = configs.clone();
        }
    }
    if let Some(place) = schema.pointer_mut("/$defs/ConsumerConfig/properties/credentials") {
        *place = credentials;
    }
    if let Some(Value::Object(definitions)) = schema.pointer_mut("/$defs") {
        for (name, definition) in plugins.definitions {
            definitions.entry(name).or_insert(definition);
        }
    }
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}
