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
    let mut one = OneCredential::default();
    for copy in copies {
        one.add(copy)?;
    }
    Ok(one.get())
}

/// [`one_credential`] fed one copy at a time, for a caller that walks its sources with plain loops
/// (on the request path, cheaper than chaining them into one iterator).
pub struct OneCredential<T> {
    first: Option<T>,
}

impl<T> Default for OneCredential<T> {
    fn default() -> Self {
        Self { first: None }
    }
}

impl<T: AsRef<[u8]> + PartialEq> OneCredential<T> {
    /// Counts `copy` (an empty one is none); [`ConflictingCopies`] when it differs from an earlier one.
    pub fn add(&mut self, copy: T) -> Result<(), ConflictingCopies> {
        if copy.as_ref().is_empty() {
            return Ok(());
        }
        match &self.first {
            None => self.first = Some(copy),
            Some(first) if *first == copy => {}
            Some(_) => return Err(ConflictingCopies),
        }
        Ok(())
    }

    /// The credential, if any copy had one.
    pub fn get(self) -> Option<T> {
        self.first
    }
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
