//! `MerkleSummary`, the hash-only summary, against `MerkleStore`, the
//! reference: the same entries give the same wire fingerprints, and a
//! replica that keeps its values "on disk" (a map beside the summary,
//! behind `SyncStore`) syncs with a `MerkleStore` replica, reading only the
//! entries that differ.

use std::cell::Cell;
use std::collections::HashMap;

use proptest::prelude::*;
use sysblocks_merkle::wire::{TRUNC, WireEntry, WireFp};
use sysblocks_merkle::{
    EntrySummary, MerkleError, MerkleStore, MerkleSummary, SyncConfig, SyncStore, Versioned,
    hash::key_position, sync_in_memory,
};

/// A replica whose values live outside its summary, as on disk.
#[derive(Default)]
struct DiskReplica {
    summary: MerkleSummary,
    disk: HashMap<[u8; TRUNC], WireEntry>,
    reads: Cell<usize>,
}

fn position(key: &[u8]) -> [u8; TRUNC] {
    let mut out = [0; TRUNC];
    out.copy_from_slice(&key_position(key)[..TRUNC]);
    out
}

impl SyncStore for DiskReplica {
    fn node_fingerprint(&self, level: usize, node: u64) -> WireFp {
        self.summary.node_fp(level, node)
    }

    fn entries_under(&self, level: usize, node: u64) -> Vec<EntrySummary> {
        self.summary.entries_under(level, node)
    }

    fn read_entries(&self, positions: &[[u8; TRUNC]]) -> Result<Vec<WireEntry>, MerkleError> {
        self.reads.set(self.reads.get() + positions.len());
        Ok(positions.iter().filter_map(|p| self.disk.get(p).cloned()).collect())
    }

    fn store_entry(
        &mut self,
        key: Vec<u8>,
        version: u64,
        value: Option<Vec<u8>>,
    ) -> Result<bool, MerkleError> {
        if !self.summary.apply(&key, version, value.as_deref())? {
            return Ok(false);
        }
        self.disk.insert(position(&key), (key, version, value));
        Ok(true)
    }
}

/// One write: key index, version, value (`None`: a delete).
fn op() -> impl Strategy<Value = (u8, u64, Option<Vec<u8>>)> {
    (
        0u8..40,
        0u64..6,
        proptest::option::weighted(0.8, proptest::collection::vec(any::<u8>(), 0..8)),
    )
}

fn key(i: u8) -> Vec<u8> {
    format!("key-{i}").into_bytes()
}

proptest! {
    #[test]
    fn the_summary_fingerprints_every_node_as_the_store_does(
        ops in proptest::collection::vec((op(), any::<bool>()), 0..120),
    ) {
        let mut summary = MerkleSummary::new();
        let mut store: MerkleStore<Vec<u8>, Vec<u8>> = MerkleStore::new();
        for ((k, version, value), remove) in ops {
            if remove && version == 0 {
                // Forgetting a key: the store's way is a purge of its tombstone.
                summary.remove(&key(k));
                let mut rebuilt = MerkleStore::new();
                for (key2, entry) in store.iter().filter(|(key2, _)| **key2 != key(k)) {
                    rebuilt.apply(key2.clone(), entry.clone()).unwrap();
                }
                store = rebuilt;
                continue;
            }
            let won = summary.apply(&key(k), version, value.as_deref()).unwrap();
            let stored = store.apply(key(k), Versioned { version, value }).unwrap();
            prop_assert_eq!(won, stored, "the same rule picks the winner");
        }
        prop_assert!(summary.is_consistent());
        // Built in bulk from its own entries (shuffled, with older
        // duplicates), a summary is the same.
        let mut again: Vec<EntrySummary> = summary.iter().collect();
        again.reverse();
        again.extend(summary.iter().filter(|e| e.version > 0).map(|e| EntrySummary { version: e.version - 1, ..e }));
        let bulk = MerkleSummary::from_entries(again);
        prop_assert!(bulk.is_consistent());
        prop_assert_eq!(bulk.root(), summary.root());
        prop_assert_eq!(bulk.len(), summary.len());
        prop_assert_eq!(bulk.iter().collect::<Vec<_>>(), summary.iter().collect::<Vec<_>>());
        prop_assert_eq!(summary.len(), store.len());
        prop_assert_eq!(summary.entry_count(), store.entry_count());
        for level in 0..=6 {
            for node in 0..16u64.pow(level.min(2) as u32) {
                let fp = store.fingerprint(level, node).unwrap();
                let ours = summary.fingerprint(level, node).unwrap();
                prop_assert_eq!(ours.count, fp.count);
                prop_assert_eq!(&ours.sum[..], &fp.to_bytes()[..TRUNC]);
            }
        }
        for (k, entry) in store.iter() {
            let s = summary.get(k).unwrap();
            prop_assert_eq!(s.version, entry.version);
            prop_assert_eq!(s.value_len, entry.value.as_ref().map(|v| v.len() as u32));
            prop_assert_eq!(&s.hash[..], &entry.entry_hash(k)[..TRUNC]);
        }
    }
}

