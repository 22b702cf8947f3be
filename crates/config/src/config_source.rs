//! Where the resources (routes, upstreams, consumers, global plugins) come from: the file itself, or an
//! etcd cluster that every gateway of a fleet watches.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Config, FieldError, HumanDuration};

/// The source of the gateway's resources: `config_source: { type: etcd, etcd: {...} }`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigSource {
    /// `file`, the default: this file's `routes`, `upstreams`, `consumers` and `global_plugins`, re-read
    /// on SIGHUP. `etcd`: each resource is a key under `etcd.prefix`, and every change is applied as it
    /// is watched; the file then holds only the process's own settings (listeners, admin, limits, ...).
    #[serde(default, rename = "type")]
    pub kind: SourceKind,
    /// The etcd cluster, for `type: etcd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdSourceConfig>,
}

/// Which source `config_source.type` names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// This file.
    #[default]
    File,
    /// An etcd cluster.
    Etcd,
}

impl ConfigSource {
    /// The etcd settings when the source is etcd.
    pub fn etcd(&self) -> Option<&EtcdSourceConfig> {
        match self.kind {
            SourceKind::Etcd => self.etcd.as_ref(),
            SourceKind::File => None,
        }
    }
}

/// `config_source.etcd`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EtcdSourceConfig {
    /// The cluster's client endpoints, `http://host:port` (`host:port` alone means `http://`). At least
    /// one; the client moves to another when one fails.
    pub endpoints: Vec<String>,
    /// The key prefix the resources live under: `<prefix>/routes/<id>`, `<prefix>/upstreams/<id>`,
    /// `<prefix>/consumers/<id>`, `<prefix>/global_plugins/<name>`. Starts with `/`, no trailing `/`.
    /// Default `/floodgate`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// User name for etcd's authentication; with `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password for etcd's authentication; with `username`. Never shown by the admin API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Longest wait to connect and for each call. At start the gateway waits this long for etcd before
    /// it serves the copy on disk instead. Default 5s.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// TLS to the cluster, whose `endpoints` are then `https://`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<EtcdTlsConfig>,
    /// The copy on disk of the last configuration applied from etcd, written after each change and read
    /// at start when etcd cannot be reached. Default: the configuration file's path with
    /// `.etcd-copy.json` appended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_file: Option<String>,
}

/// TLS to etcd (`config_source.etcd.tls`, `upstreams[].discovery.etcd.tls`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EtcdTlsConfig {
    /// PEM file of the certificate authority that signed etcd's certificate (etcd's `--trusted-ca-file`
    /// side of things, as its clients see it).
    pub ca: String,
    /// PEM certificate file the gateway authenticates itself with, for a cluster started with
    /// `--client-cert-auth`; with `key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    /// Its PEM private key file; with `cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The name etcd's certificate is verified for. Default: each endpoint's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

fn default_prefix() -> String {
    "/floodgate".to_string()
}

fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(5)
}

impl Config {
    pub(crate) fn validate_config_source(&self, errors: &mut Vec<FieldError>) {
        let source = &self.config_source;
        let etcd = match (source.kind, &source.etcd) {
            (SourceKind::File, None) => return,
            (SourceKind::File, Some(_)) => {
                errors.push(FieldError::new(
                    "config_source.etcd",
                    "only with config_source.type etcd",
                ));
                return;
            }
            (SourceKind::Etcd, None) => {
                errors.push(FieldError::new(
                    "config_source.etcd",
                    "required with config_source.type etcd",
                ));
                return;
            }
            (SourceKind::Etcd, Some(etcd)) => etcd,
        };
        let at = "config_source.etcd";
        if etcd.endpoints.is_empty() {
            errors.push(FieldError::new(
                format!("{at}.endpoints"),
                "at least one endpoint is required",
            ));
        }
        if !etcd.prefix.starts_with('/') || etcd.prefix.ends_with('/') {
            errors.push(FieldError::new(
                format!("{at}.prefix"),
                "must start with \"/\" and not end with one",
            ));
        }
        check_cluster(
            at,
            &etcd.endpoints,
            etcd.username.is_some() == etcd.password.is_some(),
            etcd.tls.as_ref(),
            etcd.timeout,
            errors,
        );
    }

    /// The problems of a file that names etcd as its source: its resources live in etcd, so the file must
    /// not list any (they would be silently replaced). Empty for a file source.
    pub fn etcd_bootstrap_errors(&self) -> Vec<FieldError> {
        let Some(etcd) = self.config_source.etcd() else {
            return Vec::new();
        };
        let mut errors = Vec::new();
        let mut check = |field: &str, empty: bool| {
            if !empty {
                errors.push(FieldError::new(
                    field,
                    format!(
                        "must be empty with config_source etcd: {field} live in etcd under {}/{field}/",
                        etcd.prefix
                    ),
                ));
            }
        };
        check("upstreams", self.upstreams.is_empty());
        check("routes", self.routes.is_empty());
        check("consumers", self.consumers.is_empty());
        check("global_plugins", self.global_plugins.is_empty());
        check("certificates", self.certificates.is_empty());
        errors
    }
}

