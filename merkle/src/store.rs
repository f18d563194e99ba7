//! [`MerkleStore`]: versioned entries and their incrementally maintained
//! summary tree.

use std::borrow::Borrow;
use std::collections::hash_map::Entry as MapEntry;
use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hash, Hasher};

use crate::error::MerkleError;
use crate::hash::{Fingerprint, entry_hash, key_position};
use crate::sync_store::truncate;

/// Levels of the summary below the root. Level `l` has up to `16^l` nodes,
/// each covering the keys whose position starts with the same `l` nibbles;
/// at 5 levels the bottom has a million buckets, about one entry each for a
/// store of a million keys.
pub const SUMMARY_DEPTH: usize = 5;

/// Hashes a summary node id. Node ids are prefixes of SHA-256 outputs, so
/// they are uniform already: one multiply spreads them over the bits a hash
/// table uses, where SipHash would spend ~20 ns on nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NodeIdHasher(u64);

impl Hasher for NodeIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, x: u64) {
        self.0 = (x ^ (x >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A level of the summary: node id to fingerprint.
pub type Level = HashMap<u64, Fingerprint, BuildHasherDefault<NodeIdHasher>>;

/// The nodes of one level of a [`MerkleStore`]'s summary: a map of the
/// non-empty ones while few are, then an array of all `16^level` once the
/// store holds half as many entries as the level has nodes. From there on
/// a write finds its node with one memory access instead of a hash probe
/// (two, at a million nodes), and the array takes less memory than the map
/// would: 40 bytes a node against about 49 per bucket of a map kept at
/// most 7/8 full.
#[derive(Debug, Clone)]
enum Nodes {
    Sparse(Level),
    Dense(Vec<Fingerprint>),
}

impl Nodes {
    /// The fingerprint of `node`, if it is stored (a dense level stores
    /// empty ones too).
    fn get(&self, node: u64) -> Option<&Fingerprint> {
        match self {
            Nodes::Sparse(map) => map.get(&node),
            Nodes::Dense(all) => usize::try_from(node).ok().and_then(|i| all.get(i)),
        }
    }

    fn get_mut(&mut self, node: u64) -> Option<&mut Fingerprint> {
        match self {
            Nodes::Sparse(map) => map.get_mut(&node),
            Nodes::Dense(all) => usize::try_from(node).ok().and_then(|i| all.get_mut(i)),
        }
    }

    /// Applies `change` to `node`'s fingerprint; a sparse level drops a
    /// node that becomes empty.
    fn update(&mut self, node: u64, change: impl FnOnce(&mut Fingerprint)) {
        match self {
            Nodes::Sparse(map) => {
                let fp = map.entry(node).or_default();
                change(fp);
                if fp.is_empty() {
                    map.remove(&node);
                }
            }
            Nodes::Dense(all) => {
                if let Some(fp) = usize::try_from(node).ok().and_then(|i| all.get_mut(i)) {
                    change(fp);
                }
            }
        }
    }

    /// Turns a sparse `level` into an array.
    fn densify(&mut self, level: usize) {
        if let Nodes::Sparse(map) = self {
            let mut all = vec![Fingerprint::default(); 1 << (4 * level)];
            for (&node, fp) in map.iter() {
                if let Some(slot) = usize::try_from(node).ok().and_then(|i| all.get_mut(i)) {
                    *slot = *fp;
                }
            }
            *self = Nodes::Dense(all);
        }
    }

    /// The non-empty nodes as a map, whatever the form.
    fn to_level(&self) -> Level {
        match self {
            Nodes::Sparse(map) => map.clone(),
            Nodes::Dense(all) => (0u64..)
                .zip(all)
                .filter(|(_, fp)| !fp.is_empty())
                .map(|(node, fp)| (node, *fp))
                .collect(),
        }
    }
}

/// One stored entry: a value (or a tombstone) with its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<V> {
    /// The version: larger wins (last writer wins).
    pub version: u64,
    /// The value, or `None` for a tombstone (a delete that must propagate).
    pub value: Option<V>,
}

impl<V: AsRef<[u8]>> Versioned<V> {
    /// This entry's hash as `key`'s (what the summary adds up).
    pub fn entry_hash(&self, key: &[u8]) -> [u8; 32] {
        entry_hash(key, self.version, self.value.as_ref().map(AsRef::as_ref))
    }

    /// Whether this entry of `key` wins over `other`, as every store
    /// decides ([`MerkleStore::apply`] keeps the winner): the larger
    /// version, a tie broken by the larger entry hash, so that every
    /// replica keeps the same entry whatever order they arrive in. The one
    /// rule for "newer" wherever entries meet (a read that compares
    /// replicas, a repair).
    pub fn beats(&self, key: &[u8], other: &Versioned<V>) -> bool {
        (self.version, self.entry_hash(key)) > (other.version, other.entry_hash(key))
    }
}

/// A key's position, `SHA-256(key)`, as the entries' table key. Two keys
/// with one position would be a SHA-256 collision, so the position stands
/// for the key, as it already does in the summary's order. A probe then
/// compares 32 bytes in the table's own memory instead of following the
/// key to the heap, and a write knows its summary path before the probe:
/// at a million keys those are two fewer misses to memory one after the
/// other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position([u8; 32]);

impl Hash for Position {
    /// The first 8 bytes are uniform already; the table's seeded hasher
    /// mixes them, so keys chosen to collide in it would need equal
    /// 64-bit position prefixes.
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(first));
    }
}

