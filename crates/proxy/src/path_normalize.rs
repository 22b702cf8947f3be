//! The path a request is routed on: one spelling for each path an upstream could act on.
//!
//! Routes gate access by path, and upstreams decode and normalise paths before acting on them, so routing
//! on the raw target lets `/app/%69nternal/x`, `/app//internal/x` or `/app/x/../internal/x` past a route
//! that guards `/app/internal/*`. Before routing, a path is rewritten as RFC 3986 §6.2.2 and §5.2.4 say
//! (as Envoy's `normalize_path` and `merge_slashes` do): percent-encoded unreserved characters decoded,
//! the hex of other escapes uppercased, repeated slashes merged, dot segments resolved. Encoded slashes
//! follow the listener's choice (Envoy's `path_with_escaped_slashes_action`), and so do `;` path
//! parameters, which servlet containers remove from each segment before they decode or resolve anything
//! (`/public/..;/admin/secret` is `/admin/secret` to Tomcat). The query is not part of the path and is
//! never touched.
//!
//! This runs on every request, so a single scan first decides whether there is anything to do; most
//! paths have no `%`, `//` or dot segment and come back borrowed, without allocating.

use std::borrow::Cow;

use floodgate_config::{EscapedSlashes, ForwardPath, PathNormalizationConfig, Semicolons};

/// A listener's path rules, taken from its configuration once per snapshot and copied into each
/// connection it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathRules {
    /// Merge repeated slashes.
    pub merge_slashes: bool,
    /// What `%2F` and `%5C` become.
    pub escaped_slashes: EscapedSlashes,
    /// What `;` path parameters become.
    pub semicolons: Semicolons,
    /// Whether the upstream receives the normalised path (else the client's original target).
    pub forward_normalized: bool,
}

impl From<&PathNormalizationConfig> for PathRules {
    fn from(config: &PathNormalizationConfig) -> Self {
        Self {
            merge_slashes: config.merge_slashes,
            escaped_slashes: config.escaped_slashes,
            semicolons: config.semicolons,
            forward_normalized: config.forward == ForwardPath::Normalized,
        }
    }
}

impl Default for PathRules {
    fn default() -> Self {
        Self::from(&PathNormalizationConfig::default())
    }
}

/// Why a path cannot be routed; each is answered with 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A control byte, or an encoded NUL (`%00`), which C servers read as the end of the path.
    #[error("control byte in the path")]
    ControlByte,
    /// A `%` not followed by two hex digits.
    #[error("malformed percent-encoding in the path")]
    MalformedEscape,
    /// `%2F` or `%5C` where the listener refuses them.
    #[error("encoded slash in the path")]
    EncodedSlash,
    /// A `;` or `%3B` where the listener refuses path parameters.
    #[error("semicolon in the path")]
    Semicolon,
    /// A `..` segment that would climb above `/`.
    #[error("dot segment above the root")]
    AboveRoot,
}

/// The normalised form of `path`, borrowed when it is already normal.
///
/// Only origin-form paths (starting with `/`) are normalised; anything else (the `*` of `OPTIONS *`) is
/// not a path and comes back as it is.
pub fn normalize(path: &str, rules: PathRules) -> Result<Cow<'_, str>, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') || !needs_work(bytes, rules)? {
        return Ok(Cow::Borrowed(path));
    }
    let resolved = rewrite(bytes, rules)?;
    // Only ASCII bytes were replaced and every other byte copied whole, so this always succeeds.
    let normalized = String::from_utf8(resolved).map_err(|_| PathError::MalformedEscape)?;
    Ok(if normalized == path {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(normalized)
    })
}

/// The full rewrite, for paths the scan found something to do in.
fn rewrite(path: &[u8], rules: PathRules) -> Result<Vec<u8>, PathError> {
    // Parameters go first, on the raw path, as servlet containers remove them: `..;` is then a `..`,
    // and a `%2F` inside a parameter never separates anything.
    let stripped;
    let path = if rules.semicolons == Semicolons::Strip {
        stripped = strip_parameters(path)?;
        &stripped[..]
    } else {
        path
    };
    // Decoding next, then resolving segments, so `%2e%2e` is a `..` and a decoded `%2F` separates
    // segments. Decoding never produces a `%` (an encoded `%` is not unreserved), so nothing is decoded
    // twice.
    let decoded = decode(path, rules)?;
    resolve_segments(&decoded, rules.merge_slashes)
}

