//! [`Reconciler`]: the sync protocol's state machine, one per side.
//!
//! ```text
//!  A                                          B
//!  Fingerprint(root) ───────────────────────▶ differs? split:
//!                  ◀─────────────────────── Children(root: 16 fingerprints)
//!  per differing child: split again, or, once
//!  both sides hold few entries there, list them:
//!  Listing(node: position, version, hash) ──▶ compare item by item:
//!  (or Range(node: the entries themselves), when no bigger: no Want then)
//!                  ◀─────────────────────── Entry(what A lacks or has older)
//!                  ◀─────────────────────── Want(what B lacks or has older)
//!  Entry(wanted) ───────────────────────────▶
//! ```
//!
//! Each side only ever descends into ranges whose fingerprints differ, and
//! a listing names entries by 16 bytes of position, so what crosses is the
//! exact set of differing keys plus O(log16 n) fingerprints per difference:
//! no leaf range is streamed whole. A range that one side has empty is
//! settled at once (the other side sends its entries, or asks for them).

use std::collections::{HashMap, HashSet, VecDeque};

use crate::error::MerkleError;
use crate::hash::{entry_hash, key_position};
use crate::sync_store::{EntrySummary, SyncStore, truncate};
use crate::wire::{
    Children, Item, ListedItem, MAX_LEVEL, SUM_BYTES, TRUNC, WireEntry, WireFp, encode_message,
    items,
};

/// At most this many differing children make a node's differences sparse.
const SPARSE_CHILDREN: usize = 2;
/// Under a sparse node, ranges up to this many times `list_threshold` are
/// listed rather than split.
const SPARSE_LIST_FACTOR: u64 = 3;

/// Tuning for a sync session. Both sides should use the same values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncConfig {
    /// The largest message either side sends or accepts, in bytes. It must
    /// exceed the largest entry (key plus value plus a few bytes).
    pub max_message: usize,
    /// A range is listed, rather than split, once both sides hold at most
    /// this many entries in it (default 4: the fewest bytes on the rows of
    /// BENCHMARKS.md).
    pub list_threshold: u64,
    /// The deepest level to split to (16 nibbles = 64 bits of position);
    /// deeper ranges are listed whatever their size.
    pub max_level: usize,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig { max_message: 256 * 1024, list_threshold: 4, max_level: MAX_LEVEL }
    }
}

/// The largest `Children` item: tag, level, a 10-byte node, the mask and
/// 16 fingerprints of a 10-byte count and [`SUM_BYTES`] of sum.
const MAX_CHILDREN_ITEM: usize = 1 + 1 + 10 + 2 + 16 * (10 + SUM_BYTES);
/// The largest listed entry: position, a 10-byte version, hash.
const MAX_LISTED: usize = 2 * TRUNC + 10;

impl SyncConfig {
    /// The most bytes of fingerprints, children, listings and wants that a
    /// side queues per byte received, whatever the peer sends (entries
    /// aside: each of this side's entries is sent at most once). The worst
    /// items are a 31-byte `Children` item with two children set, each
    /// answered by a listing of `3 × list_threshold` entries of 42 bytes
    /// (about `8.2 × list_threshold` per byte), and a 13-byte child answered
    /// by a 366-byte `Children` item (29 per byte). Ranges deeper than
    /// `max_level` are listed whatever their size; those listings are
    /// bounded by the entries (each listed at most once per level), not by
    /// this figure.
    pub fn queued_bytes_per_byte(&self) -> usize {
        usize::try_from(self.list_threshold).unwrap_or(usize::MAX).saturating_mul(9).max(29)
    }

