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
                cache.get_with(1, || {
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

/// A failing loader: its error goes to a caller waiting on the same load
/// and is not cached. Each caller's loader fails with its own error, so a
/// shared error is visible: the two callers got the same error exactly when
/// one loader ran.
#[test]
fn loader_errors_are_shared_and_not_cached() {
    loom::model(|| {
        let cache = Arc::new(ConcurrentLruCache::<u8, u8>::with_shards(4, 1).unwrap());
        let runs = Arc::new(AtomicUsize::new(0));
        let spawn = |cache: Arc<ConcurrentLruCache<u8, u8>>, runs: Arc<AtomicUsize>, e: u8| {
            thread::spawn(move || {
                cache.try_get_with(1, || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    Err::<u8, u8>(e)
                })
            })
        };
        let a = spawn(cache.clone(), runs.clone(), 7);
        let b = spawn(cache.clone(), runs.clone(), 8);
        let (ea, eb) = (*a.join().unwrap().unwrap_err(), *b.join().unwrap().unwrap_err());
        let runs = runs.load(Ordering::SeqCst);
        if ea == eb {
            assert_eq!(runs, 1, "a shared error comes from one load");
        } else {
            assert_eq!((ea, eb, runs), (7, 8, 2), "unshared: each ran its own loader");
        }
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
        let loader = thread::spawn(move || c.get_with(1, || 10));
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
                c.get_with(1, || panic!("loader failed"))
            }))
            .ok()
        });
        let got = cache.get_with(1, || 5);
        assert_eq!(got, 5);
        // The panicking caller either panicked or found the waiter's value.
        assert!(matches!(panicker.join().unwrap(), None | Some(5)));
        assert_eq!(cache.get(&1), Some(5));
    });
}

/// The async waiter path: one caller loads synchronously, one awaits the
/// same key (registering a waker). The loader runs once, whoever leads,
/// and both get its value.
#[test]
fn an_async_waiter_is_woken_by_a_sync_load() {
    loom::model(|| {
        let cache = Arc::new(ConcurrentLruCache::<u8, u8>::with_shards(4, 1).unwrap());
        let runs = Arc::new(AtomicUsize::new(0));
        let (c, r) = (cache.clone(), runs.clone());
        let sync = thread::spawn(move || {
            c.get_with(1, || {
                r.fetch_add(1, Ordering::SeqCst);
                10
            })
        });
        let r = runs.clone();
        let got = loom::future::block_on(cache.get_with_async(1, async move {
            r.fetch_add(1, Ordering::SeqCst);
            20
        }));
        let other = sync.join().unwrap();
        assert_eq!(got, other, "both callers get the one load's value");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(cache.get(&1), Some(got));
    });
}

/// A loader future dropped mid-load (a cancelled request) hands the load
/// to a waiter, which loads instead; nobody hangs.
#[test]
fn a_cancelled_loader_hands_over_to_a_waiter() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    loom::model(|| {
        let cache = Arc::new(ConcurrentLruCache::<u8, u8>::with_shards(4, 1).unwrap());
        let c = cache.clone();
        let cancelled = thread::spawn(move || {
            let load = c.get_with_async(1, std::future::pending::<u8>());
            let mut load = std::pin::pin!(load);
            let mut cx = Context::from_waker(Waker::noop());
            // One poll starts the load (or queues behind the other caller's);
            // then the future is dropped.
            match load.as_mut().poll(&mut cx) {
                Poll::Ready(v) => Some(v),
                Poll::Pending => None,
            }
        });
        let got = cache.get_with(1, || 5);
        let finished = cancelled.join().unwrap();
        assert_eq!(got, 5);
        // The cancelled caller finished only by finding the other's value.
        assert!(matches!(finished, None | Some(5)), "{finished:?}");
        assert_eq!(cache.get(&1), Some(5));
    });
}
