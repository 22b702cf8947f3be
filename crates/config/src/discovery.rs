//! Service discovery: an upstream whose targets are the instances registered in etcd rather than a
//! list in the configuration.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Config, FieldError, HumanDuration, UpstreamConfig};

/// `upstreams[].discovery`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// The registry in etcd.
    pub etcd: EtcdDiscoveryConfig,
}

/// `upstreams[].discovery.etcd`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EtcdDiscoveryConfig {
    /// Where instances register (`/services/users/`): each key below it is one instance, its value
    /// `{"address": "ip:port", "weight": 1, "priority": 0, "metadata": {...}}`, usually put with a lease
    /// so it goes away when the instance stops renewing it. Starts and ends with `/`.
    pub prefix: String,
    /// The cluster's client endpoints (`http://host:port`). Default: those of `config_source.etcd`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    /// User for etcd's authentication, with `password`. Default: `config_source.etcd`'s when the
    /// endpoints are its.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Its password. Never shown by the admin API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Longest wait to connect and for each call. Default 5s.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// TLS to the cluster, whose `endpoints` are then `https://`. Default: `config_source.etcd`'s,
    /// with its endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::EtcdTlsConfig>,
}

fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(5)
}

impl Config {
    /// The registry settings of `upstream`, with the endpoints and credentials of `config_source.etcd`
    /// filled in where it names none.
    pub fn discovery_of(&self, upstream: &UpstreamConfig) -> Option<EtcdDiscoveryConfig> {
        let mut etcd = upstream.discovery.as_ref()?.etcd.clone();
        if etcd.endpoints.is_empty() {
            if let Some(source) = self.config_source.etcd() {
                etcd.endpoints = source.endpoints.clone();
                if etcd.username.is_none() {
                    etcd.username = source.username.clone();
                    etcd.password = source.password.clone();
                }
                if etcd.tls.is_none() {
                    etcd.tls = source.tls.clone();
                }
            }
        }
        Some(etcd)
    }

    pub(crate) fn validate_discovery(
        &self,
        at: &str,
        upstream: &UpstreamConfig,
        errors: &mut Vec<FieldError>,
    ) {
        let Some(discovery) = &upstream.discovery else {
            if upstream.targets.is_empty() {
                errors.push(FieldError::new(
                    format!("{at}.targets"),
                    "at least one target is required (or discovery)",
                ));
            }
            return;
        };
        let etcd = &discovery.etcd;
        if !upstream.targets.is_empty() {
            errors.push(FieldError::new(
                format!("{at}.targets"),
                "leave empty with discovery: the targets are the registered instances",
            ));
        }
        if !etcd.prefix.starts_with('/') || !etcd.prefix.ends_with('/') || etcd.prefix.len() < 2 {
            errors.push(FieldError::new(
                format!("{at}.discovery.etcd.prefix"),
                "must start and end with \"/\" (\"/services/users/\")",
            ));
        }
        if etcd.endpoints.is_empty() && self.config_source.etcd().is_none() {
            errors.push(FieldError::new(
                format!("{at}.discovery.etcd.endpoints"),
                "required unless config_source is etcd",
            ));
        }
        crate::config_source::check_cluster(
            &format!("{at}.discovery.etcd"),
            &etcd.endpoints,
            etcd.username.is_some() == etcd.password.is_some(),
            etcd.tls.as_ref(),
            etcd.timeout,
            errors,
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::parse_yaml;

    fn errors(upstream: &str, source: &str) -> Vec<String> {
        let yaml = format!(
            "listeners: [{{ name: a, address: \"127.0.0.1:0\" }}]\n{source}upstreams:\n  - {upstream}\n"
        );
        match parse_yaml(&yaml) {
            Ok(_) => Vec::new(),
            Err(e) => e.field_errors().iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_discovered_upstream_lists_no_targets_and_names_its_registry() {
        assert!(errors(
            "{ id: u, discovery: { etcd: { prefix: /s/u/, endpoints: [\"127.0.0.1:2379\"] } } }",
            ""
        )
        .is_empty());
        assert_eq!(
            errors("{ id: u }", ""),
            ["upstreams[0].targets: at least one target is required (or discovery)"]
        );
        assert_eq!(
            errors("{ id: u, targets: [{ address: \"127.0.0.1:1\" }], discovery: { etcd: { prefix: /s/, endpoints: [\"127.0.0.1:2379\"] } } }", ""),
            ["upstreams[0].targets: leave empty with discovery: the targets are the registered instances"]
        );
        assert_eq!(
            errors("{ id: u, discovery: { etcd: { prefix: /s, username: x } } }", ""),
            [
                "upstreams[0].discovery.etcd.prefix: must start and end with \"/\" (\"/services/users/\")",
                "upstreams[0].discovery.etcd.endpoints: required unless config_source is etcd",
                "upstreams[0].discovery.etcd.password: username and password go together",
            ]
        );
        let source = "config_source: { type: etcd, etcd: { endpoints: [\"127.0.0.1:2379\"], username: fg, password: pw } }\n";
        assert!(errors("{ id: u, discovery: { etcd: { prefix: /s/ } } }", source).is_empty());
        let config = parse_yaml(&format!(
            "listeners: [{{ name: a, address: \"127.0.0.1:0\" }}]\n{source}"
        ))
        .unwrap();
        let upstream: crate::UpstreamConfig =
            serde_yaml_ng::from_str("{ id: u, discovery: { etcd: { prefix: /s/ } } }").unwrap();
        let settings = config.discovery_of(&upstream).expect("discovered");
        assert_eq!(settings.endpoints, ["127.0.0.1:2379"]);
        assert_eq!(settings.username.as_deref(), Some("fg"));
    }
}
