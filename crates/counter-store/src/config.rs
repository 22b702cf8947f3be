//! [`RedisConfig`]: where a fleet's shared counters live.

use std::path::PathBuf;

use floodgate_config::HumanDuration;
use redis::IntoConnectionInfo;
use serde::Deserialize;

/// A Redis store: exactly one of `url`, `sentinel` or `cluster`.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// One server: `redis://[[user]:password@]host:port[/db]`, or `rediss://` for TLS.
    #[serde(default)]
    pub url: Option<String>,
    /// A master found through Redis Sentinel.
    #[serde(default)]
    pub sentinel: Option<SentinelConfig>,
    /// A Redis Cluster: the URLs of some of its nodes (`redis://` or `rediss://`, with AUTH in
    /// them as for `url`).
    #[serde(default)]
    pub cluster: Option<Vec<String>>,
    /// Trust and client identity for `rediss://` URLs. Default: the system's trusted roots, no
    /// client certificate.
    #[serde(default)]
    pub tls: Option<RedisTls>,
    /// How long connecting, or one batch's round trip, may take before the store counts as
    /// unreachable. Default `500ms`.
    #[serde(default = "default_timeout")]
    #[schemars(with = "String")]
    pub timeout: HumanDuration,
    /// The start of every key written. Default `floodgate:rate-limit`.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
}

/// `sentinel`: the master named `master`, as the sentinels at `urls` report it.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SentinelConfig {
    /// The sentinels: `redis://host:port` (a password in the URL is the sentinels' own).
    pub urls: Vec<String>,
    /// The name the sentinels know the master by.
    pub master: String,
    /// The master's password (AUTH), when it has one.
    #[serde(default)]
    pub password: Option<String>,
    /// The master's database number. Default 0.
    #[serde(default)]
    pub db: i64,
    /// Whether the master speaks TLS.
    #[serde(default)]
    pub tls: bool,
}

/// `tls`: PEM files for `rediss://` connections.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisTls {
    /// CA certificates to trust instead of the system's roots.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// A client certificate chain, for servers that ask for one (with `key`).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key.
    #[serde(default)]
    pub key: Option<PathBuf>,
}

fn default_timeout() -> HumanDuration {
    HumanDuration::from_millis(500)
}

fn default_key_prefix() -> String {
    "floodgate:rate-limit".to_string()
}

impl RedisConfig {
    /// A store at `url` with every other field at its default.
    pub fn at_url(url: impl Into<String>) -> Self {
        Self {
            url: Some(url.into()),
            sentinel: None,
            cluster: None,
            tls: None,
            timeout: default_timeout(),
            key_prefix: default_key_prefix(),
        }
    }

    /// The problems of this configuration, each as (field under the `redis` block, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let given = [
            self.url.is_some(),
            self.sentinel.is_some(),
            self.cluster.is_some(),
        ];
        match given.iter().filter(|&&g| g).count() {
            0 => problems.push((
                String::new(),
                "one of url, sentinel or cluster is required".into(),
            )),
            1 => {}
            _ => problems.push((
                String::new(),
                "only one of url, sentinel or cluster may be given".into(),
            )),
        }
        if let Some(url) = &self.url {
            check_url("url", url, &mut problems);
        }
        if let Some(sentinel) = &self.sentinel {
            if sentinel.urls.is_empty() {
                problems.push((
                    "sentinel.urls".into(),
                    "at least one sentinel is required".into(),
                ));
            }
            for (i, url) in sentinel.urls.iter().enumerate() {
                check_url(&format!("sentinel.urls[{i}]"), url, &mut problems);
            }
            if sentinel.master.is_empty() {
                problems.push(("sentinel.master".into(), "must not be empty".into()));
            }
        }
        if let Some(nodes) = &self.cluster {
            if nodes.is_empty() {
                problems.push(("cluster".into(), "at least one node is required".into()));
            }
            for (i, url) in nodes.iter().enumerate() {
                check_url(&format!("cluster[{i}]"), url, &mut problems);
            }
        }
        if let Some(tls) = &self.tls {
            if tls.cert.is_some() != tls.key.is_some() {
                problems.push(("tls".into(), "cert and key go together".into()));
            }
            for (field, path) in [
                ("tls.ca", &tls.ca),
                ("tls.cert", &tls.cert),
                ("tls.key", &tls.key),
            ] {
                if let Some(path) = path {
                    if let Err(e) = std::fs::metadata(path) {
                        problems.push((field.into(), format!("{}: {e}", path.display())));
                    }
                }
            }
        }
        if self.timeout.0.is_zero() {
            problems.push(("timeout".into(), "must be more than 0".into()));
        }
        if self.key_prefix.is_empty() || self.key_prefix.contains(['{', '}']) {
            problems.push((
                "key_prefix".into(),
                "must be non-empty and hold no braces (they make the Cluster hash tag)".into(),
            ));
        }
        problems
    }

    /// What locates the store and authenticates to it, for a secret every gateway of a fleet
    /// configured alike shares.
    pub fn secret_material(&self) -> String {
        let mut out = String::new();
        out.extend(self.url.iter().map(String::as_str));
        if let Some(s) = &self.sentinel {
            out.push_str(&s.urls.join(","));
            out.push_str(&s.master);
            out.extend(s.password.iter().map(String::as_str));
        }
        if let Some(nodes) = &self.cluster {
            out.push_str(&nodes.join(","));
        }
        out
    }
}

fn check_url(field: &str, url: &str, problems: &mut Vec<(String, String)>) {
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        problems.push((field.into(), "must start with redis:// or rediss://".into()));
        return;
    }
    if let Err(e) = url.into_connection_info() {
        // The URL may hold a password: the message names the field, not the URL.
        problems.push((field.into(), format!("not a Redis URL ({})", e.category())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_alone_is_enough() {
        assert!(RedisConfig::at_url("redis://:pw@127.0.0.1:6379/0")
            .problems()
            .is_empty());
        assert!(RedisConfig::at_url("rediss://127.0.0.1:6380")
            .problems()
            .is_empty());
    }

    #[test]
    fn problems_name_their_fields() {
        let mut config = RedisConfig::at_url("http://127.0.0.1");
        config.cluster = Some(vec!["redis://x:notaport".into()]);
        config.key_prefix = "a{b}".into();
        let fields: Vec<String> = config.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["", "url", "cluster[0]", "key_prefix"]);
        let none = RedisConfig {
            url: None,
            ..RedisConfig::at_url("")
        };
        assert_eq!(
            none.problems()[0].1,
            "one of url, sentinel or cluster is required"
        );
    }
}
