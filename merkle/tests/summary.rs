//! The incremental summary always equals a from-scratch rebuild, replicas
//! with the same entries have the same root whatever the order of writes,
//! and inclusion proofs verify exactly the stored entry.

use proptest::prelude::*;
use sysblocks_merkle::{MerkleStore, Versioned};

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u8, u64),
    Delete(u8, u64),
    Purge(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<u8>(), any::<u8>(), 0u64..20).prop_map(|(k, v, ver)| Op::Put(k % 64, v, ver)),
        3 => (any::<u8>(), 0u64..20).prop_map(|(k, ver)| Op::Delete(k % 64, ver)),
        1 => (0u64..20).prop_map(Op::Purge),
    ]
}

fn key(k: u8) -> Vec<u8> {
    format!("key-{k}").into_bytes()
}

proptest! {
    #[test]
    fn incremental_summary_equals_rebuild(ops in proptest::collection::vec(op(), 0..300)) {
        let mut store = MerkleStore::new();
        for op in ops {
            match op {
                Op::Put(k, v, ver) => { store.put(key(k), vec![v], ver).unwrap(); }
                Op::Delete(k, ver) => { store.delete(key(k), ver).unwrap(); }
                Op::Purge(h) => { store.purge_tombstones(h); }
            }
            prop_assert!(store.summary_is_consistent());
        }
        let live = store.iter().filter(|(_, e)| e.value.is_some()).count();
        prop_assert_eq!(store.len(), live);
        prop_assert_eq!(store.root().count as usize, store.entry_count());
    }

    /// Two replicas that receive the same entries in any order converge to
    /// the same entries and the same root (last writer wins, ties broken by
    /// entry hash).
    #[test]
    fn replicas_converge_regardless_of_order(
        writes in proptest::collection::vec((any::<u8>(), proptest::option::of(any::<u8>()), 0u64..5), 0..100),
        seed in any::<u64>(),
    ) {
        let mut a = MerkleStore::new();
        let mut b = MerkleStore::new();
        for (k, v, ver) in &writes {
            a.apply(key(k % 16), Versioned { version: *ver, value: v.map(|x| vec![x]) }).unwrap();
        }
        let mut shuffled = writes.clone();
        // A deterministic shuffle from the seed.
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        for (k, v, ver) in &shuffled {
            b.apply(key(k % 16), Versioned { version: *ver, value: v.map(|x| vec![x]) }).unwrap();
        }
        prop_assert_eq!(a.root(), b.root());
        prop_assert!(a.iter().eq(b.iter()));
    }

    #[test]
    fn proofs_verify_the_stored_entry_only(keys in proptest::collection::hash_set(any::<u16>(), 1..200), pick in any::<prop::sample::Index>()) {
        let mut store = MerkleStore::new();
        let keys: Vec<u16> = keys.into_iter().collect();
        for (i, k) in keys.iter().enumerate() {
            store.put(k.to_le_bytes().to_vec(), vec![i as u8], i as u64).unwrap();
        }
        let i = pick.index(keys.len());
        let k = keys[i].to_le_bytes().to_vec();
        let proof = store.prove(&k[..]).unwrap();
        let root = store.root();
        prop_assert!(proof.verify(&k, i as u64, Some(&[i as u8]), &root));
        prop_assert!(!proof.verify(&k, i as u64 + 1, Some(&[i as u8]), &root));
        prop_assert!(!proof.verify(&k, i as u64, None, &root));
    }
}

