//! `X-Request-Id`: kept when the client sent a sane one, generated otherwise.

use std::cell::Cell;

use http::{HeaderMap, HeaderValue};

/// The request id header, as nginx's `$request_id` users and most tracing setups name it.
pub static X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

const MAX_LEN: usize = 128;

thread_local! {
    // A per-worker counter seeded at random: unique ids without a shared atomic or a syscall per request.
    static NEXT: Cell<u128> = Cell::new(fastrand::u128(..));
}

/// Returns the client's request id when it is a plain token, or a fresh one.
///
/// A client value is only trusted when it is short and made of `[A-Za-z0-9._:-]`, so it can be echoed in
/// JSON error bodies and logs without escaping.
pub fn request_id(headers: &HeaderMap) -> (HeaderValue, bool) {
    if let Some(value) = headers.get(&X_REQUEST_ID) {
        let bytes = value.as_bytes();
        let plain = !bytes.is_empty()
            && bytes.len() <= MAX_LEN
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if plain {
            return (value.clone(), false);
        }
    }
    (generate(), true)
}

/// Where each byte of the id's 128 bits goes in the UUID layout's text: two hex digits, with the
/// layout's dashes left between the groups.
const DIGIT_AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

/// The two lowercase hex digits of every byte, looked up rather than computed per request.
const HEX_PAIRS: [[u8; 2]; 256] = {
    let hex = b"0123456789abcdef";
    let mut pairs = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        pairs[i] = [hex[i >> 4], hex[i & 0xf]];
        i += 1;
    }
    pairs
};

/// A new id in UUID layout (8-4-4-4-12 lowercase hex).
pub fn generate() -> HeaderValue {
    let n = NEXT.with(|next| {
        let n = next.get();
        next.set(n.wrapping_add(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835));
        n
    });
    let mut buf = [b'-'; 36];
    for (byte, at) in n.to_be_bytes().into_iter().zip(DIGIT_AT) {
        buf[at..at + 2].copy_from_slice(&HEX_PAIRS[usize::from(byte)]);
    }
    // Only hex digits and dashes were written, which are always a valid header value.
    HeaderValue::from_bytes(&buf).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_unique_and_uuid_shaped() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        for (i, c) in a.as_bytes().iter().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                assert_eq!(*c, b'-', "{a:?}");
            } else {
                assert!(c.is_ascii_hexdigit() && !c.is_ascii_uppercase(), "{a:?}");
            }
        }
    }

    #[test]
    fn keeps_plain_client_ids_and_replaces_odd_ones() {
        let mut headers = HeaderMap::new();
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(
            request_id(&headers),
            (HeaderValue::from_static("abc-123"), false)
        );
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("has \"quotes\""));
        assert!(request_id(&headers).1);
    }
}
