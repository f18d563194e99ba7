//! [`MerkleSummary`]: the Merkle summary of a store whose values live
//! elsewhere (on disk), holding no key and no value.

use std::collections::btree_map::Entry as MapEntry;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasherDefault;

use crate::error::MerkleError;
use crate::hash::{entry_hash, key_position};
use crate::store::NodeIdHasher;
use crate::sync_store::{EntrySummary, truncate};
use crate::wire::{MAX_LEVEL, TRUNC, WireFp, valid_node};

/// Levels of a [`MerkleSummary`] whose fingerprints are kept (the root and
/// the three below it: at most 4,369 nodes); deeper ones are summed on
/// demand from the entries under them.
pub const SUMMARY_CACHED_LEVELS: usize = 3;

/// A value length that marks a tombstone.
const TOMBSTONE: u32 = u32::MAX;

/// A node's count and the low 128 bits of its sum (what the wire
/// carries), as two words so that the struct is 24 bytes, not 32.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Sum {
    count: u64,
    sum: [u64; 2],
}

impl Sum {
    fn value(&self) -> u128 {
        u128::from(self.sum[0]) | (u128::from(self.sum[1]) << 64)
    }

    fn add(&mut self, delta: u128) {
        let v = self.value().wrapping_add(delta);
        self.sum = [v as u64, (v >> 64) as u64];
    }
}

/// What is kept of one entry: 32 bytes, plus its 16-byte position as the
/// map's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    version: u64,
    hash: [u8; TRUNC],
    key_len: u32,
    /// [`TOMBSTONE`] for a delete.
    value_len: u32,
}

/// The Merkle summary of a set of versioned entries, without the entries:
/// for each key only the first 16 bytes of its position and of its entry
/// hash, its version and its lengths (48 bytes), and the fingerprints of
/// the top [`SUMMARY_CACHED_LEVELS`] levels.
///
/// It answers what [`MerkleStore`](crate::MerkleStore) answers about the
/// summary: the same fingerprints as a `MerkleStore` holding the same
/// entries, truncated to 16 bytes of sum (the wire compares the first 12
/// of them, so the two kinds of store sync with each other). A
/// service that keeps its values on disk keeps one of these in memory and
/// implements [`SyncStore`](crate::SyncStore) over the pair; the
/// reconciler then reads from disk only the entries that differ.
///
/// Keys are told apart by 16 bytes of `SHA-256(key)`: two keys that share
/// them (a 2^-128 event for any pair; finding one takes about 2^64 work)
/// would be one entry here.
///
/// ```
/// use sysblocks_merkle::{MerkleStore, MerkleSummary};
///
/// let mut summary = MerkleSummary::new();
/// let mut store: MerkleStore<Vec<u8>, Vec<u8>> = MerkleStore::new();
/// for (key, value, version) in [(&b"k1"[..], &b"v1"[..], 1), (b"k2", b"v2", 1), (b"k1", b"v3", 2)] {
///     summary.apply(key, version, Some(value))?;
///     store.put(key.to_vec(), value.to_vec(), version)?;
/// }
/// assert_eq!(summary.len(), 2);
/// assert_eq!(summary.get(b"k1").map(|e| e.version), Some(2));
/// // The same entries, the same summary as the store that holds the values.
/// assert_eq!(summary.root_hash(), store.root_hash()[..16]);
/// // An older write loses, as it does in the store.
/// assert!(!summary.apply(b"k1", 1, Some(b"old"))?);
/// # Ok::<(), sysblocks_merkle::MerkleError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct MerkleSummary {
    entries: BTreeMap<[u8; TRUNC], Slot>,
    /// `levels[l]` maps a node at level `l` to its sum; empty nodes are
    /// absent.
    levels: [HashMap<u64, Sum, BuildHasherDefault<NodeIdHasher>>; SUMMARY_CACHED_LEVELS + 1],
    live: usize,
}

impl MerkleSummary {
    /// An empty summary.
    pub fn new() -> Self {
        Self::default()
    }

