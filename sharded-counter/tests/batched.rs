//! BatchedCounter: write-behind that is exact, survives a Redis outage, and
//! never applies a flush twice.
#![cfg(feature = "redis")]

use std::sync::Arc;
use std::time::Duration;

use sysblocks_sharded_counter::{BatchedCounter, CounterError, RedisShardedCounter};
use sysblocks_testkit::{Cluster, Redis};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_add_and_the_total_is_exact() {
    let cluster = Cluster::new();
    let target =
        RedisShardedCounter::open(cluster.connection().await, &cluster.key("b"), 8).await.unwrap();
    let batched =
        Arc::new(BatchedCounter::start(target, Duration::from_millis(5), 10_000).unwrap());
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let b = batched.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..100_000 {
                b.add(1);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    batched.flush().await.unwrap();
    assert_eq!(batched.unflushed().await, 0);
    assert_eq!(batched.target().get().await.unwrap(), 1_600_000);
}

#[tokio::test]
async fn zero_interval_or_threshold_is_an_error() {
    let redis = Redis::new();
    let mk = || async {
        RedisShardedCounter::open(redis.connection_manager().await, &redis.key("z"), 2)
            .await
            .unwrap()
    };
    assert!(matches!(
        BatchedCounter::start(mk().await, Duration::ZERO, 1),
        Err(CounterError::ZeroFlushInterval)
    ));
    assert!(matches!(
        BatchedCounter::start(mk().await, Duration::from_secs(1), 0),
        Err(CounterError::ZeroFlushInterval)
    ));
}

/// Redis is killed while adds continue: flushes fail (and are logged), the
/// adds wait locally, and once Redis is back the total is exact. The server
/// keeps an fsync'd append-only file, so what it acknowledged survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_loses_nothing() {
    let mut redis = Redis::private_persistent();
    let conn = redis.connection_manager().await;
    let target = RedisShardedCounter::open(conn, &redis.key("outage"), 4).await.unwrap();
    let mut batched = BatchedCounter::start(target, Duration::from_millis(2), 1_000).unwrap();
    let mut added = 0i64;
    for _ in 0..50_000 {
        batched.add(1);
        added += 1;
    }
    batched.flush().await.unwrap();

    redis.server().unwrap().stop();
    for _ in 0..50_000 {
        batched.add(1);
        added += 1;
    }
    assert!(batched.flush().await.is_err(), "a flush fails while Redis is down");
    assert!(batched.failed_flushes() >= 1);
    assert_eq!(batched.unflushed().await, 50_000, "the failed delta is kept");

    redis.server().unwrap().restart();
    for _ in 0..50_000 {
        batched.add(1);
        added += 1;
    }
    // The connection manager reconnects by itself, with its own backoff,
    // which nothing here can observe: retry the flush until it succeeds,
    // for at most 30 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut flushed = false;
    while tokio::time::Instant::now() < deadline {
        if batched.flush().await.is_ok() {
            flushed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(flushed, "flushing resumes once Redis is back");
    batched.shutdown().await.unwrap();
    assert_eq!(batched.target().get().await.unwrap(), added);
}

/// Several counters behind one batcher: every flush carries all of their
/// deltas together, and each total is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_counters_flush_together_and_stay_exact() {
    let cluster = Cluster::new();
    let mut targets = Vec::new();
    for name in ["views", "likes", "shares"] {
        let conn = cluster.connection().await;
        targets.push(RedisShardedCounter::open(conn, &cluster.key(name), 4).await.unwrap());
    }
    let mut batched = BatchedCounter::start_many(targets, Duration::from_millis(3), 5_000).unwrap();
    let handles: Vec<_> = (0..3).map(|i| batched.handle(i).unwrap()).collect();
    assert!(batched.handle(3).is_none());
    let mut tasks = Vec::new();
    for (i, handle) in handles.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for _ in 0..(i + 1) * 20_000 {
                handle.add(1);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    batched.shutdown().await.unwrap();
    let totals: Vec<i64> = {
        let mut totals = Vec::new();
        for counter in batched.targets() {
            totals.push(counter.get().await.unwrap());
        }
        totals
    };
    assert_eq!(totals, [20_000, 40_000, 60_000]);
    assert!(matches!(
        BatchedCounter::start_many(Vec::new(), Duration::from_secs(1), 1),
        Err(CounterError::NoCounters)
    ));
}
