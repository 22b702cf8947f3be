//! The properties the fuzz targets check (`crates/plugins/fuzz`, target `access_log_line`), public so
//! they also run as ordinary tests over the committed corpus.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use floodgate_config::{AccessLogFormat, LogPart, LogTemplate};
use http::{HeaderValue, Method, Version};

use crate::access_log::text::{value_of, write_escaped, write_text_line};
use crate::AccessLogEntry;

/// An access log template and the values a client controls: the input is the template, then NUL-separated
/// the path, the host, the consumer and one value for every request field the template names.
///
/// Parsing any template never panics, and an accepted one reads back the same from what it serializes
/// to. Whatever the client sent, each variable writes only printable ASCII without `"` (so it cannot end
/// the line, close a quoted field or carry a terminal escape), every `\` it writes starts a `\xHH`
/// escape, and the line has exactly the template's own line feeds plus the one that ends it.
pub fn access_log_line(data: &[u8]) {
    let mut fields = data.split(|b| *b == 0);
    let Some(Ok(source)) = fields.next().map(std::str::from_utf8) else {
        return;
    };
    let Ok(template) = LogTemplate::parse(source) else {
        return;
    };
    let format: AccessLogFormat =
        serde_json::from_value(serde_json::Value::String(source.to_owned()))
            .expect("a template that parses is a format");
    let written = serde_json::to_value(&format).expect("a format serializes");
    assert_eq!(written, source, "a template reads back as written");

    let mut text = |fallback: &str| {
        fields.next().map_or_else(
            || fallback.to_owned(),
            |b| String::from_utf8_lossy(b).into_owned(),
        )
    };
    let path = text("/");
    let host = text("example.com");
    let consumer = text("");
    let captured = format
        .captured_headers()
        .iter()
        .map(|_| fields.next().and_then(|v| HeaderValue::from_bytes(v).ok()))
        .collect();
    let entry = AccessLogEntry {
        timestamp: UNIX_EPOCH + Duration::from_millis(1_796_724_900_123),
        client_ip: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        method: Method::GET,
        host: Some(host),
        path,
        protocol: Version::HTTP_2,
        status: 200,
        route: Some(Arc::from("r")),
        upstream_addr: None,
        upstream_attempts: 1,
        consumer: (!consumer.is_empty()).then(|| Arc::from(consumer.as_str())),
        duration: Duration::from_micros(1_500),
        request_id: "id".to_owned(),
        bytes_sent: Some(1),
        captured,
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".to_owned()),
    };

    let mut scratch = String::new();
    let mut literal_feeds = 0;
    for part in template.parts() {
        match part {
            LogPart::Literal(literal) => literal_feeds += literal.matches('\n').count(),
            LogPart::Variable(variable) => {
                let mut out = Vec::new();
                let value = value_of(*variable, &entry, &mut scratch);
                write_escaped(&mut out, value);
                assert!(
                    out.iter().all(|b| (0x20..0x7f).contains(b) && *b != b'"'),
                    "{variable:?} wrote {out:?}"
                );
                for (at, _) in out.iter().enumerate().filter(|(_, b)| **b == b'\\') {
                    let escape = &out[at..(at + 4).min(out.len())];
                    assert!(
                        escape.len() == 4
                            && escape[1] == b'x'
                            && escape[2..].iter().all(u8::is_ascii_hexdigit),
                        "{variable:?} wrote a bare backslash: {out:?}"
                    );
                }
            }
        }
    }
    let mut line = Vec::new();
    write_text_line(&template, &entry, &mut line, &mut scratch);
    assert_eq!(line.last(), Some(&b'\n'));
    assert_eq!(
        line.iter().filter(|b| **b == b'\n').count(),
        literal_feeds + 1,
        "{line:?}"
    );
}

#[cfg(test)]
mod tests {
    use super::access_log_line;

    #[test]
    fn hostile_values_in_every_variable() {
        access_log_line(b"combined");
        access_log_line(
            b"$request|$uri|$args|$host|$remote_user|$http_user_agent|$http_referer\n\0/a\r\nb?c=\"\\\x1b\0h\x7f\0\xff\xfe\0agent\\\" \xe9\0ref",
        );
        access_log_line(b"${request_uri}\\$http_x_y\0\0\0\0\x01\x02");
    }
}
