//! Header fields of a parsed head, turned into an `http::HeaderMap` without copying their values.

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// Where one header line's name and value lie in a head, as offsets from its first byte: taken while
/// `httparse` borrows the buffer, used once the buffer has been frozen.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpan {
    name: usize,
    name_len: usize,
    value: usize,
    value_len: usize,
}

impl FieldSpan {
    /// The span of `field`, parsed out of a buffer that starts at `base`.
    pub fn of(field: &httparse::Header<'_>, base: *const u8) -> Self {
        let base = base as usize;
        Self {
            name: field.name.as_ptr() as usize - base,
            name_len: field.name.len(),
            value: field.value.as_ptr() as usize - base,
            value_len: field.value.len(),
        }
    }
}

/// A header invalid for `http` (a name `httparse` takes but `http` does not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidField;

/// The fields at `spans` of `head`, in a map with room for `spare` more; each value is a slice of
/// `head` (a reference count, not a copy).
pub fn header_map(
    head: &Bytes,
    spans: &[FieldSpan],
    spare: usize,
) -> Result<HeaderMap, InvalidField> {
    let mut headers = HeaderMap::with_capacity(spans.len() + spare);
    for span in spans {
        let name = HeaderName::from_bytes(&head[span.name..span.name + span.name_len])
            .map_err(|_| InvalidField)?;
        let value =
            HeaderValue::from_maybe_shared(head.slice(span.value..span.value + span.value_len))
                .map_err(|_| InvalidField)?;
        headers.append(name, value);
    }
    Ok(headers)
}
