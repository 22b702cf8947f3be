//! A second, independent reading of the grammar the chunked decoder implements (RFC 9112 §7.1, with the
//! field rules of RFC 9110 §5.5 and §5.6), for the fuzz properties to compare the decoder against.
//!
//! It is written for obviousness, not speed: it sees the whole input at once, walks it with a cursor,
//! and spells each ABNF rule as one function. It shares no code with the decoder but the limits, which
//! are the decoder's policy rather than grammar: the longest chunk-size line, the largest trailer
//! section, the most trailer fields, and sizes below 2^60. The one tolerance beyond the ABNF is the one
//! the decoder documents: whitespace after the chunk size and after an extension (`5 \r\n`).

use crate::decoder::{MAX_CHUNK_LINE, MAX_TRAILERS, MAX_TRAILER_FIELDS};
use crate::is_forbidden_trailer;

/// A chunked body the grammar accepts.
#[derive(Debug)]
pub(crate) struct Body {
    /// The chunks' data, joined.
    pub data: Vec<u8>,
    /// How many trailer fields are kept (those that may be trailers).
    pub kept_trailers: usize,
    /// How many bytes of the input the body takes; whatever follows belongs to the next message.
    pub len: usize,
}

/// `chunked-body = *chunk last-chunk trailer-section CRLF`; `None` when `input` does not start with one
/// (an incomplete body included).
pub(crate) fn chunked_body(input: &[u8]) -> Option<Body> {
    let mut at = 0;
    let mut data = Vec::new();
    loop {
        let line = line_at(input, at)?;
        if line.len() > MAX_CHUNK_LINE {
            return None;
        }
        at += line.len() + 2;
        let size = chunk_line(line)?;
        if size == 0 {
            break;
        }
        // chunk-data CRLF
        let end = at.checked_add(usize::try_from(size).ok()?)?;
        data.extend_from_slice(input.get(at..end)?);
        if input.get(end..end + 2)? != b"\r\n" {
            return None;
        }
        at = end + 2;
    }
    // trailer-section CRLF
    let section = at;
    let mut kept = 0;
    loop {
        let line = line_at(input, at)?;
        if at + line.len() - section > MAX_TRAILERS {
            return None;
        }
        at += line.len() + 2;
        if line.is_empty() {
            return Some(Body {
                data,
                kept_trailers: kept,
                len: at,
            });
        }
        let (name, _) = field_line(line)?;
        // The decoder stops at the first field line after it has kept its most.
        if kept == MAX_TRAILER_FIELDS {
            return None;
        }
        if !is_forbidden_trailer(name) {
            kept += 1;
        }
    }
}

/// The line starting at `at`, without its CRLF. Lines end in CRLF and hold neither CR nor LF.
fn line_at(input: &[u8], at: usize) -> Option<&[u8]> {
    let rest = input.get(at..)?;
    let end = rest.iter().position(|b| *b == b'\r' || *b == b'\n')?;
    (rest.get(end..end + 2)? == b"\r\n").then_some(&rest[..end])
}

/// `chunk-size [ chunk-ext ]`: the size, when the whole line is one.
pub(crate) fn chunk_line(line: &[u8]) -> Option<u64> {
    let mut c = Cursor { rest: line };
    let digits = c.many(|b| b.is_ascii_hexdigit());
    if digits.is_empty() {
        return None;
    }
    let significant: Vec<u8> = digits.iter().copied().skip_while(|d| *d == b'0').collect();
    if significant.len() > 15 {
        return None;
    }
    let size = if significant.is_empty() {
        0
    } else {
        u64::from_str_radix(std::str::from_utf8(&significant).ok()?, 16).ok()?
    };
    // chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ), then the tolerated BWS.
    loop {
        c.many(is_ws);
        if c.rest.is_empty() {
            return Some(size);
        }
        c.byte(b';')?;
        c.many(is_ws);
        c.token()?;
        let before = c.rest;
        c.many(is_ws);
        if c.byte(b'=').is_some() {
            c.many(is_ws);
            if c.rest.first() == Some(&b'"') {
                c.quoted_string()?;
            } else {
                c.token()?;
            }
        } else {
            c.rest = before;
        }
    }
}

/// `field-name ":" OWS field-value OWS`: the name and the value, when the whole line is one.
pub(crate) fn field_line(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut c = Cursor { rest: line };
    let name = c.token()?;
    c.byte(b':')?;
    c.many(is_ws);
    // field-value = *field-content, which starts and ends with a field-vchar; OWS around it.
    let value = c.rest;
    let end = value
        .iter()
        .rposition(|b| !is_ws(*b))
        .map_or(0, |at| at + 1);
    let value = &value[..end];
    let field_char = |b: &u8| is_ws(*b) || is_vchar(*b) || *b >= 0x80;
    line.iter()
        .skip(name.len() + 1)
        .all(field_char)
        .then_some((name, value))
}

/// `Content-Length = 1*DIGIT`, or a list of one repeated value (RFC 9110 §8.6), over all its lines;
/// `Some(None)` when there are none, `None` when they are not a length. Lengths past 19 digits are
/// refused as the decoder's limit.
pub(crate) fn content_length<'a>(values: impl Iterator<Item = &'a [u8]>) -> Option<Option<u64>> {
    let mut length = None;
    for value in values {
        for element in value.split(|b| *b == b',') {
            let mut c = Cursor { rest: element };
            c.many(is_ws);
            let digits = c.many(|b| b.is_ascii_digit());
            c.many(is_ws);
            if digits.is_empty() || digits.len() > 19 || !c.rest.is_empty() {
                return None;
            }
            let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
            if length.is_some_and(|l| l != n) {
                return None;
            }
            length = Some(n);
        }
    }
    Some(length)
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_vchar(b: u8) -> bool {
    (0x21..=0x7e).contains(&b)
}

/// The rest of a line, consumed rule by rule.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    /// `*( byte that matches )`
    fn many(&mut self, matches: impl Fn(u8) -> bool) -> &'a [u8] {
        let n = self.rest.iter().take_while(|b| matches(**b)).count();
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        taken
    }

    fn byte(&mut self, want: u8) -> Option<()> {
        let (first, rest) = self.rest.split_first()?;
        (*first == want).then(|| self.rest = rest)
    }

    /// `token = 1*tchar` (RFC 9110 §5.6.2)
    fn token(&mut self) -> Option<&'a [u8]> {
        let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        let token = self.many(tchar);
        (!token.is_empty()).then_some(token)
    }

    /// `quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE` (RFC 9110 §5.6.4)
    fn quoted_string(&mut self) -> Option<()> {
        self.byte(b'"')?;
        loop {
            let (first, rest) = self.rest.split_first()?;
            self.rest = rest;
            match *first {
                b'"' => return Some(()),
                b'\\' => {
                    let (escaped, rest) = self.rest.split_first()?;
                    if !(is_ws(*escaped) || is_vchar(*escaped) || *escaped >= 0x80) {
                        return None;
                    }
                    self.rest = rest;
                }
                b if is_ws(b) || b >= 0x80 || is_vchar(b) => {}
                _ => return None,
            }
        }
    }
}
