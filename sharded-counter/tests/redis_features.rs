//! Reads (cached, approximate, aggregated), resharding under load, hints,
//! key layout and bad input, on real Redis.
#![cfg(feature = "redis")]

use std::sync::Arc;
use std::time::Duration;

use sysblocks_sharded_counter::{
    CounterError, RedisShardedCounter, layout_key, shard_for_hint, shard_key, total_key,
};
use sysblocks_testkit::{Cluster, Redis};

#[test]
fn key_layout_is_stable() {
    assert_eq!(shard_key("video:1:views", 0), "{video:1:views:0}");
    assert_eq!(layout_key("video:1:views"), "{video:1:views}:layout");
    assert_eq!(total_key("video:1:views"), "{video:1:views}:total");
    // FNV-1a 64 of the hint, modulo the shard count: pinned values.
    assert_eq!(shard_for_hint(b"", 1_000_003), (0xcbf2_9ce4_8422_2325u64 % 1_000_003) as u32);
    assert_eq!(shard_for_hint(b"a", 1 << 31), (0xaf63_dc4c_8601_ec8cu64 % (1 << 31)) as u32);
}

#[tokio::test]
async fn bad_input_gives_typed_errors() {
    let redis = Redis::new();
    let conn = redis.connection_manager().await;
    let open = |name: String, shards| {
        let conn = conn.clone();
        async move { RedisShardedCounter::open(conn, &name, shards).await }
    };
    assert!(matches!(open(redis.key("a"), 0).await, Err(CounterError::ZeroShards)));
    assert!(matches!(open(redis.key("a"), 5000).await, Err(CounterError::TooManyShards { .. })));
    assert!(matches!(open(String::new(), 4).await, Err(CounterError::EmptyName)));
    assert!(matches!(open(redis.key("{tag}"), 4).await, Err(CounterError::HashTagInName { .. })));
    let counter = open(redis.key("b"), 4).await.unwrap();
    assert!(matches!(
        counter.get_approx(0).await,
        Err(CounterError::BadSample { sample: 0, shards: 4 })
    ));
    assert!(matches!(
        counter.get_approx(5).await,
        Err(CounterError::BadSample { sample: 5, shards: 4 })
    ));
    assert!(matches!(counter.incr(-1).await, Err(CounterError::NegativeIncrement { by: -1 })));
    let gauge = open(redis.key("c"), 4).await.unwrap().allow_decrements();
    gauge.incr(5).await.unwrap();
    gauge.incr(-7).await.unwrap();
    assert_eq!(gauge.get().await.unwrap(), -2);
    assert_eq!(
        CounterError::BadSample { sample: 9, shards: 4 }.to_string(),
        "sample must be between 1 and the shard count 4 (got 9)"
    );
}

#[tokio::test]
async fn cached_approximate_and_aggregated_reads() {
    let redis = Redis::new();
    let conn = redis.connection_manager().await;
    let counter = Arc::new(RedisShardedCounter::open(conn, &redis.key("reads"), 32).await.unwrap());
    for _ in 0..20_000 {
        counter.incr(1).await.unwrap();
    }
    assert_eq!(counter.get().await.unwrap(), 20_000);
    counter.incr(1).await.unwrap();
    // Within max_age the cached total is returned, not a fresh read.
    assert_eq!(counter.get_cached(Duration::from_secs(3600)).await.unwrap(), 20_000);
    assert_eq!(counter.get_cached(Duration::ZERO).await.unwrap(), 20_001);
    // Sampling 16 of 32 shards: relative standard error about
    // sqrt((32 - 16) / (16 * 20001 / 32)) = 4%; allow five of them.
    let estimate = counter.get_approx(16).await.unwrap();
    assert!((estimate - 20_001).abs() < 4_000, "estimate {estimate}");
    assert_eq!(counter.get_approx(32).await.unwrap(), 20_001, "sampling every shard is exact");
    // The aggregator writes the total key; its watch channel says when.
    let aggregator = counter.spawn_aggregator(Duration::from_millis(10));
    let mut written = aggregator.written();
    written.wait_for(|total| *total == Some(20_001)).await.unwrap();
    aggregator.stop();
    assert_eq!(counter.get_total_key().await.unwrap(), Some(20_001));
    counter.delete().await.unwrap();
    assert_eq!(counter.get().await.unwrap(), 0);
}

/// The aggregator takes any interval: a zero one (which tokio's timer
/// refuses) once killed its task before its first write, so its watch
/// channel closed without a total.
#[tokio::test]
async fn the_aggregator_takes_any_interval() {
    let redis = Redis::new();
    let conn = redis.connection_manager().await;
    let counter = Arc::new(RedisShardedCounter::open(conn, &redis.key("agg"), 4).await.unwrap());
    counter.incr(7).await.unwrap();
    for interval in [Duration::ZERO, Duration::MAX] {
        let aggregator = counter.spawn_aggregator(interval);
        let mut written = aggregator.written();
        written.wait_for(|total| *total == Some(7)).await.expect("the aggregator wrote");
        aggregator.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reshard_while_incrementing_loses_nothing() {
    let cluster = Cluster::new();
    let name = cluster.key("reshard");
    let a =
        Arc::new(RedisShardedCounter::open(cluster.connection().await, &name, 8).await.unwrap());
    // A second handle (another process, say) keeps its own view of the layout.
    let b =
        Arc::new(RedisShardedCounter::open(cluster.connection().await, &name, 8).await.unwrap());
    let writers: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .map(|c| {
            tokio::spawn(async move {
                for i in 0..5_000u32 {
                    c.incr_with_hint(&i.to_le_bytes(), 1).await.unwrap();
                }
            })
        })
        .collect();
    for shards in [16, 3, 1, 12] {
        a.reshard(shards).await.unwrap();
        tokio::task::yield_now().await;
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(a.shard_count(), 12);
    assert_eq!(a.get().await.unwrap(), 10_000);
    assert_eq!(b.get().await.unwrap(), 10_000, "the other handle sees every shard too");
    assert_eq!(b.shard_count(), 12, "and picked up the new layout");
}
