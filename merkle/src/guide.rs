//! # Guide: Merkle trees and anti-entropy
//!
//! ## The problem
//!
//! Replicas of a key-value store drift apart: a node was down during some
//! writes, a message was lost, a delete reached only some copies.
//! *Anti-entropy* is the background process that finds and repairs the
//! differences. Shipping every key to compare costs O(n) bytes per repair,
//! whatever the difference; the goal is to pay for the difference, not for
//! the data.
//!
//! ## Merkle trees
//!
//! Split the key space into ranges, summarise each range by a fingerprint
//! (a hash of what it holds), and arrange the ranges in a tree whose inner
//! nodes summarise their children. Two replicas compare roots: equal roots
//! mean equal stores (up to a hash collision), and different roots send
//! them down into the children that differ, and only those. With `d`
//! differences among `n` keys and a 16-ary tree, that is about
//! `d × log16(n)` nodes compared instead of `n` keys.
//!
//! ## Why fixed-depth trees over-stream
//!
//! Cassandra's repair builds a tree of fixed depth (2^15 leaves) by scanning
//! every key at repair time, ships the whole tree in one message (about
//! 2 MB, however small the difference), and when a leaf differs it streams
//! *every* key of that leaf's range, although only one may differ
//! ("over-streaming"). Riak's active anti-entropy keeps its trees up to date
//! and rehashes dirty segments, but still compares and streams by segment.
//!
//! ## What this crate does instead
//!
//! * **An incremental summary.** Each entry (key, version, value or
//!   tombstone) has a SHA-256 *entry hash*, and a node's fingerprint is the
//!   **sum of its entries' hashes modulo 2^256**, plus a count. A sum
//!   commutes, so a node is the sum of its children, and a write changes
//!   exactly one path: subtract the old entry hash, add the new one, at each
//!   of the six levels. No rescan at repair time, no rebuild, O(depth) per
//!   write. (The tree is over `SHA-256(key)`, 4 bits per level, so it stays
//!   balanced whatever the keys look like.)
//! * **Descend only where it differs, and stop at entries.** The protocol
//!   sends a range's 16 child fingerprints only when the range differs, and
//!   once both sides hold few entries in a range it *lists* them by 16 bytes
//!   of position, version and entry hash. The listing pinpoints each
//!   differing key, so exactly those entries cross. A range one side has
//!   empty is settled at once: the other side sends its entries.
//! * **Versions and tombstones.** Conflicts resolve last-writer-wins by
//!   version (ties by entry hash, so all replicas pick the same entry).
//!   Deletes are tombstones with a version, so a replica that missed a delete
//!   learns of it rather than resurrecting the key. Tombstones are purged
//!   after a horizon; a replica that has not synced within the horizon can
//!   no longer be repaired safely by this protocol (the delete it missed may
//!   be gone), which is the rule every tombstone-purging system lives by.
//! * **Bounded, checked messages.** Messages have a size cap, a version
//!   byte, and a decoder that checks every length against the bytes left:
//!   a malformed or hostile message is an error, never a panic or a huge
//!   allocation.
//!
//! ## Costs
//!
//! Measured in `tests/sync.rs` on two replicas of 100,000 keys (mixed
//! updates, deletes and inserts on both sides):
//!
//! | differences | bytes (both ways) | messages |
//! |---|---|---|
//! | 0 | 294 | 1 |
//! | 1 | 1,731 | 5 |
//! | 10 | 12,415 | 5 |
//! | 1,000 | 389,051 | 6 |
//!
//! A full transfer of the same 100,000 keys would be about 3 MB. The
//! opening message carries the root's 16 children (a differing root would
//! be split anyway, so this saves a round), and a range is listed once both
//! sides hold at most `list_threshold` (4) entries in it. Where the
//! differences are sparse (at most two of a node's 16 children differ),
//! ranges of up to three times that are listed instead of split: a listing
//! of ~12 entries costs about 500 bytes and saves a round trip, the right
//! trade when few keys differ; when many ranges differ, splitting further
//! moves fewer bytes. (The default was 12 until the A/B bytes rows of
//! BENCHMARKS.md compared 1 to 24: at 4, 100,000 keys with 10 differences
//! take 22% fewer bytes, and no row takes more.) A range is described by its entries in full when
//! that is no bigger than the listing (small values): the peer applies what
//! is newer and answers with what it holds newer, with no `Want` round
//! trip. The test asserts a bound derived from the protocol:
//! the opening message, then per difference one `Children` item (16
//! fingerprints) per level down to the range where the key sits, one
//! listing of at most `3 × list_threshold` items per side, one want and the
//! entry each way:
//! `512 + d × (L × 448 + 198 × list_threshold + 2 × entry + 48)` bytes with
//! `L = ceil(log16 n) + 1`; and at most `2L + 4` messages. Against the
//! `negentropy` crate on the same sets, see BENCHMARKS.md: fewer bytes for
//! every `d`, and fewer or as many messages once its ids are turned into
//! moved entries.
//!
//! | operation | cost |
//! |---|---|
//! | `put`, `delete` | two SHA-256s and O(depth) node updates (map probes while a level is sparse, array slots once it is dense) |
//! | root hash | O(1) |
//! | sync, `d` differences | O(d · log16 n) fingerprints, O(log16 n) rounds |
//! | inclusion proof | O(depth × 16) fingerprints |
//!
//! In a store of a million keys, a put's time is cache misses more than
//! arithmetic: the map's slot, the two deepest levels' nodes (megabytes of
//! array each) and the old value it frees. The entries' map is keyed by
//! position, not by key: two keys with one position would be a SHA-256
//! collision, and the summary's order already counts on there being none.
//! So a put knows its path through the summary before it probes the map,
//! and starts the deep nodes' loads first; the probe compares 32 bytes in
//! the map's own memory rather than following the key to the heap; and a
//! put over a present key reads the old value before computing the entry
//! hash, whose arithmetic runs while it loads. Against a map keyed by key,
//! that is two fewer misses one after the other: 900-1,000 ns a put
//! against 1,070-1,140 in three alternating runs of each on one VM.
//!
//! ## Trade-offs
//!
//! * The sum is not collision-resistant against an adversary who chooses
//!   entries (sums can be made to cancel); replicas of one store are not
//!   adversaries. A signature over the root serves when they might be.
//! * Range-based reconciliation (negentropy) reaches the same d·log n shape
//!   without a tree, by bisecting sorted ranges; the tree makes updates and
//!   proofs cheap and the root hash constant-time.
//! * Listing by 16-byte positions means a collision of two keys' SHA-256
//!   prefixes would hide a difference: a 2^-64 event per pair of keys in a
//!   listing.
//! * A fingerprint on the wire carries 12 bytes of its sum (wire version 2;
//!   version 1 carried 16). Two different ranges with the same count look
//!   equal only if their sums agree on those 96 bits, a 2^-96 event per
//!   node compared. Most of a session's bytes are the 16 child
//!   fingerprints of each range that differs, so the 4 bytes saved per
//!   fingerprint are about a fifth of the session (at 10 differences among
//!   100,000 keys, 0.54 of negentropy's bytes became 0.43).
//!
//! ## A hostile peer
//!
//! A sync peer is a network input: it may send anything. Two things keep a
//! side safe. The decoder checks every field against the protocol (levels
//! up to 16, node ids within their level, counts against the bytes left)
//! and holds one decoded item at a time. And the state machine remembers
//! what it has answered: each node is answered once, items about a range it
//! has already settled are ignored, and each entry is sent once. Without
//! that, a 20-byte "my count here is 0" repeated a thousand times would
//! queue the whole store a thousand times. With it, the work a peer can
//! cause is bounded by the bytes it sends (at most
//! [`SyncConfig::queued_bytes_per_byte`](crate::SyncConfig::queued_bytes_per_byte)
//! bytes of fingerprints and listings per byte) plus each of our entries
//! once, which is what an honest peer that really had nothing would get.
//!
//! ## The picture
//!
//! Bytes exchanged to repair d differing keys out of 100,000, against
//! sending every entry (drawn by `tour --report`; see the workspace
//! README): the cost follows the differences, not the data.
//!
#![doc = include_str!("../docs/merkle-bytes.svg")]
