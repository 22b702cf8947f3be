//! The access log's settings: where lines go, their format (JSON, or a text template with nginx-style
//! `$variables`), and how many successful requests are kept.
//!
//! A template is parsed when the configuration is loaded, so an unknown variable is a load error at
//! `access_log.format`, and the writer renders from typed parts without looking names up per line.

use std::borrow::Cow;
use std::fmt;

use http::HeaderName;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::FieldError;

/// nginx's `combined` format, the default text format.
pub const COMBINED_TEMPLATE: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#;

/// nginx's `common` format (the Common Log Format).
pub const COMMON_TEMPLATE: &str =
    r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent"#;

/// Where the access log goes and what its lines look like. Lines are written by a background thread,
/// never on the request path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessLogConfig {
    /// File to append lines to; `-` (or `stdout`) writes to standard output and `stderr` to standard
    /// error. A file is reopened on SIGUSR1, after logrotate has moved it (write `./stderr` for a file
    /// of that name).
    pub path: String,
    /// Line format: `json` (the default; one object per line), `combined` or `common` (nginx's), or a
    /// template of text and nginx-style variables such as `$remote_addr "$request" $status
    /// $request_time` (docs/operations.md lists them).
    #[serde(default)]
    pub format: AccessLogFormat,
    /// Share of successful requests (status below 400) that are logged, from 0 to 1; requests that
    /// failed are always logged. 1, the default, logs every request.
    #[serde(default = "one")]
    pub success_sample_ratio: f64,
}

fn one() -> f64 {
    1.0
}

impl AccessLogConfig {
    pub(crate) fn validate(&self, errors: &mut Vec<FieldError>) {
        if self.path.is_empty() {
            errors.push(FieldError::new(
                "access_log.path",
                "must name a file, `-` or `stderr`",
            ));
        }
        if !(0.0..=1.0).contains(&self.success_sample_ratio) {
            errors.push(FieldError::new(
                "access_log.success_sample_ratio",
                format!("must be between 0 and 1, got {}", self.success_sample_ratio),
            ));
        }
    }
}

/// The shape of an access log line.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum AccessLogFormat {
    /// One JSON object per line (docs/operations.md lists its keys).
    #[default]
    Json,
    /// A text line rendered from a template.
    Text(LogTemplate),
}

impl AccessLogFormat {
    /// The request fields a line of this format reads, which the proxy copies while the request is at
    /// hand (none for JSON).
    pub fn captured_headers(&self) -> &[HeaderName] {
        match self {
            AccessLogFormat::Json => &[],
            AccessLogFormat::Text(template) => &template.headers,
        }
    }

    fn parse(text: &str) -> Result<AccessLogFormat, String> {
        match text {
            "json" => Ok(AccessLogFormat::Json),
            // A named format keeps its name, so the configuration reads back as it was written.
            "combined" | "common" => {
                let template = if text == "combined" { COMBINED_TEMPLATE } else { COMMON_TEMPLATE };
                let mut parsed = LogTemplate::parse(template)?;
                parsed.source = text.to_owned();
                Ok(AccessLogFormat::Text(parsed))
            }
            _ if !text.contains('$') => Err(format!(
                "unknown format {text:?}: write json, combined, common, or a template with $variables"
            )),
            _ => LogTemplate::parse(text).map(AccessLogFormat::Text),
        }
    }
}

impl Serialize for AccessLogFormat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AccessLogFormat::Json => s.serialize_str("json"),
            AccessLogFormat::Text(template) => s.serialize_str(&template.source),
        }
    }
}

impl<'de> Deserialize<'de> for AccessLogFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        AccessLogFormat::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for AccessLogFormat {
    fn schema_name() -> Cow<'static, str> {
        "AccessLogFormat".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "json, combined, common, or a template with nginx-style $variables.",
        })
    }
}

/// A text line's template, parsed into literal text and variables.
#[derive(Debug, Clone)]
pub struct LogTemplate {
    source: String,
    parts: Vec<LogPart>,
    /// The request fields `$http_*` variables name, each once, in the order `LogVariable::Header`
    /// indexes them.
    headers: Vec<HeaderName>,
}

