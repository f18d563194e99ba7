//! [`SyncStore`]: what the sync protocol needs from the side it runs on.
//!
//! A [`Reconciler`](crate::Reconciler) asks four things of a store: the
//! fingerprint of a summary node, a summary of the entries under a node
//! (positions, versions and entry hashes, no values), the full entries at
//! some positions, and to store an entry from the peer if it is newer. A
//! [`MerkleStore`] answers all four from memory. A
//! [`MerkleSummary`](crate::MerkleSummary) keeps only the summary in memory,
//! so a service whose values live on disk implements this trait over the
//! pair: fingerprints and summaries from the `MerkleSummary`, entries read
//! from and written to its own storage. Only the entries that differ are
//! ever read.

use std::hash::Hash;

use crate::error::MerkleError;
use crate::store::{MerkleStore, Versioned};
use crate::wire::{TRUNC, WireEntry, WireFp};

/// One entry as the summary sees it: where it is, how new it is, what it
/// hashes to, and how big it is (to choose between listing the entries of
/// a range and sending them whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntrySummary {
    /// The first 16 bytes of the key's position, `SHA-256(key)`.
    pub position: [u8; TRUNC],
    /// The entry's version.
    pub version: u64,
    /// The first 16 bytes of the entry hash.
    pub hash: [u8; TRUNC],
    /// The key's length in bytes.
    pub key_len: u32,
    /// The value's length in bytes; `None` for a tombstone.
    pub value_len: Option<u32>,
}

impl EntrySummary {
    /// Whether this entry wins over one with `version` and `hash` by the
    /// crate's one rule: the larger version, a tie broken by the larger
    /// entry hash.
    pub fn beats(&self, version: u64, hash: &[u8; TRUNC]) -> bool {
        (self.version, &self.hash) > (version, hash)
    }
}

/// The side of a sync session: a store that can be summarised, read and
/// written by position. See the module docs.
///
/// Levels and nodes passed in are valid (`level` at most
/// [`MAX_LEVEL`](crate::wire::MAX_LEVEL), `node` at most `level` nibbles):
/// the reconciler checks what a peer sends before it asks.
pub trait SyncStore {
    /// The fingerprint of the entries under `node` at `level`: their count
    /// and the first 16 bytes of the sum of their entry hashes.
    fn node_fingerprint(&self, level: usize, node: u64) -> WireFp;

    /// The entries under `node` at `level`, in position order.
    fn entries_under(&self, level: usize, node: u64) -> Vec<EntrySummary>;

    /// The entries at these positions in full (key, version, value or
    /// `None` for a tombstone). A position the store no longer holds is
    /// left out.
    ///
    /// # Errors
    /// [`MerkleError::Store`] when the entries cannot be read.
    fn read_entries(&self, positions: &[[u8; TRUNC]]) -> Result<Vec<WireEntry>, MerkleError>;

    /// Stores an entry from the peer if it wins over the one held (by
    /// version, a tie broken by the larger entry hash); returns whether it
    /// did.
    ///
    /// # Errors
    /// [`MerkleError::TooLong`] for a key or value the encoding cannot
    /// carry; [`MerkleError::Store`] when the entry cannot be written.
    fn store_entry(
        &mut self,
        key: Vec<u8>,
        version: u64,
        value: Option<Vec<u8>>,
    ) -> Result<bool, MerkleError>;
}

impl<K, V> SyncStore for MerkleStore<K, V>
where
    K: Hash + Eq + Clone + AsRef<[u8]> + From<Vec<u8>>,
    V: Clone + AsRef<[u8]> + From<Vec<u8>>,
{
    fn node_fingerprint(&self, level: usize, node: u64) -> WireFp {
        self.wire_fp(level, node)
    }

    fn entries_under(&self, level: usize, node: u64) -> Vec<EntrySummary> {
        self.summaries_under(level, node)
    }

    fn read_entries(&self, positions: &[[u8; TRUNC]]) -> Result<Vec<WireEntry>, MerkleError> {
        Ok(positions
            .iter()
            .filter_map(|p| self.entry_at(p))
            .map(|(k, e)| (k.as_ref().to_vec(), e.version, e.value.map(|v| v.as_ref().to_vec())))
            .collect())
    }

    fn store_entry(
        &mut self,
        key: Vec<u8>,
        version: u64,
        value: Option<Vec<u8>>,
    ) -> Result<bool, MerkleError> {
        self.apply(K::from(key), Versioned { version, value: value.map(V::from) })
    }
}

/// The first 16 bytes of a position or hash.
pub(crate) fn truncate(bytes: &[u8; 32]) -> [u8; TRUNC] {
    let mut out = [0u8; TRUNC];
    out.copy_from_slice(&bytes[..TRUNC]);
    out
}
