//! A hostile peer: structurally valid messages with hostile field values
//! (levels, node ids, counts, masks) must neither crash a side nor make it
//! do work out of proportion to the bytes it received plus its own entries.

use proptest::prelude::*;
use sysblocks_merkle::wire::{
    Children, Item, ListedItem, MAX_LEVEL, WireFp, decode_message, encode_message,
};
use sysblocks_merkle::{MerkleError, MerkleStore, Reconciler, SyncConfig};

type Store = MerkleStore<Vec<u8>, Vec<u8>>;

fn store(n: u32) -> Store {
    let mut s = MerkleStore::new();
    for i in 0..n {
        s.put(format!("key:{i}").into_bytes(), format!("value-{i}").into_bytes(), 1).unwrap();
    }
    s
}

/// Everything a side queued in reply, drained: (bytes of non-entry items,
/// bytes of entries, entries).
fn drain(side: &mut Reconciler, first: Option<Vec<u8>>) -> (usize, usize, usize) {
    let (mut other, mut entry_bytes, mut entries) = (0, 0, 0);
    let mut next = first;
    while let Some(message) = next {
        for item in decode_message(&message, usize::MAX).unwrap() {
            let len = item.encoded_len();
            if let Item::Entry { .. } = item {
                entry_bytes += len;
                entries += 1;
            } else {
                other += len;
            }
        }
        next = side.next_message().unwrap();
    }
    (other, entry_bytes, entries)
}

fn fingerprint(level: u8, node: u64, count: u64) -> Item {
    Item::Fingerprint { level, node, fp: WireFp { count, sum: [7; 16] } }
}

#[test]
fn levels_beyond_the_protocol_are_malformed_not_a_crash() {
    let mut s = store(100);
    let before = s.root_hash();
    for level in [17u8, 65, 200, 255] {
        for item in [
            fingerprint(level, 0, 1),
            Item::Listing { level, node: 0, items: vec![] },
            Item::Range { level, node: 0, entries: vec![] },
            Item::Children { level, node: 0, children: Children::default() },
        ] {
            let message = encode_message(&[item]);
            let mut side = Reconciler::new(SyncConfig::default()).unwrap();
            let err = side.receive(&mut s, &message).unwrap_err();
            assert!(matches!(err, MerkleError::Malformed { .. }), "level {level}: {err:?}");
        }
    }
    // Children at the deepest level would have children deeper still.
    let message = encode_message(&[Item::Children {
        level: MAX_LEVEL as u8,
        node: 0,
        children: Children::default(),
    }]);
    assert!(Reconciler::new(SyncConfig::default()).unwrap().receive(&mut s, &message).is_err());
    // A node id with more nibbles than its level.
    for (level, node) in [(0u8, 1u64), (1, 16), (2, 256), (15, 1 << 60)] {
        let message = encode_message(&[fingerprint(level, node, 1)]);
        let mut side = Reconciler::new(SyncConfig::default()).unwrap();
        assert!(side.receive(&mut s, &message).is_err(), "node {node} at level {level}");
    }
    assert_eq!(s.root_hash(), before, "a refused message changes nothing");
}

#[test]
fn public_accessors_refuse_invalid_levels_and_nodes() {
    let s = store(10);
    for (level, node) in [(17, 0), (65, 0), (usize::MAX, 0), (1, 16), (0, 1)] {
        assert_eq!(s.fingerprint(level, node), Err(MerkleError::InvalidNode { level, node }));
    }
    assert_eq!(s.fingerprint(0, 0).unwrap(), s.root());
    assert!(s.fingerprint(16, u64::MAX).is_ok());
    assert!(sysblocks_merkle::node_of(&[0xff; 32], 65).is_err());
    assert_eq!(sysblocks_merkle::node_of(&[0xff; 32], 16), Ok(u64::MAX));
}

#[test]
fn a_thousand_empty_root_claims_send_the_store_once() {
    let mut s = store(1000);
    let message = encode_message(&vec![fingerprint(0, 0, 0); 1000]);
    let mut side = Reconciler::new(SyncConfig::default()).unwrap();
    let reply = side.receive(&mut s, &message).unwrap();
    let (other, _, entries) = drain(&mut side, reply);
    assert_eq!(entries, 1000, "each entry once, not once per claim");
    assert!(other <= message.len(), "{other} bytes besides entries");
}

#[test]
fn mask_zero_children_send_the_store_once() {
    let mut s = store(1000);
    // The root's children, and each level-1 node's children, all "empty".
    let mut items = vec![Item::Children { level: 0, node: 0, children: Children::default() }; 500];
    items.extend((0..16).map(|n| Item::Children {
        level: 1,
        node: n,
        children: Children::default(),
    }));
    let message = encode_message(&items);
    let mut side = Reconciler::new(SyncConfig::default()).unwrap();
    let reply = side.receive(&mut s, &message).unwrap();
    let (_, _, entries) = drain(&mut side, reply);
    assert_eq!(entries, 1000);
}

