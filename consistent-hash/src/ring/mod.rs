//! [`HashRing`]: the weighted virtual-node ring. Its points and prefix
//! index are in `index.rs`, the distinct-node walks behind replica lists in
//! `walk.rs`, bounded loads in `bounded.rs`; this file is the ring's
//! configuration and lookups.

mod bounded;
mod index;
mod walk;

use walk::DistinctWalk;
pub use walk::Replicas;

use crate::error::RingError;
use crate::hash::hash_key;
use crate::node::{RingNode, display_id};

/// Virtual nodes per unit of weight unless configured otherwise (ketama's 160).
pub const DEFAULT_VNODES: u32 = 160;

/// The most points (virtual nodes) a ring may hold: 2^26, about 67 million,
/// which is 0.8 GB of lookup arrays. Building more is refused with
/// [`RingError::TooManyPoints`].
pub const MAX_POINTS: u64 = 1 << 26;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeSlot<N> {
    pub(crate) node: N,
    pub(crate) weight: u32,
    pub(crate) zone: Option<String>,
}

/// A consistent-hash ring of weighted virtual nodes.
///
/// Each node of weight `w` owns `w × vnodes_per_weight` points on a ring of
/// 2^64 positions; a key belongs to the first point at or after its hash,
/// clockwise. Placement is specified byte for byte in [`crate::hash`] and
/// never changes within a [`PLACEMENT_VERSION`](crate::PLACEMENT_VERSION).
///
/// Lookups are O(1) expected: a prefix index over the sorted points narrows
/// the search to a bucket of one or two points. Adding or removing a node is
/// O(P) for P points (a merge or a filter, never a re-sort of the whole ring).
///
/// ```
/// use sysblocks_consistent_hash::HashRing;
///
/// let mut ring = HashRing::new();
/// ring.add("cache-a")?;
/// ring.add("cache-b")?;
/// ring.add_weighted("cache-c", 2)?; // twice the share of keys
///
/// let owner = ring.node_for(b"user:42").expect("ring is not empty");
/// let replicas: Vec<_> = ring.replicas(b"user:42", 2).collect();
/// assert_eq!(replicas[0], owner);
/// assert_ne!(replicas[0], replicas[1]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct HashRing<N> {
    vnodes_per_weight: u32,
    pub(crate) nodes: Vec<NodeSlot<N>>,
    /// Sorted point positions.
    points: Vec<u64>,
    /// `owners[i]` is the index in `nodes` of the node owning `points[i]`.
    owners: Vec<u32>,
    /// `index[b]` is the first position in `points` whose top `bits` bits are
    /// at least `b`; `index[2^bits] == points.len()`.
    index: Vec<u32>,
    shift: u32,
}

impl<N: RingNode> Default for HashRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<N: RingNode> HashRing<N> {
    /// An empty ring with [`DEFAULT_VNODES`] virtual nodes per unit of weight.
    pub fn new() -> Self {
        HashRing {
            vnodes_per_weight: DEFAULT_VNODES,
            nodes: Vec::new(),
            points: Vec::new(),
            owners: Vec::new(),
            index: vec![0, 0],
            shift: 63,
        }
    }

    /// An empty ring with `vnodes_per_weight` virtual nodes per unit of weight.
    ///
    /// # Errors
    /// [`RingError::ZeroVnodes`] when `vnodes_per_weight` is 0.
    pub fn with_vnodes(vnodes_per_weight: u32) -> Result<Self, RingError> {
        if vnodes_per_weight == 0 {
            return Err(RingError::ZeroVnodes);
        }
        Ok(HashRing { vnodes_per_weight, ..Self::new() })
    }

    /// Builds a ring from `(node, weight)` pairs in one pass (one sort).
    ///
    /// # Errors
    /// A zero weight, a duplicate node or too many points.
    pub fn from_weighted<I>(vnodes_per_weight: u32, nodes: I) -> Result<Self, RingError>
    where
        I: IntoIterator<Item = (N, u32)>,
    {
        let mut ring = Self::with_vnodes(vnodes_per_weight)?;
        let mut slots = Vec::new();
        let mut ids = std::collections::HashSet::new();
        for (node, weight) in nodes {
            let slot = ring.check_new(node, weight, None, &slots)?;
            if !ids.insert(slot.node.id_bytes().into_owned()) {
                return Err(RingError::DuplicateNode { node: display_id(&slot.node) });
            }
            slots.push(slot);
        }
        ring.nodes = slots;
        ring.rebuild()?;
        Ok(ring)
    }

    /// Virtual nodes per unit of weight.
    pub fn vnodes_per_weight(&self) -> u32 {
        self.vnodes_per_weight
    }

