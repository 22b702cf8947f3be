//! Reading a configuration file, and what in a valid one deserves an operator's attention.

use std::path::Path;

use floodgate_config::{parse_yaml, Config, ConfigError, FieldError};

/// The configuration in the YAML file at `path`, validated.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_yaml(&text)
}

/// What is worth an operator's attention in a valid configuration.
pub fn warnings(config: &Config) -> Vec<FieldError> {
    config.method_gap_warnings(floodgate_plugins::AUTHENTICATING_PLUGINS)
}

/// Logs [`warnings`].
pub fn log_warnings(config: &Config) {
    for warning in warnings(config) {
        tracing::warn!("configuration: {warning}");
    }
}

/// Logs the [`warnings`] of `config` that `running`, the configuration it replaces, did not have
/// (so a change logs what it brings, not every warning again, and costs what it changes).
pub fn log_new_warnings(config: &Config, running: &Config) {
    for warning in
        config.new_method_gap_warnings(floodgate_plugins::AUTHENTICATING_PLUGINS, running)
    {
        tracing::warn!("configuration: {warning}");
    }
}
