//! Jump and rendezvous hashing: the properties that make them consistent.

mod common;

use common::key_hashes;
use proptest::prelude::*;
use sysblocks_consistent_hash::{JumpHash, Placement, Rendezvous, RingError, jump_hash};

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Growing from b to b + 1 buckets moves keys only into the new bucket.
    #[test]
    fn jump_moves_keys_only_to_the_new_bucket(b in 1u32..1000, seed in any::<u64>()) {
        for k in key_hashes(2_000, seed) {
            let (before, after) = (jump_hash(k, b), jump_hash(k, b + 1));
            prop_assert!(before < b);
            prop_assert!(after == before || after == b);
        }
    }

    /// Removing any rendezvous node moves only that node's keys.
    #[test]
    fn rendezvous_removal_moves_only_its_keys(n in 2usize..20, gone in 0usize..20, weighted in any::<bool>(), seed in any::<u64>()) {
        let gone = format!("r{}", gone % n);
        let mut hrw = Rendezvous::new();
        for i in 0..n {
            hrw.add_weighted(format!("r{i}"), if weighted { (i % 3 + 1) as u32 } else { 1 }).unwrap();
        }
        let before = hrw.clone();
        hrw.remove(&gone).unwrap();
        for h in key_hashes(2_000, seed) {
            let old = before.place_hash(h).unwrap();
            if *old != gone {
                prop_assert_eq!(hrw.place_hash(h), Some(old));
            }
        }
    }
}

#[test]
fn jump_is_balanced() {
    let keys = key_hashes(1_000_000, 2);
    let mut counts = [0u64; 10];
    for &k in &keys {
        counts[jump_hash(k, 10) as usize] += 1;
    }
    let peak = *counts.iter().max().unwrap() as f64 / 100_000.0;
    assert!(peak < 1.01, "jump hash peak/mean {peak}");
}

#[test]
fn jump_with_zero_buckets_is_zero_and_placement_is_none() {
    assert_eq!(jump_hash(12345, 0), 0);
    let empty: JumpHash<String> = JumpHash::new(Vec::new());
    assert_eq!(empty.place(b"k"), None);
}

#[test]
fn weighted_rendezvous_follows_weights() {
    let mut hrw = Rendezvous::new();
    for (name, w) in [("a", 1), ("b", 2), ("c", 5)] {
        hrw.add_weighted(name, w).unwrap();
    }
    let keys = key_hashes(400_000, 8);
    let mut counts = [0f64; 3];
    for &k in &keys {
        let i = match *hrw.place_hash(k).unwrap() {
            "a" => 0,
            "b" => 1,
            _ => 2,
        };
        counts[i] += 1.0;
    }
    for (count, w) in counts.iter().zip([1.0, 2.0, 5.0]) {
        let expected = keys.len() as f64 * w / 8.0;
        assert!((count - expected).abs() / expected < 0.02, "weight {w}: {count} vs {expected}");
    }
}

#[test]
fn rendezvous_top_lists_distinct_nodes_best_first() {
    let hrw = Rendezvous::from_nodes(["a", "b", "c", "d"]).unwrap();
    let top = hrw.top(b"key", 3);
    assert_eq!(top.len(), 3);
    assert_eq!(Some(top[0]), hrw.node_for(b"key"));
    assert!(top[0] != top[1] && top[1] != top[2] && top[0] != top[2]);
}

#[test]
fn rendezvous_errors() {
    let mut hrw = Rendezvous::from_nodes(["a"]).unwrap();
    assert!(matches!(hrw.add_weighted("a", 1), Err(RingError::DuplicateNode { .. })));
    assert!(matches!(hrw.add_weighted("b", 0), Err(RingError::ZeroWeight { .. })));
    assert!(matches!(hrw.remove(&"zzz"), Err(RingError::UnknownNode { .. })));
}
