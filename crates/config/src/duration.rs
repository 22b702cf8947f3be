//! Durations written as human strings (`250ms`, `15s`, `1m 30s`), parsed once when the config is loaded.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::FieldError;

/// A duration given in configuration as a human string such as `250ms` or `15s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// A duration of whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    /// A duration of milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }

    /// The parsed value.
    pub fn get(self) -> Duration {
        self.0
    }

    /// Records an error at `path` when this duration is zero, for the settings where zero means
    /// nothing sensible (a timeout, an interval, a window).
    pub(crate) fn require_nonzero(self, path: impl Into<String>, errors: &mut Vec<FieldError>) {
        if self.0.is_zero() {
            errors.push(FieldError::new(path, "must be greater than zero"));
        }
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl std::str::FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s.trim()).map(Self).map_err(|e| {
            format!("invalid duration {s:?} ({e}); write it like \"250ms\" or \"15s\"")
        })
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration such as \"250ms\", \"15s\" or \"1m 30s\".",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(
            "250ms".parse::<HumanDuration>().unwrap().get(),
            Duration::from_millis(250)
        );
        assert_eq!(
            "15s".parse::<HumanDuration>().unwrap().get(),
            Duration::from_secs(15)
        );
        assert_eq!(
            "1m 30s".parse::<HumanDuration>().unwrap().get(),
            Duration::from_secs(90)
        );
    }

    #[test]
    fn rejects_bare_numbers_and_words() {
        assert!("15".parse::<HumanDuration>().is_err());
        assert!("soon".parse::<HumanDuration>().is_err());
    }
}
