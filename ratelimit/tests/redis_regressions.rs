//! Regression tests for defects found by review of RedisLimiter: one bad
//! decision failing its whole batch open, a refund of cost 0, a hung
//! Cluster node stalling every key, colliding key encodings, and a
//! fail-closed denial outliving the outage.
#![cfg(feature = "redis")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use sysblocks_ratelimit::{
    Algorithm, FailurePolicy, Limit, LimitError, Rate, RedisConnection, RedisLimiter,
};
use sysblocks_testkit::{Cluster, Redis};

fn limit(algorithm: Algorithm) -> Limit {
    let limit = Limit::new(algorithm, Rate::per_hour(1).unwrap());
    match algorithm {
        Algorithm::TokenBucket | Algorithm::LeakyBucket => limit.with_burst(1),
        _ => limit,
    }
}

/// Many keys exhausted, one key of the wrong Redis type: concurrent checks
/// (batched together) are denied by Redis, and only the bad key fails open.
async fn a_bad_key_fails_alone(connection: impl Into<RedisConnection>, prefix: &str) {
    let connection: RedisConnection = connection.into();
    for algorithm in Algorithm::ALL {
        let prefix = format!("{prefix}{algorithm:?}:");
        let limiter = Arc::new(
            RedisLimiter::new(connection.clone(), limit(algorithm), &prefix)
                .unwrap()
                .with_policy(FailurePolicy::Open)
                .with_shortcut(0)
                .with_timeout(Duration::from_secs(10)),
        );
        let keys: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
        for key in &keys {
            assert!(limiter.check(key).await.unwrap().allowed);
        }
        // A key of the other type: a hash for the bucket's string, a string
        // for the windows' hash or sorted set.
        let bad = limiter.redis_key("bad");
        let cmd = match algorithm {
            Algorithm::TokenBucket | Algorithm::LeakyBucket => {
                redis::cmd("HSET").arg(&bad).arg("f").arg("v").clone()
            }
            _ => redis::cmd("SET").arg(&bad).arg("not a hash").clone(),
        };
        let _: () = cmd.query_async(&mut connection.clone()).await.unwrap();
        let mut tasks = Vec::new();
        for key in keys.iter().cloned().chain(std::iter::once("bad".to_string())) {
            let limiter = limiter.clone();
            tasks.push(tokio::spawn(async move { (key.clone(), limiter.check(&key).await) }));
        }
        for task in tasks {
            let (key, decision) = task.await.unwrap();
            let decision = decision.unwrap();
            if key == "bad" {
                assert!(decision.allowed, "{algorithm:?}: the failing key gets the policy");
            } else {
                assert!(
                    !decision.allowed,
                    "{algorithm:?}: {key} admitted by another key's failure"
                );
            }
        }
        assert_eq!(limiter.fallbacks(), 1, "{algorithm:?}: one fallback, for the bad key only");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_decision_does_not_fail_its_batch() {
    let redis = Redis::new();
    a_bad_key_fails_alone(redis.connection_manager().await, &redis.key("iso:")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_decision_does_not_fail_its_batch_on_the_cluster() {
    let cluster = Cluster::new();
    a_bad_key_fails_alone(cluster.connection().await, &cluster.key("iso:")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_of_cost_zero_is_a_no_op() {
    let redis = Redis::new();
    let connection = redis.connection_manager().await;
    for algorithm in Algorithm::ALL {
        let prefix = redis.key(&format!("zero:{algorithm:?}:"));
        let limiter = RedisLimiter::new(connection.clone(), limit(algorithm), &prefix)
            .unwrap()
            .with_policy(FailurePolicy::Error);
        assert!(limiter.check("k").await.unwrap().allowed);
        limiter.refund("k", 0).await.unwrap();
        limiter.refund_at("k", 1_000_000_000, 0).await.unwrap();
        assert!(!limiter.check("k").await.unwrap().allowed, "{algorithm:?}: nothing given back");
        // A refund above the limit gives back the limit, no more.
        limiter.refund("k", u64::MAX).await.unwrap();
        assert!(limiter.check("k").await.unwrap().allowed, "{algorithm:?}");
        assert!(!limiter.check("k").await.unwrap().allowed, "{algorithm:?}");
    }
}

/// A sliding log's denial replies with the entries up to the one whose
/// leaving makes room: 1,200 of them here, 2,400 numbers, more than the
/// script packs in one piece. The decision equals the in-process log's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denial_that_lists_thousands_of_log_entries_decides_as_in_process() {
    use sysblocks_ratelimit::{Limiter, ManualClock};
    let redis = Redis::new();
    let connection = redis.connection_manager().await;
    let limit =
        Limit::new(Algorithm::SlidingWindowLog, Rate::new(1_200, Duration::from_secs(60)).unwrap());
    let remote = RedisLimiter::new(connection, limit, &redis.key("long-log:"))
        .unwrap()
        .with_policy(FailurePolicy::Error);
    let local = limit.build_with_clock(ManualClock::new()).unwrap();
    // 1,200 entries of cost 1, a microsecond apart, at the caller's times.
    let start = 1_000_000_000u64;
    for i in 0..1_200u64 {
        let now = start + i * 1_000;
        assert!(local.check_n_at(now, 1).unwrap().allowed);
        assert!(remote.check_n_at("k", now, 1).await.unwrap().allowed);
    }
    let now = start + 1_200 * 1_000;
    let ours = local.check_n_at(now, 1_200).unwrap();
    let theirs = remote.check_n_at("k", now, 1_200).await.unwrap();
    assert!(!theirs.allowed);
    assert_eq!(ours, theirs);
}

#[tokio::test]
async fn key_encodings_never_collide_and_braces_in_prefixes_are_refused() {
    let redis = Redis::new();
    let connection = redis.connection_manager().await;
    let l = limit(Algorithm::TokenBucket);
    let limiter = RedisLimiter::new(connection.clone(), l, "p:").unwrap();
    let keys = ["", "\0", "}x", "\0}x", "\u{1}", "\u{1}00", "a}b", "a", "{a}", "0"];
    let encoded: std::collections::HashSet<String> =
        keys.iter().map(|k| limiter.redis_key(k)).collect();
    assert_eq!(encoded.len(), keys.len(), "two keys share a Redis key: {encoded:?}");
    for key in &encoded {
        // The hash tag is never empty, so a key's Redis keys share a slot.
        let tag = key.split_once('{').and_then(|(_, rest)| rest.split_once('}')).unwrap().0;
        assert!(!tag.is_empty(), "{key:?}");
    }
    for prefix in ["a{", "}b", "{x}:"] {
        assert!(matches!(
            RedisLimiter::new(connection.clone(), l, prefix),
            Err(LimitError::BadPrefix { .. })
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awkward_keys_work_on_the_cluster_for_the_sliding_log() {
    let cluster = Cluster::new();
    let limit = Limit::new(Algorithm::SlidingWindowLog, Rate::per_hour(2).unwrap());
    let limiter = RedisLimiter::new(cluster.connection().await, limit, &cluster.key("log:"))
        .unwrap()
        .with_policy(FailurePolicy::Error);
    for key in ["", "}x", "a}b}c", "{tag}"] {
        assert!(limiter.check(key).await.unwrap().allowed, "{key:?}");
        assert!(limiter.check(key).await.unwrap().allowed, "{key:?}");
        assert!(!limiter.check(key).await.unwrap().allowed, "{key:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_down_decisions_come_within_the_bound_and_recover() {
    let mut redis = Redis::private();
    let connection = redis.connection_manager().await;
    let bound = Duration::from_millis(100);
    let limiter = RedisLimiter::new(connection, limit(Algorithm::TokenBucket), "down:")
        .unwrap()
        .with_policy(FailurePolicy::Closed)
        .with_timeout(bound);
    assert!(limiter.check("k").await.unwrap().allowed);
    assert!(!limiter.check("k").await.unwrap().allowed);
    redis.server().unwrap().stop();
    for _ in 0..5 {
        let started = Instant::now();
        let decision = limiter.check("fresh").await.unwrap();
        // A generous bound on the promise: ten times the timeout.
        assert!(started.elapsed() < bound * 10, "a decision took {:?}", started.elapsed());
        assert!(!decision.allowed, "fail-closed");
    }
    let fallbacks = limiter.fallbacks();
    assert!(fallbacks >= 5);
    redis.server().unwrap().restart();
    // The connection manager reconnects with its own backoff; once a
    // decision comes from Redis again (no new fallback), it is exact: the
    // restarted server is empty, so "fresh" has its whole limit, and the
    // fail-closed denials were not remembered by the local shortcut.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let before = limiter.fallbacks();
        let decision = limiter.check("fresh").await.unwrap();
        if limiter.fallbacks() == before {
            assert!(decision.allowed, "a fallback denial outlived the outage");
            break;
        }
        assert!(Instant::now() < deadline, "the limiter recovers after a restart");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!limiter.check("fresh").await.unwrap().allowed, "exact limits again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_cluster_node_stalls_only_its_own_keys() {
    let mut cluster = Cluster::private();
    let bound = Duration::from_millis(200);
    let limit = Limit::new(Algorithm::FixedWindow, Rate::per_hour(1000).unwrap());
    let limiter = Arc::new(
        RedisLimiter::new(cluster.connection().await, limit, "hung:")
            .unwrap()
            .with_policy(FailurePolicy::Closed)
            .with_timeout(bound),
    );
    // Keys on every node, found by asking the cluster where they live.
    let mut by_node: Vec<Vec<String>> = vec![Vec::new(); 3];
    for i in 0..200 {
        let key = format!("user:{i}");
        by_node[cluster.node_of_key(&limiter.redis_key(&key))].push(key);
    }
    assert!(by_node.iter().all(|keys| keys.len() >= 5), "keys on every node");
    for keys in &by_node {
        for key in keys.iter().take(5) {
            assert!(limiter.check(key).await.unwrap().allowed);
        }
    }
    let fallbacks = limiter.fallbacks();
    cluster.server(0).unwrap().pause();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (node, keys) in by_node.iter().enumerate() {
        for key in &keys[..5] {
            let (limiter, key) = (limiter.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                let started = Instant::now();
                let d = limiter.check(&key).await.unwrap();
                (node, d, started.elapsed())
            }));
        }
    }
    let mut healthy = 0;
    for task in tasks {
        let (node, decision, took) = task.await.unwrap();
        assert!(took < bound * 10, "a decision took {took:?}");
        if node == 0 {
            assert!(!decision.allowed, "the hung node's keys get the policy (fail-closed)");
        } else {
            assert!(decision.allowed, "keys on healthy nodes get real decisions");
            assert_eq!(decision.remaining, 998, "a decision from Redis, not the policy");
            healthy += 1;
        }
    }
    assert_eq!(healthy, 10);
    assert_eq!(limiter.fallbacks() - fallbacks, 5, "fallbacks for the hung node's keys only");
    assert!(started.elapsed() < bound * 10);
    cluster.server(0).unwrap().resume();
}

#[tokio::test]
async fn a_reconfigured_bucket_does_not_keep_the_old_shorter_ttl() {
    let redis = Redis::new();
    let connection = redis.connection_manager().await;
    let prefix = redis.key("ttl:");
    let fast = Limit::new(Algorithm::TokenBucket, Rate::per_second(1).unwrap()).with_burst(1);
    let slow = Limit::new(Algorithm::TokenBucket, Rate::per_hour(1).unwrap()).with_burst(10);
    let before = RedisLimiter::new(connection.clone(), fast, &prefix).unwrap();
    assert!(before.check("k").await.unwrap().allowed);
    let after = RedisLimiter::new(connection.clone(), slow, &prefix).unwrap();
    for _ in 0..10 {
        let _ = after.check("k").await.unwrap();
    }
    let mut con = redis.connection_manager().await;
    let ttl: i64 =
        redis::cmd("PTTL").arg(after.redis_key("k")).query_async(&mut con).await.unwrap();
    // Ten tokens at one per hour are in use: the key must outlive them.
    assert!(ttl > 3_600_000, "the state would vanish after {ttl} ms, refilling the bucket early");
}

#[tokio::test]
async fn a_local_denial_reports_the_reset_redis_reported() {
    let redis = Redis::new();
    let limit = Limit::new(Algorithm::TokenBucket, Rate::per_hour(5).unwrap()).with_burst(5);
    let limiter =
        RedisLimiter::new(redis.connection_manager().await, limit, &redis.key("reset:")).unwrap();
    for _ in 0..5 {
        assert!(limiter.check("k").await.unwrap().allowed);
    }
    let remote = limiter.check("k").await.unwrap();
    let local = limiter.check("k").await.unwrap();
    assert!(!remote.allowed && !local.allowed);
    // One token back in 12 minutes, a full bucket in an hour: the local
    // shortcut says the same (counted down), not reset = retry.
    assert!(remote.reset_after > Duration::from_secs(3500), "{remote:?}");
    assert!(local.reset_after <= remote.reset_after, "{local:?} vs {remote:?}");
    assert!(local.reset_after + Duration::from_secs(60) > remote.reset_after, "{local:?}");
    assert!(local.retry_after.unwrap() <= remote.retry_after.unwrap());
    assert_eq!(local.remaining, remote.remaining);
}

/// The buckets and the fixed and sliding counter windows write each key
/// once per batch, after every decision: when Redis refuses that write
/// (out of memory), every check of the batch on that key fails and none of
/// them is stored, while a peek, which writes nothing, still decides. (The
/// log is left out: it still writes within each decision, and with this
/// setting Redis let those writes through: a script that has changed
/// anything may go on writing.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_fails_the_checks_that_needed_it_and_stores_nothing() {
    let redis = Redis::private();
    let mut admin = redis.connection_manager().await;
    for algorithm in Algorithm::ALL.into_iter().filter(|&a| a != Algorithm::SlidingWindowLog) {
        let limit = Limit::new(algorithm, Rate::per_second(10).unwrap());
        let limit = match algorithm {
            Algorithm::TokenBucket | Algorithm::LeakyBucket => limit.with_burst(10),
            _ => limit,
        };
        let prefix = redis.key(&format!("oom{algorithm:?}:"));
        let limiter = Arc::new(
            RedisLimiter::new(redis.connection_manager().await, limit, &prefix)
                .unwrap()
                .with_policy(FailurePolicy::Error)
                .with_shortcut(0),
        );
        // A key of another type (a hash for the buckets' string, a string
        // for the windows' hash or sorted set), whose read fails inside the
        // decision loop.
        let bad = limiter.redis_key("bad");
        let cmd = match algorithm {
            Algorithm::TokenBucket | Algorithm::LeakyBucket => {
                redis::cmd("HSET").arg(&bad).arg(&["f", "v"]).clone()
            }
            _ => redis::cmd("SET").arg(&bad).arg("not a hash").clone(),
        };
        let _: () = cmd.query_async(&mut admin).await.unwrap();
        let _: () = redis::cmd("CONFIG")
            .arg(&["SET", "maxmemory", "1"])
            .query_async(&mut admin)
            .await
            .unwrap();
        // Checks of one key in flight together (so mostly in one batch),
        // interleaved with checks of the bad key (failing in the loop, so
        // both kinds of failure meet in a batch: each must get its own
        // error), and a peek of another key.
        let checks: Vec<_> = (0..32)
            .map(|n| {
                let limiter = limiter.clone();
                let key = if n % 2 == 0 { "hot" } else { "bad" };
                tokio::spawn(async move { (key, limiter.check(key).await) })
            })
            .collect();
        let peek = limiter.peek_n("cold", 1).await;
        for check in checks {
            let (key, refused) = check.await.unwrap();
            let expected = if key == "hot" { "OOM" } else { "WRONGTYPE" };
            assert!(
                matches!(&refused, Err(LimitError::Backend(e)) if e.to_string().contains(expected)),
                "{algorithm:?}: {key}: {refused:?}"
            );
        }
        assert!(peek.unwrap().allowed, "{algorithm:?}: a peek writes nothing, so it decides");
        let _: () = redis::cmd("CONFIG")
            .arg(&["SET", "maxmemory", "0"])
            .query_async(&mut admin)
            .await
            .unwrap();
        let stored: bool = redis::cmd("EXISTS")
            .arg(limiter.redis_key("hot"))
            .query_async(&mut admin)
            .await
            .unwrap();
        assert!(!stored, "{algorithm:?}: the failed checks stored nothing");
        let after = limiter.check("hot").await.unwrap();
        assert_eq!(after.remaining, 9, "{algorithm:?}: a full bucket, as if never checked");
    }
}
