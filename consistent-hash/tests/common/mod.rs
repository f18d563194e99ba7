//! Helpers shared by the integration tests (included with `mod common;`).
#![allow(dead_code)]

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sysblocks_consistent_hash::HashRing;

/// `count` key hashes from a seeded RNG (uniform over the ring).
pub fn key_hashes(count: usize, seed: u64) -> Vec<u64> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..count).map(|_| rng.random()).collect()
}

/// A ring of `n` nodes named `node-0` .. `node-{n-1}`, weight 1 each.
pub fn named_ring(n: usize, vnodes: u32) -> HashRing<String> {
    HashRing::from_weighted(vnodes, (0..n).map(|i| (format!("node-{i}"), 1))).unwrap()
}

/// The owner of `h` by a linear scan of the sorted points: the reference
/// model the indexed lookup must agree with.
pub fn reference_owner(ring: &HashRing<String>, h: u64) -> Option<String> {
    let points: Vec<(u64, &String)> = ring.points().collect();
    points.iter().find(|(p, _)| *p >= h).or(points.first()).map(|(_, n)| (*n).clone())
}

/// Keys per node, in `ring.nodes()` order.
pub fn loads(ring: &HashRing<String>, keys: &[u64]) -> Vec<u64> {
    let names: Vec<&String> = ring.nodes().collect();
    let mut counts = vec![0u64; names.len()];
    for &k in keys {
        let owner = ring.node_for_hash(k).unwrap();
        counts[names.iter().position(|n| *n == owner).unwrap()] += 1;
    }
    counts
}
