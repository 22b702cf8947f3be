//! Loading a configuration from YAML text, reporting every error rather than stopping at the first.
//!
//! serde stops at the first error, so each list element (every listener, upstream and route) is decoded on its
//! own: one bad route does not hide a bad upstream. Semantic checks run once everything decoded.

use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;

use crate::{
    AccessLogConfig, AdminConfig, Config, ConfigError, FieldError, Http2Config, HumanDuration,
    LimitsConfig,
};

/// The configuration `floodgate run` uses when no file is given.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("default.yaml");

/// The embedded default configuration, parsed.
pub fn default_config() -> Config {
    // The embedded file is covered by a unit test, so failing here would be a build defect; fall back to
    // an empty config rather than panic all the same.
    parse_yaml(DEFAULT_CONFIG_YAML).unwrap_or_else(|_| empty_config())
}

fn empty_config() -> Config {
    Config {
        workers: None,
        shutdown_timeout: HumanDuration::from_secs(30),
        listeners: Vec::new(),
        admin: AdminConfig::default(),
        limits: LimitsConfig::default(),
        timeouts: crate::TimeoutsConfig::default(),
        http2: Http2Config::default(),
        access_log: None,
        tracing: None,
        dns: crate::DnsConfig::default(),
        upstreams: Vec::new(),
        routes: Vec::new(),
        global_plugins: Default::default(),
        consumers: Vec::new(),
        certificates: Vec::new(),
        real_ip: Default::default(),
        config_source: Default::default(),
    }
}

/// The sections a configuration file may have at its top level.
pub const TOP_LEVEL_FIELDS: &[&str] = &[
    "workers",
    "shutdown_timeout",
    "listeners",
    "admin",
    "limits",
    "timeouts",
    "http2",
    "access_log",
    "tracing",
    "dns",
    "upstreams",
    "routes",
    "global_plugins",
    "consumers",
    "certificates",
    "real_ip",
    "config_source",
];

/// Parses and validates a YAML configuration. The error lists every problem found, each with its field path.
pub fn parse_yaml(text: &str) -> Result<Config, ConfigError> {
    let document: Value = serde_yaml_ng::from_str(text).map_err(|e| {
        ConfigError::Invalid(vec![FieldError::new("", format!("not valid YAML: {e}"))])
    })?;
    parse_document(document)
}

/// Parses and validates a configuration written as JSON (the admin API's bodies), with the same schema,
/// field paths and checks as [`parse_yaml`].
pub fn parse_json(text: &[u8]) -> Result<Config, ConfigError> {
    let document: serde_json::Value = serde_json::from_slice(text).map_err(|e| {
        ConfigError::Invalid(vec![FieldError::new("", format!("not valid JSON: {e}"))])
    })?;
    let document = serde_yaml_ng::to_value(document).map_err(|e| {
        ConfigError::Invalid(vec![FieldError::new("", format!("not valid JSON: {e}"))])
    })?;
    parse_document(document)
}

/// One item of a section (a route, an upstream, a consumer) read from JSON as [`parse_json`] reads
/// it inside a whole configuration, its errors named under `path` (`routes[3]`). The checks between
/// items (references, unique ids) are [`Config::validate`]'s.
pub fn parse_item_json<T: DeserializeOwned>(path: &str, text: &[u8]) -> Result<T, Vec<FieldError>> {
    let invalid =
        |e: &dyn std::fmt::Display| vec![FieldError::new(path, format!("not valid JSON: {e}"))];
    let document: serde_json::Value = serde_json::from_slice(text).map_err(|e| invalid(&e))?;
    let document = serde_yaml_ng::to_value(document).map_err(|e| invalid(&e))?;
    let mut errors = Vec::new();
    decode(path, document, &mut errors).ok_or(errors)
}

