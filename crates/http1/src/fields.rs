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

/// Header fields kept as the bytes of the head they arrived in.
///
/// An upstream response's fields are mostly passed on untouched, so they are not turned into a
/// `HeaderMap` (which parses, validates, hashes and reference-counts every field) unless something needs
/// them there: [`RawFields::append_to`] does that. `httparse` has already checked each name is a token and
/// each value free of control characters, the rules a `HeaderMap` holds its fields to.
#[derive(Debug, Default)]
pub struct RawFields {
    head: Bytes,
    spans: Vec<FieldSpan>,
}

impl RawFields {
    /// The fields at `spans` of `head`.
    pub fn new(head: Bytes, spans: Vec<FieldSpan>) -> Self {
        Self { head, spans }
    }

    /// Each field's name and value, in the order they arrived.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.spans
            .iter()
            .map(|span| (&self.head[span.name()], &self.head[span.value()]))
    }

    /// The values of the fields named `name` (lowercase).
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> {
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The length of the head the fields were read from: at least what they take written out again.
    pub fn head_len(&self) -> usize {
        self.head.len()
    }

    /// Whether a field named `name` (lowercase) is present.
    pub fn contains(&self, name: &str) -> bool {
        self.values(name).next().is_some()
    }

    /// Writes the fields as header lines, leaving out those whose name `skip` picks (a name the
    /// gateway set itself: its value replaces the upstream's, as `HeaderMap::insert` would).
    pub fn encode(&self, out: &mut Vec<u8>, skip: impl Fn(&[u8]) -> bool) {
        for (name, value) in self.iter() {
            if !skip(name) {
                crate::encode_field(out, name, value);
            }
        }
    }

    /// Adds the fields to `headers`, except names it already has (set by the gateway, they win). A field
    /// `http` would refuse, which `httparse` does not, is left out.
    pub fn append_to(self, headers: &mut HeaderMap) {
        let set: Vec<HeaderName> = headers.keys().cloned().collect();
        headers.reserve(self.spans.len());
        for span in &self.spans {
            let Ok(name) = HeaderName::from_bytes(&self.head[span.name()]) else {
                continue;
            };
            if set.contains(&name) {
                continue;
            }
            if let Ok(value) = HeaderValue::from_maybe_shared(self.head.slice(span.value())) {
                headers.append(name, value);
            }
        }
    }
}

/// The fields of a header block (at most 64 lines ending in an empty line); `None` when it is not one.
pub fn raw_fields_of(head: &'static [u8]) -> Option<RawFields> {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let Ok(httparse::Status::Complete((_, fields))) = httparse::parse_headers(head, &mut slots)
    else {
        return None;
    };
    let spans = fields
        .iter()
        .map(|h| FieldSpan::of(h, head.as_ptr()))
        .collect();
    Some(RawFields::new(Bytes::from_static(head), spans))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_fields_encode_as_they_came_except_what_the_gateway_set() {
        let raw = raw_fields_of(b"Server: up\r\nX-Request-Id: theirs\r\nX-A: 1\r\nx-a: 2\r\n\r\n")
            .unwrap();
        let mut set = HeaderMap::new();
        set.insert("x-request-id", HeaderValue::from_static("ours"));
        let mut out = Vec::new();
        raw.encode(&mut out, |name| name.eq_ignore_ascii_case(b"x-request-id"));
        assert_eq!(out, b"Server: up\r\nX-A: 1\r\nx-a: 2\r\n");
        assert!(raw.contains("x-a"));
        assert_eq!(raw.values("x-a").collect::<Vec<_>>(), [b"1", b"2"]);

        raw.append_to(&mut set);
        assert_eq!(set.get("x-request-id").unwrap(), "ours");
        assert_eq!(set.get_all("x-a").iter().collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(set.get("server").unwrap(), "up");
        assert_eq!(set.len(), 4);
    }
}
