//! The ring's points and their prefix index: how a ring is built (a
//! bucket sort on the index's prefix), and how a hash finds its point in
//! O(1) expected (the prefix narrows the search to a bucket of about one
//! point).

use super::HashRing;
use crate::error::RingError;
use crate::hash::vnode_position;
use crate::node::RingNode;

/// The most bits of a prefix index; 2^20 buckets cost 4 MiB.
const MAX_INDEX_BITS: u32 = 20;

/// Prefix-index bits for `n` points: about one point per bucket,
/// `ceil(log2(n))` within `[1, MAX_INDEX_BITS]`.
fn index_bits(n: usize) -> u32 {
    (usize::BITS - n.max(2).saturating_sub(1).leading_zeros()).clamp(1, MAX_INDEX_BITS)
}

impl<N: RingNode> HashRing<N> {
    // ----- points and the prefix index -------------------------------------

    pub(super) fn vnode_points<'a>(
        &self,
        node: &'a N,
        weight: u32,
    ) -> impl Iterator<Item = u64> + 'a {
        let count = weight.saturating_mul(self.vnodes_per_weight);
        let id = node.id_bytes();
        (0..count).map(move |i| vnode_position(&id, i))
    }

    /// Points ascending; equal points ordered by owner id bytes.
    pub(super) fn point_order(&self, a: (u64, u32), b: (u64, u32)) -> std::cmp::Ordering {
        a.0.cmp(&b.0).then_with(|| {
            self.nodes[a.1 as usize].node.id_bytes().cmp(&self.nodes[b.1 as usize].node.id_bytes())
        })
    }

    pub(super) fn sort_points(&self, points: &mut [(u64, u32)]) {
        points.sort_unstable_by(|&a, &b| self.point_order(a, b));
    }

    pub(super) fn rebuild(&mut self) -> Result<(), RingError> {
        let mut all = Vec::new();
        for (owner, slot) in self.nodes.iter().enumerate() {
            all.extend(self.vnode_points(&slot.node, slot.weight).map(|p| (p, owner as u32)));
        }
        self.bucket_sort(all);
        Ok(())
    }

    /// Sorts `items` into `points`/`owners` and builds the prefix index in
    /// O(P): positions are uniform, so a counting sort on their top bits
    /// leaves buckets of one or two points, finished by insertion sort.
    pub(super) fn bucket_sort(&mut self, items: Vec<(u64, u32)>) {
        let n = items.len();
        self.shift = 64 - index_bits(n);
        let buckets = 1usize << (64 - self.shift);
        let mut index = vec![0u32; buckets + 1];
        for &(p, _) in &items {
            index[(p >> self.shift) as usize + 1] += 1;
        }
        for b in 0..buckets {
            index[b + 1] += index[b];
        }
        let mut cursor = index.clone();
        let mut sorted = vec![(0u64, 0u32); n];
        for item in items {
            let b = (item.0 >> self.shift) as usize;
            sorted[cursor[b] as usize] = item;
            cursor[b] += 1;
        }
        for b in 0..buckets {
            let (lo, hi) = (index[b] as usize, index[b + 1] as usize);
            if hi - lo > 1 {
                let bucket = &mut sorted[lo..hi];
                bucket.sort_unstable_by(|&x, &y| self.point_order(x, y));
            }
        }
        (self.points, self.owners) = sorted.into_iter().unzip();
        self.index = index;
    }

    pub(super) fn set_points(&mut self, sorted: Vec<(u64, u32)>) {
        let (points, owners): (Vec<u64>, Vec<u32>) = sorted.into_iter().unzip();
        self.points = points;
        self.owners = owners;
        self.build_index();
    }

    pub(super) fn build_index(&mut self) {
        let n = self.points.len();
        self.shift = 64 - index_bits(n);
        let buckets = 1usize << (64 - self.shift);
        let mut index = Vec::with_capacity(buckets + 1);
        let mut i = 0usize;
        for b in 0..buckets as u64 {
            while i < n && (self.points[i] >> self.shift) < b {
                i += 1;
            }
            index.push(i as u32);
        }
        index.push(n as u32);
        self.index = index;
    }

    /// The position in `points` of the first point at or after `h`,
    /// wrapping. The ring must not be empty.
    #[inline]
    pub(super) fn position(&self, h: u64) -> usize {
        let bucket = (h >> self.shift) as usize;
        let lo = self.index[bucket] as usize;
        let hi = self.index[bucket + 1] as usize;
        let i = lo + self.points[lo..hi].partition_point(|&p| p < h);
        if i == self.points.len() { 0 } else { i }
    }

    /// The index in `nodes` of the owner of hash `h`.
    #[inline]
    pub(crate) fn owner_index(&self, h: u64) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        Some(self.owners[self.position(h)] as usize)
    }
}
