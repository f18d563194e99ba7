//! What both Merkle benches share: `vs_negentropy` (criterion) and `ab`
//! (the A/B rows of BENCHMARKS.md): the two sides' sets and one negentropy
//! session.
#![allow(dead_code)] // each bench uses a part

use negentropy::{Id, Negentropy, NegentropyStorageVector};
use sysblocks_merkle::MerkleStore;

/// The store both sides keep.
pub type Store = MerkleStore<Vec<u8>, Vec<u8>>;

/// Items on each side.
pub const N: u32 = 100_000;
/// negentropy's frame size limit.
pub const FRAME: usize = 256 * 1024;

/// The items of one side: (key, version). Side B differs from A in `d`
/// items: a newer version of an existing key.
pub fn items(d: u32, side_b: bool) -> Vec<(Vec<u8>, u64)> {
    (0..N)
        .map(|i| {
            let changed = side_b && i < d * (N / d.max(1)) && i % (N / d.max(1)) == 0;
            (format!("item:{i}").into_bytes(), if changed { 2 } else { 1 })
        })
        .collect()
}

pub fn store(items: &[(Vec<u8>, u64)]) -> Store {
    let mut s = MerkleStore::new();
    for (k, v) in items {
        s.put(k.clone(), b"payload".to_vec(), *v).unwrap();
    }
    s
}

/// negentropy ids: SHA-256 of key and version, as any id of an entry.
pub fn neg_storage(items: &[(Vec<u8>, u64)]) -> NegentropyStorageVector {
    let mut storage = NegentropyStorageVector::with_capacity(items.len());
    for (k, v) in items {
        let mut bytes = k.clone();
        bytes.extend(v.to_le_bytes());
        let id: [u8; 32] = sysblocks_merkle::hash::key_position(&bytes);
        storage.insert(*v, Id::from_byte_array(id)).unwrap();
    }
    storage.seal().unwrap();
    storage
}

/// One negentropy session; returns (bytes both ways, messages, ids found).
pub fn neg_sync(a: &NegentropyStorageVector, b: &NegentropyStorageVector) -> (usize, usize, usize) {
    let mut client = Negentropy::borrowed(a, FRAME as u64).unwrap();
    let mut server = Negentropy::borrowed(b, FRAME as u64).unwrap();
    let mut msg = client.initiate().unwrap();
    let (mut bytes, mut messages, mut found) = (msg.len(), 1, 0);
    loop {
        let reply = server.reconcile(&msg).unwrap();
        bytes += reply.len();
        messages += 1;
        let (mut have, mut need) = (Vec::new(), Vec::new());
        match client.reconcile_with_ids(&reply, &mut have, &mut need).unwrap() {
            Some(next) => {
                bytes += next.len();
                messages += 1;
                found += have.len() + need.len();
                msg = next;
            }
            None => {
                found += have.len() + need.len();
                return (bytes, messages, found);
            }
        }
    }
}