#[derive(Debug, Clone)]
struct Stored<K, V> {
    key: K,
    entry: Versioned<V>,
    hash: [u8; 32],
}

/// The node (at `level`) that a key position falls in: its first `level`
/// nibbles, as an integer.
///
/// # Errors
/// [`MerkleError::InvalidNode`] for a level beyond
/// [`MAX_LEVEL`](crate::wire::MAX_LEVEL).
pub fn node_of(position: &[u8; 32], level: usize) -> Result<u64, MerkleError> {
    if level > crate::wire::MAX_LEVEL {
        return Err(MerkleError::InvalidNode { level, node: 0 });
    }
    Ok(node_at(position, level))
}

/// [`node_of`] for a level known to be valid.
fn node_at(position: &[u8; 32], level: usize) -> u64 {
    let mut prefix = 0u64;
    for i in 0..level {
        let byte = position[i / 2];
        let nibble = if i % 2 == 0 { byte >> 4 } else { byte & 0x0f };
        prefix = (prefix << 4) | u64::from(nibble);
    }
    prefix
}

/// An ordered map of versioned entries whose Merkle summary is updated in
/// O(depth) on every write: no rescan, no rebuild.
///
/// Deletes are tombstones carrying a version, so that a replica that missed
/// the delete learns of it instead of resurrecting the key. Tombstones older
/// than a horizon can be purged ([`purge_tombstones`](Self::purge_tombstones));
/// a replica must sync within that horizon, or a purged delete may come back.
///
/// Conflicts resolve by version, last writer wins; two different entries
/// with the same version resolve to the one with the larger entry hash, so
/// every replica picks the same winner.
///
/// ```
/// use sysblocks_merkle::MerkleStore;
///
/// let mut a = MerkleStore::new();
/// let mut b = MerkleStore::new();
/// for store in [&mut a, &mut b] {
///     store.put(b"user:1".to_vec(), b"ada".to_vec(), 1)?;
/// }
/// assert_eq!(a.root_hash(), b.root_hash());
/// b.delete(b"user:1".to_vec(), 2)?;
/// assert_ne!(a.root_hash(), b.root_hash()); // the replicas differ
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Keys and values are byte vectors unless you say otherwise, so that an
/// empty replica can be named without its types:
/// `let replica: MerkleStore = MerkleStore::new();`.
#[derive(Debug, Clone)]
pub struct MerkleStore<K = Vec<u8>, V = Vec<u8>> {
    /// Entries by position (see [`Position`]): a hash map, so that a write
    /// at a million keys costs one probe rather than a B-tree descent of
    /// key comparisons.
    entries: HashMap<Position, Stored<K, V>, foldhash::fast::RandomState>,
    /// The positions in order, to list the entries under any summary node.
    by_position: BTreeSet<[u8; 32]>,
    /// `levels[l]` holds the fingerprints of the nodes at level `l` (see
    /// [`Nodes`]). `levels[0]` holds the root, node 0.
    levels: Vec<Nodes>,
    live: usize,
}

