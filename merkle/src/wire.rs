//! The wire format of the sync protocol (version 2).
//!
//! A message is one version byte (`2`) followed by items. Integers are LEB128
//! varints; a fingerprint on the wire is its count and the first
//! [`SUM_BYTES`] (12) bytes of its sum; a position is the first 16 bytes of
//! `SHA-256(key)`.
//!
//! | tag | item | payload |
//! |---|---|---|
//! | 1 | `Fingerprint` | level u8, node varint, count varint, sum12 |
//! | 2 | `Children` | level u8, node varint (the parent), mask u16 LE, then count varint + sum12 per set bit |
//! | 3 | `Listing` | level u8, node varint, n varint, then n × (position16, version varint, hash16) |
//! | 4 | `Want` | n varint, then n × position16 |
//! | 5 | `Entry` | key len varint, key, version varint, kind u8 (0 live, 1 tombstone), value len varint, value |
//!
//! A level is at most [`MAX_LEVEL`] (16 nibbles fill the `u64` node id),
//! a `Children` item's level is below it (its children are one deeper), and
//! a node at level `l` is below `16^l`. Anything else is malformed.
//!
//! Decoding never panics and never allocates more than the message's own
//! length justifies: every count is checked against the bytes that remain,
//! and decoded items take at most [`DECODED_BYTES_PER_BYTE`] bytes of
//! memory per byte of message. [`items`] decodes one item at a time, for a
//! receiver that does not hold the whole decoded message at once.

use crate::error::MerkleError;

/// The deepest level of the summary that the protocol addresses: a node id
/// is a `u64` of up to 16 nibbles of key position.
pub const MAX_LEVEL: usize = 16;

/// An upper bound on the memory that [`decode_message`] takes for the
/// items it returns, per byte of message (the smallest items, 5-byte
/// `Children` with no child set, each take one `Item`).
pub const DECODED_BYTES_PER_BYTE: usize = 16;

/// Whether `node` is a node of `level`: the level is at most [`MAX_LEVEL`]
/// and the node has at most `level` nibbles.
pub fn valid_node(level: usize, node: u64) -> bool {
    match level {
        0..MAX_LEVEL => node >> (4 * level) == 0,
        MAX_LEVEL => true,
        _ => false,
    }
}

/// The wire format version (the first byte of every message). Version 1
/// carried 16 bytes of each fingerprint's sum; version 2 carries
/// [`SUM_BYTES`].
pub const WIRE_VERSION: u8 = 2;

/// Bytes of a position or an entry hash on the wire (and of a fingerprint's
/// sum as the stores keep it).
pub const TRUNC: usize = 16;

/// Bytes of a fingerprint's sum on the wire. Two different sets of entries
/// (with the same count) look equal on the wire only if their sums agree on
/// these 96 bits: for sums of SHA-256 outputs, a 2^-96 event per node
/// compared, however many entries the node holds. Most of a sync's bytes
/// are the 16 child fingerprints of each range that differs, so these 4
/// bytes fewer per fingerprint are about a fifth of the session.
pub const SUM_BYTES: usize = 12;

/// A fingerprint on the wire: count and truncated sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WireFp {
    /// Entries under the node.
    pub count: u64,
    /// First 16 bytes of the sum, of which the wire carries the first
    /// [`SUM_BYTES`] (a decoded fingerprint has zeros after them).
    pub sum: [u8; TRUNC],
}

impl WireFp {
    /// This fingerprint as the other side receives it: the sum's bytes
    /// after the first [`SUM_BYTES`] zeroed. Compare a local fingerprint
    /// with a received one only in this form.
    pub fn on_wire(mut self) -> Self {
        self.sum[SUM_BYTES..].fill(0);
        self
    }
}

/// One listed entry: which key (by position), at which version, with which
/// entry hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedItem {
    /// First 16 bytes of the key's position.
    pub position: [u8; TRUNC],
    /// The entry's version.
    pub version: u64,
    /// First 16 bytes of the entry hash.
    pub hash: [u8; TRUNC],
}

