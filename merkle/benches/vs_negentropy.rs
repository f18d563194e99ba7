//! Our sync protocol against `negentropy` (range-based set reconciliation)
//! on the same sets: 100,000 items with d = 0, 1, 10 and 1,000 differences.
//! Bytes and rounds are printed once (they are deterministic); the session
//! time is measured by criterion. Also: the cost of one `put` into a store
//! of 1,000,000 keys.
//!
//! negentropy only finds which ids differ; our figures include moving the
//! differing entries too, so the comparison favours negentropy.
//!
//! Run: `cargo bench -p sysblocks-merkle --bench vs_negentropy`

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use negentropy::{Id, Negentropy, NegentropyStorageVector};
use sysblocks_merkle::{MerkleStore, SyncConfig, SyncOutcome, sync_in_memory};

type Store = MerkleStore<Vec<u8>, Vec<u8>>;

const N: u32 = 100_000;
const FRAME: usize = 256 * 1024;

/// The items of one side: (key, version). Side B differs from A in `d`
/// items: a newer version of an existing key.
fn items(d: u32, side_b: bool) -> Vec<(Vec<u8>, u64)> {
    (0..N)
        .map(|i| {
            let changed = side_b && i < d * (N / d.max(1)) && i % (N / d.max(1)) == 0;
            (format!("item:{i}").into_bytes(), if changed { 2 } else { 1 })
        })
        .collect()
}

fn store(items: &[(Vec<u8>, u64)]) -> Store {
    let mut s = MerkleStore::new();
    for (k, v) in items {
        s.put(k.clone(), b"payload".to_vec(), *v).unwrap();
    }
    s
}

/// negentropy ids: SHA-256 of key and version, as any id of an entry.
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

/// One negentropy session; returns (bytes both ways, messages, ids found).
fn neg_sync(a: &NegentropyStorageVector, b: &NegentropyStorageVector) -> (usize, usize, usize) {
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

/// The session tuning measured here: the crate's default.
fn tuning() -> SyncConfig {
    SyncConfig::default()
}

fn sessions(c: &mut Criterion) {
    let mut group = c.benchmark_group("sync_100k");
    group.sample_size(10);
    println!("{:>6} | {:>12} {:>8} | {:>12} {:>8}", "d", "ours bytes", "msgs", "neg bytes", "msgs");
    for d in [0u32, 1, 10, 1000] {
        let (ia, ib) = (items(d, false), items(d, true));
        let (sa, sb) = (store(&ia), store(&ib));
        let (na, nb) = (neg_storage(&ia), neg_storage(&ib));
        // Bytes and rounds, once: they do not vary between runs.
        let (mut a, mut b) = (sa.clone(), sb.clone());
        let SyncOutcome { initiator: x, responder: y, rounds } =
            sync_in_memory(&mut a, &mut b, tuning()).unwrap();
        let (neg_bytes, neg_messages, found) = neg_sync(&na, &nb);
        assert_eq!(x.keys_repaired + y.keys_repaired, u64::from(d));
        assert_eq!(found, 2 * d as usize, "negentropy finds both versions of each changed item");
        println!(
            "{d:>6} | {:>12} {rounds:>8} | {neg_bytes:>12} {neg_messages:>8}",
            x.bytes_sent + y.bytes_sent
        );

        group.bench_with_input(BenchmarkId::new("sysblocks", d), &d, |bench, _| {
            bench.iter_batched(
                || (sa.clone(), sb.clone()),
                // The stores go back out, so that dropping them is not timed.
                |(mut a, mut b)| {
                    let stats = sync_in_memory(&mut a, &mut b, tuning()).unwrap();
                    (a, b, black_box(stats))
                },
                BatchSize::LargeInput,
            );
        });
        group.bench_with_input(BenchmarkId::new("negentropy", d), &d, |bench, _| {
            bench.iter(|| black_box(neg_sync(&na, &nb)));
        });
    }
    group.finish();
}

fn put_at_a_million(c: &mut Criterion) {
    let mut s: Store = MerkleStore::new();
    for i in 0..1_000_000u32 {
        s.put(i.to_le_bytes().to_vec(), b"value".to_vec(), 1).unwrap();
    }
    let mut version = 2u64;
    let mut i = 0u32;
    c.bench_function("put_into_1m_keys", |bench| {
        bench.iter(|| {
            i = (i + 7919) % 1_000_000;
            version += 1;
            black_box(s.put(i.to_le_bytes().to_vec(), b"value".to_vec(), version).unwrap());
        });
    });
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = sessions, put_at_a_million
}
criterion_main!(benches);
