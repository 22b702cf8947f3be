//! Which resources of a configuration are those of an earlier one: the same `Arc`, so neither
//! parsed nor changed since. What a change leaves as it was is known by this, without comparing the
//! resources' contents, and whatever was built from such a resource can be kept.

use std::sync::Arc;

/// For each item of `next`, the index in `previous` of the very same item (`Arc::ptr_eq`), if it is
/// one of `previous`'s.
///
/// Walks both lists side by side, as a change leaves them: the same items in the same order but for
/// a few replaced, inserted or removed here and there. An item out of that order (the lists
/// reordered) is reported as not found: whoever uses the answer then does the work it would do for a
/// new item, more than needed, never less.
pub fn same_items<T>(previous: &[Arc<T>], next: &[Arc<T>]) -> Vec<Option<usize>> {
    let same = |i: usize, j: usize| matches!((next.get(i), previous.get(j)), (Some(a), Some(b)) if Arc::ptr_eq(a, b));
    let mut found = Vec::with_capacity(next.len());
    let mut j = 0;
    for i in 0..next.len() {
        if !same(i, j) {
            if same(i, j + 1) {
                // previous[j] is gone.
                j += 1;
            } else if same(i + 1, j) || j >= previous.len() {
                // next[i] is inserted.
                found.push(None);
                continue;
            } else {
                // next[i] replaces previous[j].
                found.push(None);
                j += 1;
                continue;
            }
        }
        found.push(Some(j));
        j += 1;
    }
    found
}

/// The indices of `previous`'s items that [`same_items`]' answer `same` (for a list of `next`)
/// did not find: those gone, or moved out of order.
pub fn gone_items(previous_len: usize, same: &[Option<usize>]) -> Vec<usize> {
    let mut kept = vec![false; previous_len];
    for &j in same.iter().flatten() {
        kept[j] = true;
    }
    (0..previous_len).filter(|&j| !kept[j]).collect()
}

impl crate::Config {
    /// Whether `other` is the same configuration: [`PartialEq`], but a resource that is the same `Arc`
    /// in both is not compared field by field, so two configurations that share most resources
    /// compare at the cost of those they do not.
    pub fn same_as(&self, other: &crate::Config) -> bool {
        fn same<T: PartialEq>(a: &[Arc<T>], b: &[Arc<T>]) -> bool {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| Arc::ptr_eq(a, b) || a == b)
        }
        self.same_settings(other)
            && same(&self.upstreams, &other.upstreams)
            && same(&self.routes, &other.routes)
            && same(&self.consumers, &other.consumers)
            && same(&self.certificates, &other.certificates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaced_inserted_removed_and_reordered_items() {
        let items: Vec<Arc<u8>> = (0..6).map(Arc::new).collect();
        let found = |next: &[Arc<u8>]| same_items(&items, next);
        let all: Vec<Option<usize>> = (0..6).map(Some).collect();
        assert_eq!(found(&items), all);
        let mut replaced = items.clone();
        replaced[2] = Arc::new(2);
        assert_eq!(
            found(&replaced),
            [Some(0), Some(1), None, Some(3), Some(4), Some(5)]
        );
        let mut inserted = items.clone();
        inserted.insert(3, Arc::new(9));
        assert_eq!(
            found(&inserted),
            [Some(0), Some(1), Some(2), None, Some(3), Some(4), Some(5)]
        );
        let mut removed = items.clone();
        removed.remove(1);
        assert_eq!(
            found(&removed),
            [Some(0), Some(2), Some(3), Some(4), Some(5)]
        );
        assert_eq!(gone_items(items.len(), &found(&removed)), [1]);
        assert_eq!(gone_items(items.len(), &found(&replaced)), [2]);
        assert!(gone_items(items.len(), &found(&items)).is_empty());
        let mut appended = items.clone();
        appended.push(Arc::new(7));
        assert_eq!(found(&appended)[6], None);
        assert_eq!(found(&items[..4]), all[..4]);
        assert_eq!(same_items(&items[..0], &items[..2]), [None, None]);
        // Out of order: items are not found (more work for the caller, never a wrong match).
        let reversed: Vec<Arc<u8>> = items.iter().rev().cloned().collect();
        for (i, found) in found(&reversed).into_iter().enumerate() {
            assert!(found.is_none_or(|j| Arc::ptr_eq(&items[j], &reversed[i])));
        }
    }

    #[test]
    fn same_as_is_equality() {
        let config = crate::parse_yaml(
            "listeners: [{ name: a, address: \"127.0.0.1:0\" }]\n\
             routes: [{ id: r, paths: [\"/\"], respond: { status: 200 } }]\n",
        )
        .unwrap();
        let mut copy = config.clone();
        assert!(copy.same_as(&config));
        // An equal route in another `Arc` is the same; a changed one is not.
        copy.routes[0] = Arc::new((*config.routes[0]).clone());
        assert!(copy.same_as(&config) && copy == config);
        Arc::make_mut(&mut copy.routes[0]).paths = vec!["/x".into()];
        assert!(!copy.same_as(&config) && copy != config);
        let mut other = config.clone();
        other.workers = Some(3);
        assert!(!other.same_as(&config));
    }
}
