//! The hashing spec: what bytes are hashed, and how fingerprints combine.
//!
//! Everything here is a stable format (replicas built from different
//! versions must agree), pinned by golden vectors in `tests/golden.rs`.
//!
//! * **Key position**: `SHA-256(key)`. Its first 4 bits pick the child of the
//!   root, the next 4 the grandchild, and so on (a 16-ary tree over the hash
//!   space).
//! * **Entry hash**: `SHA-256(0x01 || len(key) u32 LE || key || version u64 LE
//!   || kind u8 || len(value) u32 LE || value)`, where `kind` is 0 for a live
//!   value and 1 for a tombstone (whose value is empty). The leading byte is
//!   the encoding version.
//! * **Fingerprint** of a set of entries: the sum of their entry hashes, read
//!   as 256-bit little-endian integers, modulo 2^256, together with their
//!   count. Sums commute, so a node's fingerprint is the sum of its
//!   children's, and a write changes exactly one path: subtract the old
//!   entry hash, add the new one.
//!
//! Why a sum and not a hash of the children (the textbook Merkle tree)? A
//! hash of children has to be recomputed bottom-up from sorted children on
//! every write and fixes the tree's shape; a sum is updated in place along
//! one path in O(depth), and any range of the hash space can be summed by
//! either side without agreeing on a shape first. The price is that a sum
//! is not collision-resistant against an adversary who chooses entries to
//! cancel out; replicas of one store are not adversaries, and every hash
//! input is itself SHA-256, so an accidental collision needs a 2^-128 event.

use sha2::{Digest, Sha256};

/// The version of the entry encoding (the first byte of every entry hash).
pub const ENCODING_VERSION: u8 = 1;

/// A key's position in the hash space: `SHA-256(key)`.
pub fn key_position(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

/// The hash of one entry (see the module docs for the exact bytes).
/// `value` is `None` for a tombstone.
pub fn entry_hash(key: &[u8], version: u64, value: Option<&[u8]>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([ENCODING_VERSION]);
    h.update(len_u32(key).to_le_bytes());
    h.update(key);
    h.update(version.to_le_bytes());
    let (kind, bytes) = match value {
        Some(v) => (0u8, v),
        None => (1u8, &[][..]),
    };
    h.update([kind]);
    h.update(len_u32(bytes).to_le_bytes());
    h.update(bytes);
    h.finalize().into()
}

/// Lengths are encoded as `u32`; the store refuses longer keys and values,
/// so the saturation below is never reached through it.
fn len_u32(bytes: &[u8]) -> u32 {
    u32::try_from(bytes.len()).unwrap_or(u32::MAX)
}

/// The fingerprint of a set of entries: the sum of their hashes mod 2^256
/// and their count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    /// The sum, as four little-endian 64-bit limbs (least significant first).
    pub sum: [u64; 4],
    /// How many entries are summed.
    pub count: u64,
}

impl Fingerprint {
    /// The fingerprint of one entry hash.
    pub fn of(hash: &[u8; 32]) -> Self {
        let mut sum = [0u64; 4];
        for (limb, chunk) in sum.iter_mut().zip(hash.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *limb = u64::from_le_bytes(b);
        }
        Fingerprint { sum, count: 1 }
    }

    /// Adds another set's fingerprint (the union of disjoint sets).
    pub fn add(&mut self, other: &Fingerprint) {
        let mut carry = 0u64;
        for (a, b) in self.sum.iter_mut().zip(other.sum) {
            let (s1, c1) = a.overflowing_add(b);
            let (s2, c2) = s1.overflowing_add(carry);
            *a = s2;
            carry = u64::from(c1) + u64::from(c2);
        }
        self.count = self.count.wrapping_add(other.count);
    }

    /// Removes a subset's fingerprint.
    pub fn sub(&mut self, other: &Fingerprint) {
        let mut borrow = 0u64;
        for (a, b) in self.sum.iter_mut().zip(other.sum) {
            let (d1, b1) = a.overflowing_sub(b);
            let (d2, b2) = d1.overflowing_sub(borrow);
            *a = d2;
            borrow = u64::from(b1) + u64::from(b2);
        }
        self.count = self.count.wrapping_sub(other.count);
    }

    /// Whether this is the fingerprint of the empty set.
    pub fn is_empty(&self) -> bool {
        self.count == 0 && self.sum == [0; 4]
    }

    /// The 32 bytes of the sum, little-endian: the root hash of a store.
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (chunk, limb) in out.chunks_exact_mut(8).zip(self.sum) {
            chunk.copy_from_slice(&limb.to_le_bytes());
        }
        out
    }
}
