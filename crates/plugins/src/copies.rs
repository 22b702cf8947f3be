//! The one credential a request presents, however many copies of it the request carries.
//!
//! A credential may come more than once: several field lines, a field and a cookie, a repeated query
//! parameter. The gateway checks one copy and an upstream may read another (the last field line,
//! PHP's last `?apikey=`), so every copy must be the same credential, or the request presents none
//! the gateway can vouch for.

/// A request whose copies of a credential differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConflictingCopies;

/// The one credential among `copies`, empty ones not counted: `Ok(None)` when there is none, and
/// [`ConflictingCopies`] when two differ.
pub fn one_credential<T: AsRef<[u8]> + PartialEq>(
    copies: impl IntoIterator<Item = T>,
) -> Result<Option<T>, ConflictingCopies> {
    let mut copies = copies.into_iter().filter(|copy| !copy.as_ref().is_empty());
    let Some(first) = copies.next() else {
        return Ok(None);
    };
    if copies.any(|other| other != first) {
        return Err(ConflictingCopies);
    }
    Ok(Some(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_of_one_credential_are_one_and_different_ones_conflict() {
        assert_eq!(one_credential(["", "k", "", "k"]), Ok(Some("k")));
        assert_eq!(one_credential(["", ""]), Ok(None));
        assert_eq!(one_credential(Vec::<&str>::new()), Ok(None));
        assert_eq!(one_credential(["k", "", "j"]), Err(ConflictingCopies));
    }
}
