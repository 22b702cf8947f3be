//! The path a request is routed on: one spelling for each path an upstream could act on.
//!
//! Routes gate access by path, and upstreams decode and normalise paths before acting on them, so routing
//! on the raw target lets `/app/%69nternal/x`, `/app//internal/x` or `/app/x/../internal/x` past a route
//! that guards `/app/internal/*`. Before routing, a path is rewritten as RFC 3986 §6.2.2 and §5.2.4 say
//! (as Envoy's `normalize_path` and `merge_slashes` do): percent-encoded unreserved characters decoded,
//! the hex of other escapes uppercased, repeated slashes merged, dot segments resolved. Encoded slashes
//! follow the listener's choice (Envoy's `path_with_escaped_slashes_action`). The query is not part of the
//! path and is never touched.
//!
//! This runs on every request, so a single scan first decides whether there is anything to do; most
//! paths have no `%`, `//` or dot segment and come back borrowed, without allocating.

use std::borrow::Cow;

use floodgate_config::{EscapedSlashes, ForwardPath, PathNormalizationConfig};

/// A listener's path rules, taken from its configuration once per snapshot and copied into each
/// connection it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathRules {
    /// Merge repeated slashes.
    pub merge_slashes: bool,
    /// What `%2F` and `%5C` become.
    pub escaped_slashes: EscapedSlashes,
    /// Whether the upstream receives the normalised path (else the client's original target).
    pub forward_normalized: bool,
}

