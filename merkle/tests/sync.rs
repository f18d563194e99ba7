//! The sync protocol: replicas end identical with no newer write lost, only
//! the differing keys cross (bytes and rounds bounded in d and log n), and
//! malformed input is an error, never a panic.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sysblocks_merkle::{
    MerkleStore, Reconciler, SyncConfig, SyncOutcome, Versioned, sync_in_memory,
};

type Store = MerkleStore<Vec<u8>, Vec<u8>>;

fn key(k: u16) -> Vec<u8> {
    format!("key-{k}").into_bytes()
}

fn store_of(entries: &Entries) -> Store {
    let mut s = MerkleStore::new();
    for (k, (ver, v)) in entries {
        s.apply(key(*k), Versioned { version: *ver, value: v.map(|x| vec![x]) }).unwrap();
    }
    s
}

/// A store's contents: key -> (version, value or tombstone).
type Entries = BTreeMap<u16, (u64, Option<u8>)>;

fn entries() -> impl Strategy<Value = Entries> {
    proptest::collection::btree_map(
        0u16..300,
        (0u64..4, proptest::option::weighted(0.8, any::<u8>())),
        0..150,
    )
}

/// How two generated stores relate, so that every case in the issue shows
/// up often: empty, identical, disjoint, one-sided, and overlapping with
/// updates, deletes and equal versions holding different values.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Independent,
    Identical,
    Disjoint,
    OneEmpty,
    Overlapping,
}

