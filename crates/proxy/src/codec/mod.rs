//! HTTP/1.1 message framing shared by floodgate's server and client: how a body is delimited, and the
//! decoder that reads one off a connection's buffer.

mod decoder;
mod fields;
mod read_size;

pub use decoder::{BodySource, DecodeError, Decoder, Framing};
#[cfg(test)]
pub use fields::raw_fields_of;
pub use fields::{header_map, FieldSpan, RawFields};
pub use read_size::ReadSize;

/// Writes header (or trailer) lines, `name: value\r\n` each.
pub fn encode_fields(out: &mut Vec<u8>, fields: &http::HeaderMap) {
    for (name, value) in fields {
        encode_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
}

/// Writes one header line.
pub fn encode_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Parses a decimal `Content-Length` value (no sign, no spaces, at most 19 digits).
pub fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

/// The message's length from its `Content-Length` lines: `Ok(None)` without any, an error when a value
/// is not a number or several disagree (RFC 9110 §8.6 allows repeats of one value).
pub fn content_length(headers: &http::HeaderMap) -> Result<Option<u64>, ()> {
    content_length_of(values(headers, &http::header::CONTENT_LENGTH))
}

/// [`content_length`] of the values of `Content-Length` lines.
pub fn content_length_of<'a>(values: impl Iterator<Item = &'a [u8]>) -> Result<Option<u64>, ()> {
    let mut length = None;
    for value in values {
        for part in value.split(|b| *b == b',') {
            let n = parse_decimal(part.trim_ascii()).ok_or(())?;
            if length.is_some_and(|l| l != n) {
                return Err(());
            }
            length = Some(n);
        }
    }
    Ok(length)
}

/// Whether the last transfer coding in `Transfer-Encoding` is `chunked`; `None` without the header.
pub fn chunked_last(headers: &http::HeaderMap) -> Option<bool> {
    chunked_last_of(values(headers, &http::header::TRANSFER_ENCODING))
}

/// [`chunked_last`] of the values of `Transfer-Encoding` lines.
pub fn chunked_last_of<'a>(values: impl Iterator<Item = &'a [u8]>) -> Option<bool> {
    let last = values.last()?;
    Some(
        last.rsplit(|b| *b == b',')
            .next()
            .is_some_and(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked")),
    )
}

/// Whether a `Connection` header lists `token` (case-insensitive).
pub fn connection_has(headers: &http::HeaderMap, token: &[u8]) -> bool {
    values(headers, &http::header::CONNECTION).any(|v| list_has(v, token))
}

/// Whether a comma-separated list value has `token` (case-insensitive).
pub fn list_has(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

fn values<'a>(
    headers: &'a http::HeaderMap,
    name: &http::header::HeaderName,
) -> impl Iterator<Item = &'a [u8]> {
    headers
        .get_all(name)
        .iter()
        .map(http::HeaderValue::as_bytes)
}