    /// Checks that a session with this tuning can always say what it must:
    /// `max_level` at most [`MAX_LEVEL`], a `list_threshold` of at least 1,
    /// and a `max_message` that holds a full `Children` item and a listing
    /// of the largest range that is ever listed rather than split
    /// (`3 × list_threshold` entries).
    ///
    /// # Errors
    /// [`MerkleError::BadConfig`] saying which value is wrong.
    pub fn validate(&self) -> Result<(), MerkleError> {
        let bad = |reason: String| Err(MerkleError::BadConfig { reason });
        if self.max_level > MAX_LEVEL {
            return bad(format!("max_level must be at most {MAX_LEVEL} (got {})", self.max_level));
        }
        if self.list_threshold == 0 {
            return bad("list_threshold must be at least 1 (got 0)".into());
        }
        let listing = self
            .list_threshold
            .checked_mul(SPARSE_LIST_FACTOR)
            .and_then(|n| usize::try_from(n).ok())
            .and_then(|n| n.checked_mul(MAX_LISTED))
            .and_then(|n| n.checked_add(1 + 1 + 1 + 10 + 10));
        let needed = listing.map(|l| l.max(MAX_CHILDREN_ITEM) + 1);
        match needed {
            Some(needed) if self.max_message >= needed => Ok(()),
            Some(needed) => bad(format!(
                "max_message of {} bytes cannot hold a listing of {} entries ({needed} bytes)",
                self.max_message,
                self.list_threshold * SPARSE_LIST_FACTOR
            )),
            None => bad(format!("list_threshold of {} is too large", self.list_threshold)),
        }
    }
}

/// What one side of a session did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Bytes this side sent.
    pub bytes_sent: u64,
    /// Bytes this side received.
    pub bytes_received: u64,
    /// Messages this side sent.
    pub messages_sent: u64,
    /// Entries this side sent.
    pub entries_sent: u64,
    /// Entries received that replaced (or added) one here.
    pub keys_repaired: u64,
}

/// One side of a sync session. Start with [`initiate`](Self::initiate) on
/// one side; feed each message received to [`receive`](Self::receive), which
/// returns the reply, until neither side has anything to send.
///
/// **Bounded work against any peer.** A side answers each summary node at
/// most once per session, ignores items about ranges it has already
/// settled, and sends each of its entries at most once. So whatever a peer
/// sends, a side queues at most
/// [`SyncConfig::queued_bytes_per_byte`] bytes of fingerprints, listings and
/// wants per byte received, plus its own entries (each at most once: the
/// differing ones, by the peer's account). Its bookkeeping is at most one
/// node per item received plus one per range it describes or splits, and
/// the position of each entry it sends.
#[derive(Debug, Clone)]
pub struct Reconciler {
    config: SyncConfig,
    outbox: VecDeque<Item>,
    stats: SyncStats,
    /// Nodes this side split in answer to a `Fingerprint` item: another
    /// item about one of them is ignored.
    answered: HashSet<(u8, u64)>,
    /// Nodes whose `Children` item this side has handled: another one, or
    /// a `Fingerprint` of one of their children, is ignored. One entry per
    /// item received, so the bookkeeping grows with the input only.
    parents: HashSet<(u8, u64)>,
    /// Nodes whose every entry this side has already described or sent:
    /// items about them or anything below them are ignored.
    settled: HashSet<(u8, u64)>,
    /// Positions of the entries sent, so that none is sent twice.
    sent: HashSet<[u8; TRUNC]>,
}

impl Reconciler {
    /// A side with the given tuning.
    ///
    /// # Errors
    /// [`MerkleError::BadConfig`] from [`SyncConfig::validate`].
    pub fn new(config: SyncConfig) -> Result<Self, MerkleError> {
        config.validate()?;
        Ok(Reconciler {
            config,
            outbox: VecDeque::new(),
            stats: SyncStats::default(),
            answered: HashSet::new(),
            parents: HashSet::new(),
            settled: HashSet::new(),
            sent: HashSet::new(),
        })
    }

    /// Whether this side has settled `node` or a range above it.
    fn covered(&self, level: u8, node: u64) -> bool {
        (0..=level).any(|l| {
            let above = node.checked_shr(4 * u32::from(level - l)).unwrap_or(0);
            self.settled.contains(&(l, above))
        })
    }

    /// Whether a `Fingerprint` item about `node` was answered already: the
    /// node was split, or settled, or its parent's children were handled.
    fn answered_before(&self, level: u8, node: u64) -> bool {
        self.covered(level, node)
            || self.answered.contains(&(level, node))
            || (level > 0 && self.parents.contains(&(level - 1, node >> 4)))
    }

    /// What this side has done so far.
    pub fn stats(&self) -> SyncStats {
        self.stats
    }

    /// Whether this side has nothing queued to send.
    pub fn is_idle(&self) -> bool {
        self.outbox.is_empty()
    }

