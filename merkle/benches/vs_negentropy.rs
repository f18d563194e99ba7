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
use sysblocks_merkle::{MerkleStore, SyncConfig, SyncOutcome, sync_in_memory};

mod common;
use common::{Store, items, neg_storage, neg_sync, store};

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
