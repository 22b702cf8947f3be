//! The trace context a client sends: W3C `traceparent` (with `tracestate`), or Zipkin's B3 when the
//! configuration accepts it. Written by hand rather than with the SDK's propagators: those allocate a
//! `Context` per request, read only the first `tracestate` line, and (for B3) drop the parent id; the
//! formats are a few fixed-width hex fields.

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue};

/// `traceparent` (W3C Trace Context).
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate` (W3C Trace Context), forwarded as received.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Whether a field named `name` can carry a trace context: `traceparent`, `b3` or `x-b3-*`.
pub fn is_context_name(name: &HeaderName) -> bool {
    let name = name.as_str().as_bytes();
    name == b"traceparent" || name == b"b3" || name.starts_with(b"x-b3-")
}

/// A parent span another service started: the request continues its trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    /// The trace's id, never 0.
    pub trace_id: u128,
    /// The caller's span, never 0.
    pub span_id: u64,
    /// Whether the caller sampled it; `None` when it left the decision to us (B3 without a flag).
    pub sampled: Option<bool>,
}

/// The parent in `headers`: a valid `traceparent`, else (when `b3` is accepted) a valid B3 context.
/// Invalid or repeated headers count as none, as the W3C specification asks: the request starts a trace
/// of its own rather than joining a malformed one.
pub fn parent(headers: &HeaderMap, b3: bool) -> Option<Parent> {
    let mut values = headers.get_all(TRACEPARENT).iter();
    if let Some(value) = values.next() {
        return if values.next().is_none() {
            parse_traceparent(value.as_bytes())
        } else {
            None
        };
    }
    if !b3 {
        return None;
    }
    if let Some(single) = headers.get("b3") {
        return parse_b3_single(single.as_bytes());
    }
    parse_b3_multi(headers)
}

/// `version-traceid-parentid-flags`, lower-case hex. Version `00` is exactly 55 bytes; a later
/// version may carry more fields after a `-`, which are ignored (W3C Trace Context §3.2.4).
pub fn parse_traceparent(value: &[u8]) -> Option<Parent> {
    if value.len() < 55 || value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let version = hex_u64(&value[0..2])?;
    if version == 0xff
        || (version == 0 && value.len() != 55)
        || (value.len() > 55 && value[55] != b'-')
    {
        return None;
    }
    let trace_id = hex_u128(&value[3..35])?;
    let span_id = hex_u64(&value[36..52])?;
    let flags = hex_u64(&value[53..55])?;
    if trace_id == 0 || span_id == 0 {
        return None;
    }
    Some(Parent {
        trace_id,
        span_id,
        sampled: Some(flags & 1 == 1),
    })
}

/// `b3: {traceid}-{spanid}[-{sampled}[-{parentspanid}]]`, the trace id 16 or 32 hex digits. A bare
/// sampling decision (`b3: 0`) carries no ids and is no parent.
pub fn parse_b3_single(value: &[u8]) -> Option<Parent> {
    let mut fields = value.split(|b| *b == b'-');
    let trace_id = b3_trace_id(fields.next()?)?;
    let span_id = fields.next().filter(|f| f.len() == 16).and_then(hex_u64)?;
    let sampled = match fields.next() {
        None => None,
        Some(b"1" | b"d") => Some(true),
        Some(b"0") => Some(false),
        Some(_) => return None,
    };
    if let Some(parent) = fields.next() {
        if parent.len() != 16 || hex_u64(parent).is_none() {
            return None;
        }
    }
    if fields.next().is_some() || trace_id == 0 || span_id == 0 {
        return None;
    }
    Some(Parent {
        trace_id,
        span_id,
        sampled,
    })
}

/// `X-B3-TraceId`, `X-B3-SpanId`, `X-B3-Sampled` (`1`, `0`, `true`, `false`) and `X-B3-Flags: 1`
/// (debug, which means sampled).
fn parse_b3_multi(headers: &HeaderMap) -> Option<Parent> {
    let trace_id = b3_trace_id(headers.get("x-b3-traceid")?.as_bytes())?;
    let span_id = headers
        .get("x-b3-spanid")
        .map(HeaderValue::as_bytes)
        .filter(|v| v.len() == 16)
        .and_then(hex_u64)?;
    let debug = headers.get("x-b3-flags").is_some_and(|f| f == "1");
    let sampled = match headers.get("x-b3-sampled").map(HeaderValue::as_bytes) {
        _ if debug => Some(true),
        None => None,
        Some(b"1" | b"true") => Some(true),
        Some(b"0" | b"false") => Some(false),
        Some(_) => return None,
    };
    if trace_id == 0 || span_id == 0 {
        return None;
    }
    Some(Parent {
        trace_id,
        span_id,
        sampled,
    })
}

/// A B3 trace id: 32 hex digits, or 16 (a 64-bit id, the high half zero).
fn b3_trace_id(field: &[u8]) -> Option<u128> {
    match field.len() {
        16 | 32 => hex_u128(field),
        _ => None,
    }
}

/// An upstream attempt's place in its trace, from which its `traceparent` is written: 26 bytes where
/// the value takes 55.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttemptContext {
    trace_id: [u8; 16],
    span_id: u64,
    sampled: bool,
}

impl AttemptContext {
    /// Span `span_id` of trace `trace_id`.
    pub fn new(trace_id: u128, span_id: u64, sampled: bool) -> AttemptContext {
        AttemptContext {
            trace_id: trace_id.to_be_bytes(),
            span_id,
            sampled,
        }
    }

    /// The `traceparent` value naming this span as the parent.
    pub fn traceparent(&self) -> Traceparent {
        Traceparent::new(
            u128::from_be_bytes(self.trace_id),
            self.span_id,
            self.sampled,
        )
    }
}

/// A `traceparent` value the gateway writes: `00-{trace id}-{span id}-{flags}`, kept as its bytes so
/// an HTTP/1.1 head can take it as it is.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Traceparent([u8; 55]);

impl Traceparent {
    /// The value for span `span_id` of trace `trace_id`.
    pub fn new(trace_id: u128, span_id: u64, sampled: bool) -> Traceparent {
        let mut out = [0u8; 55];
        out[..3].copy_from_slice(b"00-");
        write_hex(&mut out[3..35], &trace_id.to_be_bytes());
        out[35] = b'-';
        write_hex(&mut out[36..52], &span_id.to_be_bytes());
        out[52] = b'-';
        out[53] = b'0';
        out[54] = if sampled { b'1' } else { b'0' };
        Traceparent(out)
    }

    /// The value's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The value as a field value (for an HTTP/2 request, whose fields go in a map).
    pub fn to_header_value(&self) -> HeaderValue {
        // Hex digits and dashes are always a valid field value.
        HeaderValue::from_bytes(&self.0).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

impl std::fmt::Debug for Traceparent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

/// The `traceparent` value of span `span_id` of trace `trace_id`.
pub fn traceparent(trace_id: u128, span_id: u64, sampled: bool) -> HeaderValue {
    Traceparent::new(trace_id, span_id, sampled).to_header_value()
}

/// Two lower-case hex digits per byte value, so a byte is written with one lookup.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        pairs[i] = [DIGITS[i >> 4], DIGITS[i & 0xf]];
        i += 1;
    }
    pairs
};

fn write_hex(out: &mut [u8], bytes: &[u8]) {
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(*byte)]);
    }
}

/// Lower-case hex only, as both formats require (W3C: "lowercase hex").
fn hex_u128(digits: &[u8]) -> Option<u128> {
    if digits.is_empty() || digits.len() > 32 {
        return None;
    }
    digits.iter().try_fold(0u128, |acc, &d| {
        let nibble = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        Some(acc << 4 | u128::from(nibble))
    })
}

fn hex_u64(digits: &[u8]) -> Option<u64> {
    if digits.len() > 16 {
        return None;
    }
    hex_u128(digits).map(|v| v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    fn tp(value: &str) -> Option<Parent> {
        parse_traceparent(value.as_bytes())
    }

    #[test]
    fn traceparent_reads_the_specification_examples() {
        assert_eq!(
            tp(&format!("00-{ID}-00f067aa0ba902b7-01")),
            Some(Parent {
                trace_id: 0x4bf92f3577b34da6a3ce929d0e0e4736,
                span_id: 0x00f067aa0ba902b7,
                sampled: Some(true),
            })
        );
        assert_eq!(
            tp(&format!("00-{ID}-00f067aa0ba902b7-00")).unwrap().sampled,
            Some(false)
        );
        // A later version may append fields; flags other than `sampled` are ignored.
        assert!(tp(&format!(
            "cc-{ID}-00f067aa0ba902b7-09-what-the-future-holds"
        ))
        .is_some());
    }

    #[test]
    fn traceparent_refuses_what_the_specification_refuses() {
        for bad in [
            format!("ff-{ID}-00f067aa0ba902b7-01"),
            format!("00-{ID}-00f067aa0ba902b7-01-extra"),
            format!("cc-{ID}-00f067aa0ba902b7-01x"),
            format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32)),
            format!("00-{ID}-0000000000000000-01"),
            format!("00-{}-00f067aa0ba902b7-01", ID.to_uppercase()),
            format!("00-{ID}-00f067aa0ba902b7-0g"),
            format!("00_{ID}-00f067aa0ba902b7-01"),
            format!("00-{ID}-00f067aa0ba902b7"),
            format!("00-{ID}-+0f067aa0ba902b7-01"),
            String::new(),
        ] {
            assert_eq!(tp(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn repeated_traceparent_is_no_parent() {
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_str(&format!("00-{ID}-00f067aa0ba902b7-01")).unwrap();
        headers.append(TRACEPARENT, value.clone());
        assert!(parent(&headers, false).is_some());
        headers.append(TRACEPARENT, value);
        assert_eq!(parent(&headers, false), None);
    }

    #[test]
    fn b3_single_and_multi() {
        let single = |v: &str| parse_b3_single(v.as_bytes());
        assert_eq!(
            single(&format!("{ID}-00f067aa0ba902b7-1-05e3ac9a4f6e3b90")),
            Some(Parent {
                trace_id: 0x4bf92f3577b34da6a3ce929d0e0e4736,
                span_id: 0x00f067aa0ba902b7,
                sampled: Some(true),
            })
        );
        assert_eq!(
            single("a3ce929d0e0e4736-00f067aa0ba902b7").unwrap(),
            Parent {
                trace_id: 0xa3ce929d0e0e4736,
                span_id: 0x00f067aa0ba902b7,
                sampled: None,
            }
        );
        assert_eq!(
            single(&format!("{ID}-00f067aa0ba902b7-d")).unwrap().sampled,
            Some(true)
        );
        for bad in [
            "0",
            "1",
            "abc-00f067aa0ba902b7",
            &format!("{ID}-00f067aa0ba902b7-x"),
        ] {
            assert_eq!(single(bad), None, "{bad}");
        }

        let mut headers = HeaderMap::new();
        headers.insert("x-b3-traceid", HeaderValue::from_static(ID));
        headers.insert("x-b3-spanid", HeaderValue::from_static("00f067aa0ba902b7"));
        headers.insert("x-b3-sampled", HeaderValue::from_static("true"));
        assert_eq!(parent(&headers, false), None, "B3 only when accepted");
        assert_eq!(parent(&headers, true).unwrap().sampled, Some(true));
        headers.insert("x-b3-sampled", HeaderValue::from_static("0"));
        headers.insert("x-b3-flags", HeaderValue::from_static("1"));
        assert_eq!(parent(&headers, true).unwrap().sampled, Some(true), "debug");
    }

    #[test]
    fn traceparent_is_written_as_read() {
        let value = traceparent(0x4bf92f3577b34da6a3ce929d0e0e4736, 0xab, true);
        assert_eq!(value, format!("00-{ID}-00000000000000ab-01").as_str());
        let back = parse_traceparent(value.as_bytes()).unwrap();
        assert_eq!(
            (back.trace_id, back.span_id, back.sampled),
            (0x4bf92f3577b34da6a3ce929d0e0e4736, 0xab, Some(true))
        );
        assert_eq!(traceparent(1, 2, false).as_bytes()[54], b'0');
    }
}