    /// A summary of many entries at once (a rebuild from disk), in any
    /// order; of two entries at one position the winner is kept. Built in
    /// bulk, its map's nodes are full: about two thirds of the memory of
    /// the same entries applied one by one in random order.
    pub fn from_entries(entries: impl IntoIterator<Item = EntrySummary>) -> Self {
        let mut all: Vec<EntrySummary> = entries.into_iter().collect();
        // By position, the winner last: the dedup below keeps it.
        all.sort_by_key(|e| (e.position, e.version, e.hash));
        let mut summary = MerkleSummary::default();
        let mut slots: Vec<([u8; TRUNC], Slot)> = Vec::with_capacity(all.len());
        for e in all {
            let slot = Slot {
                version: e.version,
                hash: e.hash,
                key_len: e.key_len,
                value_len: e.value_len.map_or(TOMBSTONE, |l| l.min(TOMBSTONE - 1)),
            };
            match slots.last_mut() {
                Some((position, last)) if *position == e.position => *last = slot,
                _ => slots.push((e.position, slot)),
            }
        }
        for (position, slot) in &slots {
            summary.add_path(position, 1, hash_sum(&slot.hash));
            summary.live += usize::from(slot.value_len != TOMBSTONE);
        }
        summary.entries = slots.into_iter().collect();
        summary
    }

