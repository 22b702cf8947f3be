//! Secrets in a configuration, which the admin API never returns: the admin key, plugins' shared secrets,
//! consumers' credentials and certificates' private keys. A GET shows [`MASK`] in their place; a configuration written back with
//! [`MASK`] where a secret was keeps the secret it replaced, so a read, edit and write round trip loses
//! nothing.

use std::collections::HashMap;

use floodgate_config::FieldError;
use serde_json::Value;

/// What a GET shows in place of a secret.
pub const MASK: &str = "******";

/// The fields of a consumer's credential that are secrets, whichever plugin it is for.
const CREDENTIAL_SECRETS: &[&str] = &["key", "password", "password_hash", "secret"];

/// Replaces every secret in `config` (a configuration as JSON) with [`MASK`].
pub fn mask(config: &mut Value) {
    each_secret(config, &mut |_, _, secret| {
        if secret.as_str().is_some_and(|s| !s.is_empty()) {
            *secret = Value::String(MASK.to_string());
        }
    });
}

/// Puts back, in `new`, each secret written as [`MASK`] from the same place in `current` (places are
/// found by resource id, not position, so reordering routes keeps their secrets). A [`MASK`] with no
/// secret to keep is an error at its field path.
pub fn keep_masked(new: &mut Value, current: &Value) -> Result<(), Vec<FieldError>> {
    let mut current = current.clone();
    let mut held: HashMap<String, Value> = HashMap::new();
    each_secret(&mut current, &mut |_, key, secret| {
        held.insert(key.to_string(), secret.clone());
    });
    let mut errors = Vec::new();
    each_secret(new, &mut |path, key, secret| {
        if secret.as_str() != Some(MASK) {
            return;
        }
        match held.get(key) {
            Some(kept) => *secret = kept.clone(),
            None => errors.push(FieldError::new(
                path,
                format!("{MASK:?} keeps a secret only where the running configuration has one"),
            )),
        }
    });
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Calls `f(path, key, value)` for every secret field present in `config`: `path` as error messages write
/// it (`consumers[2].credentials.key-auth.key`), `key` naming the place by resource id.
fn each_secret(config: &mut Value, f: &mut dyn FnMut(&str, &str, &mut Value)) {
    let Some(config) = config.as_object_mut() else {
        return;
    };
    if let Some(key) = config
        .get_mut("admin")
        .and_then(|admin| admin.get_mut("api_key"))
    {
        f("admin.api_key", "admin.api_key", key);
    }
    if let Some(password) = config
        .get_mut("config_source")
        .and_then(|source| source.get_mut("etcd"))
        .and_then(|etcd| etcd.get_mut("password"))
    {
        f(
            "config_source.etcd.password",
            "config_source.etcd.password",
            password,
        );
    }
    if let Some(Value::Object(plugins)) = config.get_mut("global_plugins") {
        plugin_secrets(plugins, "global_plugins", "global_plugins", f);
    }
    each_item(config, "upstreams", &mut |path, key, upstream| {
        if let Some(password) = upstream
            .get_mut("discovery")
            .and_then(|d| d.get_mut("etcd"))
            .and_then(|etcd| etcd.get_mut("password"))
        {
            f(
                &format!("{path}.discovery.etcd.password"),
                &format!("{key}/discovery/etcd/password"),
                password,
            );
        }
    });
    each_item(config, "certificates", &mut |path, key, certificate| {
        if let Some(private_key) = certificate.get_mut("key") {
            f(&format!("{path}.key"), &format!("{key}/key"), private_key);
        }
    });
    for section in ["routes", "consumers"] {
        each_item(config, section, &mut |path, key, item| {
            if let Some(Value::Object(plugins)) = item.get_mut("plugins") {
                plugin_secrets(
                    plugins,
                    &format!("{path}.plugins"),
                    &format!("{key}/plugins"),
                    f,
                );
            }
            let Some(Value::Object(credentials)) = item.get_mut("credentials") else {
                return;
            };
            for (plugin, credential) in credentials.iter_mut() {
                let Some(fields) = credential.as_object_mut() else {
                    continue;
                };
                for (field, value) in fields.iter_mut() {
                    if CREDENTIAL_SECRETS.contains(&field.as_str()) {
                        f(
                            &format!("{path}.credentials.{plugin}.{field}"),
                            &format!("{key}/credentials/{plugin}/{field}"),
                            value,
                        );
                    }
                }
            }
        });
    }
}

/// Calls `f(path, key, item)` for each item of the list `section` of `config`: `path` its place
/// (`routes[2]`), `key` its place by id (`routes/api`).
fn each_item(
    config: &mut serde_json::Map<String, Value>,
    section: &str,
    f: &mut dyn FnMut(&str, &str, &mut Value),
) {
    let Some(Value::Array(items)) = config.get_mut(section) else {
        return;
    };
    for (i, item) in items.iter_mut().enumerate() {
        let id = item
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        f(&format!("{section}[{i}]"), &format!("{section}/{id}"), item);
    }
}

fn plugin_secrets(
    plugins: &mut serde_json::Map<String, Value>,
    path: &str,
    key: &str,
    f: &mut dyn FnMut(&str, &str, &mut Value),
) {
    for (name, plugin) in plugins.iter_mut() {
        if let Some(secret) = plugin.get_mut("secret") {
            f(
                &format!("{path}.{name}.secret"),
                &format!("{key}/{name}/secret"),
                secret,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn with_secrets() -> Value {
        json!({
            "admin": { "address": "127.0.0.1:9180", "api_key": "admin-key" },
            "config_source": { "type": "etcd", "etcd": { "endpoints": ["127.0.0.1:2379"], "username": "fg", "password": "etcd-pass" } },
            "upstreams": [ { "id": "users", "discovery": { "etcd": { "prefix": "/s/", "username": "u", "password": "registry-pass" } } } ],
            "global_plugins": { "jwt-auth": { "algorithms": ["HS256"], "secret": "global-secret" } },
            "routes": [
                { "id": "r", "plugins": { "jwt-auth": { "secret": "route-secret" }, "rate-limit": { "key": "consumer" } } }
            ],
            "consumers": [
                { "id": "alice", "credentials": {
                    "key-auth": { "key": "alice-key" },
                    "basic-auth": { "username": "alice", "password_hash": "$2b$hash" }
                } }
            ],
            "certificates": [ { "id": "site", "cert": "-----BEGIN CERTIFICATE-----", "key": "private-key-pem" } ]
        })
    }

    #[test]
    fn every_secret_is_masked_and_nothing_else() {
        let mut config = with_secrets();
        mask(&mut config);
        let text = config.to_string();
        for secret in [
            "admin-key",
            "global-secret",
            "route-secret",
            "alice-key",
            "$2b$hash",
            "private-key-pem",
        ] {
            assert!(!text.contains(secret), "{secret} shown in {text}");
        }
        assert_eq!(config["admin"]["api_key"], MASK);
        assert_eq!(config["certificates"][0]["key"], MASK);
        assert_eq!(
            config["certificates"][0]["cert"],
            "-----BEGIN CERTIFICATE-----"
        );
        assert_eq!(config["config_source"]["etcd"]["username"], "fg");
        assert_eq!(
            config["consumers"][0]["credentials"]["key-auth"]["key"],
            MASK
        );
        // A rate limit's `key` names what it counts by: not a secret.
        assert_eq!(
            config["routes"][0]["plugins"]["rate-limit"]["key"],
            "consumer"
        );
        assert_eq!(
            config["consumers"][0]["credentials"]["basic-auth"]["username"],
            "alice"
        );
    }

    #[test]
    fn a_masked_value_written_back_keeps_the_secret_even_when_resources_move() {
        let current = with_secrets();
        let mut new = current.clone();
        mask(&mut new);
        // A new route first: the masked route's secret is found by id, not position.
        new["routes"]
            .as_array_mut()
            .unwrap()
            .insert(0, json!({ "id": "first" }));
        new["consumers"][0]["credentials"]["key-auth"]["key"] = json!("new-key");
        keep_masked(&mut new, &current).expect("every mask has a secret to keep");
        assert_eq!(
            new["routes"][1]["plugins"]["jwt-auth"]["secret"],
            "route-secret"
        );
        assert_eq!(new["admin"]["api_key"], "admin-key");
        assert_eq!(
            new["consumers"][0]["credentials"]["key-auth"]["key"],
            "new-key"
        );
    }

    #[test]
    fn a_mask_where_nothing_was_secret_is_refused_at_its_path() {
        let current = json!({ "consumers": [] });
        let mut new = json!({ "consumers": [ { "id": "bob", "credentials": { "key-auth": { "key": MASK } } } ] });
        let errors = keep_masked(&mut new, &current).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "consumers[0].credentials.key-auth.key");
    }
}
