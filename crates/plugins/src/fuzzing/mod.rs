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

use floodgate_config::{parse_json, parse_yaml, Config};

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
