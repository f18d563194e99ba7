//! [`Placement`]: the small trait every algorithm here implements, so a user
//! can swap a ring for rendezvous or jump hashing and compare.

use crate::hash::hash_key;

/// Maps a key to one of a set of nodes.
///
/// ```
/// use sysblocks_consistent_hash::{HashRing, JumpHash, Placement, Rendezvous};
///
/// fn owner<'a, P: Placement<&'static str>>(p: &'a P) -> &'a str {
///     p.node_for(b"order:7").copied().unwrap_or("none")
/// }
/// let names = ["a", "b", "c"];
/// let ring = HashRing::from_weighted(160, names.iter().map(|&n| (n, 1)))?;
/// let hrw = Rendezvous::from_nodes(names)?;
/// let jump = JumpHash::new(names.to_vec());
/// for p in [owner(&ring), owner(&hrw), owner(&jump)] {
///     assert!(names.contains(&p));
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Placement<N> {
    /// The node for a key already hashed with [`hash_key`], or `None` when
    /// there are no nodes.
    fn node_for_hash(&self, hash: u64) -> Option<&N>;

    /// The number of nodes.
    fn node_count(&self) -> usize;

    /// The node for `key`, or `None` when there are no nodes.
    fn node_for(&self, key: &[u8]) -> Option<&N> {
        self.node_for_hash(hash_key(key))
    }
}

impl<N: crate::RingNode> Placement<N> for crate::HashRing<N> {
    fn node_for_hash(&self, hash: u64) -> Option<&N> {
        crate::HashRing::node_for_hash(self, hash)
    }

    fn node_count(&self) -> usize {
        crate::HashRing::node_count(self)
    }
}
