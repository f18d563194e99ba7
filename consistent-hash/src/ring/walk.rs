//! Walks around the ring that yield each physical node once: the basis of
//! replica lists, zone-aware lists and bounded loads.

use super::HashRing;
use crate::node::RingNode;

/// Replica walks remember this many chosen nodes inline; beyond it they
/// re-scan the part of the ring already walked, so they never allocate.
const INLINE_SEEN: usize = 16;

/// Walks the ring clockwise from a hash, yielding each physical node (as its
/// index) the first time one of its points is passed; one lap at most.
#[derive(Debug, Clone)]
pub(crate) struct DistinctWalk<'a, N> {
    ring: &'a HashRing<N>,
    start: usize,
    walked: usize,
    seen: [u32; INLINE_SEEN],
    found: usize,
    /// Past `INLINE_SEEN` distinct nodes: a bit per node index, so that a
    /// long walk stays O(walked) instead of rescanning what it walked.
    spill: Vec<u64>,
}

impl<'a, N: RingNode> DistinctWalk<'a, N> {
    pub(super) fn new(ring: &'a HashRing<N>, hash: u64) -> Self {
        let start = if ring.points.is_empty() { 0 } else { ring.position(hash) };
        DistinctWalk { ring, start, walked: 0, seen: [0; INLINE_SEEN], found: 0, spill: Vec::new() }
    }

    fn remember(&mut self, owner: u32) {
        if self.found < INLINE_SEEN {
            self.seen[self.found] = owner;
        } else {
            if self.spill.is_empty() {
                // The first node past the inline list: move the list over.
                self.spill = vec![0; self.ring.nodes.len().div_ceil(64)];
                for s in self.seen {
                    self.spill[s as usize / 64] |= 1 << (s % 64);
                }
            }
            self.spill[owner as usize / 64] |= 1 << (owner % 64);
        }
        self.found += 1;
    }

    fn at(&self, step: usize) -> u32 {
        let n = self.ring.points.len();
        let i = self.start + step;
        self.ring.owners[if i >= n { i - n } else { i }]
    }

    fn seen_before(&self, owner: u32) -> bool {
        if self.spill.is_empty() {
            self.seen[..self.found].contains(&owner)
        } else {
            self.spill[owner as usize / 64] & (1 << (owner % 64)) != 0
        }
    }
}

impl<N: RingNode> Iterator for DistinctWalk<'_, N> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let n = self.ring.points.len();
        if self.found == self.ring.nodes.len() {
            return None;
        }
        while self.walked < n {
            let owner = self.at(self.walked);
            self.walked += 1;
            if !self.seen_before(owner) {
                self.remember(owner);
                return Some(owner as usize);
            }
        }
        None
    }
}

/// The iterator of [`HashRing::replicas`]: distinct physical nodes clockwise.
#[derive(Debug, Clone)]
pub struct Replicas<'a, N> {
    pub(super) walk: DistinctWalk<'a, N>,
    pub(super) remaining: usize,
}

impl<'a, N: RingNode> Iterator for Replicas<'a, N> {
    type Item = &'a N;

    fn next(&mut self) -> Option<&'a N> {
        if self.remaining == 0 {
            return None;
        }
        let owner = self.walk.next()?;
        self.remaining -= 1;
        Some(&self.walk.ring.nodes[owner].node)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.walk.ring.nodes.len() - self.walk.found;
        (0, Some(self.remaining.min(left)))
    }
}
