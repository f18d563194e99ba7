//! The rows of BENCHMARKS.md for Merkle anti-entropy: the bytes of one
//! session against negentropy's on the same sets (exact: they do not vary
//! between runs), and the time of one `put` into a store of a million keys
//! with its 90% interval over repeated runs (see `sysblocks-benchkit`).
//!
//! Run: `cargo bench -p sysblocks-merkle --bench ab`.
//! `scripts/bench.sh` runs every crate's.

use std::hint::black_box;
use std::time::Instant;

use negentropy::{Id, Negentropy, NegentropyStorageVector};
use sysblocks_benchkit::{Ab, Target};
use sysblocks_merkle::{MerkleStore, SyncConfig, sync_in_memory};

const N: u32 = 100_000;
const FRAME: u64 = 256 * 1024;

/// The items of one side: (key, version). Side B differs from A in `d`
/// items, spread evenly: a newer version of an existing key.
fn items(d: u32, side_b: bool) -> Vec<(Vec<u8>, u64)> {
    let step = N / d.max(1);
    (0..N)
        .map(|i| {
            let changed = side_b && i < d * step && i % step == 0;
            (format!("item:{i}").into_bytes(), if changed { 2 } else { 1 })
        })
        .collect()
}

fn store(items: &[(Vec<u8>, u64)]) -> MerkleStore {
    let mut s = MerkleStore::new();
    for (k, v) in items {
        s.put(k.clone(), b"payload".to_vec(), *v).unwrap();
    }
    s
}

/// negentropy ids: a hash of key and version, as any id of an entry.
fn neg_storage(items: &[(Vec<u8>, u64)]) -> NegentropyStorageVector {
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

/// Bytes of one negentropy session, both ways, and the ids it found.
fn neg_bytes(a: &NegentropyStorageVector, b: &NegentropyStorageVector) -> (usize, usize) {
    let mut client = Negentropy::borrowed(a, FRAME).unwrap();
    let mut server = Negentropy::borrowed(b, FRAME).unwrap();
    let mut msg = client.initiate().unwrap();
    let (mut bytes, mut found) = (msg.len(), 0);
    loop {
        let reply = server.reconcile(&msg).unwrap();
        bytes += reply.len();
        let (mut have, mut need) = (Vec::new(), Vec::new());
        let next = client.reconcile_with_ids(&reply, &mut have, &mut need).unwrap();
        found += have.len() + need.len();
        match next {
            Some(next) => {
                bytes += next.len();
                msg = next;
            }
            None => return (bytes, found),
        }
    }
}

fn main() {
    let ab = Ab::from_env();
    for d in [1u32, 10, 1000] {
        let id = format!("merkle/bytes_d{d}");
        if !Ab::wants(&id) {
            continue;
        }
        let (ia, ib) = (items(d, false), items(d, true));
        let (mut a, mut b) = (store(&ia), store(&ib));
        let outcome = sync_in_memory(&mut a, &mut b, SyncConfig::default()).unwrap();
        let ours = outcome.initiator.bytes_sent + outcome.responder.bytes_sent;
        let (theirs, found) = neg_bytes(&neg_storage(&ia), &neg_storage(&ib));
        assert_eq!(outcome.initiator.keys_repaired + outcome.responder.keys_repaired, u64::from(d));
        assert_eq!(found, 2 * d as usize, "negentropy finds both versions of each changed item");
        Ab::exact(
            &id,
            &format!(
                "session bytes vs negentropy's, {d} of 100,000 keys differ ({ours} against {theirs} bytes; ours also moves the entries)"
            ),
            "bytes ours/peer",
            Target::AtMost(0.5),
            ours as f64 / theirs as f64,
        );
    }
    if Ab::wants("merkle/put_1m") {
        let mut s = MerkleStore::new();
        for i in 0..1_000_000u32 {
            s.put(i.to_le_bytes().to_vec(), b"value".to_vec(), 1).unwrap();
        }
        let (mut version, mut i) = (2u64, 0u32);
        ab.absolute(
            "merkle/put_1m",
            "one put (a new version of a present key) into a store of 1,000,000 keys",
            "ns per put",
            Target::Below(1000.0),
            |n| {
                let start = Instant::now();
                for _ in 0..n {
                    i = (i + 7919) % 1_000_000;
                    version += 1;
                    black_box(s.put(i.to_le_bytes().to_vec(), b"value".to_vec(), version).unwrap());
                }
                start.elapsed()
            },
            |n, elapsed| elapsed.as_nanos() as f64 / n as f64,
        );
    }
}