/// An entry on the wire: key, version, value (`None`: a tombstone).
pub type WireEntry = (Vec<u8>, u64, Option<Vec<u8>>);

/// One item of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// "My fingerprint of this node is ..."
    Fingerprint {
        /// The node's level.
        level: u8,
        /// The node.
        node: u64,
        /// Its fingerprint on the sender's side.
        fp: WireFp,
    },
    /// "My fingerprints of this node's 16 children are ..." (absent: empty).
    Children {
        /// The parent's level (below [`MAX_LEVEL`]).
        level: u8,
        /// The parent.
        node: u64,
        /// The children's fingerprints.
        children: Children,
    },
    /// "These are all my entries under this node."
    Listing {
        /// The node's level.
        level: u8,
        /// The node.
        node: u64,
        /// Every entry of the sender under the node.
        items: Vec<ListedItem>,
    },
    /// "Send me your entries at these positions."
    Want(Vec<[u8; TRUNC]>),
    /// "These are all my entries under this node, in full." Sent instead
    /// of a [`Listing`](Item::Listing) when the entries are no bigger than
    /// their listing: the receiver needs no `Want` round trip.
    Range {
        /// The node's level.
        level: u8,
        /// The node.
        node: u64,
        /// Every entry of the sender under the node: key, version, value
        /// (`None`: a tombstone).
        entries: Vec<WireEntry>,
    },
    /// "Here is an entry." (`value: None` is a tombstone.)
    Entry {
        /// The key's bytes.
        key: Vec<u8>,
        /// The version.
        version: u64,
        /// The value's bytes, or `None` for a tombstone.
        value: Option<Vec<u8>>,
    },
}

/// The fingerprints of a node's 16 children, stored compactly: a bit per
/// child that is not empty, and the fingerprints of those in child order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Children {
    mask: u16,
    fps: Vec<WireFp>,
}

impl Children {
    /// Children from 16 optional fingerprints (`None`: empty).
    pub fn from_array(children: [Option<WireFp>; 16]) -> Self {
        let mut out = Children::default();
        for (c, fp) in children.iter().enumerate() {
            if let Some(fp) = fp {
                out.mask |= 1 << c;
                out.fps.push(*fp);
            }
        }
        out
    }

    /// The fingerprint of child `c` (0 to 15); `None` when it is empty.
    pub fn get(&self, c: usize) -> Option<WireFp> {
        if c >= 16 || self.mask & (1 << c) == 0 {
            return None;
        }
        let before = (self.mask & ((1u16 << c) - 1)).count_ones() as usize;
        self.fps.get(before).copied()
    }

    /// A bit per non-empty child.
    pub fn mask(&self) -> u16 {
        self.mask
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// An entry's body: key, version, kind (0 value, 1 tombstone), value.
fn put_entry(out: &mut Vec<u8>, key: &[u8], version: u64, value: Option<&[u8]>) {
    put_varint(out, key.len() as u64);
    out.extend_from_slice(key);
    put_varint(out, version);
    match value {
        Some(v) => {
            out.push(0);
            put_varint(out, v.len() as u64);
            out.extend_from_slice(v);
        }
        None => {
            out.push(1);
            put_varint(out, 0);
        }
    }
}

fn put_fp(out: &mut Vec<u8>, fp: &WireFp) {
    put_varint(out, fp.count);
    out.extend_from_slice(&fp.sum[..SUM_BYTES]);
}

impl Item {
    /// Appends the item's bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Item::Fingerprint { level, node, fp } => {
                out.push(1);
                out.push(*level);
                put_varint(out, *node);
                put_fp(out, fp);
            }
            Item::Children { level, node, children } => {
                out.push(2);
                out.push(*level);
                put_varint(out, *node);
                out.extend_from_slice(&children.mask.to_le_bytes());
                for fp in &children.fps {
                    put_fp(out, fp);
                }
            }
            Item::Listing { level, node, items } => {
                out.push(3);
                out.push(*level);
                put_varint(out, *node);
                put_varint(out, items.len() as u64);
                for it in items {
                    out.extend_from_slice(&it.position);
                    put_varint(out, it.version);
                    out.extend_from_slice(&it.hash);
                }
            }
            Item::Want(positions) => {
                out.push(4);
                put_varint(out, positions.len() as u64);
                for p in positions {
                    out.extend_from_slice(p);
                }
            }
            Item::Entry { key, version, value } => {
                out.push(5);
                put_entry(out, key, *version, value.as_deref());
            }
            Item::Range { level, node, entries } => {
                out.push(6);
                out.push(*level);
                put_varint(out, *node);
                put_varint(out, entries.len() as u64);
                for (key, version, value) in entries {
                    put_entry(out, key, *version, value.as_deref());
                }
            }
        }
    }

    /// The item's encoded length.
    pub fn encoded_len(&self) -> usize {
        let mut buf = Vec::new();
        self.encode(&mut buf);
        buf.len()
    }
}

