//! The rows of BENCHMARKS.md for the caches, measured A/B: ours and the
//! peer alternate in one process on the same keys, and each ratio comes
//! with its 90% interval (see `sysblocks-benchkit`).
//!
//! Run: `cargo bench -p sysblocks-lru-cache --bench ab` (`AB_ONLY=zipf`
//! for some rows). `scripts/bench.sh` runs every crate's.

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sysblocks_benchkit::{Ab, Target};
use sysblocks_lru_cache::{ConcurrentLruCache, LruCache};

mod common;
use common::{CAP, Fixed, Shared, fixed, zipf_keys};

/// Key sequences are walked cyclically; a power of two, so the index is a mask.
const HITS: usize = 1 << 12;
const ZIPF: usize = 1 << 20;

/// Both with the fixed hasher of `common`.
type Ours = LruCache<u64, u64, Fixed>;
type Peer = lru::LruCache<u64, u64, Fixed>;

fn ours(fill: bool) -> Ours {
    let mut cache = LruCache::builder().capacity(CAP).hasher(fixed()).build().unwrap();
    if fill {
        (0..CAP as u64).for_each(|k| _ = cache.insert(k, k));
    }
    cache
}

fn peer(fill: bool) -> Peer {
    let mut cache = lru::LruCache::with_hasher(NonZeroUsize::new(CAP).unwrap(), fixed());
    if fill {
        (0..CAP as u64).for_each(|k| _ = cache.push(k, k));
    }
    cache
}

/// Times `n` steps of `f`, given the step's index.
fn timed(n: u64, mut f: impl FnMut(usize)) -> Duration {
    let start = Instant::now();
    for i in 0..n as usize {
        f(i);
    }
    start.elapsed()
}

fn main() {
    let ab = Ab::from_env();
    let below = Target::Below(0.9);
    let mut rng = SmallRng::seed_from_u64(1);
    let hits: Vec<u64> = (0..HITS).map(|_| rng.random_range(0..CAP as u64)).collect();
    let zipf = zipf_keys(ZIPF, 1);

    if Ab::wants("lru/get_hit") {
        let (mut a, mut b) = (ours(true), peer(true));
        ab.time_ratio(
            "lru/get_hit",
            "LruCache vs lru, get of a present key (10,000 entries)",
            below,
            |n| timed(n, |i| _ = black_box(a.get(&hits[i % HITS]).copied())),
            |n| timed(n, |i| _ = black_box(b.get(&hits[i % HITS]).copied())),
        );
    }
    if Ab::wants("lru/get_miss") {
        let (mut a, mut b) = (ours(true), peer(true));
        ab.time_ratio(
            "lru/get_miss",
            "LruCache vs lru, get of an absent key (10,000 entries)",
            below,
            |n| timed(n, |i| _ = black_box(a.get(&(hits[i % HITS] + 1_000_000)).copied())),
            |n| timed(n, |i| _ = black_box(b.get(&(hits[i % HITS] + 1_000_000)).copied())),
        );
    }
    if Ab::wants("lru/put_evict") {
        let (mut a, mut b) = (ours(true), peer(true));
        let (mut next_a, mut next_b) = (CAP as u64, CAP as u64);
        ab.time_ratio(
            "lru/put_evict",
            "LruCache vs lru, insert of a new key into a full cache (evicts one)",
            below,
            |n| {
                timed(n, |_| {
                    _ = black_box(a.insert(next_a, next_a));
                    next_a += 1;
                })
            },
            |n| {
                timed(n, |_| {
                    _ = black_box(b.push(next_b, next_b));
                    next_b += 1;
                })
            },
        );
    }
    if Ab::wants("lru/zipf_mix") {
        let (mut a, mut b) = (ours(false), peer(false));
        let (mut at_a, mut at_b) = (0usize, 0usize);
        ab.time_ratio(
            "lru/zipf_mix",
            "LruCache vs lru, get or insert on Zipf(1.0) keys over 100,000, 10,000 entries",
            below,
            |n| {
                timed(n, |_| {
                    let k = zipf[at_a % ZIPF];
                    at_a += 1;
                    if a.get(&k).is_none() {
                        _ = black_box(a.insert(k, k));
                    }
                })
            },
            |n| {
                timed(n, |_| {
                    let k = zipf[at_b % ZIPF];
                    at_b += 1;
                    if b.get(&k).is_none() {
                        _ = black_box(b.push(k, k));
                    }
                })
            },
        );
    }
    if Ab::wants("lru/concurrent") {
        concurrent(&ab);
    }
}

/// Two threads, each walking its own Zipf sequence for `n` steps, on one
/// cache; wall time.
fn two_threads(n: u64, cache: &impl Shared, keys: &[Vec<u64>; 2], at: &mut [usize; 2]) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for (keys, at) in keys.iter().zip(at.iter_mut()) {
            s.spawn(move || {
                for _ in 0..n {
                    black_box(cache.get_or_insert(keys[*at % keys.len()]));
                    *at += 1;
                }
            });
        }
    });
    start.elapsed()
}

fn concurrent(ab: &Ab) {
    let keys = [zipf_keys(1 << 18, 2), zipf_keys(1 << 18, 3)];
    let ours = <ConcurrentLruCache<u64, u64> as Shared>::with_capacity(CAP);
    let (mut at_ours, mut at_peer) = ([0, 0], [0, 0]);
    let quick = <quick_cache::sync::Cache<u64, u64> as Shared>::with_capacity(CAP);
    ab.throughput_ratio(
        "lru/concurrent_vs_quick_cache",
        "ConcurrentLruCache vs quick_cache, 2 threads, get or insert on Zipf(1.0)",
        Target::AtLeast(1.0),
        |n| two_threads(n, &ours, &keys, &mut at_ours),
        |n| two_threads(n, &quick, &keys, &mut at_peer),
    );
    let moka = <moka::sync::Cache<u64, u64> as Shared>::with_capacity(CAP);
    let mut at_moka = [0, 0];
    ab.throughput_ratio(
        "lru/concurrent_vs_moka",
        "ConcurrentLruCache vs moka, 2 threads, get or insert on Zipf(1.0)",
        Target::AtLeast(1.0),
        |n| two_threads(n, &ours, &keys, &mut at_ours),
        |n| two_threads(n, &moka, &keys, &mut at_moka),
    );
}
