//! Regression tests for defects found by review: a write during a load,
//! extreme times to live and weights, a too-heavy replacement, and a
//! loader that asks for its own key.

use std::sync::mpsc;
use std::time::Duration;

use proptest::prelude::*;
use sysblocks_lru_cache::{CacheError, ConcurrentLruCache, LruCache, ManualClock};

/// Runs a load of key 1 on another thread that stays open until `during`
/// has run on this one; returns what the loader's caller got.
fn write_during_load(
    cache: &ConcurrentLruCache<u32, &'static str>,
    during: impl FnOnce(&ConcurrentLruCache<u32, &'static str>),
) -> &'static str {
    let (started_tx, started) = mpsc::channel();
    let (go, go_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let loader = s.spawn(move || {
            cache.get_with(1, || {
                started_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                "loaded"
            })
        });
        started.recv().unwrap();
        during(cache);
        go.send(()).unwrap();
        loader.join().unwrap()
    })
}

#[test]
fn an_insert_during_a_load_wins_over_the_loaded_value() {
    let cache = ConcurrentLruCache::new(10).unwrap();
    let got = write_during_load(&cache, |c| {
        c.insert(1, "fresh");
    });
    assert_eq!(got, "loaded", "the loader's caller still gets its value");
    assert_eq!(cache.get(&1), Some("fresh"), "the newer write is kept");
}

#[test]
fn a_remove_during_a_load_is_not_undone_by_it() {
    let cache = ConcurrentLruCache::new(10).unwrap();
    let got = write_during_load(&cache, |c| {
        c.remove(&1);
    });
    assert_eq!(got, "loaded");
    assert_eq!(cache.get(&1), None, "the invalidation holds");
}

#[test]
fn a_clear_during_a_load_is_not_undone_by_it() {
    let cache = ConcurrentLruCache::new(10).unwrap();
    write_during_load(&cache, ConcurrentLruCache::clear);
    assert_eq!(cache.get(&1), None);
    // The key loads normally afterwards.
    assert_eq!(cache.get_with(1, || "again"), "again");
    assert_eq!(cache.get(&1), Some("again"));
}

#[test]
fn a_loader_that_asks_for_its_own_key_does_not_deadlock() {
    let cache = ConcurrentLruCache::<u32, u32>::new(10).unwrap();
    let v = cache.get_with(1, || cache.get_with(1, || 5) + 1);
    assert_eq!(v, 6);
    assert_eq!(cache.get(&1), Some(6), "the outer load is the one cached");
    let r: Result<u32, _> = cache
        .try_get_with(2, || cache.try_get_with(2, || Err::<u32, &str>("inner")).map_err(|e| *e));
    assert_eq!(r.map_err(|e| *e), Err("inner"));
    assert_eq!(cache.get(&2), None);
}

#[test]
fn a_ttl_of_duration_max_never_expires_and_does_not_panic() {
    let clock = ManualClock::new();
    let mut cache = LruCache::builder()
        .capacity(4)
        .time_to_live(Duration::MAX)
        .clock(clock.clone())
        .build()
        .unwrap();
    cache.insert(1, 1);
    cache.insert_with_ttl(2, 2, Duration::MAX);
    cache.insert_with_ttl(3, 3, Duration::from_secs(u64::MAX));
    clock.advance(Duration::MAX);
    assert_eq!(cache.get(&1), Some(&1));
    assert_eq!(cache.get(&2), Some(&2));
    assert_eq!(cache.get(&3), Some(&3));
}

#[test]
fn weights_summing_past_u64_max_evict_instead_of_overflowing() {
    let mut cache =
        LruCache::builder().max_weight(u64::MAX).weigher(|_: &u8, w: &u64| *w).build().unwrap();
    assert_eq!(cache.insert(1, u64::MAX), None);
    let evicted = cache.insert(2, 1);
    assert_eq!(evicted, Some((1, u64::MAX)), "the heavy entry makes room");
    assert_eq!((cache.len(), cache.weight()), (1, 1));
    cache.insert(3, u64::MAX - 1);
    assert_eq!((cache.len(), cache.weight()), (2, u64::MAX));
    cache.insert(4, 2);
    assert!(cache.len() <= 2);
    let total: u128 = cache.iter().map(|(_, w)| u128::from(*w)).sum();
    assert_eq!(total, u128::from(cache.weight()));
}