/// The settings every connection to etcd has: each endpoint `http://host:port`, a user only with a
/// password, a timeout above zero. Errors name fields under `at`.
pub(crate) fn check_cluster(
    at: &str,
    endpoints: &[String],
    credentials_paired: bool,
    tls: Option<&EtcdTlsConfig>,
    timeout: HumanDuration,
    errors: &mut Vec<FieldError>,
) {
    for (i, endpoint) in endpoints.iter().enumerate() {
        let (scheme, rest) = match endpoint.split_once("://") {
            Some((scheme, rest)) => (scheme, rest),
            None => ("http", endpoint.as_str()),
        };
        let valid = matches!(scheme, "http" | "https")
            && !rest.is_empty()
            && !rest.contains('/')
            && rest.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0)
            });
        if !valid {
            errors.push(FieldError::new(
                format!("{at}.endpoints[{i}]"),
                format!("{endpoint:?} is not http://host:port or https://host:port"),
            ));
        } else if (scheme == "https") != tls.is_some() {
            errors.push(FieldError::new(
                format!("{at}.endpoints[{i}]"),
                if tls.is_some() {
                    "must be https:// with tls"
                } else {
                    "https:// needs tls (its ca, at least)"
                },
            ));
        }
    }
    if let Some(tls) = tls {
        if tls.cert.is_some() != tls.key.is_some() {
            errors.push(FieldError::new(
                format!("{at}.tls.key"),
                "cert and key go together",
            ));
        }
    }
    if !credentials_paired {
        errors.push(FieldError::new(
            format!("{at}.password"),
            "username and password go together",
        ));
    }
    if timeout.get().is_zero() {
        errors.push(FieldError::new(
            format!("{at}.timeout"),
            "must be more than zero",
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::parse_yaml;

    fn errors(source: &str) -> Vec<String> {
        let yaml = format!(
            "listeners: [{{ name: a, address: \"127.0.0.1:0\" }}]\nconfig_source: {source}\n"
        );
        match parse_yaml(&yaml) {
            Ok(_) => Vec::new(),
            Err(e) => e.field_errors().iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn the_etcd_settings_are_checked_field_by_field() {
        assert!(errors("{ type: file }").is_empty());
        assert!(errors(
            "{ type: etcd, etcd: { endpoints: [\"http://127.0.0.1:2379\", \"10.0.0.1:2379\"] } }"
        )
        .is_empty());
        assert_eq!(
            errors("{ type: etcd }"),
            ["config_source.etcd: required with config_source.type etcd"]
        );
        assert_eq!(
            errors("{ etcd: { endpoints: [\"127.0.0.1:2379\"] } }"),
            ["config_source.etcd: only with config_source.type etcd"]
        );
        assert_eq!(
            errors("{ type: etcd, etcd: { endpoints: [], prefix: \"floodgate/\", username: u, timeout: 0s } }"),
            [
                "config_source.etcd.endpoints: at least one endpoint is required",
                "config_source.etcd.prefix: must start with \"/\" and not end with one",
                "config_source.etcd.password: username and password go together",
                "config_source.etcd.timeout: must be more than zero",
            ]
        );
        assert_eq!(
            errors("{ type: etcd, etcd: { endpoints: [\"https://x:1\", \"host\", \"h:0\"] } }"),
            [
                "config_source.etcd.endpoints[0]: https:// needs tls (its ca, at least)",
                "config_source.etcd.endpoints[1]: \"host\" is not http://host:port or https://host:port",
                "config_source.etcd.endpoints[2]: \"h:0\" is not http://host:port or https://host:port",
            ]
        );
        assert_eq!(
            errors("{ type: consul }")[0].split(':').next(),
            Some("config_source.type")
        );
    }

    #[test]
    fn tls_goes_with_https_endpoints_and_a_certificate_with_its_key() {
        assert!(errors(
            "{ type: etcd, etcd: { endpoints: [\"https://127.0.0.1:2379\"], tls: { ca: ca.pem } } }"
        )
        .is_empty());
        assert_eq!(
            errors("{ type: etcd, etcd: { endpoints: [\"127.0.0.1:2379\"], tls: { ca: ca.pem, cert: c.pem } } }"),
            [
                "config_source.etcd.endpoints[0]: must be https:// with tls",
                "config_source.etcd.tls.key: cert and key go together",
            ]
        );
    }

    #[test]
    fn a_file_naming_etcd_lists_no_resources_of_its_own() {
        let config = parse_yaml(
            "listeners: [{ name: a, address: \"127.0.0.1:0\" }]\nconfig_source: { type: etcd, etcd: { endpoints: [\"127.0.0.1:2379\"] } }\nroutes: [{ id: r, paths: [\"/\"], respond: { status: 200 } }]\n",
        )
        .expect("valid on its own");
        let errors: Vec<String> = config
            .etcd_bootstrap_errors()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errors,
            ["routes: must be empty with config_source etcd: routes live in etcd under /floodgate/routes/"]
        );
    }
}