#[test]
fn newer_versions_win_and_older_ones_are_ignored() {
    let mut store = MerkleStore::new();
    assert!(store.put(b"k".to_vec(), b"v2".to_vec(), 2).unwrap());
    assert!(!store.put(b"k".to_vec(), b"v1".to_vec(), 1).unwrap(), "an older write loses");
    assert_eq!(store.get(b"k"), Some(&b"v2".to_vec()));
    assert!(store.delete(b"k".to_vec(), 3).unwrap());
    assert_eq!(store.get(b"k"), None);
    assert_eq!(store.len(), 0);
    assert_eq!(store.entry_count(), 1, "the tombstone stays until purged");
    assert!(
        !store.put(b"k".to_vec(), b"old".to_vec(), 2).unwrap(),
        "a delete is not undone by an older write"
    );
    assert_eq!(store.purge_tombstones(3), 0, "horizon 3 keeps a version-3 tombstone");
    assert_eq!(store.purge_tombstones(4), 1);
    assert_eq!(store.entry_count(), 0);
    assert!(store.root().is_empty());
}

#[test]
fn root_does_not_depend_on_insertion_order() {
    let mut a = MerkleStore::new();
    let mut b = MerkleStore::new();
    for i in 0..1000u32 {
        a.put(i.to_le_bytes().to_vec(), vec![1], 1).unwrap();
    }
    for i in (0..1000u32).rev() {
        b.put(i.to_le_bytes().to_vec(), vec![1], 1).unwrap();
    }
    assert_eq!(a.root_hash(), b.root_hash());
    b.put(7u32.to_le_bytes().to_vec(), vec![2], 2).unwrap();
    assert_ne!(a.root_hash(), b.root_hash());
}

/// `Versioned::beats` is the rule `apply` keeps entries by: whatever order
/// two entries of a key arrive in, the store keeps the one that beats the
/// other, ties in version included.
#[test]
fn beats_is_the_rule_apply_keeps_entries_by() {
    let key = b"k".to_vec();
    let entries = [
        Versioned { version: 1, value: Some(b"a".to_vec()) },
        Versioned { version: 2, value: Some(b"b".to_vec()) },
        Versioned { version: 2, value: Some(b"c".to_vec()) },
        Versioned { version: 2, value: None },
        Versioned { version: 3, value: None },
    ];
    for x in &entries {
        for y in &entries {
            if x == y {
                continue;
            }
            assert_ne!(x.beats(&key, y), y.beats(&key, x), "exactly one of two entries wins");
            let winner = if x.beats(&key, y) { x } else { y };
            let mut store = MerkleStore::new();
            store.apply(key.clone(), x.clone()).unwrap();
            store.apply(key.clone(), y.clone()).unwrap();
            assert_eq!(store.get_versioned(&key), Some(winner), "{x:?} then {y:?}");
        }
    }
}

/// A level's nodes move from a map to an array once the store holds half
/// as many entries as the level has nodes (32,768 for level 4): the summary
/// stays exact across that change, through deletes and purges after it,
/// and a store that crossed it syncs with one that did not.
#[test]
fn the_summary_stays_exact_when_its_levels_become_arrays() {
    use sysblocks_merkle::{SyncConfig, sync_in_memory};
    let mut big = MerkleStore::new();
    let mut small = MerkleStore::new();
    for i in 0..33_000u32 {
        big.put(i.to_le_bytes().to_vec(), vec![1], 1).unwrap();
        if i % 1_000 == 0 {
            assert!(big.summary_is_consistent(), "at {i} entries");
        }
    }
    assert!(big.summary_is_consistent());
    for i in (0..33_000u32).step_by(3) {
        big.delete(i.to_le_bytes().to_vec(), 2).unwrap();
    }
    big.purge_tombstones(3);
    assert!(big.summary_is_consistent(), "after deletes and a purge");
    assert_eq!(big.entry_count(), 22_000);
    // The small replica holds a few of the same entries and one of its own.
    for i in [1u32, 2, 4] {
        small.put(i.to_le_bytes().to_vec(), vec![1], 1).unwrap();
    }
    small.put(b"only here".to_vec(), b"x".to_vec(), 5).unwrap();
    sync_in_memory(&mut big, &mut small, SyncConfig::default()).unwrap();
    assert_eq!(big.root_hash(), small.root_hash());
    assert_eq!(big.entry_count(), 22_001);
    assert!(big.summary_is_consistent() && small.summary_is_consistent());
}
