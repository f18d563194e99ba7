//! Rendezvous (highest random weight) hashing, with weights.

use crate::error::RingError;
use crate::hash::{hash_key, mix64, vnode_position};
use crate::node::{RingNode, display_id};
use crate::placement::Placement;

#[derive(Debug, Clone, PartialEq)]
struct Candidate<N> {
    node: N,
    weight: u32,
    /// The node's fixed seed: `vnode_position(id, 0)`.
    seed: u64,
}

/// Rendezvous (HRW) hashing: every node scores the key and the highest score
/// wins. With n nodes a lookup costs O(n), but there is no ring to build,
/// the top-k scores give a replica list for free, and removing any node moves
/// only that node's keys.
///
/// Scores: a node's seed is its [`vnode_position`] 0; the key's hash is mixed
/// with it by SplitMix64 into `x`. Unweighted (all weights 1) the score is `x`
/// itself (integer comparison). With weights, the score is
/// `-weight / ln(u)` with `u = (x >> 11 + 0.5) / 2^53` in (0, 1) — the
/// logarithmic method of Schindelhauer and Schomaker, which gives each node a
/// share proportional to its weight. Ties go to the smaller id bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendezvous<N> {
    nodes: Vec<Candidate<N>>,
    weighted: bool,
}

impl<N: RingNode> Default for Rendezvous<N> {
    fn default() -> Self {
        Rendezvous { nodes: Vec::new(), weighted: false }
    }
}

impl<N: RingNode> Rendezvous<N> {
    /// No nodes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Nodes of weight 1.
    ///
    /// # Errors
    /// [`RingError::DuplicateNode`].
    pub fn from_nodes(nodes: impl IntoIterator<Item = N>) -> Result<Self, RingError> {
        let mut r = Self::new();
        for n in nodes {
            r.add_weighted(n, 1)?;
        }
        Ok(r)
    }

    /// Adds a node with an integer weight.
    ///
    /// # Errors
    /// [`RingError::ZeroWeight`], [`RingError::DuplicateNode`].
    pub fn add_weighted(&mut self, node: N, weight: u32) -> Result<(), RingError> {
        if weight == 0 {
            return Err(RingError::ZeroWeight { node: display_id(&node) });
        }
        let id = node.id_bytes();
        if self.nodes.iter().any(|c| c.node.id_bytes() == id) {
            return Err(RingError::DuplicateNode { node: display_id(&node) });
        }
        let seed = vnode_position(&id, 0);
        drop(id);
        self.nodes.push(Candidate { node, weight, seed });
        self.weighted = self.nodes.iter().any(|c| c.weight != 1);
        Ok(())
    }

    /// Removes a node; only its keys move.
    ///
    /// # Errors
    /// [`RingError::UnknownNode`].
    pub fn remove(&mut self, node: &N) -> Result<(), RingError> {
        let id = node.id_bytes();
        let Some(i) = self.nodes.iter().position(|c| c.node.id_bytes() == id) else {
            return Err(RingError::UnknownNode { node: display_id(node) });
        };
        self.nodes.remove(i);
        self.weighted = self.nodes.iter().any(|c| c.weight != 1);
        Ok(())
    }

    fn score(&self, c: &Candidate<N>, hash: u64) -> f64 {
        let x = mix64(c.seed ^ hash);
        if self.weighted {
            let u = ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            -f64::from(c.weight) / u.ln()
        } else {
            x as f64
        }
    }

    fn better(&self, a: &Candidate<N>, b: &Candidate<N>, hash: u64) -> bool {
        if self.weighted {
            let (sa, sb) = (self.score(a, hash), self.score(b, hash));
            sa > sb || (sa == sb && a.node.id_bytes() < b.node.id_bytes())
        } else {
            let (xa, xb) = (mix64(a.seed ^ hash), mix64(b.seed ^ hash));
            xa > xb || (xa == xb && a.node.id_bytes() < b.node.id_bytes())
        }
    }

    /// The node for `key`, or `None` without nodes.
    pub fn node_for(&self, key: &[u8]) -> Option<&N> {
        self.node_for_hash(hash_key(key))
    }

    /// The node for a key already hashed with [`hash_key`].
    pub fn node_for_hash(&self, hash: u64) -> Option<&N> {
        let mut best = self.nodes.first()?;
        for c in &self.nodes[1..] {
            if self.better(c, best, hash) {
                best = c;
            }
        }
        Some(&best.node)
    }

    /// The number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The `n` best nodes for `key`, best first: a replica list of distinct
    /// nodes (all of them when there are fewer than `n`).
    pub fn replicas(&self, key: &[u8], n: usize) -> impl ExactSizeIterator<Item = &N> + '_ {
        self.replicas_for_hash(hash_key(key), n)
    }

    /// As [`replicas`](Self::replicas), for a key already hashed.
    pub fn replicas_for_hash(&self, h: u64, n: usize) -> impl ExactSizeIterator<Item = &N> + '_ {
        let mut order: Vec<&Candidate<N>> = self.nodes.iter().collect();
        order.sort_by(|a, b| {
            if self.better(a, b, h) {
                std::cmp::Ordering::Less
            } else if self.better(b, a, h) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        });
        order.truncate(n);
        order.into_iter().map(|c| &c.node)
    }
}

impl<N: RingNode> Placement<N> for Rendezvous<N> {
    fn node_for_hash(&self, hash: u64) -> Option<&N> {
        Rendezvous::node_for_hash(self, hash)
    }

    fn node_count(&self) -> usize {
        Rendezvous::node_count(self)
    }
}
