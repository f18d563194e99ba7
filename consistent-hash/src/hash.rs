//! The placement spec: how node ids and keys become positions on the ring.
//!
//! Everything that decides placement is specified here, in bytes, so that
//! two programs (or two versions of this crate) with the same nodes put every
//! key on the same node. Golden vectors in `tests/golden.rs` pin it.
//!
//! # Placement version 1
//!
//! * The hash function is **SipHash-1-3** with the fixed 128-bit key
//!   ([`SIP_KEY_0`], [`SIP_KEY_1`]), output as a `u64`.
//! * A **key** hashes to `siphash13(key bytes)`: the bytes exactly as given,
//!   nothing appended.
//! * Virtual node `i` (counting from 0) of a node whose id bytes are `id`
//!   sits at `siphash13(len(id) as u32 LE || id || i as u32 LE)`. The length
//!   prefix keeps ids unambiguous ("ab" + 1 never equals "a" + "b1").
//! * A node of integer weight `w` has exactly `w × vnodes_per_weight` virtual
//!   nodes, indices `0 .. w × vnodes_per_weight`. Raising a weight adds
//!   points and keeps the old ones, so it only pulls keys toward that node.
//! * A key hash `h` belongs to the first point `p >= h` in ascending order,
//!   wrapping to the smallest point. Equal points are ordered by the owners'
//!   id bytes (lexicographically); the first wins.
//!
//! Nothing here uses `std`'s `Hash` trait or `DefaultHasher`, whose output may
//! change between Rust releases.

use siphasher::sip::SipHasher13;
use std::hash::Hasher;

/// The version of the placement spec this crate implements. A ring
/// configuration serialized with another version is refused rather than
/// silently placing keys elsewhere.
pub const PLACEMENT_VERSION: u32 = 1;

/// First half of the SipHash key: the ASCII bytes `"sysblock"`, read as a
/// little-endian `u64`.
pub const SIP_KEY_0: u64 = u64::from_le_bytes(*b"sysblock");
/// Second half of the SipHash key: the ASCII bytes `"s-ring-1"`, read as a
/// little-endian `u64`.
pub const SIP_KEY_1: u64 = u64::from_le_bytes(*b"s-ring-1");

/// Hashes a key to its position on the ring (`siphash13(key)`).
///
/// ```
/// use sysblocks_consistent_hash::hash_key;
/// assert_eq!(hash_key(b"user:42"), hash_key(b"user:42"));
/// assert_ne!(hash_key(b"user:42"), hash_key(b"user:43"));
/// ```
#[inline]
pub fn hash_key(key: &[u8]) -> u64 {
    let mut h = SipHasher13::new_with_keys(SIP_KEY_0, SIP_KEY_1);
    h.write(key);
    h.finish()
}

/// The position of virtual node `index` of the node with id bytes `id`.
///
/// ```
/// use sysblocks_consistent_hash::vnode_position;
/// assert_ne!(vnode_position(b"node-a", 0), vnode_position(b"node-a", 1));
/// ```
pub fn vnode_position(id: &[u8], index: u32) -> u64 {
    let mut h = SipHasher13::new_with_keys(SIP_KEY_0, SIP_KEY_1);
    // Ids longer than u32::MAX bytes cannot be built (HashRing refuses them).
    h.write(&(id.len() as u32).to_le_bytes());
    h.write(id);
    h.write(&index.to_le_bytes());
    h.finish()
}

/// A fast 64-bit mixer (the SplitMix64 finaliser), used by rendezvous hashing
/// to combine a node's seed with a key's hash.
#[inline]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
