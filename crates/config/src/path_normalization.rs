//! How a listener normalises request paths before routing, and what it forwards.
//!
//! Routes gate access by path, so the path they match must be the one an upstream will act on: a
//! `/app/internal/*` deny route means nothing if `/app/%69nternal/x` or `/app//internal/x` reaches an
//! upstream that reads both as `/app/internal/x`. The rules follow Envoy's `normalize_path`,
//! `merge_slashes` and `path_with_escaped_slashes_action`, with a stricter default for encoded slashes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Path normalisation of one listener's requests.
///
/// Percent-encoded unreserved characters are always decoded, the hex of the other escapes uppercased,
/// and `.`/`..` segments resolved (RFC 3986 §6.2.2 and §5.2.4); these are not optional because an
/// upstream may do the same and so act on a path the routes never saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PathNormalizationConfig {
    /// Merge repeated slashes (`/a//b` becomes `/a/b`) before routing.
    #[serde(default = "default_merge_slashes")]
    pub merge_slashes: bool,
    /// What to do with `%2F` and `%5C` (encoded `/` and `\`) in a path.
    #[serde(default)]
    pub escaped_slashes: EscapedSlashes,
    /// What to do with `;` path parameters (and `%3B`) in a path.
    #[serde(default)]
    pub semicolons: Semicolons,
    /// Which path the upstream receives: the normalised one routing used, or the client's original.
    #[serde(default)]
    pub forward: ForwardPath,
}

impl Default for PathNormalizationConfig {
    fn default() -> Self {
        Self {
            merge_slashes: default_merge_slashes(),
            escaped_slashes: EscapedSlashes::default(),
            semicolons: Semicolons::default(),
            forward: ForwardPath::default(),
        }
    }
}

fn default_merge_slashes() -> bool {
    true
}

/// The handling of encoded slashes (`%2F`) and backslashes (`%5C`) in a path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EscapedSlashes {
    /// Answer 400. The default: upstreams disagree on whether `%2F` separates segments, so a path that
    /// holds one can route as one thing and be served as another.
    #[default]
    Refuse,
    /// Leave it encoded (hex uppercased); it does not separate segments for routing.
    Keep,
    /// Decode it to `/`, then merge slashes and resolve dot segments again.
    Decode,
}

/// The handling of `;` in a path, which servlet containers (Tomcat, Jetty) and Spring read as the
/// start of a segment's parameters and remove, on the raw path, before decoding and resolving dot
/// segments: they serve `/admin;x/secret` and `/public/..;/admin/secret` as `/admin/secret`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Semicolons {
    /// Answer 400 for a `;` or a `%3B` in the path, as Spring Security's `StrictHttpFirewall` does. The
    /// default: routing cannot know whether the upstream strips parameters, and a path routed one way
    /// must not be served as another.
    #[default]
    Refuse,
    /// Remove each segment's parameters (from a `;` to the end of its segment) before anything else,
    /// as servlet containers do, so routing and the upstream see the same path. An encoded `%3B` is
    /// refused (400): an upstream that decodes before it strips would read it as a delimiter.
    Strip,
    /// Leave `;` as an ordinary character of its segment, for upstreams that do not strip parameters.
    Keep,
}

/// The path a forwarded request carries upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ForwardPath {
    /// The normalised path, the one routing matched (the query is never changed).
    #[default]
    Normalized,
    /// The path exactly as the client sent it.
    Original,
}

#[cfg(test)]
mod tests {
    use super::{EscapedSlashes, ForwardPath, PathNormalizationConfig, Semicolons};

    #[test]
    fn defaults_are_the_safe_choices() {
        let config: PathNormalizationConfig = serde_yaml_ng::from_str("{}").unwrap();
        assert_eq!(config, PathNormalizationConfig::default());
        assert!(config.merge_slashes);
        assert_eq!(config.escaped_slashes, EscapedSlashes::Refuse);
        assert_eq!(config.semicolons, Semicolons::Refuse);
        assert_eq!(config.forward, ForwardPath::Normalized);
    }

    #[test]
    fn every_field_is_read() {
        let config: PathNormalizationConfig = serde_yaml_ng::from_str(
            "{ merge_slashes: false, escaped_slashes: decode, semicolons: strip, forward: original }",
        )
        .unwrap();
        assert!(!config.merge_slashes);
        assert_eq!(config.escaped_slashes, EscapedSlashes::Decode);
        assert_eq!(config.semicolons, Semicolons::Strip);
        assert_eq!(config.forward, ForwardPath::Original);
    }

    #[test]
    fn unknown_fields_and_values_are_errors() {
        assert!(serde_yaml_ng::from_str::<PathNormalizationConfig>("{ merge: true }").is_err());
        assert!(
            serde_yaml_ng::from_str::<PathNormalizationConfig>("{ escaped_slashes: split }")
                .is_err()
        );
        assert!(
            serde_yaml_ng::from_str::<PathNormalizationConfig>("{ semicolons: drop }").is_err()
        );
    }
}