/// Bytes the fast scan passes over without a second look: all but `%`, `/`, `\`, `;` and control
/// bytes. `;` is one more entry of the same table, so paths without one pay nothing for its rules.
const PLAIN: [bool; 256] = {
    let mut table = [true; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = !(byte < 0x20
            || byte == 0x7f
            || byte == b'%' as usize
            || byte == b';' as usize
            || byte == b'/' as usize
            || byte == b'\\' as usize);
        byte += 1;
    }
    table
};

/// Whether `path` would change, or an error when it cannot be routed at all. Stops at the first change
/// found: the slow path checks the rest.
///
/// Skipping plain bytes with a table lookup measured as fast as the segment split it replaces (about
/// 1 ns per byte), and faster on `/`.
fn needs_work(path: &[u8], rules: PathRules) -> Result<bool, PathError> {
    let mut rest = path;
    while let Some(at) = rest.iter().position(|&b| !PLAIN[usize::from(b)]) {
        let tail = rest.get(at..).unwrap_or_default();
        let Some((&byte, after)) = tail.split_first() else {
            break;
        };
        match byte {
            b'%' => {
                let (value, lower) = escape_at(tail, 0)?;
                let changes = match value {
                    0 => return Err(PathError::ControlByte),
                    b'/' | b'\\' => match rules.escaped_slashes {
                        EscapedSlashes::Refuse => return Err(PathError::EncodedSlash),
                        EscapedSlashes::Keep => lower,
                        EscapedSlashes::Decode => true,
                    },
                    // An upstream that decodes before it strips would read `%3B` as a delimiter:
                    // unless `;` is data to every upstream (`keep`), no path may hold one.
                    b';' if rules.semicolons != Semicolons::Keep => {
                        return Err(PathError::Semicolon)
                    }
                    value => lower || is_unreserved(value),
                };
                if changes {
                    return Ok(true);
                }
            }
            b'/' => {
                let merge = rules.merge_slashes && after.first() == Some(&b'/');
                if merge || is_dot_segment_at(after, 0) {
                    return Ok(true);
                }
            }
            // A literal backslash is a separator to the same servers as `%5C`: the same rule holds.
            b'\\' => match rules.escaped_slashes {
                EscapedSlashes::Refuse => return Err(PathError::EncodedSlash),
                EscapedSlashes::Keep => {}
                EscapedSlashes::Decode => return Ok(true),
            },
            b';' => match rules.semicolons {
                Semicolons::Refuse => return Err(PathError::Semicolon),
                Semicolons::Strip => return Ok(true),
                Semicolons::Keep => {}
            },
            _ => return Err(PathError::ControlByte),
        }
        rest = after;
    }
    Ok(false)
}

/// Whether the segment starting at `start` is `.` or `..` (spelled with literal dots; encoded ones are
/// caught as escapes to decode).
fn is_dot_segment_at(path: &[u8], start: usize) -> bool {
    let ends_at = |i: usize| matches!(path.get(i), None | Some(b'/'));
    path.get(start) == Some(&b'.')
        && (ends_at(start + 1) || (path.get(start + 1) == Some(&b'.') && ends_at(start + 2)))
}

/// Each segment without its parameters: from a `;` to the end of its segment. `%3B` is not a
/// delimiter here, as it is not to the servlet containers this copies (one left outside parameters is
/// refused when decoding). What is removed must still be well-formed: a path is refused for a control
/// byte or a malformed escape wherever it is.
fn strip_parameters(path: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(path.len());
    let mut in_parameters = false;
    for (i, &byte) in path.iter().enumerate() {
        match byte {
            b'/' => in_parameters = false,
            b';' => in_parameters = true,
            _ => {}
        }
        if !in_parameters {
            out.push(byte);
        } else if is_control(byte) || (byte == b'%' && escape_at(path, i)?.0 == 0) {
            return Err(PathError::ControlByte);
        }
    }
    Ok(out)
}