impl<K, V> Default for MerkleStore<K, V>
where
    K: Hash + Eq + Clone + AsRef<[u8]>,
    V: Clone + AsRef<[u8]>,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> MerkleStore<K, V>
where
    K: Hash + Eq + Clone + AsRef<[u8]>,
    V: Clone + AsRef<[u8]>,
{
    /// An empty store.
    pub fn new() -> Self {
        MerkleStore {
            entries: HashMap::default(),
            by_position: BTreeSet::new(),
            levels: vec![Nodes::Sparse(Level::default()); SUMMARY_DEPTH + 1],
            live: 0,
        }
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

    /// The live value of `key` (its bytes: `store.get(b"user:1")`).
    pub fn get(&self, key: &[u8]) -> Option<&V>
    where
        K: Borrow<[u8]>,
    {
        self.stored(key).and_then(|s| s.entry.value.as_ref())
    }

    /// The entry of `key`, tombstone included.
    pub fn get_versioned(&self, key: &[u8]) -> Option<&Versioned<V>>
    where
        K: Borrow<[u8]>,
    {
        self.stored(key).map(|s| &s.entry)
    }

    /// What is stored for `key`'s bytes.
    fn stored(&self, key: &[u8]) -> Option<&Stored<K, V>> {
        self.entries.get(&Position(key_position(key)))
    }

    /// Entries in position order (the order of the summary: the same for
    /// any two stores holding the same keys), tombstones included.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &Versioned<V>)> + '_ {
        self.by_position
            .iter()
            .filter_map(move |p| self.entries.get(&Position(*p)).map(|s| (&s.key, &s.entry)))
    }

    /// Writes `value` at `version`. Returns whether it won (a newer entry
    /// already stored is kept).
    ///
    /// # Errors
    /// [`MerkleError::TooLong`] for a key or value over `u32::MAX` bytes.
    pub fn put(&mut self, key: K, value: V, version: u64) -> Result<bool, MerkleError> {
        self.apply(key, Versioned { version, value: Some(value) })
    }

    /// Deletes `key` at `version`, leaving a tombstone. Returns whether it won.
    ///
    /// # Errors
    /// [`MerkleError::TooLong`] for a key over `u32::MAX` bytes.
    pub fn delete(&mut self, key: K, version: u64) -> Result<bool, MerkleError> {
        self.apply(key, Versioned { version, value: None })
    }

    /// Applies an entry from anywhere (a local write, or a replica's entry
    /// during repair): it is stored if it beats the current one by version
    /// (ties broken by the larger entry hash). Returns whether it was stored.
    ///
    /// # Errors
    /// [`MerkleError::TooLong`] for a key or value over `u32::MAX` bytes.
    pub fn apply(&mut self, key: K, entry: Versioned<V>) -> Result<bool, MerkleError> {
        check_len("key", key.as_ref())?;
        if let Some(v) = &entry.value {
            check_len("value", v.as_ref())?;
        }
        // The position first: the loads of the deepest summary nodes on the
        // key's path (in a large store each is a miss to memory) then run
        // beside the table probe.
        let position = key_position(key.as_ref());
        touch(&self.levels, &position);
        let hash_of = |key: &K, entry: &Versioned<V>| {
            entry_hash(key.as_ref(), entry.version, entry.value.as_ref().map(AsRef::as_ref))
        };
        let live_now = entry.value.is_some();
        match self.entries.entry(Position(position)) {
            MapEntry::Occupied(mut slot) => {
                // The old value's bytes are read now, which are freed below:
                // their load runs beside the new entry's hash.
                let old_value = slot.get().entry.value.as_ref();
                std::hint::black_box(old_value.and_then(|v| v.as_ref().first().copied()));
                let hash = hash_of(&key, &entry);
                let added = Fingerprint::of(&hash);
                let old = slot.get_mut();
                if (old.entry.version, old.hash) >= (entry.version, hash) {
                    return Ok(false);
                }
                let removed = Fingerprint::of(&old.hash);
                let was_live = old.entry.value.is_some();
                // The stored key stays: it has the same bytes.
                old.entry = entry;
                old.hash = hash;
                // One difference added on every level: the count is
                // unchanged, so no node becomes empty.
                let mut delta = added;
                delta.sub(&removed);
                for (level, nodes) in self.levels.iter_mut().enumerate() {
                    if let Some(fp) = nodes.get_mut(node_at(&position, level)) {
                        fp.add(&delta);
                    }
                }
                self.live = self.live + usize::from(live_now) - usize::from(was_live);
            }
            MapEntry::Vacant(slot) => {
                let hash = hash_of(&key, &entry);
                let added = Fingerprint::of(&hash);
                self.by_position.insert(position);
                slot.insert(Stored { key, entry, hash });
                update_path(&mut self.levels, &position, |fp| fp.add(&added));
                self.live += usize::from(live_now);
                let stored = self.entries.len();
                for (level, nodes) in self.levels.iter_mut().enumerate() {
                    // Half as many entries as the level has nodes.
                    if stored == 1 << (4 * level).saturating_sub(1) {
                        nodes.densify(level);
                    }
                }
            }
        }
        Ok(true)
    }

    /// Removes tombstones whose version is below `horizon`; returns how many.
    ///
    /// **The rule:** a replica that has not synced since before `horizon`
    /// must not sync afterwards without a full comparison, because a delete
    /// it missed may have been purged here and its old value would look new.
    pub fn purge_tombstones(&mut self, horizon: u64) -> usize {
        let doomed: Vec<Position> = self
            .entries
            .iter()
            .filter(|(_, s)| s.entry.value.is_none() && s.entry.version < horizon)
            .map(|(p, _)| *p)
            .collect();
        for position in &doomed {
            if let Some(old) = self.entries.remove(position) {
                self.by_position.remove(&position.0);
                let removed = Fingerprint::of(&old.hash);
                update_path(&mut self.levels, &position.0, |fp| fp.sub(&removed));
            }
        }
        doomed.len()
    }

    // ----- the summary -----------------------------------------------------

    /// The fingerprint of every entry.
    pub fn root(&self) -> Fingerprint {
        self.fp_at(0, 0)
    }

    /// The root hash: the 32 bytes of the root fingerprint's sum. Equal root
    /// hashes (and counts) mean equal stores.
    pub fn root_hash(&self) -> [u8; 32] {
        self.root().to_bytes()
    }

    /// The fingerprint of node `node` at `level` (its first `level`
    /// nibbles). Levels up to [`SUMMARY_DEPTH`] are kept; deeper ones, up to
    /// [`MAX_LEVEL`](crate::wire::MAX_LEVEL), are summed on demand from the
    /// entries.
    ///
    /// # Errors
    /// [`MerkleError::InvalidNode`] for a level beyond `MAX_LEVEL` or a node
    /// with more than `level` nibbles.
    pub fn fingerprint(&self, level: usize, node: u64) -> Result<Fingerprint, MerkleError> {
        if !crate::wire::valid_node(level, node) {
            return Err(MerkleError::InvalidNode { level, node });
        }
        Ok(self.fp_at(level, node))
    }

    /// [`fingerprint`](Self::fingerprint) for a node known to be valid.
    pub(crate) fn fp_at(&self, level: usize, node: u64) -> Fingerprint {
        match self.levels.get(level) {
            Some(nodes) => nodes.get(node).copied().unwrap_or_default(),
            None => {
                self.entries_under(level, node).fold(Fingerprint::default(), |mut acc, (_, s)| {
                    acc.add(&Fingerprint::of(&s.hash));
                    acc
                })
            }
        }
    }

    /// The entries whose position starts with `node`'s `level` nibbles, in
    /// position order.
    fn entries_under(
        &self,
        level: usize,
        node: u64,
    ) -> impl Iterator<Item = (&[u8; 32], &Stored<K, V>)> + '_ {
        let (low, high) = position_range(level, node);
        self.by_position
            .range(low..=high)
            .filter_map(move |p| self.entries.get(&Position(*p)).map(|s| (p, s)))
    }

    /// Recomputes the whole summary from the entries, for checking that the
    /// incremental one is right (O(n · depth)).
    pub fn summary_from_scratch(&self) -> Vec<Level> {
        let mut levels = vec![Level::default(); SUMMARY_DEPTH + 1];
        for (position, stored) in &self.entries {
            for (level, nodes) in levels.iter_mut().enumerate() {
                nodes
                    .entry(node_at(&position.0, level))
                    .or_default()
                    .add(&Fingerprint::of(&stored.hash));
            }
        }
        levels
    }

    /// Whether the incremental summary equals a from-scratch rebuild.
    pub fn summary_is_consistent(&self) -> bool {
        self.levels.iter().map(Nodes::to_level).eq(self.summary_from_scratch())
    }

    // ----- inclusion proofs ------------------------------------------------

    /// A proof that `key`'s current entry is in the store whose root is
    /// [`root`](Self::root): the other entries of its bottom node, then at
    /// each level up the fingerprints of its 15 siblings.
    pub fn prove(&self, key: &[u8]) -> Option<InclusionProof>
    where
        K: Borrow<[u8]>,
    {
        let position = key_position(key);
        if !self.entries.contains_key(&Position(position)) {
            return None;
        }
        let bottom = node_at(&position, SUMMARY_DEPTH);
        let neighbours = self
            .entries_under(SUMMARY_DEPTH, bottom)
            .filter(|(p, _)| **p != position)
            .map(|(_, s)| Fingerprint::of(&s.hash))
            .collect();
        let mut siblings = Vec::with_capacity(SUMMARY_DEPTH);
        for level in (1..=SUMMARY_DEPTH).rev() {
            let node = node_at(&position, level);
            let parent = node >> 4;
            let others: Vec<Fingerprint> = (0..16u64)
                .map(|child| (parent << 4) | child)
                .filter(|&n| n != node)
                .map(|n| self.fp_at(level, n))
                .collect();
            siblings.push(others);
        }
        Some(InclusionProof { neighbours, siblings })
    }
}

