//! Single flight: concurrent callers for one key run the loader once; errors
//! reach every waiter and are not cached; a panicking or cancelled loader
//! does not wedge the key.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use sysblocks_lru_cache::ConcurrentLruCache;

const CALLERS: usize = 64;

#[test]
fn sixty_four_callers_one_loader_run() {
    let cache = ConcurrentLruCache::<u64, Arc<String>>::new(100).unwrap();
    let runs = AtomicUsize::new(0);
    let arrived = AtomicUsize::new(0);
    let start = Barrier::new(CALLERS);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..CALLERS)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    arrived.fetch_add(1, Ordering::SeqCst);
                    cache.get_with(7, || {
                        runs.fetch_add(1, Ordering::SeqCst);
                        // Hold the load open until every caller has arrived,
                        // so they really overlap with it.
                        while arrived.load(Ordering::SeqCst) < CALLERS {
                            std::thread::yield_now();
                        }
                        Arc::new("seven".to_string())
                    })
                })
            })
            .collect();
        for h in handles {
            assert_eq!(*h.join().unwrap(), "seven");
        }
    });
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(cache.get(&7).as_deref().map(String::as_str), Some("seven"));
}

#[test]
fn loader_error_reaches_every_caller_and_is_not_cached() {
    let cache = ConcurrentLruCache::<u64, u64>::new(100).unwrap();
    let runs = AtomicUsize::new(0);
    let start = Barrier::new(CALLERS);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..CALLERS)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    cache.try_get_with(1, || {
                        runs.fetch_add(1, Ordering::SeqCst);
                        // Fail only once every other caller waits on this
                        // load, so that all of them must share the error.
                        while cache.waiters(&1) < CALLERS - 1 {
                            std::thread::yield_now();
                        }
                        Err::<u64, _>("backend down")
                    })
                })
            })
            .collect();
        for h in handles {
            assert_eq!(*h.join().unwrap().unwrap_err(), "backend down");
        }
    });
    assert_eq!(runs.load(Ordering::SeqCst), 1, "one load, its error shared");
    assert!(!cache.contains(&1), "an error is never cached");
    // The next call loads again and succeeds.
    assert_eq!(cache.try_get_with(1, || Ok::<_, &str>(5)), Ok(5));
    assert_eq!(cache.get(&1), Some(5));
}

#[test]
fn panicking_loader_does_not_wedge_the_key() {
    let cache = ConcurrentLruCache::<u64, u64>::new(100).unwrap();
    let loading = Barrier::new(2);
    std::thread::scope(|s| {
        let panicker = s.spawn(|| {
            cache.get_with(9, || {
                loading.wait();
                // Panic only once the waiter is queued behind this load.
                while cache.waiters(&9) < 1 {
                    std::thread::yield_now();
                }
                panic!("loader failed");
            })
        });
        loading.wait();
        let waiter = s.spawn(|| cache.get_with(9, || 99));
        assert!(panicker.join().is_err(), "the panic goes to the loader's caller");
        assert_eq!(waiter.join().unwrap(), 99, "a waiter loads instead");
    });
    assert_eq!(cache.get(&9), Some(99));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_callers_share_one_load() {
    let cache = Arc::new(ConcurrentLruCache::<u64, u64>::new(100).unwrap());
    let runs = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    for _ in 0..CALLERS {
        let (cache, runs, gate) = (cache.clone(), runs.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            cache
                .try_get_with_async(3, async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    gate.notified().await;
                    Ok::<u64, std::io::Error>(33)
                })
                .await
        }));
    }
    // Release the loader once it is running (notify_one stores a permit if
    // it is not waiting yet).
    gate.notify_one();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 33);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loader_decides_whether_and_how_long_its_value_is_kept() {
    let clock = sysblocks_lru_cache::ManualClock::new();
    let cache = Arc::new(
        ConcurrentLruCache::<u64, u64>::builder()
            .capacity(100)
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    let runs = Arc::new(AtomicUsize::new(0));
    // Not to be kept: the callers that came at once share the one load,
    // and the next caller loads again.
    for round in 0..2 {
        let gate = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
        for _ in 0..CALLERS {
            let (cache, runs, gate) = (cache.clone(), runs.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .try_get_with_ttl_async(5, async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        gate.notified().await;
                        Ok::<_, std::io::Error>((55, None))
                    })
                    .await
            }));
        }
        while cache.waiters(&5) < CALLERS - 1 {
            tokio::task::yield_now().await;
        }
        gate.notify_one();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), 55);
        }
        assert_eq!(runs.load(Ordering::SeqCst), round + 1, "one load per round");
        assert_eq!(cache.get(&5), None, "not kept");
    }
    // Kept for its own time to live.
    let ttl = std::time::Duration::from_secs(10);
    let v =
        cache.try_get_with_ttl_async(6, async { Ok::<_, std::io::Error>((66, Some(ttl))) }).await;
    assert_eq!(v.unwrap(), 66);
    clock.advance(std::time::Duration::from_secs(9));
    assert_eq!(cache.get(&6), Some(66));
    clock.advance(std::time::Duration::from_secs(2));
    assert_eq!(cache.get(&6), None, "expired after its own ttl");
}

#[tokio::test]
async fn cancelled_loader_hands_over_to_a_waiter() {
    let cache = Arc::new(ConcurrentLruCache::<u64, u64>::new(100).unwrap());
    let started = Arc::new(tokio::sync::Notify::new());
    let leader = {
        let (cache, started) = (cache.clone(), started.clone());
        tokio::spawn(async move {
            cache
                .try_get_with_async(4, async move {
                    started.notify_one();
                    std::future::pending::<Result<u64, std::io::Error>>().await
                })
                .await
        })
    };
    started.notified().await;
    let waiter = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.get_with_async(4, async { 44 }).await })
    };
    // Cancel the leader only once the waiter is queued behind it.
    while cache.waiters(&4) < 1 {
        tokio::task::yield_now().await;
    }
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    assert_eq!(waiter.await.unwrap(), 44);
    assert_eq!(cache.get(&4), Some(44));
}

#[test]
fn shards_never_hold_more_than_the_capacity() {
    let cache = ConcurrentLruCache::<u64, u64>::with_shards(100, 8).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let cache = &cache;
            s.spawn(move || {
                for i in 0..10_000 {
                    cache.insert(t * 100_000 + i, i);
                    assert!(cache.len() <= 100);
                }
            });
        }
    });
    assert_eq!(cache.len(), 100);
}

#[test]
fn stats_count_coalesced_waits_apart_from_misses() {
    const WAITERS: usize = 32;
    let cache = ConcurrentLruCache::<u64, u64>::new(100).unwrap();
    let (started_tx, started) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let cache = &cache;
        let leader = s.spawn(move || {
            cache.get_with(5, || {
                started_tx.send(()).unwrap();
                while cache.waiters(&5) < WAITERS {
                    std::thread::yield_now();
                }
                55
            })
        });
        started.recv().unwrap(); // the flight exists: everyone else waits on it
        let waiters: Vec<_> = (0..WAITERS).map(|_| s.spawn(|| cache.get_with(5, || 0))).collect();
        assert_eq!(leader.join().unwrap(), 55);
        for w in waiters {
            assert_eq!(w.join().unwrap(), 55);
        }
    });
    assert_eq!(cache.get_with(5, || 0), 55, "a hit now");
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.coalesced), (1, 1, WAITERS as u64), "{stats:?}");
}
