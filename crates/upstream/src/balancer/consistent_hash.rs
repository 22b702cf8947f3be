//! Consistent hashing on a ketama ring, with round robin for requests that lack the key.

use floodgate_config::TargetConfig;
use xxhash_rust::xxh3::xxh3_64;

use super::hash_key::HashKey;
use super::rejected::RejectedTargets;
use super::round_robin::RoundRobin;
use super::weights::{reduce_by_gcd, weights};
use super::PickContext;

/// Ring points per unit of (gcd-reduced) weight, as in libketama and nginx's `hash ... consistent`:
/// enough that each target's share of the ring is within a few percent of its weight.
const POINTS_PER_WEIGHT: u64 = 160;

/// Most ring points: 64k points of 16 bytes is 1 MiB, and a binary search over it takes 16 steps. Heavier
/// weights are scaled down proportionally.
const MAX_POINTS: u64 = 65_536;

/// Ketama consistent hashing (libketama, last.fm 2007): every target owns many points on a 64-bit ring,
/// placed at the hashes of `"address#n"`, and a key goes to the owner of the first point at or after its
/// own hash. Points depend only on a target's address and weight, never on the other targets, so adding
/// or removing one of N targets remaps only the ~1/N of keys whose nearest point changes, which is what
/// keeps caches behind the upstream warm across scaling.
#[derive(Debug)]
pub(crate) struct ConsistentHash {
    /// `(point hash, target index)`, sorted by hash, hashes unique.
    ring: Box<[(u64, u32)]>,
    key: HashKey,
    /// For requests without the key: spreading them keeps one target from taking all of them.
    fallback: RoundRobin,
    targets: usize,
}

impl ConsistentHash {
    pub(crate) fn new(targets: &[TargetConfig], key: HashKey, workers: usize) -> Self {
        Self {
            ring: ring(targets),
            key,
            fallback: RoundRobin::new(targets, workers),
            targets: targets.len(),
        }
    }

    #[inline]
    pub(crate) fn pick(
        &self,
        ctx: &PickContext<'_>,
        eligible: &impl Fn(usize) -> bool,
    ) -> Option<usize> {
        match self.key.hash(ctx) {
            Some(hash) => self.walk(hash, eligible),
            None => self.fallback.pick(ctx.worker, eligible),
        }
    }

    /// The owner of the first point at or after `hash`, or, when it is ineligible, of the next points
    /// clockwise: a key whose target is at its limit spills to the same neighbour every time, so it stays
    /// sticky to a second target instead of scattering.
    fn walk(&self, hash: u64, eligible: &impl Fn(usize) -> bool) -> Option<usize> {
        let len = self.ring.len();
        let start = self.ring.partition_point(|&(point, _)| point < hash);
        let mut rejected = RejectedTargets::default();
        for step in 0..len {
            // `start` may equal `len` (past the last point): the ring wraps to the first.
            let position = start + step;
            let position = if position >= len {
                position - len
            } else {
                position
            };
            let Some(&(_, target)) = self.ring.get(position) else {
                break;
            };
            let target = target as usize;
            if rejected.contains(target) {
                continue;
            }
            if eligible(target) {
                return Some(target);
            }
            rejected.insert(target);
            if rejected.all_of(self.targets) {
                break;
            }
        }
        None
    }
}

