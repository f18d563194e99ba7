//! Our ring against the `hashring` crate and jump hash on the same keys, in
//! one run: lookup time with 10, 100 and 1000 nodes at 160 vnodes, build
//! time, and a 3-node replica list.
//!
//! Run: `cargo bench -p sysblocks-consistent-hash --bench vs_hashring`

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sysblocks_consistent_hash::{HashRing, hash_key, jump_hash};

const VNODES: u32 = 160;

/// `hashring` has no virtual nodes of its own; its docs add them as a
/// wrapper type like this one.
#[derive(Debug, Clone, Copy, Hash, PartialEq)]
struct VNode {
    node: u32,
    index: u32,
}

fn keys() -> Vec<String> {
    let mut rng = SmallRng::seed_from_u64(1);
    (0..4096).map(|_| format!("user:{}", rng.random::<u64>())).collect()
}

fn ours(nodes: u32) -> HashRing<u32> {
    HashRing::from_weighted(VNODES, (0..nodes).map(|n| (n, 1))).unwrap()
}

fn peer(nodes: u32) -> hashring::HashRing<VNode> {
    let mut ring = hashring::HashRing::new();
    ring.batch_add(
        (0..nodes).flat_map(|node| (0..VNODES).map(move |index| VNode { node, index })).collect(),
    );
    ring
}

fn lookup(c: &mut Criterion) {
    let keys = keys();
    let mut group = c.benchmark_group("lookup");
    group.throughput(Throughput::Elements(keys.len() as u64));
    for nodes in [10u32, 100, 1000] {
        let ring = ours(nodes);
        let theirs = peer(nodes);
        group.bench_with_input(BenchmarkId::new("sysblocks", nodes), &nodes, |b, _| {
            b.iter(|| {
                for k in &keys {
                    black_box(ring.node_for(black_box(k.as_bytes())));
                }
            });
        });
        group.bench_with_input(BenchmarkId::new("hashring", nodes), &nodes, |b, _| {
            b.iter(|| {
                for k in &keys {
                    black_box(theirs.get(black_box(&k.as_bytes())).map(|v| v.node));
                }
            });
        });
        group.bench_with_input(BenchmarkId::new("jump_hash", nodes), &nodes, |b, &n| {
            b.iter(|| {
                for k in &keys {
                    black_box(jump_hash(hash_key(black_box(k.as_bytes())), n));
                }
            });
        });
    }
    group.finish();
}

fn build(c: &mut Criterion) {
    let mut group = c.benchmark_group("build");
    for nodes in [10u32, 100, 1000] {
        group.throughput(Throughput::Elements(u64::from(nodes * VNODES)));
        group.bench_with_input(BenchmarkId::new("sysblocks", nodes), &nodes, |b, &n| {
            b.iter(|| black_box(ours(n)));
        });
        group.bench_with_input(BenchmarkId::new("hashring", nodes), &nodes, |b, &n| {
            b.iter(|| black_box(peer(n)));
        });
    }
    group.finish();
}

fn replicas(c: &mut Criterion) {
    let keys = keys();
    let mut group = c.benchmark_group("replicas3");
    group.throughput(Throughput::Elements(keys.len() as u64));
    for nodes in [10u32, 100] {
        let ring = ours(nodes);
        let theirs = peer(nodes);
        group.bench_with_input(BenchmarkId::new("sysblocks", nodes), &nodes, |b, _| {
            b.iter(|| {
                for k in &keys {
                    for node in ring.replicas(black_box(k.as_bytes()), 3) {
                        black_box(node);
                    }
                }
            });
        });
        // hashring clones the whole ring per call and may return one
        // physical node several times; measured on 1/64 of the keys.
        group.throughput(Throughput::Elements((keys.len() / 64) as u64));
        group.bench_with_input(BenchmarkId::new("hashring", nodes), &nodes, |b, _| {
            b.iter(|| {
                for k in keys.iter().step_by(64) {
                    black_box(theirs.get_with_replicas(black_box(&k.as_bytes()), 2));
                }
            });
        });
        group.throughput(Throughput::Elements(keys.len() as u64));
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = lookup, build, replicas
}
criterion_main!(benches);
