//! BatchedCounter: write-behind that is exact, survives a Redis outage, and
//! never applies a flush twice.
#![cfg(feature = "redis")]

use std::sync::Arc;
use std::time::Duration;

use sysblocks_sharded_counter::{
    BatchedCounter, CounterError, KeyedBatchConfig, KeyedBatchedCounter, RedisConnection,
    RedisShardedCounter,
};
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

/// Counters by name: the set grows as names arrive, every name's total is
/// exact after the flush, on a standalone server and on the Cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_counters_are_exact_after_flush() {
    let redis = Redis::new();
    let cluster = Cluster::new();
    let standalone: RedisConnection = redis.connection_manager().await.into();
    let clustered: RedisConnection = cluster.connection().await.into();
    for (conn, prefix) in [(standalone, redis.key("pages:")), (clustered, cluster.key("pages:"))] {
        let config = KeyedBatchConfig { interval: Duration::from_millis(2), ..Default::default() };
        let keyed = Arc::new(KeyedBatchedCounter::start(conn, &prefix, config).unwrap());
        let paths: Vec<String> = (0..50).map(|i| format!("/page/{i}")).collect();
        let mut tasks = Vec::new();
        for t in 0..4u64 {
            let (keyed, paths) = (keyed.clone(), paths.clone());
            tasks.push(tokio::spawn(async move {
                // Task t adds i+1 to page i, t+1 times over.
                for _ in 0..=t {
                    for (i, path) in paths.iter().enumerate() {
                        keyed.add(path, i as i64 + 1).unwrap();
                    }
                    tokio::task::yield_now().await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        keyed.flush().await.unwrap();
        assert_eq!(keyed.unflushed().await, 0);
        assert_eq!(keyed.tracked(), 0, "flushed names are forgotten");
        // 1 + 2 + 3 + 4 = 10 rounds in all.
        for (i, path) in paths.iter().enumerate() {
            assert_eq!(keyed.get(path).await.unwrap(), 10 * (i as i64 + 1), "{path}");
        }
        assert_eq!(keyed.get("/never").await.unwrap(), 0);
    }
}

/// At most `max_keys` names wait for a flush: one more is refused, nothing
/// of it counted; after the flush the names are free again. Bad names get
/// typed errors.
#[tokio::test]
async fn keyed_counters_are_bounded_and_refuse_bad_names() {
    let redis = Redis::new();
    let config =
        KeyedBatchConfig { interval: Duration::from_secs(3600), max_keys: 2, ..Default::default() };
    let prefix = redis.key("bounded:");
    let keyed =
        KeyedBatchedCounter::start(redis.connection_manager().await, &prefix, config).unwrap();
    keyed.add("a", 1).unwrap();
    keyed.add("b", 1).unwrap();
    keyed.add("a", 5).unwrap(); // a known name is always accepted
    assert!(matches!(keyed.add("c", 1), Err(CounterError::TooManyKeys { max: 2 })));
    assert_eq!(keyed.tracked(), 2);
    keyed.flush().await.unwrap();
    assert_eq!(keyed.tracked(), 0);
    keyed.add("c", 1).unwrap();
    keyed.flush().await.unwrap();
    assert_eq!(
        [
            keyed.get("a").await.unwrap(),
            keyed.get("b").await.unwrap(),
            keyed.get("c").await.unwrap()
        ],
        [6, 1, 1]
    );
    assert!(matches!(keyed.add("{tag}", 1), Err(CounterError::HashTagInName { .. })));
    assert!(matches!(keyed.add("x", i64::MAX), Ok(())));
    assert!(matches!(keyed.add("x", 1), Err(CounterError::Overflow { .. })));
    let conn = || async { redis.connection_manager().await };
    let zero = KeyedBatchConfig { max_keys: 0, ..Default::default() };
    assert!(matches!(
        KeyedBatchedCounter::start(conn().await, "p:", zero),
        Err(CounterError::ZeroFlushInterval)
    ));
    let no_shards = KeyedBatchConfig { shards: 0, ..Default::default() };
    assert!(matches!(
        KeyedBatchedCounter::start(conn().await, "p:", no_shards),
        Err(CounterError::ZeroShards)
    ));
    assert!(matches!(
        KeyedBatchedCounter::start(conn().await, "{p}:", KeyedBatchConfig::default()),
        Err(CounterError::HashTagInName { .. })
    ));
    let empty = KeyedBatchedCounter::start(conn().await, "", KeyedBatchConfig::default()).unwrap();
    assert!(matches!(empty.add("", 1), Err(CounterError::EmptyName)));
}

/// Redis is killed while names keep arriving: flushes fail, the deltas wait
/// (bounded: one pending delta per name), and once Redis is back every
/// total is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_counters_survive_an_outage() {
    let mut redis = Redis::private_persistent();
    let prefix = redis.key("outage:");
    let config = KeyedBatchConfig { interval: Duration::from_millis(5), ..Default::default() };
    let mut keyed =
        KeyedBatchedCounter::start(redis.connection_manager().await, &prefix, config).unwrap();
    for i in 0..20 {
        keyed.add(&format!("k{}", i % 5), 1).unwrap();
    }
    keyed.flush().await.unwrap();
    redis.server().unwrap().stop();
    for i in 0..20 {
        keyed.add(&format!("k{}", i % 7), 1).unwrap();
    }
    assert!(keyed.flush().await.is_err());
    assert!(keyed.failed_flushes() >= 1);
    assert_eq!(keyed.unflushed().await, 20);
    redis.server().unwrap().restart();
    // The manager reconnects with its own backoff: retry for up to 30 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while keyed.flush().await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "flushing resumes once Redis is back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    keyed.shutdown().await.unwrap();
    assert_eq!(keyed.unflushed().await, 0);
    let mut total = 0;
    for i in 0..7 {
        total += keyed.get(&format!("k{i}")).await.unwrap();
    }
    assert_eq!(total, 40);
    assert_eq!(keyed.get("k0").await.unwrap(), 4 + 3);
}
