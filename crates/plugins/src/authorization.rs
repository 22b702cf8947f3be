//! The `Authorization` field's `<scheme> <credentials>` form (RFC 9110 §11.4), read one way by every
//! plugin that takes credentials from it (`Basic` for basic-auth, `Bearer` for jwt-auth).

/// The credentials of `value` under `scheme` (lowercase, compared ASCII-case-insensitively), trimmed
/// of surrounding whitespace; `None` when `value` is under another scheme. The scheme ends at the
/// first space, so `Bearer\tx` is not a `Bearer` credential. A scheme alone gives empty credentials.
pub(crate) fn credentials<'v>(value: &'v [u8], scheme: &[u8]) -> Option<&'v [u8]> {
    let (name, rest) = match value.iter().position(|&b| b == b' ') {
        Some(space) => (&value[..space], &value[space + 1..]),
        None => (value, &[][..]),
    };
    name.eq_ignore_ascii_case(scheme).then(|| rest.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::credentials;

    #[test]
    fn the_scheme_ends_at_the_first_space_and_is_read_in_any_case() {
        assert_eq!(
            credentials(b"Basic dXM6cHc=", b"basic"),
            Some(&b"dXM6cHc="[..])
        );
        assert_eq!(
            credentials(b"BASIC   dXM6cHc=  ", b"basic"),
            Some(&b"dXM6cHc="[..])
        );
        assert_eq!(credentials(b"Basic", b"basic"), Some(&b""[..]));
        assert_eq!(credentials(b"Basic\tdXM6cHc=", b"basic"), None);
        assert_eq!(credentials(b"Bearer a.b.c", b"basic"), None);
        assert_eq!(credentials(b"Basicx y", b"basic"), None);
    }
}
