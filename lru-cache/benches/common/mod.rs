//! What both cache benches share: `vs_peers` (criterion) and `ab` (the
//! A/B rows of BENCHMARKS.md).
#![allow(dead_code)] // each bench uses a part

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sysblocks_lru_cache::ConcurrentLruCache;

/// Entries every cache holds.
pub const CAP: usize = 10_000;
/// Keys the Zipf draws range over.
pub const UNIVERSE: u64 = 100_000;

/// Keys drawn from a Zipf(1.0) distribution over `UNIVERSE` keys, by inverse
/// CDF on a precomputed table.
pub fn zipf_keys(count: usize, seed: u64) -> Vec<u64> {
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

/// Both LRUs hash with the same fixed-seed foldhash, so their tables have
/// the same layout and probe lengths: only the code differs. (With random
/// seeds, probe lengths and so miss times vary by up to 2x between runs.)
pub type Fixed = foldhash::fast::FixedState;

/// The fixed hasher both LRUs use.
pub fn fixed() -> Fixed {
    foldhash::fast::FixedState::with_seed(1)
}

/// The concurrent caches' get-or-insert on a shared Zipf workload.
pub trait Shared: Sync {
    /// The name in reports.
    fn name() -> &'static str;
    /// An empty cache of `cap` entries.
    fn with_capacity(cap: usize) -> Self;
    /// The value of `k`, if cached.
    fn get(&self, k: u64) -> Option<u64>;
    /// Caches `k`.
    fn insert(&self, k: u64, v: u64);

    /// The value of `k`, inserted on a miss.
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
