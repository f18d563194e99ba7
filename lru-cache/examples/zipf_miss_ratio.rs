//! How often each concurrent cache of the `lru/concurrent_*` rows of
//! BENCHMARKS.md misses on those rows' workload: Zipf(1.0) keys over
//! 100,000, 10,000 entries, get and insert on a miss. One thread; the first
//! half of the keys warms the caches, the second half is counted. A miss
//! costs a second access (the insert, and an eviction), so a cache that
//! misses less does less work per operation.
//!
//! Run: `cargo run --release -p sysblocks-lru-cache --example zipf_miss_ratio`.

#[path = "../benches/common/mod.rs"]
mod common;

use common::{CAP, Shared, zipf_keys};
use sysblocks_lru_cache::ConcurrentLruCache;

/// Prints the share of the second half's accesses that missed.
fn miss_ratio<C: Shared>(keys: &[u64]) {
    let cache = C::with_capacity(CAP);
    let (warm, counted) = keys.split_at(keys.len() / 2);
    for &k in warm {
        cache.get_or_insert(k);
    }
    let mut misses = 0u32;
    for &k in counted {
        if cache.get(k).is_none() {
            misses += 1;
            cache.insert(k, k);
        }
    }
    let ratio = f64::from(misses) / counted.len() as f64;
    println!("{:<12} {ratio:.4}", <C as Shared>::name());
}

fn main() {
    let keys = zipf_keys(1 << 20, 2);
    println!("{:<12} miss ratio", "cache");
    miss_ratio::<ConcurrentLruCache<u64, u64>>(&keys);
    miss_ratio::<quick_cache::sync::Cache<u64, u64>>(&keys);
    miss_ratio::<moka::sync::Cache<u64, u64>>(&keys);
}
