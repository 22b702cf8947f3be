//! Text lines rendered from a template with nginx-style variables (`combined`, `common`, or the
//! operator's own).
//!
//! Values are escaped as nginx's default `escape=default` does: `"`, `\`, control bytes and bytes above
//! 0x7e become `\xHH`, so a client cannot start a new line, close a quoted field or write terminal escape
//! sequences into the log. An unknown or empty value is written as `-`.

use std::fmt::Write as _;
use std::time::UNIX_EPOCH;

use floodgate_config::{LogPart, LogTemplate, LogVariable};
use http::Version;

use super::timestamp::{write_common_log_time, write_rfc3339_millis};
use super::AccessLogEntry;

/// Appends `entry` rendered by `template`, and a line feed, to `out`. `scratch` is reused across lines.
pub(crate) fn write_text_line(
    template: &LogTemplate,
    entry: &AccessLogEntry,
    out: &mut Vec<u8>,
    scratch: &mut String,
) {
    for part in template.parts() {
        match part {
            LogPart::Literal(text) => out.extend_from_slice(text.as_bytes()),
            LogPart::Variable(variable) => {
                scratch.clear();
                let value = value_of(*variable, entry, scratch);
                write_escaped(out, value);
            }
        }
    }
    out.push(b'\n');
}

/// The value of `variable`, formatted into `scratch` when it is not already at hand as bytes.
pub(crate) fn value_of<'a>(
    variable: LogVariable,
    entry: &'a AccessLogEntry,
    scratch: &'a mut String,
) -> &'a [u8] {
    let (path, query) = entry.path.split_once('?').unwrap_or((&entry.path, ""));
    match variable {
        LogVariable::RemoteAddr => {
            if let Some(ip) = entry.client_ip {
                let _ = write!(scratch, "{ip}");
            }
        }
        LogVariable::RemoteUser => return optional(entry.consumer.as_deref()),
        LogVariable::TimeLocal => write_common_log_time(scratch, entry.timestamp),
        LogVariable::TimeIso8601 => write_rfc3339_millis(scratch, entry.timestamp),
        LogVariable::Msec => {
            let since = entry
                .timestamp
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let _ = write!(scratch, "{}.{:03}", since.as_secs(), since.subsec_millis());
        }
        LogVariable::Request => {
            let _ = write!(
                scratch,
                "{} {} {}",
                entry.method,
                entry.path,
                protocol_name(entry.protocol)
            );
        }
        LogVariable::RequestMethod => return entry.method.as_str().as_bytes(),
        LogVariable::RequestUri => return entry.path.as_bytes(),
        LogVariable::Uri => return path.as_bytes(),
        LogVariable::Args => return query.as_bytes(),
        LogVariable::ServerProtocol => return protocol_name(entry.protocol).as_bytes(),
        LogVariable::Status => {
            let _ = write!(scratch, "{}", entry.status);
        }
        LogVariable::BodyBytesSent => {
            let _ = write!(scratch, "{}", entry.bytes_sent.unwrap_or(0));
        }
        LogVariable::RequestTime => {
            let micros = entry.duration.as_micros();
            let _ = write!(
                scratch,
                "{}.{:03}",
                micros / 1_000_000,
                micros / 1_000 % 1_000
            );
        }
        LogVariable::UpstreamAddr => return optional(entry.upstream_addr.as_deref()),
        LogVariable::UpstreamAttempts => {
            let _ = write!(scratch, "{}", entry.upstream_attempts);
        }
        LogVariable::RequestId => return entry.request_id.as_bytes(),
        LogVariable::Host => return optional(entry.host.as_deref()),
        LogVariable::Route => return optional(entry.route.as_deref()),
        LogVariable::TraceId => return optional(entry.trace_id.as_deref()),
        LogVariable::Header(index) => {
            return entry
                .captured
                .get(index)
                .and_then(Option::as_ref)
                .map_or(b"", |value| value.as_bytes())
        }
    }
    scratch.as_bytes()
}

fn optional(value: Option<&str>) -> &[u8] {
    value.map_or(b"", str::as_bytes)
}

