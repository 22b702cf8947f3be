//! What one access-log line holds, and its JSON form.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderValue, Method, Version};
use serde::Serialize;

use super::timestamp::write_rfc3339_millis;

/// One finished request, as the proxy hands it to [`AccessLog::log`](crate::AccessLog::log).
///
/// In the `json` format it is written as one JSON object per line with these snake_case keys, absent values as `null`:
/// `timestamp` (RFC 3339 UTC, milliseconds), `client_ip`, `method`, `host`, `path`, `protocol`
/// (`"HTTP/1.1"`, `"HTTP/2"`...), `status`, `route`, `upstream_addr`, `upstream_attempts`, `consumer`, `duration_ms` (a number with
/// microsecond precision), `request_id`, `bytes_sent`, and `trace_id` when tracing is on.
#[derive(Debug, Clone)]
pub struct AccessLogEntry {
    /// When the response finished (the line is written then).
    pub timestamp: SystemTime,
    /// The client's address under the `real_ip` rules (the peer, or the address trusted proxies
    /// reported), if known.
    pub client_ip: Option<IpAddr>,
    /// The request method.
    pub method: Method,
    /// The `Host` header or `:authority` of the request, if it had one.
    pub host: Option<String>,
    /// The request path, with its query string if the proxy chooses to log it.
    pub path: String,
    /// The HTTP version the client spoke.
    pub protocol: Version,
    /// The status code sent to the client.
    pub status: u16,
    /// The id of the route that matched, or `None` for a request no route matched.
    pub route: Option<Arc<str>>,
    /// The upstream target address that served the request, if one was reached.
    pub upstream_addr: Option<Arc<str>>,
    /// Attempts at the upstream (more than 1 when the route retried); 0 when the request was not
    /// forwarded.
    pub upstream_attempts: u32,
    /// The id of the consumer an authentication plugin identified.
    pub consumer: Option<Arc<str>>,
    /// Time from request received to response finished (or headers sent, as the proxy measures it).
    pub duration: Duration,
    /// The request id, as sent upstream and to the client.
    pub request_id: String,
    /// Response body bytes sent to the client, when known.
    pub bytes_sent: Option<u64>,
    /// The request fields a text format names (`$http_user_agent`...), in the order of
    /// [`AccessLog::captured_headers`](crate::AccessLog::captured_headers); empty for JSON.
    pub captured: Vec<Option<HeaderValue>>,
    /// The request's trace id (32 hex digits), when tracing is on.
    pub trace_id: Option<String>,
}

/// The serialized shape: borrows the entry, so a line costs one timestamp string and the output buffer.
#[derive(Serialize)]
struct Line<'a> {
    timestamp: &'a str,
    client_ip: Option<IpAddr>,
    method: &'a str,
    host: Option<&'a str>,
    path: &'a str,
    protocol: &'static str,
    status: u16,
    route: Option<&'a str>,
    upstream_addr: Option<&'a str>,
    upstream_attempts: u32,
    consumer: Option<&'a str>,
    duration_ms: f64,
    request_id: &'a str,
    bytes_sent: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<&'a str>,
}

fn protocol_name(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "unknown",
    }
}

impl AccessLogEntry {
    /// Appends this entry's JSON object and a line feed to `out`. `timestamp` is scratch space reused
    /// across lines.
    pub(crate) fn write_json_line(
        &self,
        out: &mut Vec<u8>,
        timestamp: &mut String,
    ) -> serde_json::Result<()> {
        timestamp.clear();
        write_rfc3339_millis(timestamp, self.timestamp);
        let line = Line {
            timestamp,
            client_ip: self.client_ip,
            method: self.method.as_str(),
            host: self.host.as_deref(),
            path: &self.path,
            protocol: protocol_name(self.protocol),
            status: self.status,
            route: self.route.as_deref(),
            upstream_addr: self.upstream_addr.as_deref(),
            upstream_attempts: self.upstream_attempts,
            consumer: self.consumer.as_deref(),
            // Whole microseconds as milliseconds: exact enough, and one number a log query can compare.
            duration_ms: self.duration.as_micros() as f64 / 1_000.0,
            request_id: &self.request_id,
            bytes_sent: self.bytes_sent,
            trace_id: self.trace_id.as_deref(),
        };
        serde_json::to_writer(&mut *out, &line)?;
        out.push(b'\n');
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::UNIX_EPOCH;

    /// An entry with every field set, for this module's tests and the writer's.
    pub(crate) fn sample_entry(n: usize) -> AccessLogEntry {
        AccessLogEntry {
            timestamp: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            client_ip: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7))),
            method: Method::POST,
            host: Some("api.example.com".to_owned()),
            path: format!("/users/{n}?q=\"x\""),
            protocol: Version::HTTP_11,
            status: 201,
            route: Some(Arc::from("users-api")),
            upstream_addr: Some(Arc::from("10.0.0.5:8000")),
            upstream_attempts: 2,
            consumer: Some(Arc::from("team-a")),
            duration: Duration::from_micros(1_234),
            request_id: format!("req-{n}"),
            bytes_sent: Some(512),
            captured: Vec::new(),
            trace_id: None,
        }
    }

    fn to_json(entry: &AccessLogEntry) -> serde_json::Value {
        let mut out = Vec::new();
        entry.write_json_line(&mut out, &mut String::new()).unwrap();
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1, "one line");
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn every_field_is_written() {
        let json = to_json(&sample_entry(3));
        assert_eq!(
            json,
            serde_json::json!({
                "timestamp": "2023-11-14T22:13:20.123Z",
                "client_ip": "10.0.0.7",
                "method": "POST",
                "host": "api.example.com",
                "path": "/users/3?q=\"x\"",
                "protocol": "HTTP/1.1",
                "status": 201,
                "route": "users-api",
                "upstream_addr": "10.0.0.5:8000",
                "upstream_attempts": 2,
                "consumer": "team-a",
                "duration_ms": 1.234,
                "request_id": "req-3",
                "bytes_sent": 512,
            })
        );
    }

    #[test]
    fn missing_values_are_null() {
        let entry = AccessLogEntry {
            client_ip: None,
            host: None,
            route: None,
            upstream_addr: None,
            consumer: None,
            bytes_sent: None,
            protocol: Version::HTTP_2,
            path: "/a\nb".to_owned(),
            ..sample_entry(0)
        };
        let json = to_json(&entry);
        for key in [
            "client_ip",
            "host",
            "route",
            "upstream_addr",
            "consumer",
            "bytes_sent",
        ] {
            assert!(json[key].is_null(), "{key}");
        }
        assert_eq!(json["protocol"], "HTTP/2");
        assert_eq!(json["path"], "/a\nb");
    }
}
