//! The rows of BENCHMARKS.md for Merkle anti-entropy: the bytes of one
//! session against negentropy's on the same sets (exact: they do not vary
//! between runs), and the time of one `put` into a store of a million keys
//! with its 90% interval over repeated runs (see `sysblocks-benchkit`).
//!
//! Run: `cargo bench -p sysblocks-merkle --bench ab`.
//! `scripts/bench.sh` runs every crate's.

use std::hint::black_box;
use std::time::Instant;

use sysblocks_benchkit::{Ab, Target};
use sysblocks_merkle::{MerkleStore, SyncConfig, sync_in_memory};

mod common;
use common::{items, neg_storage, neg_sync, store};

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
        let (theirs, _, found) = neg_sync(&neg_storage(&ia), &neg_storage(&ib));
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
