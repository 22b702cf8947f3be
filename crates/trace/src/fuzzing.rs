//! The property the fuzz target `trace_context` checks (`crates/plugins/fuzz`), public so it also
//! runs as an ordinary test over the committed corpus.

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::context::{parent, parse_b3_single, parse_traceparent, traceparent, Parent};

/// Trace headers as a client sends them, one `name: value` per line: reading them never panics; a
/// parent found has non-zero ids; and the `traceparent` the gateway writes for it reads back as the
/// same trace, span and decision. The whole input is also read as one `traceparent` and one `b3`
/// value, with the same checks.
pub fn trace_context(data: &[u8]) {
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    for found in [
        parent(&headers, true),
        parent(&headers, false),
        parse_traceparent(data),
        parse_b3_single(data),
    ]
    .into_iter()
    .flatten()
    {
        check(found);
    }
}

fn check(found: Parent) {
    assert_ne!(found.trace_id, 0);
    assert_ne!(found.span_id, 0);
    let sampled = found.sampled.unwrap_or(false);
    let written = traceparent(found.trace_id, found.span_id, sampled);
    let again = parse_traceparent(written.as_bytes()).expect("what the gateway writes reads back");
    assert_eq!(
        again,
        Parent {
            sampled: Some(sampled),
            ..found
        }
    );
}

#[cfg(test)]
mod tests {
    use super::trace_context;

    #[test]
    fn examples() {
        trace_context(b"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\n");
        trace_context(b"b3: a3ce929d0e0e4736-00f067aa0ba902b7-1\nx-b3-traceid: 0\n");
        trace_context(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        trace_context(b"\xff\xfe-\x00");
    }
}