fn pair() -> impl Strategy<Value = (Entries, Entries)> {
    let shape = prop_oneof![
        Just(Shape::Independent),
        Just(Shape::Identical),
        Just(Shape::Disjoint),
        Just(Shape::OneEmpty),
        Just(Shape::Overlapping)
    ];
    (shape, entries(), entries()).prop_map(|(shape, a, b)| match shape {
        Shape::Independent => (a, b),
        Shape::Identical => (a.clone(), a),
        Shape::Disjoint => {
            let b = b.into_iter().map(|(k, v)| (k + 1000, v)).collect();
            (a, b)
        }
        Shape::OneEmpty => (a, BTreeMap::new()),
        Shape::Overlapping => {
            // b = a with some entries bumped, deleted, or rewritten at the
            // same version with another value.
            let mut b = a.clone();
            for (i, (_, (ver, v))) in b.iter_mut().enumerate() {
                match i % 4 {
                    0 => *ver += 1,
                    1 => *v = None,
                    2 => *v = v.map(|x| x.wrapping_add(1)),
                    _ => {}
                }
            }
            (a, b)
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn replicas_end_identical_and_keep_every_newest_write((ea, eb) in pair(), threshold in 1u64..10) {
        let (mut a, mut b) = (store_of(&ea), store_of(&eb));
        // What each key must end as: the winner of the two sides' entries.
        let mut expected = store_of(&ea);
        for (k, (ver, v)) in &eb {
            expected.apply(key(*k), Versioned { version: *ver, value: v.map(|x| vec![x]) }).unwrap();
        }
        let config = SyncConfig { list_threshold: threshold, ..SyncConfig::default() };
        sync_in_memory(&mut a, &mut b, config).unwrap();
        prop_assert!(a.iter().eq(b.iter()), "replicas differ after sync");
        prop_assert!(a.iter().eq(expected.iter()), "a newer write was lost");
        prop_assert_eq!(a.root_hash(), b.root_hash());
        prop_assert!(a.summary_is_consistent() && b.summary_is_consistent());
    }

    #[test]
    fn random_bytes_are_an_error_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut store: Store = MerkleStore::new();
        store.put(b"k".to_vec(), b"v".to_vec(), 1).unwrap();
        let mut side = Reconciler::new(SyncConfig::default()).unwrap();
        let mut with_version = vec![sysblocks_merkle::wire::WIRE_VERSION];
        with_version.extend(&bytes);
        // Either outcome is fine; what matters is that neither panics or
        // allocates out of proportion.
        let _ = side.receive(&mut store, &bytes);
        let _ = side.receive(&mut store, &with_version);
    }
}

#[test]
fn truncated_and_oversized_messages_are_errors() {
    use sysblocks_merkle::wire::{Children, Item, ListedItem, WireFp, encode_message};
    let mut store: Store = MerkleStore::new();
    store.put(b"k".to_vec(), b"v".to_vec(), 1).unwrap();
    // One item per message: every cut inside the item must be refused.
    let items = [
        Item::Entry { key: b"key".to_vec(), version: 300, value: Some(vec![7; 40]) },
        Item::Listing {
            level: 3,
            node: 300,
            items: vec![ListedItem { position: [1; 16], version: 9, hash: [2; 16] }; 3],
        },
        Item::Want(vec![[3; 16]; 4]),
        Item::Fingerprint { level: 1, node: 5, fp: WireFp { count: 1000, sum: [4; 16] } },
        Item::Children {
            level: 0,
            node: 0,
            children: Children::from_array([Some(WireFp { count: 3, sum: [5; 16] }); 16]),
        },
    ];
    for item in items {
        let message = encode_message(std::slice::from_ref(&item));
        for cut in 2..message.len() {
            let mut side = Reconciler::new(SyncConfig::default()).unwrap();
            assert!(
                side.receive(&mut store, &message[..cut]).is_err(),
                "{item:?} cut at {cut} accepted"
            );
        }
        let mut side = Reconciler::new(SyncConfig::default()).unwrap();
        assert!(side.receive(&mut store.clone(), &message).is_ok(), "{item:?} whole is valid");
    }
    let big =
        encode_message(&[Item::Entry { key: b"k".to_vec(), version: 2, value: Some(vec![0; 64]) }]);
    let small = SyncConfig { max_message: 2048, ..SyncConfig::default() };
    let bigger = encode_message(&[Item::Entry {
        key: b"k".to_vec(),
        version: 2,
        value: Some(vec![0; 4096]),
    }]);
    assert!(Reconciler::new(small).unwrap().receive(&mut store, &bigger).is_err(), "over the cap");
    assert!(sysblocks_merkle::wire::decode_message(&big, 8).is_err(), "over the cap");
    assert!(
        Reconciler::new(SyncConfig::default()).unwrap().receive(&mut store, &[2, 1]).is_err(),
        "wrong version"
    );
    assert!(
        Reconciler::new(SyncConfig::default()).unwrap().receive(&mut store, &[]).is_err(),
        "empty"
    );
    // A huge claimed count with no bytes behind it is refused before allocating.
    let huge = [1u8, 4, 0xff, 0xff, 0xff, 0xff, 0x0f];
    assert!(Reconciler::new(SyncConfig::default()).unwrap().receive(&mut store, &huge).is_err());
}

/// The bound this crate documents: the opening message (the root's 16
/// children: at most 16 × 27 + 16 bytes), then per differing key at most one
/// `Children` item per level on the way down (the same size), one listing of
/// at most `3 × list_threshold` items (33 bytes each; sparse ranges are
/// listed up to three times the threshold) per side, one want (16
/// bytes) and the entry (key, value and a few bytes) each way.
fn byte_bound(d: u64, n: u64, threshold: u64, entry_bytes: u64) -> u64 {
    let levels = (64 - u64::from(n.leading_zeros())).div_ceil(4) + 1; // ceil(log16 n) + 1
    let per_difference =
        levels * (16 * 27 + 16) + 2 * 3 * threshold * 33 + 16 + 2 * (entry_bytes + 16);
    64 + (16 * 27 + 16) + d * per_difference
}

#[test]
fn hundred_thousand_keys_bytes_and_rounds_stay_within_the_bound() {
    const N: u32 = 100_000;
    let mut base: Store = MerkleStore::new();
    for i in 0..N {
        base.put(format!("user:{i}").into_bytes(), format!("profile-{i}").into_bytes(), 1).unwrap();
    }
    let config = SyncConfig::default();
    for d in [0u32, 1, 10, 1000] {
        let mut a = base.clone();
        let mut b = base.clone();
        // d differences: updates, deletes and inserts, on one side or the other.
        for j in 0..d {
            let i = (j * 7919) % N;
            match j % 4 {
                0 => drop(a.put(format!("user:{i}").into_bytes(), b"changed".to_vec(), 2).unwrap()),
                1 => drop(b.delete(format!("user:{i}").into_bytes(), 2).unwrap()),
                2 => drop(a.put(format!("new:{j}").into_bytes(), b"fresh".to_vec(), 1).unwrap()),
                _ => drop(b.put(format!("user:{i}").into_bytes(), b"newer".to_vec(), 3).unwrap()),
            }
        }
        let SyncOutcome { initiator: sa, responder: sb, rounds } =
            sync_in_memory(&mut a, &mut b, config).unwrap();
        assert_eq!(a.root_hash(), b.root_hash(), "d = {d}: replicas differ");
        let bytes = sa.bytes_sent + sb.bytes_sent;
        let bound = byte_bound(u64::from(d), u64::from(N), config.list_threshold, 40);
        println!(
            "d = {d}: {bytes} bytes in {rounds} messages (bound {bound}), repaired {}",
            sa.keys_repaired + sb.keys_repaired
        );
        assert!(bytes <= bound, "d = {d}: {bytes} bytes > bound {bound}");
        assert!(rounds <= 2 * 6 + 4, "d = {d}: {rounds} rounds");
        assert_eq!(
            sa.keys_repaired + sb.keys_repaired,
            u64::from(d),
            "exactly the differing keys are repaired"
        );
        if d == 0 {
            assert_eq!(rounds, 1, "equal children end the session at once");
        }
    }
}
