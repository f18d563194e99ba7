//! Loom models of the concurrent cache: every interleaving of the
//! single-flight path and of shard operations.
//!
//! Run: `RUSTFLAGS="--cfg sysblocks_loom" LOOM_MAX_PREEMPTIONS=2 cargo test
//! --release -p sysblocks-lru-cache --test loom`
#![cfg(sysblocks_loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use sysblocks_lru_cache::ConcurrentLruCache;

/// Two callers, one key: the loader runs exactly once and both get its value.
#[test]
fn single_flight_runs_the_loader_once() {
    loom::model(|| {
        let cache = Arc::new(ConcurrentLruCache::<u8, u8>::with_shards(4, 1).unwrap());
        let runs = Arc::new(AtomicUsize::new(0));
        let spawn = |cache: Arc<ConcurrentLruCache<u8, u8>>, runs: Arc<AtomicUsize>| {
            thread::spawn(move || {
                cache.get_or_insert_with(1, || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    10
                })
            })
        };
        let a = spawn(cache.clone(), runs.clone());
        let b = spawn(cache.clone(), runs.clone());
        assert_eq!(a.join().unwrap(), 10);
        assert_eq!(b.join().unwrap(), 10);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(cache.get(&1), Some(10));
    });
}

/// A failing loader: each caller gets an error or (if it came after the
/// failure) runs its own loader; nothing is cached and nobody hangs.
#[test]
fn loader_errors_are_shared_and_not_cached() {
    loom::model(|| {
        let cache = Arc::new(ConcurrentLruCache::<u8, u8>::with_shards(4, 1).unwrap());
        let spawn = |cache: Arc<ConcurrentLruCache<u8, u8>>| {
            thread::spawn(move || cache.try_get_or_insert_with(1, || Err::<u8, u8>(7)))
        };
        let a = spawn(cache.clone());
        let b = spawn(cache.clone());
        assert_eq!(*a.join().unwrap().unwrap_err(), 7);
        assert_eq!(*b.join().unwrap().unwrap_err(), 7);
        assert!(!cache.contains(&1));
    });
}

/// Inserts and removes racing on one shard keep the count consistent.
#[test]
fn shard_operations_keep_the_cache_consistent() {
    loom::model(|| {
        let cache = Arc::new(ConcurrentLruCache::<u8, u8>::with_shards(2, 1).unwrap());
        let c1 = cache.clone();
        let t1 = thread::spawn(move || {
            c1.insert(1, 1);
            c1.insert(2, 2);
        });
        let c2 = cache.clone();
        let t2 = thread::spawn(move || {
            c2.insert(3, 3);
            c2.remove(&1)
        });
        t1.join().unwrap();
        let removed = t2.join().unwrap();
        assert!(cache.len() <= 2);
        assert!(cache.contains(&2));
        if removed.is_some() {
            assert!(!cache.contains(&1));
        }
    });
}

/// A write racing a load of the same key: whatever the interleaving, the
/// write is what stays cached (it is newer than whatever the loader read),
/// and the loader's caller gets a value.
#[test]
fn a_write_during_a_load_wins() {
    loom::model(|| {
        let cache = Arc::new(ConcurrentLruCache::<u8, u8>::with_shards(4, 1).unwrap());
        let c = cache.clone();
        let loader = thread::spawn(move || c.get_or_insert_with(1, || 10));
        cache.insert(1, 20);
        let got = loader.join().unwrap();
        assert!(got == 10 || got == 20);
        assert_eq!(cache.get(&1), Some(20), "the load overwrote a newer write");
    });
}

/// A loader that panics hands the load to the waiter: it loads instead, and
/// nobody hangs.
#[test]
fn a_panicking_loader_hands_over_to_a_waiter() {
    loom::model(|| {
        let cache = Arc::new(ConcurrentLruCache::<u8, u8>::with_shards(4, 1).unwrap());
        let c = cache.clone();
        let panicker = thread::spawn(move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                c.get_or_insert_with(1, || panic!("loader failed"))
            }))
            .ok()
        });
        let got = cache.get_or_insert_with(1, || 5);
        assert_eq!(got, 5);
        // The panicking caller either panicked or found the waiter's value.
        assert!(matches!(panicker.join().unwrap(), None | Some(5)));
        assert_eq!(cache.get(&1), Some(5));
    });
}
