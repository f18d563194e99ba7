//! [`SharedRing`]: an immutable snapshot that readers share behind an `Arc`
//! while a writer builds the next ring.

use std::sync::{Arc, Mutex, PoisonError, RwLock};

use crate::node::RingNode;
use crate::rebalance::{RebalancePlan, rebalance_plan};
use crate::ring::HashRing;

/// A ring that many threads read and one occasionally replaces.
///
/// Readers take a snapshot ([`load`](Self::load): one `Arc` clone under a
/// read lock held for nanoseconds) and look up as long as they like without
/// any lock; a writer builds the next ring on the side and swaps it in with
/// [`update`](Self::update), which also returns the rebalance plan.
///
/// ```
/// use sysblocks_consistent_hash::{HashRing, SharedRing};
///
/// let shared = SharedRing::new(HashRing::from_weighted(160, [("a", 1), ("b", 1)])?);
/// let before = shared.load();
/// let plan = shared.update(|ring| ring.add("c"))?;
/// assert!(plan.moves.iter().all(|m| m.to == Some("c")));
/// assert_eq!(before.node_count(), 2); // old snapshots stay valid
/// assert_eq!(shared.load().node_count(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SharedRing<N> {
    current: RwLock<Arc<HashRing<N>>>,
    /// Serialises writers so that two updates never lose one another.
    writer: Mutex<()>,
}

impl<N: RingNode> SharedRing<N> {
    /// Shares `ring`.
    pub fn new(ring: HashRing<N>) -> Self {
        SharedRing { current: RwLock::new(Arc::new(ring)), writer: Mutex::new(()) }
    }

    /// The current snapshot.
    pub fn load(&self) -> Arc<HashRing<N>> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Replaces the ring and returns the plan from the old one to `ring`.
    pub fn store(&self, ring: HashRing<N>) -> RebalancePlan<N> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let plan = rebalance_plan(&self.load(), &ring);
        self.swap(ring);
        plan
    }

    fn swap(&self, ring: HashRing<N>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(ring);
    }

    /// Applies `change` to a copy of the current ring and swaps it in when
    /// `change` succeeds. Concurrent updates are serialised; readers keep
    /// using the old snapshot while `change` runs and wait only for the swap.
    ///
    /// # Errors
    /// The error of `change`; the ring is then left as it was.
    pub fn update<E>(
        &self,
        change: impl FnOnce(&mut HashRing<N>) -> Result<(), E>,
    ) -> Result<RebalancePlan<N>, E> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let old = self.load();
        let mut next = HashRing::clone(&old);
        change(&mut next)?;
        let plan = rebalance_plan(&old, &next);
        self.swap(next);
        Ok(plan)
    }
}

impl<N: RingNode> Default for SharedRing<N> {
    fn default() -> Self {
        Self::new(HashRing::new())
    }
}