    /// The first message: this side's root fingerprint.
    ///
    /// # Errors
    /// [`MerkleError::MessageTooLarge`] when the first item does not fit in
    /// a message (a listed entry larger than `max_message`).
    pub fn initiate<S: SyncStore + ?Sized>(&mut self, store: &S) -> Result<Vec<u8>, MerkleError> {
        // Open one level down, as the peer would answer a differing root
        // anyway: a large store starts with its 16 children, a small one
        // with its listing, an empty one with its (empty) root.
        let root = store.node_fingerprint(0, 0);
        self.answered.insert((0, 0));
        if root.count == 0 {
            self.outbox.push_back(Item::Fingerprint { level: 0, node: 0, fp: root });
        } else if root.count <= self.config.list_threshold {
            self.settled.insert((0, 0));
            self.describe(store, 0, 0)?;
        } else {
            self.outbox.push_back(Item::Children {
                level: 0,
                node: 0,
                children: children(store, 0, 0),
            });
        }
        self.next_message().map(Option::unwrap_or_default)
    }

    /// Handles a message from the other side, applying any entries it
    /// carries, and returns the reply (`None`: nothing to say).
    ///
    /// # Errors
    /// A malformed, oversized or wrong-version message; the store is then
    /// unchanged by it.
    pub fn receive<S: SyncStore + ?Sized>(
        &mut self,
        store: &mut S,
        message: &[u8],
    ) -> Result<Option<Vec<u8>>, MerkleError> {
        // Check the whole message first, so that a malformed one changes
        // nothing; then decode it again one item at a time, so that the
        // decoded form of the whole message is never held at once.
        for item in items(message, self.config.max_message)? {
            item?;
        }
        self.stats.bytes_received += message.len() as u64;
        for item in items(message, self.config.max_message)? {
            match item? {
                Item::Fingerprint { level, node, fp } => {
                    if !self.answered_before(level, node) {
                        let threshold = self.config.list_threshold;
                        if self.on_fingerprint(store, level, node, fp, threshold)? {
                            self.answered.insert((level, node));
                        }
                    }
                }
                Item::Children { level, node, children } => {
                    if self.covered(level, node) || !self.parents.insert((level, node)) {
                        continue;
                    }
                    let child_level = level + 1;
                    let child = |c: usize| (node << 4) | c as u64;
                    // Where only one or two children differ (few
                    // differences overall), list bigger ranges: it saves a
                    // round trip for a few hundred bytes. Where many
                    // differ, keep splitting, which moves fewer bytes.
                    let differing = (0..16)
                        .filter(|&c| {
                            store.node_fingerprint(usize::from(child_level), child(c)).on_wire()
                                != children.get(c).unwrap_or_default()
                        })
                        .count();
                    let threshold = if differing <= SPARSE_CHILDREN {
                        self.config.list_threshold * SPARSE_LIST_FACTOR
                    } else {
                        self.config.list_threshold
                    };
                    for c in 0..16 {
                        let theirs = children.get(c).unwrap_or_default();
                        // The parent is not covered (checked above), so a
                        // child is only if it was settled itself.
                        if !self.settled.contains(&(child_level, child(c))) {
                            self.on_fingerprint(store, child_level, child(c), theirs, threshold)?;
                        }
                    }
                }
                Item::Listing { level, node, items } => {
                    if self.settle(level, node) {
                        self.on_listing(store, level, node, &items)?;
                    }
                }
                Item::Want(positions) => {
                    for entry in store.read_entries(&positions)? {
                        self.send_entry(entry);
                    }
                }
                Item::Entry { key, version, value } => {
                    if store.store_entry(key, version, value)? {
                        self.stats.keys_repaired += 1;
                    }
                }
                Item::Range { level, node, entries } => {
                    if !self.settle(level, node) {
                        // Already settled: only their newer entries matter.
                        for (key, version, value) in entries {
                            if store.store_entry(key, version, value)? {
                                self.stats.keys_repaired += 1;
                            }
                        }
                        continue;
                    }
                    // Take what is newer from them, then send back every
                    // entry of ours there that they lack or hold older.
                    let ours = by_position(store.entries_under(usize::from(level), node));
                    let mut theirs = HashMap::with_capacity(entries.len());
                    for (key, version, value) in entries {
                        let position = truncate(&key_position(&key));
                        let hash = truncate(&entry_hash(&key, version, value.as_deref()));
                        // Most entries of a range are equal on both sides:
                        // those (and older ones) are not stored again.
                        let newer = ours
                            .get(&position)
                            .is_none_or(|o| (o.version, o.hash) < (version, hash));
                        if newer && store.store_entry(key, version, value)? {
                            self.stats.keys_repaired += 1;
                        }
                        theirs.insert(position, (version, hash));
                    }
                    let ahead: Vec<[u8; TRUNC]> = ours
                        .values()
                        .filter(|o| theirs.get(&o.position).is_none_or(|(v, h)| o.beats(*v, h)))
                        .map(|o| o.position)
                        .collect();
                    for entry in store.read_entries(&ahead)? {
                        self.send_entry(entry);
                    }
                }
            }
        }
        self.next_message()
    }

