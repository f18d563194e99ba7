//! Consistent hashing with bounded loads.

mod common;

use common::key_hashes;
use proptest::prelude::*;
use sysblocks_consistent_hash::{HashRing, RingError};

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Assigning keys one at a time, no node ever exceeds ceil(c × average),
    /// even on a key set skewed onto a quarter of the ring.
    #[test]
    fn no_node_exceeds_ceil_c_times_average(n in 2usize..20, c in 1.01f64..2.0, seed in any::<u64>(), keys in 1usize..20_000) {
        let ring = HashRing::from_weighted(160, (0..n).map(|i| (format!("b{i}"), 1))).unwrap();
        let mut loads = vec![0u64; n];
        for (assigned, h) in key_hashes(keys, seed).into_iter().enumerate() {
            let skewed = h >> 2; // only the first quarter of the ring
            let i = ring.bounded_index(skewed, &loads, c).unwrap();
            loads[i] += 1;
            let bound = (c * (assigned as f64 + 1.0) / n as f64).ceil() as u64;
            prop_assert!(loads[i] <= bound, "load {} > bound {} after {} keys", loads[i], bound, assigned + 1);
        }
        let average = keys as f64 / n as f64;
        let max = *loads.iter().max().unwrap();
        prop_assert!(max <= (c * average).ceil() as u64);
    }
}

#[test]
fn bounded_lookup_prefers_the_plain_owner_when_it_has_room() {
    let ring = HashRing::from_weighted(160, (0..5).map(|i| (format!("b{i}"), 1))).unwrap();
    let loads = vec![0u64; 5];
    for h in key_hashes(1000, 4) {
        let key = h.to_le_bytes();
        assert_eq!(
            ring.node_for_bounded(&key, &loads, 1.25).unwrap(),
            ring.node_for(&key).unwrap()
        );
    }
}

#[test]
fn bounded_lookup_rejects_bad_arguments() {
    let ring = HashRing::from_weighted(160, [("a", 1), ("b", 1)]).unwrap();
    for c in [1.0, 0.5, -2.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            ring.node_for_bounded(b"k", &[0, 0], c),
            Err(RingError::InvalidBalanceFactor { .. })
        ));
    }
    assert_eq!(
        ring.node_for_bounded(b"k", &[0], 1.5),
        Err(RingError::LoadsLength { expected: 2, got: 1 })
    );
    let empty: HashRing<&str> = HashRing::new();
    assert_eq!(empty.node_for_bounded(b"k", &[], 1.5), Err(RingError::EmptyRing));
}
