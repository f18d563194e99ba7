//! Lookups and replica lists against a linear-scan reference model.

mod common;

use std::collections::HashSet;

use common::{key_hashes, reference_owner};
use proptest::prelude::*;
use sysblocks_consistent_hash::HashRing;

fn ring_strategy() -> impl Strategy<Value = HashRing<String>> {
    (proptest::collection::hash_map("[a-z]{1,6}", (1u32..4, 0u8..4), 1..30), 1u32..50).prop_map(
        |(nodes, vnodes)| {
            let mut ring = HashRing::with_vnodes(vnodes).unwrap();
            for (name, (weight, zone)) in nodes {
                ring.add_in_zone(name, weight, format!("zone-{zone}")).unwrap();
            }
            ring
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn indexed_lookup_equals_linear_scan(ring in ring_strategy(), seed in any::<u64>()) {
        let mut probes = key_hashes(500, seed);
        // Exact point positions and their neighbours, and both ends.
        let points: Vec<u64> = ring.points().map(|(p, _)| p).collect();
        for &p in points.iter().take(50) {
            probes.extend([p, p.wrapping_sub(1), p.wrapping_add(1)]);
        }
        probes.extend([0, u64::MAX]);
        for h in probes {
            prop_assert_eq!(ring.node_for_hash(h).cloned(), reference_owner(&ring, h));
        }
    }

    #[test]
    fn replicas_are_distinct_and_clockwise(ring in ring_strategy(), seed in any::<u64>(), n in 0usize..40) {
        for h in key_hashes(50, seed) {
            let list: Vec<&String> = ring.replicas_for_hash(h, n).collect();
            prop_assert_eq!(list.len(), n.min(ring.node_count()));
            let distinct: HashSet<&String> = list.iter().copied().collect();
            prop_assert_eq!(distinct.len(), list.len(), "a node repeats: {:?}", list);
            if let Some(first) = list.first() {
                prop_assert_eq!(Some(*first), ring.node_for_hash(h));
            }
            // Reference: walk the points clockwise, keeping first sightings.
            let points: Vec<(u64, &String)> = ring.points().collect();
            let start = points.iter().position(|(p, _)| *p >= h).unwrap_or(0);
            let mut expected: Vec<&String> = Vec::new();
            for i in 0..points.len() {
                let owner = points[(start + i) % points.len()].1;
                if expected.len() < n && !expected.contains(&owner) {
                    expected.push(owner);
                }
            }
            prop_assert_eq!(list, expected);
        }
    }

    #[test]
    fn zone_aware_replicas_take_distinct_zones_first(ring in ring_strategy(), seed in any::<u64>(), n in 1usize..12) {
        let zones: HashSet<&str> = ring.nodes().filter_map(|node| ring.zone(node)).collect();
        for key in key_hashes(20, seed) {
            let key = key.to_le_bytes();
            let list = ring.replicas_across_zones(&key, n);
            prop_assert_eq!(list.len(), n.min(ring.node_count()));
            let distinct: HashSet<&&String> = list.iter().collect();
            prop_assert_eq!(distinct.len(), list.len());
            let first_zones: HashSet<&str> = list.iter().take(zones.len()).map(|node| ring.zone(node).unwrap()).collect();
            prop_assert_eq!(first_zones.len(), n.min(zones.len()), "zones repeat before all are used: {:?}", list);
            prop_assert_eq!(list.first().copied(), ring.node_for(&key));
        }
    }
}

#[test]
fn replicas_beyond_the_inline_list_stay_distinct() {
    // 40 nodes and n = 40 exercise the walk past its 16 inline entries.
    let ring = HashRing::from_weighted(3, (0..40).map(|i| (format!("n{i}"), 1))).unwrap();
    for h in key_hashes(200, 1) {
        let list: Vec<&String> = ring.replicas_for_hash(h, 40).collect();
        let distinct: HashSet<&String> = list.iter().copied().collect();
        assert_eq!(list.len(), 40);
        assert_eq!(distinct.len(), 40);
    }
}

#[test]
fn empty_ring_lookups_are_none_or_empty() {
    let ring: HashRing<String> = HashRing::new();
    assert_eq!(ring.node_for(b"k"), None);
    assert_eq!(ring.replicas(b"k", 3).count(), 0);
    assert!(ring.replicas_across_zones(b"k", 3).is_empty());
    assert!(ring.ownership().is_empty());
}

#[test]
fn replicas_larger_than_the_ring_yield_every_node_once() {
    let ring = HashRing::from_weighted(160, [("a", 1), ("b", 1), ("c", 1)]).unwrap();
    let list: Vec<_> = ring.replicas(b"key", 10).collect();
    assert_eq!(list.len(), 3);
    assert_eq!(list.iter().collect::<HashSet<_>>().len(), 3);
}