    /// The nodes, in the order they were added (the order
    /// [`node_for_bounded`](Self::node_for_bounded) expects loads in).
    pub fn nodes(&self) -> impl ExactSizeIterator<Item = &N> + '_ {
        self.nodes.iter().map(|s| &s.node)
    }

    /// The number of physical nodes (see [`point_count`](Self::point_count)
    /// for the virtual ones).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the ring has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The number of points (virtual nodes) on the ring.
    pub fn point_count(&self) -> usize {
        self.points.len()
    }

    /// The sorted point positions with their owners, for inspection and
    /// teaching.
    pub fn points(&self) -> impl ExactSizeIterator<Item = (u64, &N)> + '_ {
        self.points.iter().zip(&self.owners).map(|(&p, &o)| (p, &self.nodes[o as usize].node))
    }

    /// The weight of `node`, if it is on the ring.
    pub fn weight(&self, node: &N) -> Option<u32> {
        self.find(node).map(|i| self.nodes[i].weight)
    }

    /// The zone of `node`, if it is on the ring and has one.
    pub fn zone(&self, node: &N) -> Option<&str> {
        self.find(node).and_then(|i| self.nodes[i].zone.as_deref())
    }

    /// Whether `node` is on the ring.
    pub fn contains(&self, node: &N) -> bool {
        self.find(node).is_some()
    }

    fn find(&self, node: &N) -> Option<usize> {
        let id = node.id_bytes();
        self.nodes.iter().position(|s| s.node.id_bytes() == id)
    }

    // ----- changes -------------------------------------------------------

    /// Adds `node` with weight 1.
    ///
    /// # Errors
    /// [`RingError::DuplicateNode`] when a node with the same id bytes is on
    /// the ring; [`RingError::TooManyPoints`] past [`MAX_POINTS`].
    pub fn add(&mut self, node: N) -> Result<(), RingError> {
        self.insert(node, 1, None)
    }

    /// Adds `node` with an integer `weight`: it gets `weight` times the points
    /// (and so about `weight` times the keys) of a node of weight 1.
    ///
    /// # Errors
    /// As [`add`](Self::add), and [`RingError::ZeroWeight`].
    pub fn add_weighted(&mut self, node: N, weight: u32) -> Result<(), RingError> {
        self.insert(node, weight, None)
    }

    /// Adds `node` in failure domain `zone` (a rack, an availability zone), for
    /// [`replicas_across_zones`](Self::replicas_across_zones).
    ///
    /// # Errors
    /// As [`add_weighted`](Self::add_weighted).
    pub fn add_in_zone(
        &mut self,
        node: N,
        weight: u32,
        zone: impl Into<String>,
    ) -> Result<(), RingError> {
        self.insert(node, weight, Some(zone.into()))
    }

    fn check_new(
        &self,
        node: N,
        weight: u32,
        zone: Option<String>,
        existing: &[NodeSlot<N>],
    ) -> Result<NodeSlot<N>, RingError> {
        if weight == 0 {
            return Err(RingError::ZeroWeight { node: display_id(&node) });
        }
        let len = node.id_bytes().len();
        if u32::try_from(len).is_err() {
            return Err(RingError::IdTooLong { len });
        }
        let total: u64 =
            existing.iter().map(|s| u64::from(s.weight)).sum::<u64>() + u64::from(weight);
        let requested = total * u64::from(self.vnodes_per_weight);
        if requested > MAX_POINTS {
            return Err(RingError::TooManyPoints { requested });
        }
        Ok(NodeSlot { node, weight, zone })
    }

    fn insert(&mut self, node: N, weight: u32, zone: Option<String>) -> Result<(), RingError> {
        if self.find(&node).is_some() {
            return Err(RingError::DuplicateNode { node: display_id(&node) });
        }
        let slot = self.check_new(node, weight, zone, &self.nodes)?;
        let owner = self.nodes.len() as u32;
        let mut fresh: Vec<(u64, u32)> =
            self.vnode_points(&slot.node, slot.weight).map(|p| (p, owner)).collect();
        self.nodes.push(slot);
        self.sort_points(&mut fresh);
        // Merge the new node's sorted points into the ring: O(P).
        let old_points = std::mem::take(&mut self.points);
        let old_owners = std::mem::take(&mut self.owners);
        let mut merged = Vec::with_capacity(old_points.len() + fresh.len());
        let mut old = old_points.into_iter().zip(old_owners).peekable();
        let mut new = fresh.into_iter().peekable();
        loop {
            let take_old = match (old.peek(), new.peek()) {
                (Some(a), Some(b)) => self.point_order(*a, *b).is_le(),
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let next = if take_old { old.next() } else { new.next() };
            merged.extend(next);
        }
        self.set_points(merged);
        Ok(())
    }

    /// Removes `node` and returns its weight. Only the keys it owned move.
    ///
    /// # Errors
    /// [`RingError::UnknownNode`] when it is not on the ring.
    pub fn remove(&mut self, node: &N) -> Result<u32, RingError> {
        let Some(gone) = self.find(node) else {
            return Err(RingError::UnknownNode { node: display_id(node) });
        };
        let slot = self.nodes.remove(gone);
        let gone = gone as u32;
        let points = std::mem::take(&mut self.points);
        let owners = std::mem::take(&mut self.owners);
        let kept = points
            .into_iter()
            .zip(owners)
            .filter(|&(_, o)| o != gone)
            .map(|(p, o)| (p, if o > gone { o - 1 } else { o }))
            .collect();
        self.set_points(kept);
        Ok(slot.weight)
    }

    /// Changes the weight of `node`. Raising it adds points (keys move only
    /// onto `node`); lowering it drops its highest-numbered points (keys move
    /// only off `node`).
    ///
    /// # Errors
    /// [`RingError::UnknownNode`], [`RingError::ZeroWeight`],
    /// [`RingError::TooManyPoints`].
    pub fn set_weight(&mut self, node: &N, weight: u32) -> Result<(), RingError> {
        let Some(i) = self.find(node) else {
            return Err(RingError::UnknownNode { node: display_id(node) });
        };
        if weight == 0 {
            return Err(RingError::ZeroWeight { node: display_id(node) });
        }
        let others: u64 = self
            .nodes
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, s)| u64::from(s.weight))
            .sum();
        let requested = (others + u64::from(weight)) * u64::from(self.vnodes_per_weight);
        if requested > MAX_POINTS {
            return Err(RingError::TooManyPoints { requested });
        }
        self.nodes[i].weight = weight;
        self.rebuild()
    }

    // ----- lookups -------------------------------------------------------

    /// The node that owns `key`, or `None` when the ring is empty.
    #[inline]
    pub fn node_for(&self, key: &[u8]) -> Option<&N> {
        self.node_for_hash(hash_key(key))
    }

    /// The node that owns position `hash` (a key already hashed with
    /// [`hash_key`]), or `None` when the ring is empty.
    #[inline]
    pub fn node_for_hash(&self, hash: u64) -> Option<&N> {
        self.owner_index(hash).map(|i| &self.nodes[i].node)
    }

    /// The first `n` distinct physical nodes clockwise from `key`: the owner
    /// first, then its successors (a Dynamo preference list). Yields fewer
    /// than `n` when the ring has fewer nodes. Never allocates.
    pub fn replicas(&self, key: &[u8], n: usize) -> Replicas<'_, N> {
        self.replicas_for_hash(hash_key(key), n)
    }

    /// [`replicas`](Self::replicas) for an already hashed key.
    pub fn replicas_for_hash(&self, hash: u64, n: usize) -> Replicas<'_, N> {
        Replicas { walk: DistinctWalk::new(self, hash), remaining: n }
    }

    /// Up to `n` distinct nodes for `key`, taking one node per zone first
    /// (clockwise order within that rule), then filling up with further
    /// distinct nodes when there are fewer zones than `n`. A node added
    /// without a zone counts as a zone of its own.
    ///
    /// Allocates the returned list; O(P) in the worst case (a full lap).
    pub fn replicas_across_zones(&self, key: &[u8], n: usize) -> Vec<&N> {
        let mut chosen: Vec<usize> = Vec::with_capacity(n.min(self.nodes.len()));
        if self.points.is_empty() || n == 0 {
            return Vec::new();
        }
        let h = hash_key(key);
        let same_zone = |a: usize, b: usize| match (&self.nodes[a].zone, &self.nodes[b].zone) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        };
        // First lap: a node whose zone is not yet used.
        for owner in DistinctWalk::new(self, h) {
            if chosen.len() == n {
                break;
            }
            if !chosen.iter().any(|&c| same_zone(c, owner)) {
                chosen.push(owner);
            }
        }
        // Second lap: any node not yet chosen.
        for owner in DistinctWalk::new(self, h) {
            if chosen.len() == n {
                break;
            }
            if !chosen.contains(&owner) {
                chosen.push(owner);
            }
        }
        chosen.into_iter().map(|i| &self.nodes[i].node).collect()
    }

    /// Each node's share of the hash space (the shares add up to 1), in
    /// [`nodes`](Self::nodes) order.
    pub fn ownership(&self) -> Vec<(&N, f64)> {
        let mut arcs = vec![0u128; self.nodes.len()];
        let n = self.points.len();
        for i in 0..n {
            let prev = if i == 0 { self.points[n - 1] } else { self.points[i - 1] };
            let arc = if n == 1 {
                1u128 << 64
            } else if i == 0 {
                u128::from(self.points[0]) + (1u128 << 64) - u128::from(prev)
            } else {
                u128::from(self.points[i] - prev)
            };
            arcs[self.owners[i] as usize] += arc;
        }
        let whole = (1u128 << 64) as f64;
        self.nodes.iter().zip(arcs).map(|(s, a)| (&s.node, a as f64 / whole)).collect()
    }

    pub(crate) fn raw_points(&self) -> &[u64] {
        &self.points
    }
}