#[test]
fn repeated_listings_and_wants_do_not_repeat_work() {
    let mut s = store(1000);
    let listing = Item::Listing { level: 0, node: 0, items: vec![] };
    let positions: Vec<[u8; 16]> = (0..200u32)
        .map(|i| {
            let p = sysblocks_merkle::hash::key_position(format!("key:{}", i % 3).as_bytes());
            p[..16].try_into().unwrap()
        })
        .collect();
    let message = encode_message(&[listing.clone(), listing, Item::Want(positions)]);
    let mut side = Reconciler::new(SyncConfig::default()).unwrap();
    let reply = side.receive(&mut s, &message).unwrap();
    let (_, _, entries) = drain(&mut side, reply);
    assert_eq!(entries, 1000);
}

#[test]
fn bad_sync_configs_are_refused_at_construction() {
    let d = SyncConfig::default();
    for bad in [
        SyncConfig { max_level: 17, ..d },
        SyncConfig { max_level: usize::MAX, ..d },
        SyncConfig { list_threshold: 0, ..d },
        SyncConfig { list_threshold: u64::MAX, ..d },
        SyncConfig { list_threshold: u64::MAX / 3 + 1, ..d },
        SyncConfig { max_message: 0, ..d },
        SyncConfig { max_message: 100, ..d },
    ] {
        assert!(matches!(Reconciler::new(bad), Err(MerkleError::BadConfig { .. })), "{bad:?}");
        let (mut a, mut b) = (store(3), store(5));
        assert!(sysblocks_merkle::sync_in_memory(&mut a, &mut b, bad).is_err());
    }
    assert!(d.validate().is_ok());
}

#[test]
fn an_entry_too_large_to_send_fails_the_session_instead_of_ending_it_quietly() {
    let mut a: Store = MerkleStore::new();
    a.put(b"big".to_vec(), vec![0; 8192], 1).unwrap();
    let mut b: Store = MerkleStore::new();
    let config = SyncConfig { max_message: 4096, ..SyncConfig::default() };
    let result = sysblocks_merkle::sync_in_memory(&mut a, &mut b, config);
    assert!(matches!(result, Err(MerkleError::MessageTooLarge { .. })), "{result:?}");
}

fn hostile_item() -> impl Strategy<Value = Item> {
    let level = prop_oneof![0u8..=16, Just(15), Just(16)];
    let node = prop_oneof![Just(0u64), 0u64..16, 0u64..4096, any::<u64>()];
    let count = prop_oneof![Just(0u64), Just(1), 1u64..2000, any::<u64>()];
    let fp = (count, any::<[u8; 16]>()).prop_map(|(count, sum)| WireFp { count, sum });
    prop_oneof![
        (level.clone(), node.clone(), fp.clone()).prop_map(|(level, node, fp)| {
            let node = if level < 16 { node & ((1 << (4 * level)) - 1) } else { node };
            Item::Fingerprint { level, node, fp }
        }),
        (0u8..16, node.clone(), proptest::collection::vec(proptest::option::of(fp), 16)).prop_map(
            |(level, node, fps)| {
                let node = node & ((1 << (4 * level)) - 1);
                let children = Children::from_array(std::array::from_fn(|i| fps[i]));
                Item::Children { level, node, children }
            }
        ),
        (level, node, proptest::collection::vec(any::<([u8; 16], u64, [u8; 16])>(), 0..20))
            .prop_map(|(level, node, items)| {
                let node = if level < 16 { node & ((1 << (4 * level)) - 1) } else { node };
                let items = items
                    .into_iter()
                    .map(|(position, version, hash)| ListedItem { position, version, hash })
                    .collect();
                Item::Listing { level, node, items }
            }),
        proptest::collection::vec(any::<[u8; 16]>(), 0..20).prop_map(Item::Want),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Structurally valid messages with hostile values: no panic, each of
    /// our entries sent at most once, and everything else within the stated
    /// multiple of the bytes received.
    #[test]
    fn hostile_sessions_stay_within_the_work_bound(
        messages in proptest::collection::vec(proptest::collection::vec(hostile_item(), 1..40), 1..6),
        n in prop_oneof![Just(0u32), 1u32..50, Just(1000)],
    ) {
        let mut s = store(n);
        let config = SyncConfig::default();
        let mut side = Reconciler::new(config).unwrap();
        let (mut received, mut other, mut entries) = (0, 0, 0);
        for items in messages {
            let message = encode_message(&items);
            received += message.len();
            let reply = side.receive(&mut s, &message).unwrap();
            let (o, _, e) = drain(&mut side, reply);
            other += o;
            entries += e;
        }
        prop_assert!(entries <= n as usize, "{} entries sent of {}", entries, n);
        prop_assert!(
            other <= config.queued_bytes_per_byte() * received,
            "{} bytes queued for {} received", other, received
        );
    }
}