impl PartialEq for LogTemplate {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
pub enum LogPart {
    /// Text written as it is.
    Literal(String),
    /// A value of the request, escaped as nginx escapes it.
    Variable(LogVariable),
}

/// A value a template can name; the `$name` each stands for is in [`LogVariable::NAMES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogVariable {
    /// `$remote_addr`: the client's address under the `real_ip` rules.
    RemoteAddr,
    /// `$remote_user`: the consumer an authentication plugin identified.
    RemoteUser,
    /// `$time_local`: `08/Dec/2026:10:15:00 +0000` (always UTC).
    TimeLocal,
    /// `$time_iso8601`: `2026-12-08T10:15:00.123Z`.
    TimeIso8601,
    /// `$msec`: seconds since the epoch with milliseconds.
    Msec,
    /// `$request`: `GET /path?query HTTP/1.1`.
    Request,
    /// `$request_method`.
    RequestMethod,
    /// `$request_uri`: the path with its query.
    RequestUri,
    /// `$uri`: the path without its query.
    Uri,
    /// `$args` (also `$query_string`): the query, without `?`.
    Args,
    /// `$server_protocol`: `HTTP/1.1`, `HTTP/2.0`.
    ServerProtocol,
    /// `$status`.
    Status,
    /// `$body_bytes_sent`: response body bytes (0 when unknown).
    BodyBytesSent,
    /// `$request_time`: seconds, with milliseconds, from request received to response finished.
    RequestTime,
    /// `$upstream_addr`: the target that answered.
    UpstreamAddr,
    /// `$upstream_attempts`: attempts at the upstream, retries included.
    UpstreamAttempts,
    /// `$request_id`: the `X-Request-Id` sent upstream and to the client.
    RequestId,
    /// `$host`: the `Host` or `:authority` the client asked for.
    Host,
    /// `$route`: the id of the matched route.
    Route,
    /// `$trace_id`: the request's trace id, when tracing is on.
    TraceId,
    /// `$http_NAME`: a request field (`$http_user_agent` is `User-Agent`); the index into
    /// [`AccessLogFormat::captured_headers`].
    Header(usize),
}

impl LogVariable {
    /// Every variable's name but `$http_*`.
    pub const NAMES: [(&'static str, LogVariable); 21] = [
        ("remote_addr", LogVariable::RemoteAddr),
        ("remote_user", LogVariable::RemoteUser),
        ("time_local", LogVariable::TimeLocal),
        ("time_iso8601", LogVariable::TimeIso8601),
        ("msec", LogVariable::Msec),
        ("request", LogVariable::Request),
        ("request_method", LogVariable::RequestMethod),
        ("request_uri", LogVariable::RequestUri),
        ("uri", LogVariable::Uri),
        ("args", LogVariable::Args),
        ("query_string", LogVariable::Args),
        ("server_protocol", LogVariable::ServerProtocol),
        ("status", LogVariable::Status),
        ("body_bytes_sent", LogVariable::BodyBytesSent),
        ("request_time", LogVariable::RequestTime),
        ("upstream_addr", LogVariable::UpstreamAddr),
        ("upstream_attempts", LogVariable::UpstreamAttempts),
        ("request_id", LogVariable::RequestId),
        ("host", LogVariable::Host),
        ("route", LogVariable::Route),
        ("trace_id", LogVariable::TraceId),
    ];
}

impl LogTemplate {
    /// Parses `source`: `$name` or `${name}` is a variable (names are letters, digits and `_`), the rest
    /// is literal text. An unknown name, or a `$` that starts none, is an error.
    pub fn parse(source: &str) -> Result<LogTemplate, String> {
        let mut parts = Vec::new();
        let mut headers: Vec<HeaderName> = Vec::new();
        let mut literal = String::new();
        let mut rest = source;
        while let Some(at) = rest.find('$') {
            literal.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
                let end = braced
                    .find('}')
                    .ok_or_else(|| "a `${` is not closed by `}`".to_owned())?;
                (&braced[..end], end + 2)
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!(
                    "`$` at byte {} does not start a variable name",
                    source.len() - rest.len() + at
                ));
            }
            let variable = variable_named(name, &mut headers)?;
            if !literal.is_empty() {
                parts.push(LogPart::Literal(std::mem::take(&mut literal)));
            }
            parts.push(LogPart::Variable(variable));
            rest = &after[consumed..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(LogPart::Literal(literal));
        }
        if !parts.iter().any(|p| matches!(p, LogPart::Variable(_))) {
            return Err("a template needs at least one $variable".to_owned());
        }
        Ok(LogTemplate {
            source: source.to_owned(),
            parts,
            headers,
        })
    }