#[test]
fn a_too_heavy_replacement_removes_the_stale_value() {
    let mut cache =
        LruCache::builder().max_weight(10).weigher(|_: &u8, w: &u64| *w).build().unwrap();
    cache.insert(1, 5);
    assert_eq!(cache.insert(1, 11), Some((1, 11)), "put hands the heavy pair back");
    assert_eq!(cache.get(&1), None, "and the old value is not served any more");
    cache.insert(1, 5);
    assert_eq!(
        cache.try_insert(1, 11),
        Err(CacheError::EntryTooHeavy { weight: 11, max_weight: 10 })
    );
    assert_eq!(cache.get(&1), None, "try_put does the same");
    assert_eq!(cache.weight(), 0);
}

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u64),
    PutTtl(u8, u64, u64),
    Get(u8),
    Advance(u64),
    Resize(u64),
    Remove(u8),
}

fn extreme_u64() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0), Just(1), Just(u64::MAX), Just(u64::MAX - 1), Just(1 << 63), any::<u64>()]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// No input panics, and the weight bound holds, whatever the weights,
    /// times to live and bounds (the whole `u64` range, edges included).
    #[test]
    fn no_input_panics_and_the_bound_holds(
        max in extreme_u64(),
        ttl in proptest::option::of(extreme_u64()),
        ops in proptest::collection::vec(prop_oneof![
            (any::<u8>(), extreme_u64()).prop_map(|(k, w)| Op::Put(k % 8, w)),
            (any::<u8>(), extreme_u64(), extreme_u64()).prop_map(|(k, w, t)| Op::PutTtl(k % 8, w, t)),
            any::<u8>().prop_map(|k| Op::Get(k % 8)),
            extreme_u64().prop_map(Op::Advance),
            extreme_u64().prop_map(Op::Resize),
            any::<u8>().prop_map(|k| Op::Remove(k % 8)),
        ], 1..60),
    ) {
        let clock = ManualClock::new();
        let mut builder = LruCache::builder()
            .max_weight(max)
            .weigher(|_: &u8, w: &u64| *w)
            .clock(clock.clone());
        if let Some(t) = ttl {
            builder = builder.time_to_live(Duration::from_nanos(t));
        }
        let Ok(mut cache) = builder.build() else {
            prop_assert_eq!(max, 0);
            return Ok(());
        };
        let mut bound = max;
        for op in ops {
            match op {
                Op::Put(k, w) => { cache.insert(k, w); }
                Op::PutTtl(k, w, t) => { cache.insert_with_ttl(k, w, Duration::from_secs(t)); }
                Op::Get(k) => { cache.get(&k); }
                Op::Advance(n) => clock.advance(Duration::from_nanos(n)),
                Op::Resize(m) => if cache.resize(m).is_ok() { bound = m },
                Op::Remove(k) => { cache.remove(&k); }
            }
            prop_assert!(cache.weight() <= bound);
            let total: u128 = cache.iter().map(|(_, w)| u128::from(*w)).sum();
            prop_assert!(total <= u128::from(bound));
        }
    }
}

#[test]
fn huge_shard_counts_and_capacities_are_errors_not_allocations() {
    use sysblocks_lru_cache::MAX_SHARDS;
    assert_eq!(
        ConcurrentLruCache::<u8, u8>::with_shards(usize::MAX, usize::MAX).unwrap_err(),
        CacheError::TooManyShards { requested: usize::MAX, max: MAX_SHARDS }
    );
    assert!(matches!(
        ConcurrentLruCache::<u8, u8>::with_shards(usize::MAX, 1),
        Err(CacheError::CapacityTooLarge { .. })
    ));
    assert!(matches!(
        ConcurrentLruCache::<u8, u8>::new(usize::MAX),
        Err(CacheError::CapacityTooLarge { .. })
    ));
    assert!(matches!(
        LruCache::<u8, u8>::new(usize::MAX),
        Err(CacheError::CapacityTooLarge { .. })
    ));
    assert_eq!(
        ConcurrentLruCache::<u8, u8>::with_shards(1 << 20, MAX_SHARDS).unwrap().shard_count(),
        MAX_SHARDS
    );
}
