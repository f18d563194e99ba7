//! Property tests: the weight bound is never exceeded, an expired entry is
//! never returned, and the structure stays consistent.

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;
use sysblocks_lru_cache::{CacheError, LruCache, ManualClock};

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u16),
    PutTtl(u8, u16, u16),
    Get(u8),
    Peek(u8),
    Remove(u8),
    Advance(u16),
    Resize(u16),
    PopLru,
    Purge,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<u8>(), 0u16..400).prop_map(|(k, w)| Op::Put(k % 32, w)),
        2 => (any::<u8>(), 0u16..400, 1u16..100).prop_map(|(k, w, t)| Op::PutTtl(k % 32, w, t)),
        3 => any::<u8>().prop_map(|k| Op::Get(k % 32)),
        1 => any::<u8>().prop_map(|k| Op::Peek(k % 32)),
        1 => any::<u8>().prop_map(|k| Op::Remove(k % 32)),
        2 => (0u16..60).prop_map(Op::Advance),
        1 => (0u16..2000).prop_map(Op::Resize),
        1 => Just(Op::PopLru),
        1 => Just(Op::Purge),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn weight_bound_holds_and_expired_entries_never_return(
        ops in proptest::collection::vec(op(), 1..300),
        max in 1u64..1500,
        cache_ttl in proptest::option::of(1u64..80),
    ) {
        let clock = ManualClock::new();
        let mut builder = LruCache::builder()
            .max_weight(max)
            .weigher(|_k: &u8, v: &u16| u64::from(*v))
            .clock(clock.clone());
        if let Some(t) = cache_ttl {
            builder = builder.time_to_live(Duration::from_secs(t));
        }
        let mut cache = builder.build().unwrap();
        let mut max = max;
        // When each key's current value expires (None: never).
        let mut expiry: HashMap<u8, Option<u64>> = HashMap::new();
        let live = |expiry: &HashMap<u8, Option<u64>>, k: u8, now| {
            expiry.get(&k).is_some_and(|e| e.is_none_or(|at| now < at))
        };
        for op in ops {
            let now = sysblocks_lru_cache::Clock::now_nanos(&clock);
            match op {
                Op::Put(k, w) => {
                    let stored = cache.try_insert(k, w);
                    if u64::from(w) > max {
                        prop_assert_eq!(stored, Err(CacheError::EntryTooHeavy { weight: u64::from(w), max_weight: max }));
                    } else {
                        prop_assert!(stored.is_ok());
                        expiry.insert(k, cache_ttl.map(|t| now + t * 1_000_000_000));
                    }
                }
                Op::PutTtl(k, w, t) => {
                    let back = cache.insert_with_ttl(k, w, Duration::from_secs(u64::from(t)));
                    if u64::from(w) > max {
                        prop_assert_eq!(back, Some((k, w)));
                    } else {
                        expiry.insert(k, Some(now + u64::from(t) * 1_000_000_000));
                    }
                }
                Op::Get(k) => {
                    if cache.get(&k).is_some() {
                        prop_assert!(live(&expiry, k, now), "get returned an expired entry");
                    }
                }
                Op::Peek(k) => {
                    if cache.peek(&k).is_some() {
                        prop_assert!(live(&expiry, k, now), "peek returned an expired entry");
                    }
                }
                Op::Remove(k) => {
                    if cache.remove(&k).is_some() {
                        prop_assert!(live(&expiry, k, now), "remove returned an expired entry");
                    }
                }
                Op::Advance(s) => clock.advance(Duration::from_secs(u64::from(s))),
                Op::Resize(m) => {
                    let r = cache.resize(u64::from(m));
                    if m == 0 {
                        prop_assert_eq!(r, Err(CacheError::ZeroCapacity));
                    } else {
                        max = u64::from(m);
                    }
                }
                Op::PopLru => {
                    if let Some((k, _)) = cache.pop_lru() {
                        prop_assert!(live(&expiry, k, now), "pop_lru returned an expired entry");
                    }
                }
                Op::Purge => cache.purge_expired(),
            }
            prop_assert!(cache.weight() <= max, "weight {} over bound {}", cache.weight(), max);
            let now = sysblocks_lru_cache::Clock::now_nanos(&clock);
            for (k, _) in cache.iter() {
                prop_assert!(live(&expiry, *k, now), "iter yielded an expired entry");
            }
        }
        cache.purge_expired();
        let now = sysblocks_lru_cache::Clock::now_nanos(&clock);
        let total: u64 = cache.iter().map(|(_, v)| u64::from(*v)).sum();
        prop_assert_eq!(total, cache.weight(), "after purging, every stored entry is live");
        prop_assert!(cache.iter().all(|(k, _)| live(&expiry, *k, now)));
    }
}