/// The sorted ring of all targets' points.
fn ring(targets: &[TargetConfig]) -> Box<[(u64, u32)]> {
    let mut weights = weights(targets);
    reduce_by_gcd(&mut weights);
    let total: u64 = weights.iter().sum::<u64>() * POINTS_PER_WEIGHT;
    let points = |weight: u64| {
        if total > MAX_POINTS {
            (weight * POINTS_PER_WEIGHT * MAX_POINTS / total).max(1)
        } else {
            weight * POINTS_PER_WEIGHT
        }
    };
    let mut ring = Vec::with_capacity(usize::try_from(total.min(MAX_POINTS)).unwrap_or(0));
    for (index, (target, &weight)) in targets.iter().zip(&weights).enumerate() {
        let Ok(index) = u32::try_from(index) else {
            break;
        };
        ring.extend((0..points(weight)).map(|n| {
            let point = format!("{}#{n}", target.address);
            (xxh3_64(point.as_bytes()), index)
        }));
    }
    // Sorting by (hash, index) and keeping the first of equal hashes makes a collision (two points of
    // 64-bit hash, practically never) resolve the same way on every gateway built from the same config.
    ring.sort_unstable();
    ring.dedup_by_key(|&mut (hash, _)| hash);
    ring.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::targets;
    use super::*;
    use floodgate_config::HashOn;
    use http::{HeaderMap, HeaderValue};
    use std::net::{IpAddr, Ipv4Addr};

    const FOUR: [(&str, u32); 4] = [
        ("10.0.0.1:80", 1),
        ("10.0.0.2:80", 1),
        ("10.0.0.3:80", 1),
        ("10.0.0.4:80", 1),
    ];

    fn on_path(list: &[(&str, u32)]) -> ConsistentHash {
        ConsistentHash::new(&targets(list), HashKey::new(Some(HashOn::Path), None), 1)
    }

    fn pick_path(balancer: &ConsistentHash, path: &str) -> Option<usize> {
        let headers = HeaderMap::new();
        let ctx = PickContext {
            worker: 0,
            headers: &headers,
            path,
            client_ip: None,
        };
        balancer.pick(&ctx, &|_| true)
    }

    fn shares(balancer: &ConsistentHash, keys: usize) -> Vec<usize> {
        let mut counts = vec![0; balancer.targets];
        for key in 0..keys {
            counts[pick_path(balancer, &format!("/item/{key}")).unwrap()] += 1;
        }
        counts
    }

    #[test]
    fn same_key_same_target() {
        let balancer = on_path(&FOUR);
        for key in 0..100 {
            let path = format!("/item/{key}");
            let first = pick_path(&balancer, &path);
            assert!(first.is_some());
            assert!((0..10).all(|_| pick_path(&balancer, &path) == first));
        }
    }

    #[test]
    fn keys_spread_over_targets() {
        let counts = shares(&on_path(&FOUR), 10_000);
        // 2,500 each if perfectly even; 160 points per target keeps each within a few percent.
        assert!(
            counts.iter().all(|&c| (1_500..3_500).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn keys_spread_by_weight() {
        let counts = shares(&on_path(&[("a:80", 3), ("b:80", 1)]), 10_000);
        assert!((6_500..8_500).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn adding_a_fifth_target_moves_about_a_fifth_of_keys() {
        let before = on_path(&FOUR);
        let mut five = FOUR.to_vec();
        five.push(("10.0.0.5:80", 1));
        let after = on_path(&five);
        let mut moved = 0;
        for key in 0..10_000 {
            let path = format!("/item/{key}");
            let (old, new) = (pick_path(&before, &path), pick_path(&after, &path));
            if old != new {
                moved += 1;
                // Keys only ever move to the new target, never between the old ones.
                assert_eq!(new, Some(4), "{path}");
            }
        }
        assert!((1_000..3_000).contains(&moved), "moved {moved} of 10000");
    }

    #[test]
    fn ineligible_target_spills_to_one_stable_neighbour() {
        let balancer = on_path(&FOUR);
        let headers = HeaderMap::new();
        for key in 0..100 {
            let path = format!("/item/{key}");
            let ctx = PickContext {
                worker: 0,
                headers: &headers,
                path: &path,
                client_ip: None,
            };
            let home = balancer.pick(&ctx, &|_| true).unwrap();
            let spill = balancer.pick(&ctx, &|i| i != home).unwrap();
            assert_ne!(spill, home);
            assert_eq!(balancer.pick(&ctx, &|i| i != home), Some(spill));
        }
    }

    #[test]
    fn none_when_no_target_is_eligible() {
        let balancer = on_path(&FOUR);
        let headers = HeaderMap::new();
        let ctx = PickContext {
            worker: 0,
            headers: &headers,
            path: "/x",
            client_ip: None,
        };
        let asked = std::cell::Cell::new(0);
        let none = balancer.pick(&ctx, &|_| {
            asked.set(asked.get() + 1);
            false
        });
        assert_eq!(none, None);
        assert_eq!(asked.get(), 4);
    }

    #[test]
    fn ring_stays_under_its_cap() {
        let ring = ring(&targets(&[("a:80", 10_000), ("b:80", 9_999), ("c:80", 1)]));
        assert!(ring.len() as u64 <= MAX_POINTS + 3, "{}", ring.len());
        assert!(ring.iter().any(|&(_, target)| target == 2));
        assert!(ring.windows(2).all(|pair| pair[0].0 < pair[1].0));
    }

    #[test]
    fn header_cookie_and_client_ip_keys_pick_consistently() {
        let list = targets(&FOUR);
        let by_header =
            ConsistentHash::new(&list, HashKey::new(Some(HashOn::Header), Some("x-user")), 1);
        let by_cookie =
            ConsistentHash::new(&list, HashKey::new(Some(HashOn::Cookie), Some("sid")), 1);
        let by_ip = ConsistentHash::new(&list, HashKey::new(Some(HashOn::ClientIp), None), 1);
        let mut seen = [[false; 4]; 3];
        for n in 0..200u8 {
            let mut headers = HeaderMap::new();
            let user = HeaderValue::from_str(&format!("user-{n}")).unwrap();
            let cookie = HeaderValue::from_str(&format!("theme=dark; sid=s{n}")).unwrap();
            headers.insert("x-user", user);
            headers.insert(http::header::COOKIE, cookie);
            let ctx = |path| PickContext {
                worker: 0,
                headers: &headers,
                path,
                client_ip: Some(IpAddr::V4(Ipv4Addr::new(10, 1, 0, n))),
            };
            for (kind, balancer) in [&by_header, &by_cookie, &by_ip].into_iter().enumerate() {
                // Only the key matters: a different path gives the same target.
                let target = balancer.pick(&ctx("/a"), &|_| true).unwrap();
                assert_eq!(balancer.pick(&ctx("/b"), &|_| true), Some(target));
                seen[kind][target] = true;
            }
        }
        // Different keys reach every target.
        assert!(seen.iter().flatten().all(|&hit| hit), "{seen:?}");
    }

    #[test]
    fn missing_key_falls_back_to_round_robin() {
        let balancer = ConsistentHash::new(
            &targets(&FOUR),
            HashKey::new(Some(HashOn::Cookie), Some("sid")),
            1,
        );
        let headers = HeaderMap::new();
        let ctx = PickContext {
            worker: 0,
            headers: &headers,
            path: "/",
            client_ip: None,
        };
        let picks: Vec<_> = (0..8)
            .filter_map(|_| balancer.pick(&ctx, &|_| true))
            .collect();
        assert_eq!(picks, [0, 1, 2, 3, 0, 1, 2, 3]);
        assert_eq!(balancer.pick(&ctx, &|i| i == 2), Some(2));
        assert_eq!(balancer.pick(&ctx, &|_| false), None);
    }

    #[test]
    fn no_targets_means_no_pick() {
        assert_eq!(pick_path(&on_path(&[]), "/x"), None);
    }
}
