//! Consistent hashing with bounded loads (Mirrokni, Thorup and
//! Zadimoghaddam): a key goes to the first node clockwise whose load is
//! under `c` times its fair share.

use super::HashRing;
use super::walk::DistinctWalk;
use crate::error::RingError;
use crate::hash::hash_key;
use crate::node::RingNode;

impl<N: RingNode> HashRing<N> {
    /// Consistent hashing with bounded loads (Mirrokni, Thorup and
    /// Zadimoghaddam, 2018): the first node clockwise from `key` whose load is
    /// below its capacity `ceil(c × (total + 1) × weight / total_weight)`,
    /// where `total` is the sum of `loads`. Assigning keys one at a time this
    /// way, no node ever holds more than `ceil(c × average)` (weighted) keys.
    ///
    /// `loads[i]` is the current load of the i-th node of [`nodes`](Self::nodes).
    /// The caller adds 1 to the chosen node's load (and subtracts it when the
    /// key leaves).
    ///
    /// # Errors
    /// [`RingError::EmptyRing`], [`RingError::InvalidBalanceFactor`] unless
    /// `c` is finite and above 1, [`RingError::LoadsLength`] unless there is
    /// one load per node.
    pub fn node_for_bounded(&self, key: &[u8], loads: &[u64], c: f64) -> Result<&N, RingError> {
        self.bounded_index(hash_key(key), loads, c).map(|i| &self.nodes[i].node)
    }

    /// As [`node_for_bounded`](Self::node_for_bounded), returning the node's
    /// index in [`nodes`](Self::nodes) so the caller can update `loads`.
    ///
    /// # Errors
    /// As [`node_for_bounded`](Self::node_for_bounded).
    pub fn bounded_index(&self, hash: u64, loads: &[u64], c: f64) -> Result<usize, RingError> {
        if self.nodes.is_empty() {
            return Err(RingError::EmptyRing);
        }
        if !(c.is_finite() && c > 1.0) {
            return Err(RingError::InvalidBalanceFactor { c });
        }
        if loads.len() != self.nodes.len() {
            return Err(RingError::LoadsLength { expected: self.nodes.len(), got: loads.len() });
        }
        let total: u128 = loads.iter().map(|&l| u128::from(l)).sum::<u128>() + 1;
        let total_weight: u64 = self.nodes.iter().map(|s| u64::from(s.weight)).sum();
        let capacity = |i: usize| {
            (c * total as f64 * f64::from(self.nodes[i].weight) / total_weight as f64).ceil()
        };
        let mut fallback = None;
        for owner in DistinctWalk::new(self, hash) {
            if (loads[owner] as f64) < capacity(owner) {
                return Ok(owner);
            }
            fallback.get_or_insert(owner);
        }
        // Unreachable for c > 1 (capacities sum to more than the loads), but
        // rounding must never turn into a panic: fall back to the owner.
        fallback.ok_or(RingError::EmptyRing)
    }
}
