//! Jump consistent hashing (Lamping and Veach, 2014).

use crate::placement::Placement;

/// The bucket in `0..buckets` for `key`, by jump consistent hashing.
///
/// Perfectly balanced and needs no memory, but buckets can only be added or
/// removed at the end: growing from `n` to `n + 1` buckets moves exactly the
/// keys that land in the new bucket (about `1/(n+1)` of them), and there is no
/// way to remove bucket 3 of 10. Reproduces Guava's
/// `Hashing.consistentHash(long, int)`.
///
/// `buckets == 0` has no bucket to choose; it returns 0 (as for one bucket),
/// never panics. Check for an empty node list before calling.
///
/// ```
/// use sysblocks_consistent_hash::jump_hash;
/// let first: Vec<u32> = (0..5).map(|k| jump_hash(k, 100)).collect();
/// assert_eq!(first, [0, 55, 62, 8, 45]); // Guava's published values
/// ```
pub fn jump_hash(key: u64, buckets: u32) -> u32 {
    let mut state = key;
    let mut bucket: i64 = 0;
    let mut next: i64 = 0;
    while next < i64::from(buckets) {
        bucket = next;
        // Guava's LinearCongruentialGenerator: state = 2862933555777941757 * state + 1,
        // nextDouble = ((state >>> 33) + 1) / 2^31.
        state = state.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        let r = ((state >> 33) + 1) as f64 / (1u64 << 31) as f64;
        next = ((bucket + 1) as f64 / r) as i64;
    }
    bucket as u32
}

/// A list of nodes placed by [`jump_hash`] over [`hash_key`](crate::hash_key) of the key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JumpHash<N> {
    nodes: Vec<N>,
}

impl<N> JumpHash<N> {
    /// Buckets in the given order; only the last may ever be removed.
    pub fn new(nodes: Vec<N>) -> Self {
        JumpHash { nodes }
    }

    /// Appends a bucket (about `1/(n+1)` of keys move to it).
    pub fn push(&mut self, node: N) {
        self.nodes.push(node);
    }

    /// Removes the last bucket (only its keys move).
    pub fn pop(&mut self) -> Option<N> {
        self.nodes.pop()
    }

    /// The buckets.
    pub fn nodes(&self) -> &[N] {
        &self.nodes
    }

    /// The node for `key`, or `None` without nodes.
    pub fn node_for(&self, key: &[u8]) -> Option<&N> {
        self.node_for_hash(crate::hash::hash_key(key))
    }

    /// The node for a key already hashed with
    /// [`hash_key`](crate::hash_key). Buckets past `u32::MAX` are never
    /// chosen (jump hash counts buckets in 32 bits).
    pub fn node_for_hash(&self, hash: u64) -> Option<&N> {
        let count = u32::try_from(self.nodes.len()).unwrap_or(u32::MAX);
        if count == 0 {
            return None;
        }
        self.nodes.get(jump_hash(hash, count) as usize)
    }

    /// The number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }
}

impl<N> Placement<N> for JumpHash<N> {
    fn node_for_hash(&self, hash: u64) -> Option<&N> {
        JumpHash::node_for_hash(self, hash)
    }

    fn node_count(&self) -> usize {
        JumpHash::node_count(self)
    }
}
