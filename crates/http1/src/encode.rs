//! Writing HTTP/1.1 framing: header lines, chunk-size lines, and the last chunk with its trailers.

use crate::trailers::is_forbidden_trailer;

/// Writes header lines, `name: value\r\n` each.
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

/// The chunk-size line for a chunk of `len` bytes (`len` is never 0: that is the last chunk).
pub fn encode_chunk_size(len: usize) -> arrayvec::ArrayString<18> {
    let mut line = arrayvec::ArrayString::new();
    // 16 hex digits and CRLF always fit.
    let _ = std::fmt::write(&mut line, format_args!("{len:x}\r\n"));
    line
}

/// Writes the last chunk and the trailer section that ends a chunked body: `0\r\n`, the trailer
/// fields that may be trailers (see [`is_forbidden_trailer`]) when `trailers` is given, and the empty line.
pub fn encode_last_chunk(out: &mut Vec<u8>, trailers: Option<&http::HeaderMap>) {
    out.extend_from_slice(b"0\r\n");
    for (name, value) in trailers.into_iter().flatten() {
        if !is_forbidden_trailer(name.as_str().as_bytes()) {
            encode_field(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_framing() {
        assert_eq!(&*encode_chunk_size(1), "1\r\n");
        assert_eq!(&*encode_chunk_size(0x1a2b), "1a2b\r\n");
        assert_eq!(&*encode_chunk_size(usize::MAX), "ffffffffffffffff\r\n");
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-sum", http::HeaderValue::from_static("42"));
        trailers.insert("content-length", http::HeaderValue::from_static("9"));
        let mut out = Vec::new();
        encode_last_chunk(&mut out, Some(&trailers));
        assert_eq!(out, b"0\r\nx-sum: 42\r\n\r\n");
        out.clear();
        encode_last_chunk(&mut out, None);
        assert_eq!(out, b"0\r\n\r\n");
    }
}