/// The protocol as nginx's `$server_protocol` writes it, which log parsers expect (`HTTP/2.0`).
fn protocol_name(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "-",
    }
}

pub(crate) fn write_escaped(out: &mut Vec<u8>, value: &[u8]) {
    if value.is_empty() {
        out.push(b'-');
        return;
    }
    for &byte in value {
        if byte == b'"' || byte == b'\\' || !(0x20..0x7f).contains(&byte) {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]);
        } else {
            out.push(byte);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::entry::tests::sample_entry;
    use floodgate_config::{AccessLogConfig, AccessLogFormat};
    use http::HeaderValue;

    fn template(format: &str) -> LogTemplate {
        let config: AccessLogConfig =
            serde_json::from_value(serde_json::json!({ "path": "-", "format": format })).unwrap();
        match config.format {
            AccessLogFormat::Text(template) => template,
            AccessLogFormat::Json => panic!("{format} is a text format"),
        }
    }

    fn render(format: &str, entry: &AccessLogEntry) -> String {
        let mut out = Vec::new();
        write_text_line(&template(format), entry, &mut out, &mut String::new());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn combined_reads_as_nginx_writes_it() {
        let mut entry = sample_entry(3);
        entry.captured = vec![
            Some(HeaderValue::from_static("https://example.com/")),
            Some(HeaderValue::from_static("curl/8.5.0")),
        ];
        assert_eq!(
            render("combined", &entry),
            "10.0.0.7 - team-a [14/Nov/2023:22:13:20 +0000] \"POST /users/3?q=\\x22x\\x22 HTTP/1.1\" \
             201 512 \"https://example.com/\" \"curl/8.5.0\"\n"
        );
    }

    #[test]
    fn missing_values_are_dashes() {
        let entry = AccessLogEntry {
            client_ip: None,
            consumer: None,
            bytes_sent: None,
            host: None,
            route: None,
            upstream_addr: None,
            path: "/plain".to_owned(),
            captured: vec![None],
            ..sample_entry(0)
        };
        assert_eq!(
            render(
                "$remote_addr $remote_user $body_bytes_sent $host $route $upstream_addr $args $http_referer",
                &entry
            ),
            "- - 0 - - - - -\n"
        );
    }

    #[test]
    fn every_variable_has_its_value() {
        let mut entry = sample_entry(9);
        entry.protocol = Version::HTTP_2;
        entry.duration = std::time::Duration::from_micros(2_345_678);
        assert_eq!(
            render(
                "$time_iso8601|$msec|$request_method|$request_uri|$uri|$args|$query_string|\
                 $server_protocol|$status|$request_time|$upstream_addr|$upstream_attempts|\
                 $request_id|$host|$route",
                &entry
            ),
            "2023-11-14T22:13:20.123Z|1700000000.123|POST|/users/9?q=\\x22x\\x22|/users/9|\
             q=\\x22x\\x22|q=\\x22x\\x22|HTTP/2.0|201|2.345|10.0.0.5:8000|2|req-9|api.example.com|\
             users-api\n"
        );
    }

    #[test]
    fn client_bytes_cannot_forge_a_line_or_a_field() {
        let mut entry = sample_entry(0);
        entry.path = "/a\r\n1.2.3.4 - - [x] \"GET / HTTP/1.1\" 200 0\x1b[2J\x7f\\".to_owned();
        entry.captured = vec![
            None,
            Some(HeaderValue::from_bytes(b"agent\" \"injected \xff").unwrap()),
        ];
        let line = render("combined", &entry);
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.contains(
            "\"POST /a\\x0D\\x0A1.2.3.4 - - [x] \\x22GET / HTTP/1.1\\x22 200 0\\x1B[2J\\x7F\\x5C HTTP/1.1\""
        ));
        assert!(
            line.ends_with("\"-\" \"agent\\x22 \\x22injected \\xFF\"\n"),
            "{line}"
        );
        assert_eq!(
            line.matches('"').count(),
            6,
            "only the template's quotes: {line}"
        );
    }
}
