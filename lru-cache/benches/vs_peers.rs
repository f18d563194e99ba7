//! Our caches against `lru`, `quick_cache` (unsync and sync) and `moka`
//! (sync) on the same keys in one run: get-hit, get-miss, put with eviction,
//! a Zipf get-or-insert mix, and the concurrent caches with 2 threads.
//!
//! Run: `cargo bench -p sysblocks-lru-cache --bench vs_peers`

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sysblocks_lru_cache::{ConcurrentLruCache, LruCache};

mod common;
use common::{CAP, Fixed, Shared, fixed, zipf_keys};

const BATCH: usize = 4096;

/// The single-threaded operations every peer offers.
trait Unsync {
    fn name() -> &'static str;
    fn with_capacity(cap: usize) -> Self;
    fn get(&mut self, k: u64) -> Option<u64>;
    fn put(&mut self, k: u64, v: u64);
}

impl Unsync for LruCache<u64, u64, Fixed> {
    fn name() -> &'static str {
        "sysblocks"
    }
    fn with_capacity(cap: usize) -> Self {
        LruCache::builder().capacity(cap).hasher(fixed()).build().unwrap()
    }
    #[inline(always)]
    fn get(&mut self, k: u64) -> Option<u64> {
        LruCache::get(self, &k).copied()
    }
    #[inline(always)]
    fn put(&mut self, k: u64, v: u64) {
        black_box(LruCache::insert(self, k, v));
    }
}

impl Unsync for lru::LruCache<u64, u64, Fixed> {
    fn name() -> &'static str {
        "lru"
    }
    fn with_capacity(cap: usize) -> Self {
        lru::LruCache::with_hasher(NonZeroUsize::new(cap).unwrap(), fixed())
    }
    #[inline(always)]
    fn get(&mut self, k: u64) -> Option<u64> {
        lru::LruCache::get(self, &k).copied()
    }
    #[inline(always)]
    fn put(&mut self, k: u64, v: u64) {
        black_box(lru::LruCache::push(self, k, v));
    }
}

impl Unsync for quick_cache::unsync::Cache<u64, u64> {
    fn name() -> &'static str {
        "quick_cache"
    }
    fn with_capacity(cap: usize) -> Self {
        quick_cache::unsync::Cache::new(cap)
    }
    #[inline(always)]
    fn get(&mut self, k: u64) -> Option<u64> {
        quick_cache::unsync::Cache::get(self, &k).copied()
    }
    #[inline(always)]
    fn put(&mut self, k: u64, v: u64) {
        quick_cache::unsync::Cache::insert(self, k, v);
    }
}

fn filled<C: Unsync>() -> C {
    let mut c = C::with_capacity(CAP);
    for k in 0..CAP as u64 {
        c.put(k, k);
    }
    c
}

fn bench_unsync<C: Unsync>(c: &mut Criterion, hits: &[u64], zipf: &[u64]) {
    let mut group = c.benchmark_group("unsync");
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut cache = filled::<C>();
    group.bench_function(BenchmarkId::new("get_hit", C::name()), |b| {
        b.iter(|| {
            for &k in hits {
                black_box(cache.get(k));
            }
        });
    });
    group.bench_function(BenchmarkId::new("get_miss", C::name()), |b| {
        b.iter(|| {
            for &k in hits {
                black_box(cache.get(k + 1_000_000));
            }
        });
    });
    let mut next = CAP as u64;
    group.bench_function(BenchmarkId::new("put_evict", C::name()), |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                cache.put(next, next);
                next += 1;
            }
        });
    });
    let mut cache = C::with_capacity(CAP);
    group.bench_function(BenchmarkId::new("zipf_mix", C::name()), |b| {
        b.iter(|| {
            for &k in zipf {
                if cache.get(k).is_none() {
                    cache.put(k, k);
                }
            }
        });
    });
    group.finish();
}

fn bench_shared<C: Shared>(c: &mut Criterion, per_thread: &[Vec<u64>]) {
    let mut group = c.benchmark_group("concurrent_2_threads");
    let total: usize = per_thread.iter().map(Vec::len).sum();
    group.throughput(Throughput::Elements(total as u64));
    let cache = C::with_capacity(CAP);
    group.bench_function(BenchmarkId::new("zipf_get_or_insert", C::name()), |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                for keys in per_thread {
                    let cache = &cache;
                    s.spawn(move || {
                        for &k in keys {
                            black_box(cache.get_or_insert(k));
                        }
                    });
                }
            });
        });
    });
    group.finish();
}

fn unsync(c: &mut Criterion) {
    let mut rng = SmallRng::seed_from_u64(1);
    let hits: Vec<u64> = (0..BATCH).map(|_| rng.random_range(0..CAP as u64)).collect();
    let zipf = zipf_keys(BATCH, 1);
    bench_unsync::<lru::LruCache<u64, u64, Fixed>>(c, &hits, &zipf);
    bench_unsync::<LruCache<u64, u64, Fixed>>(c, &hits, &zipf);
    bench_unsync::<quick_cache::unsync::Cache<u64, u64>>(c, &hits, &zipf);
}

fn concurrent(c: &mut Criterion) {
    // Enough work per iteration that spawning two threads is noise.
    let per_thread = vec![zipf_keys(100_000, 2), zipf_keys(100_000, 3)];
    bench_shared::<ConcurrentLruCache<u64, u64>>(c, &per_thread);
    bench_shared::<moka::sync::Cache<u64, u64>>(c, &per_thread);
    bench_shared::<quick_cache::sync::Cache<u64, u64>>(c, &per_thread);
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
    targets = unsync, concurrent
}
criterion_main!(benches);