    /// The next message from what is queued, at most `max_message` bytes.
    ///
    /// # Errors
    /// [`MerkleError::MessageTooLarge`] when a single item (an entry) does
    /// not fit in a message.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, MerkleError> {
        let mut items = Vec::new();
        let mut size = 1;
        while let Some(item) = self.outbox.front() {
            let len = item.encoded_len();
            if size + len > self.config.max_message {
                if items.is_empty() {
                    return Err(MerkleError::MessageTooLarge {
                        len: size + len,
                        max: self.config.max_message,
                    });
                }
                break;
            }
            size += len;
            items.extend(self.outbox.pop_front());
        }
        if items.is_empty() {
            return Ok(None);
        }
        let message = encode_message(&items);
        self.stats.bytes_sent += message.len() as u64;
        self.stats.messages_sent += 1;
        Ok(Some(message))
    }

    /// Describes this side's entries under a node: in full (a `Range`) when
    /// that is no bigger than a `Listing` of positions and hashes, which
    /// spares the peer a `Want` round trip; else the listing.
    fn describe<S: SyncStore + ?Sized>(
        &mut self,
        store: &S,
        level: u8,
        node: u64,
    ) -> Result<(), MerkleError> {
        let summaries = store.entries_under(usize::from(level), node);
        let varint = |v: u64| (64 - v.leading_zeros() as usize).max(1).div_ceil(7);
        let (mut listing_len, mut range_len) = (0, 0);
        for s in &summaries {
            let version = varint(s.version);
            let (key, value) = (u64::from(s.key_len), u64::from(s.value_len.unwrap_or(0)));
            listing_len += 2 * TRUNC + version;
            range_len += varint(key) + key as usize + version + 1 + varint(value) + value as usize;
        }
        let item = if range_len <= listing_len {
            let positions: Vec<[u8; TRUNC]> = summaries.iter().map(|s| s.position).collect();
            Item::Range { level, node, entries: store.read_entries(&positions)? }
        } else {
            Item::Listing { level, node, items: summaries.iter().map(listed).collect() }
        };
        self.outbox.push_back(item);
        Ok(())
    }

    /// Marks a node settled (every entry of ours there described or
    /// sent); `false` if it, or a range above it, already was.
    fn settle(&mut self, level: u8, node: u64) -> bool {
        if self.covered(level, node) {
            return false;
        }
        self.settled.insert((level, node));
        true
    }

    fn send_entry(&mut self, (key, version, value): WireEntry) {
        if !self.sent.insert(truncate(&key_position(&key))) {
            return;
        }
        self.stats.entries_sent += 1;
        self.outbox.push_back(Item::Entry { key, version, value });
    }

    /// Answers their fingerprint of a node; returns whether it split the
    /// node (sent our children), which the caller may need to remember.
    fn on_fingerprint<S: SyncStore + ?Sized>(
        &mut self,
        store: &S,
        level: u8,
        node: u64,
        theirs: WireFp,
        threshold: u64,
    ) -> Result<bool, MerkleError> {
        let lvl = usize::from(level);
        let ours = store.node_fingerprint(lvl, node);
        if ours.on_wire() == theirs.on_wire() {
            return Ok(false);
        }
        if theirs.count == 0 {
            // They have nothing here: everything of ours is a difference.
            self.settled.insert((level, node));
            let positions: Vec<[u8; TRUNC]> =
                store.entries_under(lvl, node).iter().map(|s| s.position).collect();
            for entry in store.read_entries(&positions)? {
                self.send_entry(entry);
            }
        } else if ours.count == 0
            || (ours.count <= threshold && theirs.count <= threshold)
            || lvl >= self.config.max_level
        {
            // Small (or we are empty): describe ours, and they settle it.
            self.settled.insert((level, node));
            self.describe(store, level, node)?;
        } else {
            self.outbox.push_back(Item::Children {
                level,
                node,
                children: children(store, lvl, node),
            });
            return Ok(true);
        }
        Ok(false)
    }

    fn on_listing<S: SyncStore + ?Sized>(
        &mut self,
        store: &S,
        level: u8,
        node: u64,
        theirs: &[ListedItem],
    ) -> Result<(), MerkleError> {
        let ours = by_position(store.entries_under(usize::from(level), node));
        let mut want = Vec::new();
        let mut ahead = Vec::new();
        let mut seen = HashSet::new();
        for it in theirs {
            seen.insert(it.position);
            match ours.get(&it.position) {
                None => want.push(it.position),
                Some(mine) => {
                    let (m, t) = ((mine.version, mine.hash), (it.version, it.hash));
                    if m < t {
                        want.push(it.position);
                    } else if m > t {
                        ahead.push(it.position);
                    }
                }
            }
        }
        ahead.extend(ours.keys().filter(|p| !seen.contains(*p)));
        for entry in store.read_entries(&ahead)? {
            self.send_entry(entry);
        }
        if !want.is_empty() {
            self.outbox.push_back(Item::Want(want));
        }
        Ok(())
    }
}

