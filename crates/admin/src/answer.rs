//! The admin API's answers: JSON bodies, its error shape (`{"error": ..., "errors": [{"path", "message"}]}`)
//! and the configuration as JSON.

use bytes::Bytes;
use floodgate_config::{Config, FieldError};
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};

/// An admin API response.
pub(crate) type Answer = Response<Full<Bytes>>;

/// `config` as the admin API shows it (before masking).
pub(crate) fn config_json(config: &Config) -> Value {
    serde_json::to_value(config).unwrap_or(Value::Null)
}

/// 405 for a method the path does not take, with the ones it does in `Allow`.
pub(crate) fn not_allowed(allow: &'static str) -> Answer {
    let mut answer = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed", &[]);
    answer
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    answer
}

/// A JSON error body: `{"error": MESSAGE}`, with `"errors": [{"path", "message"}]` when fields are at fault.
pub(crate) fn error(status: StatusCode, message: &str, errors: &[FieldError]) -> Answer {
    let mut body = json!({ "error": message });
    if !errors.is_empty() {
        body["errors"] = errors
            .iter()
            .map(|e| json!({ "path": e.path, "message": e.message }))
            .collect();
    }
    ok_json(status, &body, None)
}

/// `body` as JSON with `status`, and `etag` as its `ETag` when given.
pub(crate) fn ok_json(status: StatusCode, body: &Value, etag: Option<&str>) -> Answer {
    let mut text = serde_json::to_vec(body).unwrap_or_default();
    text.push(b'\n');
    let mut answer = Response::new(Full::new(Bytes::from(text)));
    *answer.status_mut() = status;
    answer.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(tag) = etag.and_then(|t| HeaderValue::from_str(t).ok()) {
        answer.headers_mut().insert(header::ETAG, tag);
    }
    answer
}
