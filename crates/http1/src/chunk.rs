//! The lines of a chunked body (RFC 9112 §7.1): chunk-size lines with their extensions, and trailer
//! field lines. Both are checked against the strict grammar; anything else ends the message as faulty.

use crate::tokens::{is_tchar, trim_ows};

/// Why a chunk-size line was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkLineError {
    /// No hex digits, or more than 15 significant ones (sizes stay below 2^60).
    #[error("invalid chunk size")]
    Size,
    /// Something other than whitespace and well-formed extensions after the size: a control byte, a bare
    /// CR or LF, a stray character.
    #[error("invalid chunk extension")]
    Extension,
}

/// The size on a chunk-size line (`line` without its CRLF): hex digits, then optional whitespace and
/// `;name[=value]` extensions, whose values are tokens or quoted strings. Extensions are checked and
/// then ignored; they are never passed on.
pub fn parse_chunk_line(line: &[u8]) -> Result<u64, ChunkLineError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(ChunkLineError::Size);
    }
    let significant = &line[..digits];
    let significant = &significant[significant.iter().take_while(|b| **b == b'0').count()..];
    if significant.len() > 15 {
        return Err(ChunkLineError::Size);
    }
    let size = significant.iter().fold(0u64, |n, d| {
        // Checked as a hex digit above.
        n << 4 | u64::from((*d as char).to_digit(16).unwrap_or(0))
    });
    extensions(&line[digits..])?;
    Ok(size)
}

/// `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ) BWS`
fn extensions(mut rest: &[u8]) -> Result<(), ChunkLineError> {
    loop {
        rest = skip_ws(rest);
        let Some((&b';', after)) = rest.split_first() else {
            return if rest.is_empty() {
                Ok(())
            } else {
                Err(ChunkLineError::Extension)
            };
        };
        rest = skip_ws(after);
        let name = rest.iter().take_while(|b| is_tchar(**b)).count();
        if name == 0 {
            return Err(ChunkLineError::Extension);
        }
        rest = skip_ws(&rest[name..]);
        if let Some((&b'=', after)) = rest.split_first() {
            rest = skip_ws(after);
            rest = value(rest)?;
        }
    }
}

/// Skips a token or a quoted string; what follows it.
fn value(rest: &[u8]) -> Result<&[u8], ChunkLineError> {
    if let Some((&b'"', mut inside)) = rest.split_first() {
        loop {
            match inside.split_first() {
                Some((&b'"', after)) => return Ok(after),
                Some((&b'\\', after)) => match after.split_first() {
                    Some((b, after)) if is_quoted_text(*b) || *b == b'"' || *b == b'\\' => {
                        inside = after;
                    }
                    _ => return Err(ChunkLineError::Extension),
                },
                Some((b, after)) if is_quoted_text(*b) => inside = after,
                _ => return Err(ChunkLineError::Extension),
            }
        }
    }
    let token = rest.iter().take_while(|b| is_tchar(**b)).count();
    if token == 0 {
        return Err(ChunkLineError::Extension);
    }
    Ok(&rest[token..])
}

/// qdtext (RFC 9110 §5.6.4): HTAB, SP, visible characters but `"` and `\`, and obs-text.
fn is_quoted_text(b: u8) -> bool {
    b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\' || b >= 0x80
}

fn skip_ws(bytes: &[u8]) -> &[u8] {
    let n = bytes
        .iter()
        .take_while(|b| **b == b' ' || **b == b'\t')
        .count();
    &bytes[n..]
}

/// A field line (`line` without its CRLF) split into its name and its value without surrounding
/// whitespace: `name ":" OWS value OWS`, the name a token, the value free of control bytes but HTAB
/// (RFC 9110 §5.5). Obsolete line folding (a line starting with whitespace) is refused, as RFC 9112 §5.2
/// lets a recipient do.
pub fn parse_field_line(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = line.iter().position(|b| *b == b':')?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|b| is_tchar(*b)) {
        return None;
    }
    let value = trim_ows(value);
    let allowed = |b: &u8| *b == b'\t' || *b >= 0x20 && *b != 0x7f;
    value.iter().all(allowed).then_some((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_and_extensions() {
        assert_eq!(parse_chunk_line(b"1a"), Ok(26));
        assert_eq!(parse_chunk_line(b"FF;name=value"), Ok(255));
        assert_eq!(parse_chunk_line(b"5 ; a = b ; c"), Ok(5));
        assert_eq!(parse_chunk_line(b"5;a=\"x y \\\" z\""), Ok(5));
        assert_eq!(
            parse_chunk_line(b"0000000000000000005"),
            Ok(5),
            "leading zeros are not significant"
        );
        assert_eq!(
            parse_chunk_line(b"fffffffffffffff"),
            Ok(0xfff_ffff_ffff_ffff)
        );
        assert_eq!(
            parse_chunk_line(b"1000000000000000"),
            Err(ChunkLineError::Size),
            "2^60 and past"
        );
        for bad in [&b""[..], b"-1", b"+1", b" 1", b"x", b";a"] {
            assert_eq!(parse_chunk_line(bad), Err(ChunkLineError::Size), "{bad:?}");
        }
        for bad in [
            &b"5;a\nb"[..],
            b"5;a\rb\0c",
            b"5;a\rb",
            b"5;",
            b"5;=b",
            b"5;a=",
            b"5;a=\"open",
            b"5;a=b c",
            b"5 x",
            b"5\x00",
            b"5;a=\"\x01\"",
            b"0x5",
        ] {
            assert_eq!(
                parse_chunk_line(bad),
                Err(ChunkLineError::Extension),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn field_lines() {
        assert_eq!(
            parse_field_line(b"X-Sum: 42 "),
            Some((&b"X-Sum"[..], &b"42"[..]))
        );
        assert_eq!(parse_field_line(b"x:"), Some((&b"x"[..], &b""[..])));
        for bad in [
            &b" X: 1"[..],
            b"X : 1",
            b"X",
            b": 1",
            b"X: a\rb",
            b"X: a\0",
            b"X\x01: 1",
            b"X: \x7f",
            // Only spaces and tabs are whitespace around a value; other controls are not trimmed away.
            b"X: 1\x0c",
            b"X:\x0b1",
            b"X: 1\r",
        ] {
            assert_eq!(parse_field_line(bad), None, "{bad:?}");
        }
    }
}