#[test]
fn a_disk_replica_syncs_with_a_store_reading_only_what_differs() {
    // 2,000 shared keys, 30 that only the store holds, 20 newer on disk,
    // 10 deleted on disk: values of 100 bytes, so ranges are listed.
    let value = |i: u32, v: u64| format!("{i:04}-{v}-{}", "x".repeat(94)).into_bytes();
    let mut disk = DiskReplica::default();
    let mut store: MerkleStore<Vec<u8>, Vec<u8>> = MerkleStore::new();
    for i in 0..2_000u32 {
        let k = format!("k{i}").into_bytes();
        store.put(k.clone(), value(i, 1), 1).unwrap();
        disk.store_entry(k, 1, Some(value(i, 1))).unwrap();
    }
    for i in 2_000..2_030u32 {
        store.put(format!("k{i}").into_bytes(), value(i, 1), 1).unwrap();
    }
    for i in 0..20u32 {
        disk.store_entry(format!("k{i}").into_bytes(), 2, Some(value(i, 2))).unwrap();
    }
    for i in 100..110u32 {
        disk.store_entry(format!("k{i}").into_bytes(), 3, None).unwrap();
    }
    let outcome = sync_in_memory(&mut disk, &mut store, SyncConfig::default()).unwrap();
    let outcome = (outcome.initiator.keys_repaired, outcome.responder.keys_repaired);
    assert_eq!(disk.summary.root_hash(), store.root_hash()[..TRUNC]);
    assert_eq!(disk.summary.root().count, store.root().count);
    assert_eq!(outcome.0, 30, "the disk replica took exactly what it lacked");
    assert_eq!(outcome.1, 30, "the store took exactly the newer and the deleted");
    assert_eq!(disk.reads.get(), 30, "only the 30 entries the store lacked were read");
    assert_eq!(store.get(b"k5"), Some(&value(5, 2)));
    assert_eq!(store.get(b"k105"), None);
    assert!(disk.summary.is_consistent());
}

#[test]
fn two_disk_replicas_sync_with_the_generic_driver() {
    let mut a = DiskReplica::default();
    let mut b = DiskReplica::default();
    for i in 0..500u32 {
        let k = format!("k{i}").into_bytes();
        a.store_entry(k.clone(), 1, Some(b"v".to_vec())).unwrap();
        if i % 50 != 0 {
            b.store_entry(k, 1, Some(b"v".to_vec())).unwrap();
        }
    }
    let outcome = sync_in_memory(&mut a, &mut b, SyncConfig::default()).unwrap();
    assert_eq!(outcome.responder.keys_repaired, 10);
    assert_eq!(a.summary.root(), b.summary.root());
}

#[test]
fn bad_lengths_and_nodes_are_errors() {
    let mut summary = MerkleSummary::new();
    assert!(matches!(summary.fingerprint(17, 0), Err(MerkleError::InvalidNode { .. })));
    assert!(matches!(summary.fingerprint(1, 16), Err(MerkleError::InvalidNode { .. })));
    assert!(summary.apply(b"k", 1, Some(b"v")).unwrap());
    assert!(!summary.wins(b"k", 1, Some(b"v")), "an equal entry does not win");
    assert!(summary.wins(b"k", 2, None));
    assert!(summary.apply(b"k", 2, None).unwrap());
    assert_eq!((summary.len(), summary.entry_count()), (0, 1));
    assert_eq!(summary.tombstones_before(3).len(), 1);
    assert!(summary.tombstones_before(2).is_empty());
    assert!(summary.remove(b"k") && !summary.remove(b"k"));
    assert_eq!(summary.root(), WireFp::default());
    assert!(summary.is_consistent());
}
