//! How long a message's body is: `Content-Length` (RFC 9110 §8.6) and `Transfer-Encoding` (RFC 9112 §6.1).
//!
//! One parser of each, used for requests and responses alike, so the gateway never reads a length one
//! way on one side and another way on the other.

use crate::tokens::trim_ows;

/// Parses a decimal `Content-Length` value: digits only (no sign, no spaces, no `0x`), at most 19 of
/// them, so the value always fits in a `u64`.
pub fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

/// A `Content-Length` that is not one decimal number (or a list of one repeated number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid content-length")]
pub struct BadContentLength;

/// The message's length from the values of its `Content-Length` lines: `Ok(None)` without any, an error
/// when a value is not a number or several disagree. RFC 9110 §8.6 lets a recipient take a list of one
/// repeated value (`5, 5`) as that value; whoever writes the message on sends the single number.
pub fn content_length_of<'a>(
    values: impl Iterator<Item = &'a [u8]>,
) -> Result<Option<u64>, BadContentLength> {
    let mut length = None;
    for value in values {
        for part in value.split(|b| *b == b',') {
            let n = parse_decimal(trim_ows(part)).ok_or(BadContentLength)?;
            if length.is_some_and(|l| l != n) {
                return Err(BadContentLength);
            }
            length = Some(n);
        }
    }
    Ok(length)
}

/// [`content_length_of`] the `Content-Length` lines of a map.
pub fn content_length(headers: &http::HeaderMap) -> Result<Option<u64>, BadContentLength> {
    content_length_of(
        headers
            .get_all(http::header::CONTENT_LENGTH)
            .iter()
            .map(http::HeaderValue::as_bytes),
    )
}

/// Why a `Transfer-Encoding` cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodingError {
    /// The body's length cannot be told: `chunked` is missing, not last, or applied twice, or a coding
    /// is not a token (RFC 9112 §6.3: a request answered with 400).
    #[error("transfer-encoding does not end in one chunked coding")]
    Invalid,
    /// Well-formed, but with a coding before `chunked` that floodgate does not decode (`gzip, chunked`):
    /// passing the body on without it would hand the upstream bytes in a coding it was not told of
    /// (RFC 9112 §6.1: 501).
    #[error("unsupported transfer coding")]
    Unsupported,
}

/// Checks the values of a message's `Transfer-Encoding` lines. The only transfer coding floodgate
/// accepts is a single `chunked`: it decodes that and frames the message anew for the next hop, so a
/// coding it would have to pass through unread (`gzip, chunked`) is refused rather than dropped.
pub fn transfer_coding<'a>(values: impl Iterator<Item = &'a [u8]>) -> Result<(), CodingError> {
    let mut codings = 0usize;
    let mut chunked_at = None;
    for value in values {
        for coding in value.split(|b| *b == b',') {
            // Parameters (`gzip;q=1`) belong to a coding; only its name matters here.
            let name = coding.split(|b| *b == b';').next().unwrap_or_default();
            let name = trim_ows(name);
            if name.is_empty() && trim_ows(coding).is_empty() {
                // Empty list elements are allowed and mean nothing (RFC 9110 §5.6.1).
                continue;
            }
            if name.is_empty() || !name.iter().all(|b| crate::tokens::is_tchar(*b)) {
                return Err(CodingError::Invalid);
            }
            if name.eq_ignore_ascii_case(b"chunked") {
                if chunked_at.is_some() {
                    return Err(CodingError::Invalid);
                }
                if trim_ows(coding) != name {
                    // `chunked` takes no parameters.
                    return Err(CodingError::Invalid);
                }
                chunked_at = Some(codings);
            }
            codings += 1;
        }
    }
    match chunked_at {
        Some(at) if at + 1 == codings && codings == 1 => Ok(()),
        Some(at) if at + 1 == codings => Err(CodingError::Unsupported),
        _ => Err(CodingError::Invalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn length(values: &[&str]) -> Result<Option<u64>, BadContentLength> {
        content_length_of(values.iter().map(|v| v.as_bytes()))
    }

    fn coding(values: &[&str]) -> Result<(), CodingError> {
        transfer_coding(values.iter().map(|v| v.as_bytes()))
    }

    #[test]
    fn content_length_takes_digits_and_repeats_of_one_value() {
        assert_eq!(length(&[]), Ok(None));
        assert_eq!(length(&["5"]), Ok(Some(5)));
        assert_eq!(length(&["5, 5"]), Ok(Some(5)));
        assert_eq!(length(&["5", "5"]), Ok(Some(5)));
        assert_eq!(length(&["0"]), Ok(Some(0)));
        assert_eq!(
            length(&["9999999999999999999"]),
            Ok(Some(9_999_999_999_999_999_999))
        );
        for bad in [
            "+5",
            "-1",
            "0x10",
            "5, 6",
            "",
            " ",
            "5,",
            "1e3",
            "5 5",
            "99999999999999999999",
            "5\x0c",
            "\x0b5",
        ] {
            assert_eq!(length(&[bad]), Err(BadContentLength), "{bad:?}");
        }
        assert_eq!(length(&["5", "6"]), Err(BadContentLength));
    }

    #[test]
    fn transfer_coding_is_one_chunked_or_refused() {
        assert_eq!(coding(&["chunked"]), Ok(()));
        assert_eq!(coding(&["Chunked"]), Ok(()));
        assert_eq!(coding(&["chunked, "]), Ok(()));
        assert_eq!(coding(&["gzip, chunked"]), Err(CodingError::Unsupported));
        assert_eq!(coding(&["gzip", "chunked"]), Err(CodingError::Unsupported));
        assert_eq!(
            coding(&["gzip;q=1, chunked"]),
            Err(CodingError::Unsupported)
        );
        for bad in [
            &["xchunked"][..],
            &["chunked, identity"],
            &["chunked", "chunked"],
            &["chunked, chunked"],
            &["gzip"],
            &["identity"],
            &[""],
            &["chunked;x=1"],
            &["chu nked"],
            &["\"chunked\""],
            &["\x0bchunked"],
            &["chunked\x0c"],
        ] {
            assert_eq!(coding(bad), Err(CodingError::Invalid), "{bad:?}");
        }
    }
}