// ----- what the sync protocol needs ------------------------------------------

impl<K, V> MerkleStore<K, V>
where
    K: Hash + Eq + Clone + AsRef<[u8]>,
    V: Clone + AsRef<[u8]>,
{
    /// The fingerprint of a node as it goes on the wire.
    pub(crate) fn wire_fp(&self, level: usize, node: u64) -> crate::wire::WireFp {
        let fp = self.fp_at(level, node);
        let mut sum = [0u8; crate::wire::TRUNC];
        sum.copy_from_slice(&fp.to_bytes()[..crate::wire::TRUNC]);
        crate::wire::WireFp { count: fp.count, sum }
    }

    /// The entries under a node, as the sync protocol summarises them.
    pub(crate) fn summaries_under(
        &self,
        level: usize,
        node: u64,
    ) -> Vec<crate::sync_store::EntrySummary> {
        let len = |bytes: &[u8]| u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.entries_under(level, node)
            .map(|(position, s)| crate::sync_store::EntrySummary {
                position: truncate(position),
                version: s.entry.version,
                hash: truncate(&s.hash),
                key_len: len(s.key.as_ref()),
                value_len: s.entry.value.as_ref().map(|v| len(v.as_ref())),
            })
            .collect()
    }

    /// The entry whose position starts with `prefix`, if any.
    pub(crate) fn entry_at(&self, prefix: &[u8; crate::wire::TRUNC]) -> Option<(K, Versioned<V>)> {
        let mut low = [0u8; 32];
        let mut high = [0xffu8; 32];
        low[..prefix.len()].copy_from_slice(prefix);
        high[..prefix.len()].copy_from_slice(prefix);
        let position = self.by_position.range(low..=high).next()?;
        self.entries.get(&Position(*position)).map(|s| (s.key.clone(), s.entry.clone()))
    }
}