/// Reads items from a message, checking every length against what remains.
#[derive(Debug)]
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn truncated(&self) -> MerkleError {
        MerkleError::Malformed { offset: self.at, reason: "message ends inside an item" }
    }

    fn u8(&mut self) -> Result<u8, MerkleError> {
        let b = *self.bytes.get(self.at).ok_or_else(|| self.truncated())?;
        self.at += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], MerkleError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| self.truncated())?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn varint(&mut self) -> Result<u64, MerkleError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(MerkleError::Malformed { offset: self.at, reason: "varint longer than 10 bytes" })
    }

    fn arr16(&mut self) -> Result<[u8; TRUNC], MerkleError> {
        let mut out = [0u8; TRUNC];
        out.copy_from_slice(self.take(TRUNC)?);
        Ok(out)
    }

    fn fp(&mut self) -> Result<WireFp, MerkleError> {
        let count = self.varint()?;
        let mut sum = [0u8; TRUNC];
        sum[..SUM_BYTES].copy_from_slice(self.take(SUM_BYTES)?);
        Ok(WireFp { count, sum })
    }

    /// A count of items of at least `min_size` bytes each, refused when the
    /// remaining bytes cannot hold them (so no allocation exceeds the input).
    fn count(&mut self, min_size: usize) -> Result<usize, MerkleError> {
        let n = self.varint()?;
        let remaining = (self.bytes.len() - self.at) as u64;
        if n.saturating_mul(min_size as u64) > remaining {
            return Err(MerkleError::Malformed {
                offset: self.at,
                reason: "count larger than the message",
            });
        }
        Ok(n as usize)
    }

    fn bytes_field(&mut self) -> Result<Vec<u8>, MerkleError> {
        let n = self.count(1)?;
        Ok(self.take(n)?.to_vec())
    }

    fn entry(&mut self) -> Result<WireEntry, MerkleError> {
        let key = self.bytes_field()?;
        let version = self.varint()?;
        let kind = self.u8()?;
        let value = self.bytes_field()?;
        match kind {
            0 => Ok((key, version, Some(value))),
            1 if value.is_empty() => Ok((key, version, None)),
            _ => Err(MerkleError::Malformed { offset: self.at, reason: "bad entry kind" }),
        }
    }

    /// A level and a node of it, checked against the protocol's limits
    /// (`deepest`: [`MAX_LEVEL`], or one less for a parent of children).
    fn node(&mut self, deepest: usize) -> Result<(u8, u64), MerkleError> {
        let at = self.at;
        let level = self.u8()?;
        let node = self.varint()?;
        if usize::from(level) > deepest {
            return Err(MerkleError::Malformed { offset: at, reason: "level beyond the deepest" });
        }
        if !valid_node(usize::from(level), node) {
            return Err(MerkleError::Malformed {
                offset: at,
                reason: "node id too large for its level",
            });
        }
        Ok((level, node))
    }

    fn item(&mut self) -> Result<Item, MerkleError> {
        let tag = self.u8()?;
        match tag {
            1 => {
                let (level, node) = self.node(MAX_LEVEL)?;
                Ok(Item::Fingerprint { level, node, fp: self.fp()? })
            }
            2 => {
                let (level, node) = self.node(MAX_LEVEL - 1)?;
                let mask = u16::from_le_bytes([self.u8()?, self.u8()?]);
                let mut fps = Vec::with_capacity(mask.count_ones() as usize);
                for _ in 0..mask.count_ones() {
                    fps.push(self.fp()?);
                }
                Ok(Item::Children { level, node, children: Children { mask, fps } })
            }
            3 => {
                let (level, node) = self.node(MAX_LEVEL)?;
                let n = self.count(2 * TRUNC + 1)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(ListedItem {
                        position: self.arr16()?,
                        version: self.varint()?,
                        hash: self.arr16()?,
                    });
                }
                Ok(Item::Listing { level, node, items })
            }
            4 => {
                let n = self.count(TRUNC)?;
                let mut positions = Vec::with_capacity(n);
                for _ in 0..n {
                    positions.push(self.arr16()?);
                }
                Ok(Item::Want(positions))
            }
            5 => {
                let (key, version, value) = self.entry()?;
                Ok(Item::Entry { key, version, value })
            }
            6 => {
                let (level, node) = self.node(MAX_LEVEL)?;
                // An entry takes at least 4 bytes (two lengths, version, kind).
                let n = self.count(4)?;
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    entries.push(self.entry()?);
                }
                Ok(Item::Range { level, node, entries })
            }
            _ => Err(MerkleError::Malformed { offset: self.at - 1, reason: "unknown item tag" }),
        }
    }
}

