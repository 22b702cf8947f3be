//! The properties the fuzz targets check (`fuzz/`), one function per parser of untrusted bytes. Each
//! takes any input and panics only when a property fails: that panic is the finding.
//!
//! They live in the library, not in the fuzz crate, so that the same checks also run as ordinary tests
//! (over the committed corpus and a bounded number of generated inputs, `tests/fuzz_corpus.rs`), on
//! toolchains without the fuzzer's sanitizers. Where a property compares with a reference, the
//! reference is written here from the specification, independently of the code under test.
//!
//! - `auth`: credentials through built `jwt-auth` and `basic-auth` instances.
//! - `fields`: client addresses behind proxies, query parameters, token sources, path parameters.

mod auth;
mod fields;

use std::sync::Arc;

use floodgate_config::{
    parse_item_json, parse_json, parse_yaml, CertificateResource, Config, ConsumerConfig,
    RouteConfig, UpstreamConfig,
};

pub use auth::{basic_authorization, jwks_document, jwt_token};
pub use fields::{forwarded_for, path_params, query_param, token_sources};

use crate::{build_plugins, StateStore};

/// Configurations: YAML parsing and every plugin's build never panic; a refused configuration names at
/// least one error, each with a message, and an accepted one has a chain slot for every route.
pub fn config_yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `*_file` fields are read when the configuration is built: the fuzzer must not make it read
    // `/dev/zero` or its own input, and what those files hold is the PEM parser's business.
    if text.contains("_file") {
        return;
    }
    let Ok(config) = parse_yaml(text) else {
        return;
    };
    check_build(&config);
}

/// Configurations as the admin API reads them (JSON): parsing never panics; an accepted one builds as
/// [`config_yaml`] requires, and written out as JSON it reads back as the same configuration, so what a
/// GET shows can be posted back unchanged.
pub fn config_json(data: &[u8]) {
    if data.windows(5).any(|w| w == b"_file") {
        return;
    }
    let Ok(config) = parse_json(data) else {
        return;
    };
    let written = serde_json::to_vec(&config).expect("a configuration always serializes");
    match parse_json(&written) {
        Ok(again) => assert_eq!(again, config, "JSON round trip changed the configuration"),
        Err(e) => panic!("an accepted configuration, written out, is refused: {e}"),
    }
    check_build(&config);
}

/// One resource as the admin API's writes and the etcd source read it (`parse_item_json`, one
/// route, upstream, consumer or certificate alone): parsing never panics; an accepted resource written
/// out reads back the same; and a resource refused alone is refused inside a whole configuration too,
/// so the two ways of reading a resource never disagree on what is well formed.
pub fn config_resource_json(data: &[u8]) {
    if data.windows(5).any(|w| w == b"_file") {
        return;
    }
    resource_round_trip::<RouteConfig>("routes", data);
    resource_round_trip::<UpstreamConfig>("upstreams", data);
    resource_round_trip::<ConsumerConfig>("consumers", data);
    resource_round_trip::<CertificateResource>("certificates", data);
}

fn resource_round_trip<T>(section: &str, data: &[u8])
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    let path = format!("{section}[0]");
    match parse_item_json::<T>(&path, data) {
        Ok(item) => {
            let written = serde_json::to_vec(&item).expect("a resource always serializes");
            match parse_item_json::<T>(&path, &written) {
                Ok(again) => assert_eq!(again, item, "JSON round trip changed the {section} item"),
                Err(e) => panic!("an accepted {section} item, written out, is refused: {e:?}"),
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "a refused item says why");
            let Ok(item) = serde_json::from_slice::<serde_json::Value>(data) else {
                return;
            };
            let whole = serde_json::json!({
                "listeners": [{ "name": "a", "address": "127.0.0.1:1" }],
                section: [item],
            });
            let text = serde_json::to_vec(&whole).expect("JSON");
            assert!(
                parse_json(&text).is_err(),
                "a {section} item refused alone ({errors:?}) is accepted in a configuration"
            );
        }
    }
}

fn check_build(config: &Config) {
    match build_plugins(config, &StateStore::new(), None, &Arc::default()) {
        Ok(set) => assert_eq!(set.routes.len(), config.routes.len(), "a slot per route"),
        Err(errors) => {
            assert!(!errors.is_empty(), "a refused configuration says why");
            for error in &errors {
                assert!(!error.message.is_empty(), "an error without a message");
            }
        }
    }
}