/// The wire fingerprints of a node's 16 children (`None` for empty ones).
fn children<S: SyncStore + ?Sized>(store: &S, level: usize, node: u64) -> Children {
    let mut children = [None; 16];
    for (c, slot) in children.iter_mut().enumerate() {
        let fp = store.node_fingerprint(level + 1, (node << 4) | c as u64);
        if fp.count > 0 {
            *slot = Some(fp);
        }
    }
    Children::from_array(children)
}

/// Summaries by position.
fn by_position(summaries: Vec<EntrySummary>) -> HashMap<[u8; TRUNC], EntrySummary> {
    summaries.into_iter().map(|s| (s.position, s)).collect()
}

/// A summary as a listing names it.
fn listed(s: &EntrySummary) -> ListedItem {
    ListedItem { position: s.position, version: s.version, hash: s.hash }
}

/// What [`sync_in_memory`] did: each side's work and the messages
/// exchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncOutcome {
    /// What the side that started the session (`a`) did.
    pub initiator: SyncStats,
    /// What the side that answered (`b`) did.
    pub responder: SyncStats,
    /// Messages exchanged, both ways.
    pub rounds: u64,
}

/// Runs a whole session between two stores in memory (tests, the tour, and
/// an example of driving the state machines): `a` starts, `b` answers, and
/// when it returns both hold the newer entry of every key.
///
/// # Errors
/// Any error of [`Reconciler::new`], [`Reconciler::initiate`] or
/// [`Reconciler::receive`].
pub fn sync_in_memory<A: SyncStore + ?Sized, B: SyncStore + ?Sized>(
    a: &mut A,
    b: &mut B,
    config: SyncConfig,
) -> Result<SyncOutcome, MerkleError> {
    let mut side_a = Reconciler::new(config)?;
    let mut side_b = Reconciler::new(config)?;
    let mut message = side_a.initiate(a)?;
    let mut from_a = true;
    let mut rounds = 1;
    loop {
        let reply =
            if from_a { side_b.receive(b, &message)? } else { side_a.receive(a, &message)? };
        match reply {
            Some(m) => {
                message = m;
                from_a = !from_a;
                rounds += 1;
            }
            None => {
                // The receiver is done; the sender may still hold queued items.
                let more = if from_a { side_a.next_message()? } else { side_b.next_message()? };
                match more {
                    Some(m) => {
                        message = m;
                        rounds += 1;
                    }
                    None => break,
                }
            }
        }
    }
    Ok(SyncOutcome { initiator: side_a.stats(), responder: side_b.stats(), rounds })
}
