//! Rebalance plans: which ranges of the hash space move, from whom to whom.

use crate::node::RingNode;
use crate::ring::HashRing;

/// A clockwise range of the hash space: the hashes `h` with
/// `after < h <= through`, wrapping past `u64::MAX` when `through <= after`.
/// `after == through` is the whole ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct HashRange {
    /// The range starts just after this position.
    pub after: u64,
    /// The range ends at this position, inclusive.
    pub through: u64,
}

impl HashRange {
    /// Whether `h` lies in the range.
    pub fn contains(&self, h: u64) -> bool {
        if self.after == self.through {
            true
        } else if self.after < self.through {
            self.after < h && h <= self.through
        } else {
            h > self.after || h <= self.through
        }
    }

    /// How many hash values the range holds (up to 2^64).
    pub fn len(&self) -> u128 {
        if self.after == self.through {
            1u128 << 64
        } else {
            u128::from(self.through.wrapping_sub(self.after))
        }
    }

    /// Always false: a range holds at least one hash.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// One step of a plan: the keys hashing into `range` move from `from` to `to`.
/// `from` is `None` when the old ring was empty, `to` when the new one is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Move<N> {
    /// The hashes that change owner.
    pub range: HashRange,
    /// The old owner.
    pub from: Option<N>,
    /// The new owner.
    pub to: Option<N>,
}

/// Everything that changes owner between two rings, as clockwise ranges in
/// ascending order. Computed by [`rebalance_plan`] in O(P log P) for P points.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RebalancePlan<N> {
    /// The moves, by ascending range end.
    pub moves: Vec<Move<N>>,
}

impl<N> RebalancePlan<N> {
    /// The fraction of the hash space that changes owner (0 to 1): the
    /// expected fraction of keys to move.
    pub fn fraction_moved(&self) -> f64 {
        let total: u128 = self.moves.iter().map(|m| m.range.len()).sum();
        total as f64 / (1u128 << 64) as f64
    }

    /// The move covering hash `h`, if its owner changes.
    pub fn move_for_hash(&self, h: u64) -> Option<&Move<N>> {
        self.moves.iter().find(|m| m.range.contains(h))
    }

    /// Whether nothing moves.
    pub fn is_empty(&self) -> bool {
        self.moves.is_empty()
    }
}

/// The plan that takes ownership from `old` to `new`: every range of the hash
/// space whose owner differs, with both owners. Adjacent ranges with the same
/// pair of owners are merged.
///
/// ```
/// use sysblocks_consistent_hash::{rebalance_plan, HashRing};
///
/// let mut old = HashRing::new();
/// for n in ["a", "b", "c"] { old.add(n)?; }
/// let mut new = old.clone();
/// new.add("d")?;
/// let plan = rebalance_plan(&old, &new);
/// // Every move goes to the new node, and about a quarter of keys move.
/// assert!(plan.moves.iter().all(|m| m.to == Some("d")));
/// assert!((plan.fraction_moved() - 0.25).abs() < 0.1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn rebalance_plan<N: RingNode>(old: &HashRing<N>, new: &HashRing<N>) -> RebalancePlan<N> {
    let mut bounds: Vec<u64> = old.raw_points().iter().chain(new.raw_points()).copied().collect();
    bounds.sort_unstable();
    bounds.dedup();
    let mut moves: Vec<Move<N>> = Vec::new();
    if bounds.is_empty() {
        return RebalancePlan { moves };
    }
    // Each arc (previous bound, bound] holds no other bound, so every hash in
    // it has the owner of `bound` in each ring.
    for (i, &through) in bounds.iter().enumerate() {
        let after = if i == 0 { bounds[bounds.len() - 1] } else { bounds[i - 1] };
        let from = old.node_for_hash(through);
        let to = new.node_for_hash(through);
        if from == to {
            continue;
        }
        if let Some(last) = moves.last_mut()
            && last.range.through == after
            && last.from.as_ref() == from
            && last.to.as_ref() == to
        {
            last.range.through = through;
            continue;
        }
        moves.push(Move {
            range: HashRange { after, through },
            from: from.cloned(),
            to: to.cloned(),
        });
    }
    // The first and last moves may be one range split at the wrap.
    if moves.len() > 1 {
        let (first, last) = (&moves[0], &moves[moves.len() - 1]);
        if last.range.through == first.range.after && last.from == first.from && last.to == first.to
        {
            let merged = moves.pop().map(|m| m.range.after);
            if let Some(after) = merged {
                moves[0].range.after = after;
            }
        }
    }
    RebalancePlan { moves }
}

impl<N: RingNode> HashRing<N> {
    /// The plan that takes ownership from this ring to `new`; see
    /// [`rebalance_plan`].
    pub fn plan_to(&self, new: &HashRing<N>) -> RebalancePlan<N> {
        rebalance_plan(self, new)
    }
}
