//! The concurrent cache's builder gives it what `LruCache` has: a weight
//! bound split over the shards, a time to live (per cache and per entry),
//! an eviction listener, lookups by a borrowed key; and bad settings are
//! typed errors.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sysblocks_lru_cache::{CacheError, ConcurrentLruCache, ManualClock, RemovalCause};

#[test]
fn the_weight_bound_holds_over_all_shards_under_concurrent_inserts() {
    let evicted_weight = Arc::new(AtomicU64::new(0));
    let seen = evicted_weight.clone();
    let cache = ConcurrentLruCache::builder()
        .max_weight(10_000)
        .weigher(|_k: &u64, v: &Vec<u8>| v.len() as u64)
        .eviction_listener(move |_k, v: &Vec<u8>, cause| {
            assert_eq!(cause, RemovalCause::Capacity);
            seen.fetch_add(v.len() as u64, Ordering::Relaxed);
        })
        .shards(4)
        .build()
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let cache = &cache;
            s.spawn(move || {
                for i in 0..2_000u64 {
                    let key = t * 1_000_000 + i;
                    cache.insert(key, vec![0; 1 + (key % 50) as usize]);
                }
            });
        }
    });
    let inserted: u64 =
        (0..2u64).flat_map(|t| (0..2_000u64).map(move |i| 1 + ((t * 1_000_000 + i) % 50))).sum();
    // Nothing is lost track of: what is held plus what was evicted is
    // everything inserted, and what is held is within the bound.
    let mut held = 0;
    for t in 0..2u64 {
        for i in 0..2_000u64 {
            if let Some(v) = cache.get(&(t * 1_000_000 + i)) {
                held += v.len() as u64;
            }
        }
    }
    assert!(held <= 10_000, "held {held}");
    assert_eq!(held + evicted_weight.load(Ordering::Relaxed), inserted);
}

#[test]
fn entries_expire_after_their_time_to_live_and_the_listener_hears_it() {
    let clock = ManualClock::new();
    let causes = Arc::new(Mutex::new(Vec::new()));
    let log = causes.clone();
    let cache = ConcurrentLruCache::builder()
        .capacity(100)
        .time_to_live(Duration::from_secs(60))
        .clock(clock.clone())
        .eviction_listener(move |k: &String, _v: &u32, cause| {
            log.lock().unwrap().push((k.clone(), cause));
        })
        .build()
        .unwrap();
    cache.insert("default".to_string(), 1);
    cache.insert_with_ttl("short".to_string(), 2, Duration::from_secs(5));
    // Lookups take a borrowed key: a &str for a String.
    assert_eq!(cache.get("short"), Some(2));
    clock.advance(Duration::from_secs(6));
    assert_eq!(cache.get("short"), None);
    assert!(cache.contains("default"));
    clock.advance(Duration::from_secs(60));
    assert_eq!(cache.get("default"), None);
    // Expired entries are reclaimed (and reported) by the next write to
    // their shard, or by a purge.
    cache.purge_expired();
    let mut causes = causes.lock().unwrap().clone();
    causes.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        causes,
        [
            ("default".to_string(), RemovalCause::Expired),
            ("short".to_string(), RemovalCause::Expired)
        ]
    );
    assert_eq!(cache.remove("nothing"), None);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.expirations), (1, 2));
}

#[test]
fn bad_settings_are_typed_errors() {
    let no_bound = ConcurrentLruCache::<u32, u32>::builder().build();
    assert!(matches!(no_bound, Err(CacheError::ZeroCapacity)));
    let zero = ConcurrentLruCache::<u32, u32>::builder().max_weight(0).build();
    assert!(matches!(zero, Err(CacheError::ZeroCapacity)));
    let no_shards = ConcurrentLruCache::<u32, u32>::builder().capacity(10).shards(0).build();
    assert!(matches!(no_shards, Err(CacheError::ZeroShards)));
    let too_many = ConcurrentLruCache::<u32, u32>::builder().capacity(10).shards(1 << 20).build();
    assert!(matches!(too_many, Err(CacheError::TooManyShards { .. })));
    let weigher_without_bound =
        ConcurrentLruCache::builder().capacity(10).weigher(|_k: &u32, _v: &u32| 1).build();
    assert!(matches!(weigher_without_bound, Err(CacheError::WeigherWithoutMaxWeight)));
}

/// By default a shard holds at least 64 entries (or there is one shard),
/// the count is a power of two, and it is at most `64 × cores`.
#[test]
fn default_shards_hold_at_least_64_entries_each() {
    let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
    let most = (cores * 64).next_power_of_two();
    for capacity in [1, 10, 63, 64, 127, 128, 1_000, 10_000, 1 << 20] {
        let shards = ConcurrentLruCache::<u32, u32>::new(capacity).unwrap().shard_count();
        assert!(shards.is_power_of_two() && shards <= most, "{shards} shards for {capacity}");
        assert!(shards == 1 || capacity >= 64 * shards, "{shards} shards for {capacity} entries");
        // Not fewer than needed: twice as many would break the floor (or the cap).
        assert!(shards == most || capacity < 64 * 2 * shards, "{shards} shards for {capacity}");
    }
}

/// A cache bounded by weight keeps `4 × cores` shards by default: each
/// shard's share of the weight is the heaviest entry it can hold, and an
/// entry of that share is stored.
#[test]
fn default_shards_of_a_weighted_cache_leave_room_for_heavy_entries() {
    let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
    let shards = (cores * 4).next_power_of_two();
    let max = 1u64 << 20;
    let cache = ConcurrentLruCache::builder()
        .max_weight(max)
        .weigher(|_k: &u32, v: &Vec<u8>| v.len() as u64)
        .build()
        .unwrap();
    assert_eq!(cache.shard_count(), shards);
    let share = usize::try_from(max / shards as u64).unwrap();
    for k in 0..64u32 {
        cache.insert(k, vec![0; share]);
        assert!(cache.contains(&k), "an entry of a shard's whole share ({share}) is stored");
    }
}