/// The path with unreserved characters decoded, other escapes' hex uppercased, encoded slashes kept,
/// decoded or refused, and `;` kept or refused (stripping happened before).
fn decode(path: &[u8], rules: PathRules) -> Result<Vec<u8>, PathError> {
    let slashes = rules.escaped_slashes;
    let refuse_semicolons = rules.semicolons == Semicolons::Refuse;
    // `%3B` is refused unless `;` is data to every upstream: one that decodes before it strips
    // parameters would read it as a delimiter the routes never saw (Spring's firewall refuses it too).
    let refuse_encoded_semicolons = rules.semicolons != Semicolons::Keep;
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while let Some(&byte) = path.get(i) {
        if byte != b'%' {
            if is_control(byte) {
                return Err(PathError::ControlByte);
            }
            match (byte, slashes) {
                (b';', _) if refuse_semicolons => return Err(PathError::Semicolon),
                (b'\\', EscapedSlashes::Refuse) => return Err(PathError::EncodedSlash),
                (b'\\', EscapedSlashes::Decode) => out.push(b'/'),
                _ => out.push(byte),
            }
            i += 1;
            continue;
        }
        let (value, _) = escape_at(path, i)?;
        match value {
            0 => return Err(PathError::ControlByte),
            b'/' | b'\\' => match slashes {
                EscapedSlashes::Refuse => return Err(PathError::EncodedSlash),
                EscapedSlashes::Keep => push_escape(&mut out, value),
                // A backslash too: the servers that decode `%5C` (IIS, Windows file servers) read it
                // as a separator, so routing must see one.
                EscapedSlashes::Decode => out.push(b'/'),
            },
            b';' if refuse_encoded_semicolons => return Err(PathError::Semicolon),
            value if is_unreserved(value) => out.push(value),
            value => push_escape(&mut out, value),
        }
        i += 3;
    }
    Ok(out)
}

/// RFC 3986 §5.2.4's remove_dot_segments over a path starting with `/`, merging empty segments when
/// asked; a `..` with nothing left to remove is an error rather than RFC 3986's silent stop at `/`,
/// since such a path was written to reach above what it names.
fn resolve_segments(path: &[u8], merge_slashes: bool) -> Result<Vec<u8>, PathError> {
    // `out` holds `/segment` per kept segment, so removing the last one is a cut at its last `/`.
    let mut out = Vec::with_capacity(path.len());
    let mut segments = path.get(1..).unwrap_or_default().split(|&b| b == b'/');
    let mut next = segments.next();
    while let Some(segment) = next {
        next = segments.next();
        let last = next.is_none();
        match segment {
            b"." => {}
            b".." => {
                let cut = out
                    .iter()
                    .rposition(|&b| b == b'/')
                    .ok_or(PathError::AboveRoot)?;
                out.truncate(cut);
            }
            b"" if merge_slashes && !last => {}
            segment => {
                out.push(b'/');
                out.extend_from_slice(segment);
                continue;
            }
        }
        // A final `.` or `..` names a directory: `/a/b/..` is `/a/`, as in RFC 3986's examples.
        if last {
            out.push(b'/');
        }
    }
    if out.is_empty() {
        out.push(b'/');
    }
    Ok(out)
}

/// The byte encoded at `path[i..i + 3]` (`path[i]` is `%`), and whether its hex uses lowercase letters.
fn escape_at(path: &[u8], i: usize) -> Result<(u8, bool), PathError> {
    let digit = |at: usize| {
        let byte = *path.get(at).ok_or(PathError::MalformedEscape)?;
        let value = (byte as char)
            .to_digit(16)
            .ok_or(PathError::MalformedEscape)?;
        Ok::<_, PathError>((value as u8, byte.is_ascii_lowercase()))
    };
    let (high, high_lower) = digit(i + 1)?;
    let (low, low_lower) = digit(i + 2)?;
    Ok(((high << 4) | low, high_lower || low_lower))
}

fn push_escape(out: &mut Vec<u8>, value: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push(b'%');
    out.push(HEX[usize::from(value >> 4)]);
    out.push(HEX[usize::from(value & 0x0f)]);
}

/// RFC 3986 §2.3: the characters whose encoded and plain forms are equivalent.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

fn is_control(byte: u8) -> bool {
    byte < 0x20 || byte == 0x7f
}

#[cfg(test)]
mod tests;
