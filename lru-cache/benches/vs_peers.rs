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

const CAP: usize = 10_000;
const BATCH: usize = 4096;
const UNIVERSE: u64 = 100_000;

/// Keys drawn from a Zipf(1.0) distribution over `UNIVERSE` keys, by inverse
/// CDF on a precomputed table.
fn zipf_keys(count: usize, seed: u64) -> Vec<u64> {
    let weights: Vec<f64> = (1..=UNIVERSE).map(|r| 1.0 / r as f64).collect();
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(weights.len());
    let mut acc = 0.0;
    for w in weights {
        acc += w / total;
        cdf.push(acc);
    }
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let u: f64 = rng.random();
            cdf.partition_point(|&c| c < u) as u64
        })
        .collect()
}

/// The single-threaded operations every peer offers.
trait Unsync {
    fn name() -> &'static str;
    fn with_capacity(cap: usize) -> Self;
    fn get(&mut self, k: u64) -> Option<u64>;
    fn put(&mut self, k: u64, v: u64);
}

/// Both LRUs hash with the same fixed-seed foldhash, so their tables have
/// the same layout and probe lengths: only the code differs. (With random
/// seeds, probe lengths and so miss times vary by up to 2x between runs.)
type Fixed = foldhash::fast::FixedState;

fn fixed() -> Fixed {
    foldhash::fast::FixedState::with_seed(1)
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

/// The concurrent caches' get-or-insert on a shared Zipf workload.
trait Shared: Sync {
    fn name() -> &'static str;
    fn with_capacity(cap: usize) -> Self;
    fn get(&self, k: u64) -> Option<u64>;
    fn insert(&self, k: u64, v: u64);

    #[inline(always)]
    fn get_or_insert(&self, k: u64) -> u64 {
        self.get(k).unwrap_or_else(|| {
            self.insert(k, k);
            k
        })
    }
}

impl Shared for ConcurrentLruCache<u64, u64> {
    fn name() -> &'static str {
        "sysblocks"
    }
    fn with_capacity(cap: usize) -> Self {
        ConcurrentLruCache::new(cap).unwrap()
    }
    #[inline(always)]
    fn get(&self, k: u64) -> Option<u64> {
        ConcurrentLruCache::get(self, &k)
    }
    #[inline(always)]
    fn insert(&self, k: u64, v: u64) {
        ConcurrentLruCache::insert(self, k, v);
    }
}

impl Shared for moka::sync::Cache<u64, u64> {
    fn name() -> &'static str {
        "moka"
    }
    fn with_capacity(cap: usize) -> Self {
        moka::sync::Cache::new(cap as u64)
    }
    #[inline(always)]
    fn get(&self, k: u64) -> Option<u64> {
        moka::sync::Cache::get(self, &k)
    }
    #[inline(always)]
    fn insert(&self, k: u64, v: u64) {
        moka::sync::Cache::insert(self, k, v);
    }
}

impl Shared for quick_cache::sync::Cache<u64, u64> {
    fn name() -> &'static str {
        "quick_cache"
    }
    fn with_capacity(cap: usize) -> Self {
        quick_cache::sync::Cache::new(cap)
    }
    #[inline(always)]
    fn get(&self, k: u64) -> Option<u64> {
        quick_cache::sync::Cache::get(self, &k)
    }
    #[inline(always)]
    fn insert(&self, k: u64, v: u64) {
        quick_cache::sync::Cache::insert(self, k, v);
    }
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
