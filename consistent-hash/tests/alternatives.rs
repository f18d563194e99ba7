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
            let old = before.node_for_hash(h).unwrap();
            if *old != gone {
                prop_assert_eq!(hrw.node_for_hash(h), Some(old));
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
    assert_eq!(empty.node_for(b"k"), None);
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
        let i = match *hrw.node_for_hash(k).unwrap() {
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
fn rendezvous_replicas_are_distinct_nodes_best_first() {
    let hrw = Rendezvous::from_nodes(["a", "b", "c", "d"]).unwrap();
    let top: Vec<_> = hrw.replicas(b"key", 3).collect();
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

/// The three placements answer through one trait with the names their own
/// methods have (`node_for`, `node_for_hash`, `node_count`).
#[test]
fn every_placement_speaks_the_same_vocabulary() {
    fn through_the_trait<P: Placement<&'static str>>(
        p: &P,
        key: &[u8],
    ) -> (Option<&'static str>, usize) {
        (p.node_for(key).copied(), p.node_count())
    }
    let nodes = ["a", "b", "c", "d"];
    let ring =
        sysblocks_consistent_hash::HashRing::from_weighted(64, nodes.map(|n| (n, 1))).unwrap();
    let hrw = Rendezvous::from_nodes(nodes).unwrap();
    let jump = JumpHash::new(nodes.to_vec());
    for key in [&b"user:1"[..], b"user:2", b""] {
        assert_eq!(through_the_trait(&ring, key), (ring.node_for(key).copied(), ring.node_count()));
        assert_eq!(through_the_trait(&hrw, key), (hrw.node_for(key).copied(), hrw.node_count()));
        assert_eq!(through_the_trait(&jump, key), (jump.node_for(key).copied(), jump.node_count()));
        assert_eq!(ring.replicas(key, 2).count(), hrw.replicas(key, 2).count());
    }
}