/// Encodes a message: the version byte, then the items.
pub fn encode_message(items: &[Item]) -> Vec<u8> {
    let mut out = vec![WIRE_VERSION];
    for item in items {
        item.encode(&mut out);
    }
    out
}

/// Decodes a message of at most `max_len` bytes.
///
/// # Errors
/// [`MerkleError::MessageTooLarge`], [`MerkleError::WireVersion`] or
/// [`MerkleError::Malformed`]; never a panic.
pub fn decode_message(bytes: &[u8], max_len: usize) -> Result<Vec<Item>, MerkleError> {
    // Two passes, so that the vector is allocated once at its exact size
    // (no doubling past what the items need).
    let mut count = 0;
    for item in items(bytes, max_len)? {
        item?;
        count += 1;
    }
    let mut out = Vec::with_capacity(count);
    for item in items(bytes, max_len)? {
        out.push(item?);
    }
    Ok(out)
}

/// The items of a message of at most `max_len` bytes, decoded one at a
/// time: the memory in use is one item's, whatever the message holds.
/// After an `Err` the iterator ends.
///
/// # Errors
/// [`MerkleError::MessageTooLarge`] or [`MerkleError::WireVersion`] at
/// once, [`MerkleError::Malformed`] from the item where it is found.
pub fn items(bytes: &[u8], max_len: usize) -> Result<Items<'_>, MerkleError> {
    if bytes.len() > max_len {
        return Err(MerkleError::MessageTooLarge { len: bytes.len(), max: max_len });
    }
    let Some((&version, _)) = bytes.split_first() else {
        return Err(MerkleError::Malformed { offset: 0, reason: "empty message" });
    };
    if version != WIRE_VERSION {
        return Err(MerkleError::WireVersion { found: version });
    }
    Ok(Items { reader: Reader { bytes, at: 1 }, failed: false })
}

/// An iterator over a message's items; see [`items`].
#[derive(Debug)]
pub struct Items<'a> {
    reader: Reader<'a>,
    failed: bool,
}

impl Iterator for Items<'_> {
    type Item = Result<Item, MerkleError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.reader.at >= self.reader.bytes.len() {
            return None;
        }
        let item = self.reader.item();
        self.failed = item.is_err();
        Some(item)
    }
}