    /// Live entries (tombstones not counted).
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether there are no live entries.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Entries including tombstones: what the summary covers.
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }

    /// The summary of `key`'s entry, tombstone included.
    pub fn get(&self, key: &[u8]) -> Option<EntrySummary> {
        self.get_at(&position_of(key))
    }

    /// The summary of the entry at a 16-byte position.
    pub fn get_at(&self, position: &[u8; TRUNC]) -> Option<EntrySummary> {
        self.entries.get(position).map(|slot| summary(position, slot))
    }

    /// Whether an entry of `key` would win over the one summarised (or
    /// there is none): what [`apply`](Self::apply) would store.
    pub fn wins(&self, key: &[u8], version: u64, value: Option<&[u8]>) -> bool {
        let hash = truncate(&entry_hash(key, version, value));
        self.entries
            .get(&position_of(key))
            .is_none_or(|old| (version, &hash) > (old.version, &old.hash))
    }

    /// Whether an entry with this summary would win (see
    /// [`wins`](Self::wins)).
    pub fn summary_wins(&self, entry: &EntrySummary) -> bool {
        self.entries
            .get(&entry.position)
            .is_none_or(|old| (entry.version, &entry.hash) > (old.version, &old.hash))
    }

    /// Takes in an entry (a local write, or a replica's entry during
    /// repair) if it wins over the one summarised, by version, a tie broken
    /// by the larger entry hash. Returns whether it was taken.
    ///
    /// # Errors
    /// [`MerkleError::TooLong`] for a key of `u32::MAX` bytes or more, or a
    /// value that long.
    pub fn apply(
        &mut self,
        key: &[u8],
        version: u64,
        value: Option<&[u8]>,
    ) -> Result<bool, MerkleError> {
        Ok(self.apply_summary(summarise(key, version, value)?))
    }

    /// [`apply`](Self::apply) for an owner that has the entry's summary
    /// already ([`summarise`]), so that the two SHA-256 hashes are computed
    /// once per write. Returns whether it was taken.
    pub fn apply_summary(&mut self, entry: EntrySummary) -> bool {
        let hash = entry.hash;
        let slot = Slot {
            version: entry.version,
            hash,
            key_len: entry.key_len,
            // A length is only a size estimate: one at the mark is kept
            // just below it rather than read as a tombstone.
            value_len: entry.value_len.map_or(TOMBSTONE, |l| l.min(TOMBSTONE - 1)),
        };
        let position = entry.position;
        match self.entries.entry(position) {
            MapEntry::Occupied(mut old) => {
                let before = *old.get();
                if (entry.version, &hash) <= (before.version, &before.hash) {
                    return false;
                }
                old.insert(slot);
                let delta = hash_sum(&hash).wrapping_sub(hash_sum(&before.hash));
                for (level, nodes) in self.levels.iter_mut().enumerate() {
                    if let Some(node) = nodes.get_mut(&node_at(&position, level)) {
                        node.add(delta);
                    }
                }
                self.live = self.live + usize::from(slot.value_len != TOMBSTONE)
                    - usize::from(before.value_len != TOMBSTONE);
            }
            MapEntry::Vacant(free) => {
                free.insert(slot);
                self.add_path(&position, 1, hash_sum(&hash));
                self.live += usize::from(slot.value_len != TOMBSTONE);
            }
        }
        true
    }

    /// Forgets `key`'s entry (a purged tombstone, or a key this replica no
    /// longer holds); returns whether there was one.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        self.remove_at(&position_of(key))
    }

    /// [`remove`](Self::remove) by 16-byte position.
    pub fn remove_at(&mut self, position: &[u8; TRUNC]) -> bool {
        let Some(old) = self.entries.remove(position) else {
            return false;
        };
        self.add_path(position, u64::MAX, hash_sum(&old.hash).wrapping_neg());
        self.live -= usize::from(old.value_len != TOMBSTONE);
        true
    }

    /// Tombstones whose version is below `horizon`, for the owner to purge
    /// from its storage and then [`remove_at`](Self::remove_at) here. The
    /// rule of [`MerkleStore::purge_tombstones`](crate::MerkleStore::purge_tombstones)
    /// holds: a replica must sync within the horizon.
    pub fn tombstones_before(&self, horizon: u64) -> Vec<[u8; TRUNC]> {
        self.entries
            .iter()
            .filter(|(_, slot)| slot.value_len == TOMBSTONE && slot.version < horizon)
            .map(|(position, _)| *position)
            .collect()
    }

    /// Every entry's summary, in position order.
    pub fn iter(&self) -> impl Iterator<Item = EntrySummary> + '_ {
        self.entries.iter().map(|(position, slot)| summary(position, slot))
    }

    /// The fingerprint of every entry, as the wire carries it.
    pub fn root(&self) -> WireFp {
        self.node_fp(0, 0)
    }

    /// The root's 16 bytes of sum: equal root hashes (and counts) mean
    /// equal summaries. The first half of a `MerkleStore`'s root hash over
    /// the same entries.
    pub fn root_hash(&self) -> [u8; TRUNC] {
        self.root().sum
    }

    /// The fingerprint of node `node` at `level`.
    ///
    /// # Errors
    /// [`MerkleError::InvalidNode`] for a level beyond
    /// [`MAX_LEVEL`](crate::wire::MAX_LEVEL) or a node with more than
    /// `level` nibbles.
    pub fn fingerprint(&self, level: usize, node: u64) -> Result<WireFp, MerkleError> {
        if !valid_node(level, node) {
            return Err(MerkleError::InvalidNode { level, node });
        }
        Ok(self.node_fp(level, node))
    }

    /// The summaries of the entries under a node, in position order. The
    /// node must be valid.
    pub fn entries_under(&self, level: usize, node: u64) -> Vec<EntrySummary> {
        self.range(level, node).map(|(position, slot)| summary(position, slot)).collect()
    }

    /// [`fingerprint`](Self::fingerprint) of a valid node; what
    /// [`SyncStore::node_fingerprint`](crate::SyncStore::node_fingerprint)
    /// answers.
    pub fn node_fp(&self, level: usize, node: u64) -> WireFp {
        let sum = match self.levels.get(level) {
            Some(nodes) => nodes.get(&node).copied().unwrap_or_default(),
            None => self.range(level, node).fold(Sum::default(), |mut acc, (_, slot)| {
                acc.count += 1;
                acc.add(hash_sum(&slot.hash));
                acc
            }),
        };
        WireFp { count: sum.count, sum: sum.value().to_le_bytes() }
    }

    /// Whether the kept fingerprints equal a rebuild from the entries (for
    /// tests; O(n · levels)).
    pub fn is_consistent(&self) -> bool {
        let mut rebuilt = Self::default();
        for (position, slot) in &self.entries {
            rebuilt.add_path(position, 1, hash_sum(&slot.hash));
        }
        rebuilt.levels == self.levels
            && self.live == self.entries.values().filter(|s| s.value_len != TOMBSTONE).count()
    }

    /// Adds `count` (wrapping: `u64::MAX` takes one away) and `sum` to
    /// every kept node on a position's path, dropping nodes left empty.
    fn add_path(&mut self, position: &[u8; TRUNC], count: u64, sum: u128) {
        for (level, nodes) in self.levels.iter_mut().enumerate() {
            let id = node_at(position, level);
            let node = nodes.entry(id).or_default();
            node.count = node.count.wrapping_add(count);
            node.add(sum);
            if node.count == 0 {
                nodes.remove(&id);
            }
        }
    }

    fn range(&self, level: usize, node: u64) -> impl Iterator<Item = (&[u8; TRUNC], &Slot)> + '_ {
        let (low, high) = prefix_range(level, node);
        self.entries.range(low..=high)
    }
}