fn parse_document(document: Value) -> Result<Config, ConfigError> {
    let mapping = match document {
        Value::Mapping(m) => m,
        Value::Null => Default::default(),
        _ => {
            return Err(ConfigError::Invalid(vec![FieldError::new(
            "",
            "the configuration must be a mapping of sections (listeners, upstreams, routes, ...)",
        )]))
        }
    };

    let mut errors = Vec::new();
    let mut config = empty_config();
    for (key, value) in mapping {
        let Some(key) = key.as_str().map(str::to_owned) else {
            errors.push(FieldError::new(
                "",
                format!("section names must be strings, found {key:?}"),
            ));
            continue;
        };
        match key.as_str() {
            "workers" => {
                config.workers = decode::<Option<usize>>(&key, value, &mut errors).flatten()
            }
            "shutdown_timeout" => {
                if let Some(v) = decode::<HumanDuration>(&key, value, &mut errors) {
                    config.shutdown_timeout = v;
                }
            }
            "admin" => {
                if let Some(v) = decode::<Option<AdminConfig>>(&key, value, &mut errors) {
                    config.admin = v.unwrap_or_default();
                }
            }
            "limits" => {
                if let Some(v) = decode::<Option<LimitsConfig>>(&key, value, &mut errors) {
                    config.limits = v.unwrap_or_default();
                }
            }
            "timeouts" => {
                if let Some(v) = decode::<Option<crate::TimeoutsConfig>>(&key, value, &mut errors) {
                    config.timeouts = v.unwrap_or_default();
                }
            }
            "http2" => {
                if let Some(v) = decode::<Option<Http2Config>>(&key, value, &mut errors) {
                    config.http2 = v.unwrap_or_default();
                }
            }
            "access_log" => {
                config.access_log =
                    decode::<Option<AccessLogConfig>>(&key, value, &mut errors).flatten()
            }
            "tracing" => {
                config.tracing =
                    decode::<Option<crate::TracingConfig>>(&key, value, &mut errors).flatten()
            }
            "dns" => {
                if let Some(v) = decode::<Option<crate::DnsConfig>>(&key, value, &mut errors) {
                    config.dns = v.unwrap_or_default();
                }
            }
            "listeners" => config.listeners = decode_list(&key, value, &mut errors),
            "upstreams" => config.upstreams = decode_list(&key, value, &mut errors),
            "routes" => config.routes = decode_list(&key, value, &mut errors),
            "consumers" => config.consumers = decode_list(&key, value, &mut errors),
            "certificates" => config.certificates = decode_list(&key, value, &mut errors),
            "global_plugins" => {
                config.global_plugins = decode::<Option<_>>(&key, value, &mut errors)
                    .flatten()
                    .unwrap_or_default()
            }
            "config_source" => {
                if let Some(v) = decode::<Option<crate::ConfigSource>>(&key, value, &mut errors) {
                    config.config_source = v.unwrap_or_default();
                }
            }
            "real_ip" => {
                if let Some(v) = decode::<Option<crate::RealIpConfig>>(&key, value, &mut errors) {
                    config.real_ip = v.unwrap_or_default();
                }
            }
            other => errors.push(FieldError::new(
                other,
                format!(
                    "unknown field, expected one of: {}",
                    TOP_LEVEL_FIELDS.join(", ")
                ),
            )),
        }
    }
    if !errors.is_empty() {
        return Err(ConfigError::Invalid(errors));
    }
    config.validate()?;
    Ok(config)
}

/// Decodes one value, recording a path-qualified error on failure.
fn decode<T: DeserializeOwned>(
    path: &str,
    value: Value,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let inner = e.path().to_string();
            let full = if inner == "." || inner.is_empty() {
                path.to_string()
            } else if inner.starts_with('[') {
                format!("{path}{inner}")
            } else {
                format!("{path}.{inner}")
            };
            errors.push(FieldError::new(full, e.into_inner().to_string()));
            None
        }
    }
}

/// Decodes a list element by element so that each bad element is reported.
fn decode_list<T: DeserializeOwned>(
    path: &str,
    value: Value,
    errors: &mut Vec<FieldError>,
) -> Vec<T> {
    match value {
        Value::Null => Vec::new(),
        Value::Sequence(items) => items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| decode(&format!("{path}[{i}]"), item, errors))
            .collect(),
        _ => {
            errors.push(FieldError::new(path, "expected a list"));
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_reads_as_yaml_does_and_a_config_round_trips_through_it() {
        let config = parse_yaml(DEFAULT_CONFIG_YAML).expect("default");
        let json = serde_json::to_vec(&config).expect("serialize");
        assert_eq!(parse_json(&json).expect("the default as JSON"), config);
        let err = parse_json(
            br#"{"listeners": [{"name": "a", "address": "127.0.0.1:0"}],
                "routes": [{"id": "r", "paths": ["/"], "upstream": "usr"}]}"#,
        )
        .unwrap_err();
        assert_eq!(
            err.field_errors(),
            [FieldError::new(
                "routes[0].upstream",
                "no upstream with id \"usr\""
            )]
        );
        let err = parse_json(b"{\"routes\": [").unwrap_err();
        assert!(err.field_errors()[0]
            .message
            .starts_with("not valid JSON: "));
        let err = parse_json(b"[1]").unwrap_err();
        assert_eq!(err.field_errors()[0].path, "");
    }

    #[test]
    fn embedded_default_is_valid() {
        let config = parse_yaml(DEFAULT_CONFIG_YAML).expect("embedded default must be valid");
        assert_eq!(config.listeners[0].address, "127.0.0.1:8080");
        assert_eq!(config.admin.address, "127.0.0.1:9180");
        assert!(config.routes[0].respond.is_some());
    }

    #[test]
    fn reports_errors_in_several_elements() {
        let err = parse_yaml(
            r#"
listeners: [{ name: a, address: "127.0.0.1:1", colour: red }]
upstreams:
  - { id: u, targets: [{ address: "127.0.0.1:2", weight: heavy }] }
routes:
  - { id: r, paths: ["/"], upstream: u, timeout: soon }
bogus: 1
"#,
        )
        .unwrap_err();
        let paths: Vec<_> = err.field_errors().iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "listeners[0].colour",
                "upstreams[0].targets[0].weight",
                "routes[0].timeout",
                "bogus"
            ],
            "{err}"
        );
        assert!(err.to_string().contains("unknown field `colour`"), "{err}");
    }

    #[test]
    fn rejects_non_mapping_document() {
        let err = parse_yaml("- 1\n- 2\n").unwrap_err();
        assert!(err.to_string().contains("must be a mapping"), "{err}");
        let err = parse_yaml("routes: [\n").unwrap_err();
        assert!(err.to_string().contains("not valid YAML"), "{err}");
    }
}