impl From<&PathNormalizationConfig> for PathRules {
    fn from(config: &PathNormalizationConfig) -> Self {
        Self {
            merge_slashes: config.merge_slashes,
            escaped_slashes: config.escaped_slashes,
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
    // Decoding first, then resolving segments, so `%2e%2e` is a `..` and a decoded `%2F` separates
    // segments. Decoding never produces a `%` (an encoded `%` is not unreserved), so nothing is decoded
    // twice.
    let decoded = decode(bytes, rules.escaped_slashes)?;
    let resolved = resolve_segments(&decoded, rules.merge_slashes)?;
    // Only ASCII bytes were replaced and every other byte copied whole, so this always succeeds.
    let normalized = String::from_utf8(resolved).map_err(|_| PathError::MalformedEscape)?;
    Ok(if normalized == path {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(normalized)
    })
}

/// Bytes the fast scan passes over without a second look: all but `%`, `/`, `\` and control bytes.
const PLAIN: [bool; 256] = {
    let mut table = [true; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = !(byte < 0x20
            || byte == 0x7f
            || byte == b'%' as usize
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

/// The path with unreserved characters decoded, other escapes' hex uppercased, and encoded slashes
/// kept, decoded or refused.
fn decode(path: &[u8], slashes: EscapedSlashes) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while let Some(&byte) = path.get(i) {
        if byte != b'%' {
            if is_control(byte) {
                return Err(PathError::ControlByte);
            }
            match (byte, slashes) {
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
mod tests {
    use std::borrow::Cow;

    use floodgate_config::EscapedSlashes;

    use super::{decode, needs_work, normalize, resolve_segments, PathError, PathRules};

    fn rules(escaped_slashes: EscapedSlashes) -> PathRules {
        PathRules {
            escaped_slashes,
            ..PathRules::default()
        }
    }

    fn normal(path: &str) -> Result<String, PathError> {
        normalize(path, PathRules::default()).map(Cow::into_owned)
    }

    #[test]
    fn normal_paths_are_borrowed() {
        for path in [
            "/",
            "/app/users",
            "/app/users/",
            "/.well-known/acme",
            "/a/.b/..c/c..",
            "/a%20b/%C3%A9",
            "*",
        ] {
            assert!(
                matches!(normalize(path, PathRules::default()), Ok(Cow::Borrowed(p)) if p == path),
                "{path}"
            );
        }
    }

    #[test]
    fn unreserved_escapes_are_decoded_and_others_uppercased() {
        assert_eq!(
            normal("/app/%69nternal/secret").unwrap(),
            "/app/internal/secret"
        );
        assert_eq!(normal("/app/ok%7Efile").unwrap(), "/app/ok~file");
        assert_eq!(normal("/%41%5a%30%2D%5f%2e").unwrap(), "/AZ0-_.");
        assert_eq!(normal("/a%20b/%c3%a9").unwrap(), "/a%20b/%C3%A9");
        // An encoded `%` stays encoded: `%2569` is the three characters `%69`, not `i`.
        assert_eq!(normal("/%2569").unwrap(), "/%2569");
    }

    #[test]
    fn repeated_slashes_are_merged_when_asked() {
        assert_eq!(normal("//app///internal//x//").unwrap(), "/app/internal/x/");
        assert_eq!(normal("//").unwrap(), "/");
        let keep = PathRules {
            merge_slashes: false,
            ..PathRules::default()
        };
        assert_eq!(normalize("/a//b", keep).unwrap(), "/a//b");
        assert_eq!(normalize("/a//../b", keep).unwrap(), "/a/b");
    }

    #[test]
    fn dot_segments_are_resolved_in_every_spelling() {
        for (path, expected) in [
            ("/app/./internal/x", "/app/internal/x"),
            ("/app/foo/../internal/x", "/app/internal/x"),
            ("/app/%2e%2e/app/internal/x", "/app/internal/x"),
            ("/app/x/%2E%2e/internal", "/app/internal"),
            ("/app/x/.%2e/internal", "/app/internal"),
            ("/app/x/%2e./internal", "/app/internal"),
            ("/app/%2e/internal", "/app/internal"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/a/..", "/"),
            ("/.", "/"),
            ("/a/.../b", "/a/.../b"),
            ("/a/%2e%2e%2e/b", "/a/.../b"),
            ("/a/%2e%2ex/b", "/a/..x/b"),
        ] {
            assert_eq!(normal(path).unwrap(), expected, "{path}");
        }
    }

    #[test]
    fn climbing_above_the_root_is_refused() {
        for path in ["/..", "/../a", "/a/../..", "/a/%2e%2e/%2E%2E/b", "//../a"] {
            assert_eq!(normal(path), Err(PathError::AboveRoot), "{path}");
        }
    }

    #[test]
    fn malformed_escapes_and_control_bytes_are_refused() {
        for path in ["/a%zz", "/a%4", "/a%", "/%g0/b", "/ok/%2"] {
            assert_eq!(normal(path), Err(PathError::MalformedEscape), "{path}");
        }
        for path in ["/a\0b", "/a\x1fb", "/a\x7f", "/a%00b", "/a/%41\tb"] {
            assert_eq!(normal(path), Err(PathError::ControlByte), "{path:?}");
        }
    }

    #[test]
    fn encoded_slashes_follow_the_listener() {
        for path in [
            "/app/internal%2fsecret",
            "/app/internal%2Fsecret",
            "/a%5cb",
            "/app/internal\\secret",
        ] {
            assert_eq!(normal(path), Err(PathError::EncodedSlash), "{path}");
        }
        let keep = rules(EscapedSlashes::Keep);
        assert_eq!(
            normalize("/app/internal%2fsecret", keep).unwrap(),
            "/app/internal%2Fsecret"
        );
        assert!(matches!(
            normalize("/a%2Fb%5C", keep),
            Ok(Cow::Borrowed("/a%2Fb%5C"))
        ));
        assert_eq!(normalize("/a/..%2f..%2fb", keep).unwrap(), "/a/..%2F..%2Fb");
        assert!(matches!(
            normalize("/a\\b", keep),
            Ok(Cow::Borrowed("/a\\b"))
        ));
        let decode = rules(EscapedSlashes::Decode);
        assert_eq!(
            normalize("/app/internal\\secret", decode).unwrap(),
            "/app/internal/secret"
        );
        assert_eq!(
            normalize("/app/internal%2fsecret", decode).unwrap(),
            "/app/internal/secret"
        );
        assert_eq!(normalize("/a%2F%2f%5Cb", decode).unwrap(), "/a/b");
        assert_eq!(normalize("/a/b%2F..%2Fc", decode).unwrap(), "/a/c");
        assert_eq!(normalize("/a/b%2F..%2F..%2Fc", decode).unwrap(), "/c");
        assert_eq!(
            normalize("/a%2F..%2F..%2Fc", decode),
            Err(PathError::AboveRoot)
        );
    }

    #[test]
    fn non_ascii_bytes_pass_through() {
        assert_eq!(normal("/caf\u{e9}//%7e").unwrap(), "/caf\u{e9}/~");
    }

    /// Whatever the input, the output is a fixed point with none of the spellings routing must not see.
    #[test]
    fn output_is_normal_for_any_input() {
        const ALPHABET: &[u8] = b"//..%%2eEfF5cC7a0zZ~";
        let mut random = fastrand::Rng::with_seed(7);
        for escaped_slashes in [
            EscapedSlashes::Refuse,
            EscapedSlashes::Keep,
            EscapedSlashes::Decode,
        ] {
            for merge_slashes in [true, false] {
                let rules = PathRules {
                    merge_slashes,
                    escaped_slashes,
                    forward_normalized: true,
                };
                for _ in 0..20_000 {
                    let len = random.usize(0..24);
                    let mut path = String::from("/");
                    path.extend(
                        (0..len).map(|_| char::from(ALPHABET[random.usize(..ALPHABET.len())])),
                    );
                    // The fast scan and the full rewrite agree: a path the scan passes is unchanged
                    // by the rewrite, and a normalised path always passes the scan (no allocation).
                    let slow = decode(path.as_bytes(), rules.escaped_slashes)
                        .and_then(|decoded| resolve_segments(&decoded, rules.merge_slashes));
                    match needs_work(path.as_bytes(), rules) {
                        Ok(false) => assert_eq!(slow.as_deref(), Ok(path.as_bytes()), "{path}"),
                        // The scan stops at the first change; the rewrite may still refuse later bytes.
                        Ok(true) => {}
                        Err(e) => assert_eq!(slow, Err(e), "{path}"),
                    }
                    let Ok(out) = normalize(&path, rules) else {
                        continue;
                    };
                    assert_eq!(
                        needs_work(out.as_bytes(), rules),
                        Ok(false),
                        "{path} -> {out}"
                    );
                    assert!(out.starts_with('/'), "{path} -> {out}");
                    assert_eq!(normalize(&out, rules).as_deref(), Ok(&*out), "{path}");
                    assert!(
                        !out.split('/').any(|s| s == "." || s == ".."),
                        "{path} -> {out}"
                    );
                    assert!(!merge_slashes || !out.contains("//"), "{path} -> {out}");
                    assert!(
                        !out.contains("%2e") && !out.contains("%2E"),
                        "{path} -> {out}"
                    );
                }
            }
        }
    }
}
