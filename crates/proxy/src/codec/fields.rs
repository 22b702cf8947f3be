//! Header fields of a parsed head, turned into an `http::HeaderMap` without copying their values.

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// Where one header line's name and value lie in a head, as offsets from its first byte: taken while
/// `httparse` borrows the buffer, used once the buffer has been frozen. Heads are far shorter than 4 GiB,
/// so `u32` offsets do, and keep a head's spans half the size.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpan {
    name: u32,
    name_len: u32,
    value: u32,
    value_len: u32,
}

impl FieldSpan {
    /// The span of `field`, parsed out of a buffer that starts at `base`.
    pub fn of(field: &httparse::Header<'_>, base: *const u8) -> Self {
        let base = base as usize;
        let offset = |at: usize| u32::try_from(at).unwrap_or(u32::MAX);
        Self {
            name: offset(field.name.as_ptr() as usize - base),
            name_len: offset(field.name.len()),
            value: offset(field.value.as_ptr() as usize - base),
            value_len: offset(field.value.len()),
        }
    }

    fn name(&self) -> std::ops::Range<usize> {
        self.name as usize..(self.name as usize + self.name_len as usize)
    }

    fn value(&self) -> std::ops::Range<usize> {
        self.value as usize..(self.value as usize + self.value_len as usize)
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
        let name = HeaderName::from_bytes(&head[span.name()]).map_err(|_| InvalidField)?;
        let value =
            HeaderValue::from_maybe_shared(head.slice(span.value())).map_err(|_| InvalidField)?;
        headers.append(name, value);
    }
    Ok(headers)
}