#[test]
fn bad_configuration_is_a_typed_error() {
    assert_eq!(LruCache::<u8, u8>::new(0).unwrap_err(), CacheError::ZeroCapacity);
    assert_eq!(
        LruCache::<u8, u8>::builder().capacity(3).weigher(|_, _| 1).build().unwrap_err(),
        CacheError::WeigherWithoutMaxWeight
    );
    assert_eq!(LruCache::<u8, u8>::builder().build().unwrap_err(), CacheError::ZeroCapacity);
    assert_eq!(
        sysblocks_lru_cache::ConcurrentLruCache::<u8, u8>::with_shards(4, 0).unwrap_err(),
        CacheError::ZeroShards
    );
    assert_eq!(
        CacheError::EntryTooHeavy { weight: 9, max_weight: 4 }.to_string(),
        "entry weighs 9, more than the cache's maximum weight of 4"
    );
}

#[test]
fn ttl_expires_on_a_manual_clock_and_listener_hears_it() {
    use std::sync::{Arc, Mutex};
    let clock = ManualClock::new();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let log = heard.clone();
    let mut cache = LruCache::builder()
        .capacity(10)
        .record_stats()
        .time_to_live(Duration::from_secs(10))
        .clock(clock.clone())
        .eviction_listener(move |k: &&str, _: &i32, cause| log.lock().unwrap().push((*k, cause)))
        .build()
        .unwrap();
    cache.insert("a", 1);
    cache.insert_with_ttl("b", 2, Duration::from_secs(30));
    clock.advance(Duration::from_secs(10));
    assert_eq!(cache.get(&"a"), None, "expired at exactly its time to live");
    assert_eq!(cache.get(&"b"), Some(&2));
    clock.advance(Duration::from_secs(20));
    cache.purge_expired();
    assert!(cache.is_empty());
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.expirations), (1, 1, 2));
    use sysblocks_lru_cache::RemovalCause::Expired;
    assert_eq!(*heard.lock().unwrap(), [("a", Expired), ("b", Expired)]);
}

/// A count-bounded cache whose entries gain times to live mid-life (so
/// that expiries start being kept while slots are in use) decides every
/// operation as a plain model does: a list, most recently used first, of
/// key, value and expiry.
#[derive(Default)]
struct TtlModel {
    entries: Vec<(u8, u16, Option<u64>)>,
}

impl TtlModel {
    fn purge(&mut self, now: u64) {
        self.entries.retain(|&(_, _, at)| at.is_none_or(|at| now < at));
    }

    fn insert(
        &mut self,
        cap: usize,
        now: u64,
        k: u8,
        v: u16,
        at: Option<u64>,
    ) -> Option<(u8, u16)> {
        self.purge(now);
        let out = if let Some(i) = self.entries.iter().position(|e| e.0 == k) {
            let (_, old, _) = self.entries.remove(i);
            Some((k, old))
        } else if self.entries.len() == cap {
            self.entries.pop().map(|(k, v, _)| (k, v))
        } else {
            None
        };
        self.entries.insert(0, (k, v, at));
        out
    }

    fn get(&mut self, now: u64, k: u8) -> Option<u16> {
        let i = self.entries.iter().position(|e| e.0 == k)?;
        let entry = self.entries.remove(i);
        if entry.2.is_some_and(|at| now >= at) {
            return None;
        }
        self.entries.insert(0, entry);
        Some(entry.1)
    }

    fn live(&self, now: u64) -> Vec<(u8, u16)> {
        let live = self.entries.iter().filter(|e| e.2.is_none_or(|at| now < at));
        live.map(|&(k, v, _)| (k, v)).collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn count_bounded_cache_with_times_to_live_matches_a_model(
        ops in proptest::collection::vec(op(), 1..300),
        cap in 1usize..12,
    ) {
        let clock = ManualClock::new();
        let mut cache = LruCache::builder().capacity(cap).clock(clock.clone()).build().unwrap();
        let mut model = TtlModel::default();
        // The shared operations, read for this model: a peek is checked as
        // a get, and a resize or a pop of the tail as a purge.
        for op in ops {
            let now = sysblocks_lru_cache::Clock::now_nanos(&clock);
            match op {
                Op::Put(k, v) => {
                    prop_assert_eq!(cache.insert(k, v), model.insert(cap, now, k, v, None));
                }
                Op::PutTtl(k, v, t) => {
                    let at = now + u64::from(t) * 1_000_000_000;
                    let back = cache.insert_with_ttl(k, v, Duration::from_secs(u64::from(t)));
                    prop_assert_eq!(back, model.insert(cap, now, k, v, Some(at)));
                }
                Op::Get(k) | Op::Peek(k) => {
                    prop_assert_eq!(cache.get(&k).copied(), model.get(now, k));
                }
                Op::Remove(k) => {
                    let live = model.get(now, k).map(|v| (k, v));
                    model.entries.retain(|e| e.0 != k);
                    prop_assert_eq!(cache.remove(&k), live);
                }
                Op::Advance(s) => clock.advance(Duration::from_secs(u64::from(s))),
                Op::Purge | Op::Resize(_) | Op::PopLru => {
                    cache.purge_expired();
                    model.purge(now);
                }
            }
            let now = sysblocks_lru_cache::Clock::now_nanos(&clock);
            let seen: Vec<(u8, u16)> = cache.iter().map(|(k, v)| (*k, *v)).collect();
            prop_assert_eq!(seen, model.live(now));
        }
    }
}