    /// The template's pieces, in order.
    pub fn parts(&self) -> &[LogPart] {
        &self.parts
    }

    /// The template as it was written (`combined` or `common` for those).
    pub fn source(&self) -> &str {
        &self.source
    }
}

fn variable_named(name: &str, headers: &mut Vec<HeaderName>) -> Result<LogVariable, String> {
    if let Some(field) = name.strip_prefix("http_").filter(|f| !f.is_empty()) {
        let header =
            HeaderName::from_bytes(field.replace('_', "-").to_ascii_lowercase().as_bytes())
                .map_err(|_| format!("${name} does not name a request field"))?;
        let index = match headers.iter().position(|h| *h == header) {
            Some(index) => index,
            None => {
                headers.push(header);
                headers.len() - 1
            }
        };
        return Ok(LogVariable::Header(index));
    }
    LogVariable::NAMES
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, variable)| *variable)
        .ok_or_else(|| format!("unknown variable ${name}; see docs/operations.md for the list"))
}

impl fmt::Display for LogTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(source: &str) -> Vec<LogPart> {
        LogTemplate::parse(source).unwrap().parts
    }

    #[test]
    fn combined_is_parsed_into_literals_and_variables() {
        let AccessLogFormat::Text(template) = AccessLogFormat::parse("combined").unwrap() else {
            panic!("combined is a text format");
        };
        assert_eq!(template.source(), "combined");
        assert_eq!(template.parts(), parts(COMBINED_TEMPLATE));
        assert_eq!(
            template.parts()[..4],
            [
                LogPart::Variable(LogVariable::RemoteAddr),
                LogPart::Literal(" - ".to_owned()),
                LogPart::Variable(LogVariable::RemoteUser),
                LogPart::Literal(" [".to_owned()),
            ]
        );
        assert_eq!(
            AccessLogFormat::Text(template.clone()).captured_headers(),
            [
                HeaderName::from_static("referer"),
                HeaderName::from_static("user-agent")
            ]
        );
    }

    #[test]
    fn braces_header_names_and_repeats() {
        assert_eq!(
            parts("${status}x$http_X_Custom_Id $http_x_custom_id"),
            [
                LogPart::Variable(LogVariable::Status),
                LogPart::Literal("x".to_owned()),
                LogPart::Variable(LogVariable::Header(0)),
                LogPart::Literal(" ".to_owned()),
                LogPart::Variable(LogVariable::Header(0)),
            ]
        );
        assert_eq!(
            parts("$query_string $args"),
            [
                LogPart::Variable(LogVariable::Args),
                LogPart::Literal(" ".to_owned()),
                LogPart::Variable(LogVariable::Args),
            ]
        );
    }

    #[test]
    fn mistakes_are_named() {
        for (source, message) in [
            ("$statuss", "unknown variable $statuss"),
            ("$ status", "`$` at byte 0 does not start a variable name"),
            ("ok $", "`$` at byte 3 does not start a variable name"),
            ("${status", "a `${` is not closed by `}`"),
            ("${st-atus}", "`$` at byte 0 does not start a variable name"),
            ("$http_", "unknown variable $http_"),
            ("jsonl", "unknown format \"jsonl\""),
            ("plain text", "unknown format \"plain text\""),
        ] {
            let error = AccessLogFormat::parse(source).unwrap_err();
            assert!(error.starts_with(message), "{source:?}: {error}");
        }
    }

    #[test]
    fn a_format_serializes_as_written() {
        for source in ["json", "combined", "common", "$status $request_time"] {
            let format = AccessLogFormat::parse(source).unwrap();
            assert_eq!(serde_json::to_value(&format).unwrap(), source);
        }
    }
}