/// The summary of an entry: its position and entry hash (16 bytes each),
/// version and lengths. Two SHA-256 hashes.
///
/// # Errors
/// [`MerkleError::TooLong`] for a key of `u32::MAX` bytes or more, or a
/// value that long.
pub fn summarise(
    key: &[u8],
    version: u64,
    value: Option<&[u8]>,
) -> Result<EntrySummary, MerkleError> {
    let key_len = length("key", key)?;
    let value_len = value.map(|v| length("value", v)).transpose()?;
    Ok(EntrySummary {
        position: position_of(key),
        version,
        hash: truncate(&entry_hash(key, version, value)),
        key_len,
        value_len,
    })
}

fn summary(position: &[u8; TRUNC], slot: &Slot) -> EntrySummary {
    EntrySummary {
        position: *position,
        version: slot.version,
        hash: slot.hash,
        key_len: slot.key_len,
        value_len: (slot.value_len != TOMBSTONE).then_some(slot.value_len),
    }
}

/// The first 16 bytes of a key's position.
fn position_of(key: &[u8]) -> [u8; TRUNC] {
    truncate(&key_position(key))
}

/// An entry hash's 16 bytes as the low half of a little-endian sum.
fn hash_sum(hash: &[u8; TRUNC]) -> u128 {
    u128::from_le_bytes(*hash)
}

/// A length that fits the encoding, below the tombstone mark.
fn length(what: &'static str, bytes: &[u8]) -> Result<u32, MerkleError> {
    match u32::try_from(bytes.len()) {
        Ok(len) if len != TOMBSTONE => Ok(len),
        _ => Err(MerkleError::TooLong { what, len: bytes.len() }),
    }
}

/// The first `level` nibbles of a position (level at most 16).
fn node_at(position: &[u8; TRUNC], level: usize) -> u64 {
    let mut top = [0u8; 8];
    top.copy_from_slice(&position[..8]);
    let bits = 4 * level as u32;
    u64::from_be_bytes(top).checked_shr(64 - bits).unwrap_or(0)
}

/// The lowest and highest positions under a valid node.
fn prefix_range(level: usize, node: u64) -> ([u8; TRUNC], [u8; TRUNC]) {
    debug_assert!(level <= MAX_LEVEL);
    let bits = 4 * level as u32;
    let low = node.checked_shl(64 - bits).unwrap_or(0);
    let high = low | u64::MAX.checked_shr(bits).unwrap_or(0);
    let mut lo = [0u8; TRUNC];
    let mut hi = [0xffu8; TRUNC];
    lo[..8].copy_from_slice(&low.to_be_bytes());
    hi[..8].copy_from_slice(&high.to_be_bytes());
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ranges_cover_exactly_their_positions() {
        let position = [0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 1, 2, 3, 4, 5, 6, 7, 8];
        for level in 0..=MAX_LEVEL {
            let node = node_at(&position, level);
            let (low, high) = prefix_range(level, node);
            assert!(low <= position && position <= high, "level {level}");
        }
        assert_eq!(node_at(&position, 0), 0);
        assert_eq!(node_at(&position, 3), 0xabc);
        assert_eq!(node_at(&position, 16), 0xabcd_ef01_2345_6789);
        assert_eq!(prefix_range(0, 0), ([0; 16], [0xff; 16]));
    }
}