/// Applies `change` to the fingerprint of every node on `position`'s path,
/// root to bottom, dropping nodes that become empty.
/// Reads the fingerprints on `position`'s path through the two deepest
/// levels (the ones too large for a cache), so that their loads start
/// before the work that follows; `black_box` keeps the reads from being
/// dropped.
fn touch(levels: &[Nodes], position: &[u8; 32]) {
    for (level, nodes) in levels.iter().enumerate().skip(SUMMARY_DEPTH - 1) {
        std::hint::black_box(nodes.get(node_at(position, level)).map(|fp| fp.count));
    }
}

fn update_path(
    levels: &mut [Nodes],
    position: &[u8; 32],
    mut change: impl FnMut(&mut Fingerprint),
) {
    for (level, nodes) in levels.iter_mut().enumerate() {
        nodes.update(node_at(position, level), &mut change);
    }
}

/// The lowest and highest positions under `node` at `level`.
fn position_range(level: usize, node: u64) -> ([u8; 32], [u8; 32]) {
    let mut low = [0u8; 32];
    let mut high = [0xffu8; 32];
    for i in 0..level {
        let nibble = ((node >> (4 * (level - 1 - i))) & 0x0f) as u8;
        let (lo, hi) = (&mut low[i / 2], &mut high[i / 2]);
        if i % 2 == 0 {
            *lo = (*lo & 0x0f) | (nibble << 4);
            *hi = (*hi & 0x0f) | (nibble << 4);
        } else {
            *lo = (*lo & 0xf0) | nibble;
            *hi = (*hi & 0xf0) | nibble;
        }
    }
    (low, high)
}

fn check_len(what: &'static str, bytes: &[u8]) -> Result<(), MerkleError> {
    if u32::try_from(bytes.len()).is_err() {
        return Err(MerkleError::TooLong { what, len: bytes.len() });
    }
    Ok(())
}

/// Evidence that one entry is part of a store with a given root: recompute
/// the root from the entry and the proof, and compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// The other entries of the entry's bottom node.
    pub neighbours: Vec<Fingerprint>,
    /// From the bottom level up: the 15 sibling fingerprints at each level.
    pub siblings: Vec<Vec<Fingerprint>>,
}

impl InclusionProof {
    /// Whether `key` at `version` with `value` (`None`: a tombstone) is in
    /// the store whose root fingerprint is `root`.
    pub fn verify(
        &self,
        key: &[u8],
        version: u64,
        value: Option<&[u8]>,
        root: &Fingerprint,
    ) -> bool {
        let mut node = Fingerprint::of(&entry_hash(key, version, value));
        for n in &self.neighbours {
            node.add(n);
        }
        if self.siblings.len() != SUMMARY_DEPTH {
            return false;
        }
        for level in &self.siblings {
            if level.len() != 15 {
                return false;
            }
            for s in level {
                node.add(s);
            }
        }
        node == *root
    }
}
