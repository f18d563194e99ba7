//! RedisLimiter against a real Redis and a real 3-master Redis Cluster
//! (started by scripts/test.sh, or by the testkit fixtures).
#![cfg(feature = "redis")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sysblocks_ratelimit::{
    Algorithm, FailurePolicy, Limit, LimitError, Limiter, ManualClock, Rate, RedisConnection,
    RedisLimiter,
};
use sysblocks_testkit::{Cluster, Redis};

const ALGORITHMS: [Algorithm; 5] = Algorithm::ALL;

/// A random limit whose period is a whole number of microseconds per unit,
/// so that the in-process limiter (nanoseconds) and Redis (microseconds)
/// do the same arithmetic scaled by 1000.
fn random_limit(rng: &mut SmallRng, algorithm: Algorithm) -> Limit {
    // Mostly small limits, where denials are frequent; one in four large
    // (the log reads all its entries per decision: up to a few thousand).
    let (count, per_unit_us) = match (rng.random_range(0..4), algorithm) {
        (0, Algorithm::SlidingWindowLog) => {
            (rng.random_range(100..=2_000u64), rng.random_range(1..=500))
        }
        (0, _) => (rng.random_range(1_000..=1_000_000u64), rng.random_range(1..=50)),
        _ => (rng.random_range(1..=20u64), rng.random_range(1..=50_000u64)),
    };
    let rate = Rate::new(count, Duration::from_micros(count * per_unit_us)).unwrap();
    let limit = Limit::new(algorithm, rate);
    match algorithm {
        Algorithm::TokenBucket | Algorithm::LeakyBucket => {
            limit.with_burst(rng.random_range(1..=count.clamp(20, 1_000_000)))
        }
        _ => limit,
    }
}

/// A cost for `limit`: mostly small, sometimes up to the whole capacity.
fn random_cost(rng: &mut SmallRng, limit: &Limit) -> u64 {
    if rng.random_range(0..4) == 0 {
        rng.random_range(1..=limit.capacity())
    } else {
        rng.random_range(1..=limit.capacity().min(3))
    }
}

/// The in-process decision as Redis, whose clock ticks in microseconds,
/// makes it. Every time in these tests is a whole number of microseconds,
/// so the decisions agree exactly, except for the sliding window counter's
/// retry time: in process it is the first nanosecond at which the request
/// fits, in Redis the first microsecond, and since fitting only gets easier
/// as time passes, that is the nanosecond answer rounded up.
fn in_micros(mut decision: sysblocks_ratelimit::Decision) -> sysblocks_ratelimit::Decision {
    decision.retry_after = decision
        .retry_after
        .map(|d| Duration::from_micros(u64::try_from(d.as_nanos().div_ceil(1_000)).unwrap()));
    decision
}

/// Drives every algorithm in-process and on Redis with the same timestamps,
/// costs, peeks and refunds, and requires identical decisions.
async fn differential(connection: impl Into<RedisConnection>, prefix: &str) {
    let connection: RedisConnection = connection.into();
    let mut rng = SmallRng::seed_from_u64(7);
    let mut compared = 0;
    for algorithm in ALGORITHMS {
        for round in 0..6 {
            let limit = random_limit(&mut rng, algorithm);
            let clock = ManualClock::new();
            let keys = ["a", "b", "c"];
            let local: Vec<_> =
                keys.iter().map(|_| limit.build_with_clock(clock.clone()).unwrap()).collect();
            let remote = RedisLimiter::new(
                connection.clone(),
                limit,
                &format!("{prefix}{algorithm:?}{round}:"),
            )
            .unwrap()
            .with_policy(sysblocks_ratelimit::FailurePolicy::Error);
            let period_us = limit.rate.per().as_micros() as u64 / limit.rate.count();
            let mut now_us = rng.random_range(0..1_000_000_000u64);
            for step in 0..150 {
                now_us += match rng.random_range(0..4) {
                    0 => 0,
                    1 => period_us * rng.random_range(0..3), // exact multiples
                    2 => rng.random_range(0..period_us.max(1) * 2),
                    _ => rng.random_range(0..limit.rate.per().as_micros() as u64 * 2),
                };
                let k = rng.random_range(0..keys.len());
                let cost = random_cost(&mut rng, &limit);
                let now_ns = now_us * 1000;
                match rng.random_range(0..10) {
                    0 => {
                        local[k].refund_at(now_ns, cost);
                        remote.refund_at(keys[k], now_ns, cost).await.unwrap();
                    }
                    1 => {
                        let ours = in_micros(local[k].peek_n_at(now_ns, cost).unwrap());
                        let theirs = remote.peek_n_at(keys[k], now_ns, cost).await.unwrap();
                        assert_eq!(ours, theirs, "{algorithm:?} {limit:?} peek at step {step}");
                    }
                    _ => {
                        let ours = in_micros(local[k].check_n_at(now_ns, cost).unwrap());
                        let theirs = remote.check_n_at(keys[k], now_ns, cost).await.unwrap();
                        assert_eq!(ours, theirs, "{algorithm:?} {limit:?} at step {step}");
                    }
                }
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 5 * 6 * 150);
}

#[tokio::test]
async fn every_algorithm_decides_as_in_process_on_redis() {
    let redis = Redis::new();
    differential(redis.connection_manager().await, redis.prefix()).await;
}

#[tokio::test]
async fn every_algorithm_decides_as_in_process_on_the_cluster() {
    let cluster = Cluster::new();
    differential(cluster.connection().await, cluster.prefix()).await;
    // The limiters' keys spread over the masters (one hash tag per key).
    let per_node = cluster.keys_per_node();
    assert!(per_node.iter().filter(|&&n| n > 0).count() >= 2, "keys per node: {per_node:?}");
}

/// Decisions on Redis's own clock, sent concurrently so that they are
/// batched (many per script call, over many slots on a Cluster), with the
/// local shortcut on: each matches an in-process limiter given the same
/// requests. Each wave sends one request per key, all at once (concurrent
/// requests have no order, so there is one per key), and waits for the
/// replies: a key's requests follow each other, and later waves meet the
/// shortcut's memory of earlier denials. The rates are so slow that
/// nothing refills during a round (buckets gain a unit per 100 days,
/// windows last an hour), so the server's clock does not change the
/// outcome; a round that crosses an hour boundary (a fixed window rolls
/// over) is run again.
async fn batched_differential(
    connection: impl Into<RedisConnection>,
    prefix: &str,
    distinct: usize,
) {
    const HOUR_US: u64 = 3_600_000_000;
    let connection: RedisConnection = connection.into();
    let mut rng = SmallRng::seed_from_u64(11);
    let hour = || {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        since_epoch.unwrap().as_micros() as u64 / HOUR_US
    };
    let mut compared = 0;
    for algorithm in ALGORITHMS {
        let mut round = 0;
        while round < 4 {
            let large = rng.random_range(0..2) == 0;
            let limit = match algorithm {
                Algorithm::TokenBucket | Algorithm::LeakyBucket => {
                    let rate = Rate::new(1, Duration::from_secs(100 * 86_400)).unwrap();
                    let burst =
                        if large { rng.random_range(100..=200) } else { rng.random_range(1..=20) };
                    Limit::new(algorithm, rate).with_burst(burst)
                }
                _ => {
                    let count = match (large, algorithm) {
                        (true, Algorithm::SlidingWindowLog) => rng.random_range(100..=2_000),
                        (true, _) => rng.random_range(1_000..=1_000_000),
                        _ => rng.random_range(1..=20),
                    };
                    Limit::new(algorithm, Rate::new(count, Duration::from_secs(3600)).unwrap())
                }
            };
            let started = hour();
            let remote = RedisLimiter::new(
                connection.clone(),
                limit,
                &format!("{prefix}batched{distinct}{algorithm:?}{round}{started}:"),
            )
            .unwrap()
            .with_policy(FailurePolicy::Error);
            let clock = ManualClock::new();
            // 24 requests a round over `distinct` keys. With fewer keys than
            // requests a key comes back within one batch, and each of its
            // decisions must see the one before. Two batches in flight may
            // reach Redis either way round, so a key's requests in a round
            // all cost the same and its outcomes are compared as a set.
            let keys: Vec<String> = (0..distinct).map(|k| format!("k{k}")).collect();
            let local: Vec<_> =
                keys.iter().map(|_| limit.build_with_clock(clock.clone()).unwrap()).collect();
            let mut outcomes = Vec::new();
            for _ in 0..10 {
                let costs: Vec<u64> = keys.iter().map(|_| random_cost(&mut rng, &limit)).collect();
                let theirs = futures_util::future::join_all(
                    (0..24).map(|r| remote.check_n(&keys[r % distinct], costs[r % distinct])),
                )
                .await;
                let theirs: Vec<_> = theirs.into_iter().map(Result::unwrap).collect();
                let ours: Vec<_> = (0..24)
                    .map(|r| local[r % distinct].check_n(costs[r % distinct]).unwrap())
                    .collect();
                // By key, then by what the decision said.
                let by_key = |decisions: Vec<sysblocks_ratelimit::Decision>| {
                    let mut keyed: Vec<_> = decisions
                        .into_iter()
                        .enumerate()
                        .map(|(r, d)| {
                            (r % distinct, d.allowed, d.remaining, d.retry_after.is_some())
                        })
                        .collect();
                    keyed.sort_unstable();
                    keyed
                };
                let (ours, theirs) = (by_key(ours), by_key(theirs));
                outcomes.push((ours, theirs, costs));
            }
            if hour() != started {
                continue; // an hour boundary passed: run the round again
            }
            for (ours, theirs, costs) in outcomes {
                for (i, (ours, theirs)) in ours.iter().zip(&theirs).enumerate() {
                    let what = format!("{algorithm:?} {limit:?} outcome {i} (costs {costs:?})");
                    assert_eq!(ours, theirs, "{what}");
                    compared += 1;
                }
            }
            round += 1;
        }
    }
    assert_eq!(compared, 5 * 4 * 10 * 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_decisions_on_server_time_match_in_process_on_redis() {
    let redis = Redis::new();
    batched_differential(redis.connection_manager().await, redis.prefix(), 24).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_decisions_on_server_time_match_in_process_on_the_cluster() {
    let cluster = Cluster::new();
    batched_differential(cluster.connection().await, cluster.prefix(), 24).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_repeated_within_a_batch_decides_as_in_process_on_redis() {
    let redis = Redis::new();
    batched_differential(redis.connection_manager().await, redis.prefix(), 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_repeated_within_a_batch_decides_as_in_process_on_the_cluster() {
    let cluster = Cluster::new();
    batched_differential(cluster.connection().await, cluster.prefix(), 3).await;
}

/// Checks, peeks and refunds of different costs, batched together on
/// Redis's clock (one script call carries every mode and a cost per
/// request), decide as in process: each key first loses 3 units, then
/// takes one operation in a batch with the others, then is peeked.
async fn mixed_batch(connection: impl Into<RedisConnection>, prefix: &str) {
    let connection: RedisConnection = connection.into();
    let hour = || {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        since_epoch.unwrap().as_secs() / 3600
    };
    let mut algorithms = ALGORITHMS.to_vec();
    let mut round = 0;
    while let Some(&algorithm) = algorithms.last() {
        round += 1;
        let limit = match algorithm {
            Algorithm::TokenBucket | Algorithm::LeakyBucket => {
                Limit::new(algorithm, Rate::new(1, Duration::from_secs(100 * 86_400)).unwrap())
                    .with_burst(10)
            }
            _ => Limit::new(algorithm, Rate::new(10, Duration::from_secs(3600)).unwrap()),
        };
        let started = hour();
        let remote = RedisLimiter::new(
            connection.clone(),
            limit,
            &format!("{prefix}mixed{algorithm:?}{round}:"),
        )
        .unwrap()
        .with_policy(FailurePolicy::Error)
        .with_shortcut(0);
        let clock = ManualClock::new();
        let keys: Vec<String> = (0..12).map(|k| format!("k{k}")).collect();
        let local: Vec<_> =
            keys.iter().map(|_| limit.build_with_clock(clock.clone()).unwrap()).collect();
        for (key, local) in keys.iter().zip(&local) {
            assert!(remote.check_n(key, 3).await.unwrap().allowed);
            assert!(local.check_n(3).unwrap().allowed);
        }
        // Key k: a check of cost 1 + k % 4 (k % 3 == 0), a peek of that
        // cost (1), or a refund of it (2).
        let cost = |k: usize| 1 + (k as u64) % 4;
        let batch = futures_util::future::join_all(keys.iter().enumerate().map(|(k, key)| {
            let remote = &remote;
            async move {
                match k % 3 {
                    0 => Some(remote.check_n(key, cost(k)).await.unwrap()),
                    1 => Some(remote.peek_n(key, cost(k)).await.unwrap()),
                    _ => remote.refund(key, cost(k)).await.map(|()| None).unwrap(),
                }
            }
        }))
        .await;
        let mut after = Vec::new();
        for key in &keys {
            after.push(remote.peek_n(key, 1).await.unwrap());
        }
        if hour() != started {
            continue; // a window boundary passed: run this algorithm again
        }
        for (k, (theirs, local)) in batch.into_iter().zip(&local).enumerate() {
            let ours = match k % 3 {
                0 => Some(local.check_n(cost(k)).unwrap()),
                1 => Some(local.peek_n(cost(k)).unwrap()),
                _ => {
                    local.refund(cost(k));
                    None
                }
            };
            let brief = |d: Option<sysblocks_ratelimit::Decision>| {
                d.map(|d| (d.allowed, d.remaining, d.retry_after.is_some()))
            };
            assert_eq!(brief(ours), brief(theirs), "{algorithm:?} key {k} in the batch");
            let (ours, theirs) = (local.peek_n(1).unwrap(), &after[k]);
            assert_eq!(ours.remaining, theirs.remaining, "{algorithm:?} key {k} afterwards");
        }
        algorithms.pop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_peeks_and_refunds_in_one_batch_decide_as_in_process_on_redis() {
    let redis = Redis::new();
    mixed_batch(redis.connection_manager().await, redis.prefix()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_peeks_and_refunds_in_one_batch_decide_as_in_process_on_the_cluster() {
    let cluster = Cluster::new();
    mixed_batch(cluster.connection().await, cluster.prefix()).await;
}

/// 64 tasks hammer eight keys on Redis's clock, through the batching (so
/// batches hold many keys, spread over slots on a Cluster): exactly the
/// limit is admitted per key, for every algorithm (the rate is so slow that
/// nothing refills during the test).
async fn hammer(connection: impl Into<RedisConnection>, prefix: &str) {
    let connection: RedisConnection = connection.into();
    const KEYS: usize = 8;
    for algorithm in Algorithm::ALL {
        let limit = Limit::new(algorithm, Rate::per_hour(100).unwrap()).with_burst(100);
        let limit = match algorithm {
            Algorithm::TokenBucket | Algorithm::LeakyBucket => limit,
            _ => Limit::new(algorithm, limit.rate),
        };
        // No local shortcut: every request goes to Redis.
        let limiter = Arc::new(
            RedisLimiter::new(connection.clone(), limit, &format!("{prefix}hammer{algorithm:?}:"))
                .unwrap()
                .with_shortcut(0)
                .with_policy(FailurePolicy::Error)
                .with_timeout(Duration::from_secs(30)),
        );
        let admitted: Arc<Vec<AtomicU64>> =
            Arc::new((0..KEYS).map(|_| AtomicU64::new(0)).collect());
        let tasks: Vec<_> = (0..64)
            .map(|t| {
                let (limiter, admitted) = (limiter.clone(), admitted.clone());
                tokio::spawn(async move {
                    for i in 0..20 {
                        let k = (t + i) % KEYS;
                        if limiter.check(&format!("hot{k}")).await.unwrap().allowed {
                            admitted[k].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        for (k, n) in admitted.iter().enumerate() {
            let n = n.load(Ordering::Relaxed);
            match algorithm {
                // A fixed window could straddle an hour boundary; then up to
                // twice the limit is the algorithm's own answer.
                Algorithm::FixedWindow => {
                    assert!(n == 100 || n == 200, "{algorithm:?} hot{k}: {n}");
                }
                // Straddling, the counter's estimate rounds the previous
                // window's weight down: at most one more.
                Algorithm::SlidingWindowCounter => {
                    assert!((100..=101).contains(&n), "{algorithm:?} hot{k}: {n}");
                }
                _ => assert_eq!(n, 100, "{algorithm:?} hot{k}: exactly the limit"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tasks_never_exceed_the_limit_on_redis() {
    let redis = Redis::new();
    hammer(redis.connection_manager().await, redis.prefix()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tasks_never_exceed_the_limit_on_the_cluster() {
    let cluster = Cluster::new();
    hammer(cluster.connection().await, cluster.prefix()).await;
}

#[tokio::test]
async fn state_keys_expire_when_the_limiter_is_fresh_again() {
    let redis = Redis::new();
    let mut connection = redis.connection_manager().await;
    let limit = Limit::new(Algorithm::TokenBucket, Rate::per_second(10).unwrap()).with_burst(5);
    let limiter = RedisLimiter::new(connection.clone(), limit, redis.prefix()).unwrap();
    let _ = limiter.check_n("ttl", 3).await.unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(limiter.redis_key("ttl"))
        .query_async(&mut connection)
        .await
        .unwrap();
    // Three tokens at 100 ms each come back after 300 ms; the key must
    // live at least that long, and the expiry is set per quantum (one
    // second here), so it goes at most two quanta later.
    assert!((250..=2_300).contains(&ttl), "ttl {ttl} ms");
}

#[tokio::test]
async fn invalid_limits_are_typed_errors() {
    let redis = Redis::new();
    let connection = redis.connection_manager().await;
    let too_fast = Limit::new(Algorithm::TokenBucket, "10/5us".parse().unwrap());
    assert!(matches!(
        RedisLimiter::new(connection.clone(), too_fast, "x").unwrap_err(),
        LimitError::RedisRange { .. }
    ));
    let huge = Limit::new(Algorithm::SlidingWindowCounter, Rate::per_hour(1_000_000_000).unwrap());
    assert!(RedisLimiter::new(connection.clone(), huge, "x").is_err());
    let window_burst =
        Limit::new(Algorithm::FixedWindow, Rate::per_second(1).unwrap()).with_burst(3);
    assert_eq!(
        RedisLimiter::new(connection.clone(), window_burst, "x").unwrap_err(),
        LimitError::BadBurst
    );
    let limit = Limit::new(Algorithm::FixedWindow, Rate::per_second(2).unwrap());
    let limiter = RedisLimiter::new(connection, limit, redis.prefix()).unwrap();
    assert_eq!(limiter.check_n("k", 0).await.unwrap_err(), LimitError::ZeroCost);
    assert!(matches!(
        limiter.check_n("k", 3).await.unwrap_err(),
        LimitError::CostAboveCapacity { cost: 3, capacity: 2 }
    ));
}

/// Counts `warn` events, to check that fallback decisions are logged.
struct CountWarnings(Arc<AtomicU64>);

impl tracing::Subscriber for CountWarnings {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() == tracing::Level::WARN {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test(flavor = "current_thread")]
async fn redis_down_fails_open_or_closed_with_a_log_and_recovers_after_restart() {
    let warnings = Arc::new(AtomicU64::new(0));
    let _guard = tracing::subscriber::set_default(CountWarnings(warnings.clone()));
    let mut redis = Redis::private();
    let connection = redis.connection_manager().await;
    let limit = Limit::new(Algorithm::SlidingWindowLog, Rate::per_minute(2).unwrap());
    let open = RedisLimiter::new(connection.clone(), limit, "open:")
        .unwrap()
        .with_policy(FailurePolicy::Open);
    let closed = RedisLimiter::new(connection.clone(), limit, "closed:")
        .unwrap()
        .with_policy(FailurePolicy::Closed);
    let strict =
        RedisLimiter::new(connection, limit, "strict:").unwrap().with_policy(FailurePolicy::Error);
    assert!(open.check("k").await.unwrap().allowed);
    assert!(closed.check("k").await.unwrap().allowed);
    assert_eq!((open.fallbacks(), closed.fallbacks()), (0, 0));

    redis.server().unwrap().stop();
    assert!(open.check("k").await.unwrap().allowed, "fail-open admits");
    assert!(!closed.check("k").await.unwrap().allowed, "fail-closed denies");
    let error = strict.check("k").await.unwrap_err();
    assert!(matches!(error, LimitError::Backend(_)), "{error}");
    assert_eq!(error.kind(), sysblocks_ratelimit::ErrorKind::Runtime);
    // The Redis error is kept whole, as the source.
    let source = std::error::Error::source(&error).expect("a source");
    assert!(source.downcast_ref::<redis::RedisError>().is_some(), "{source:?}");
    assert_eq!((open.fallbacks(), closed.fallbacks()), (1, 1));
    assert_eq!(warnings.load(Ordering::Relaxed), 2, "both fallbacks are logged");

    redis.server().unwrap().restart();
    // The connection manager reconnects with its own backoff, which nothing
    // here can observe: retry until a decision comes from Redis (the
    // restarted server is empty, so the key has its full limit), at most 30 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let before = closed.fallbacks();
        let decision = closed.check("k").await.unwrap();
        if closed.fallbacks() == before {
            assert!(decision.allowed);
            assert_eq!(decision.remaining, 1, "a decision from the restarted Redis");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the limiter recovers after a restart");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The same limiter objects work again, scripts reloaded by themselves.
    assert!(open.check("k").await.unwrap().allowed);
    assert_eq!(open.check("k").await.unwrap().remaining, 0);
    assert!(!open.check("k").await.unwrap().allowed);
}

#[tokio::test(flavor = "current_thread")]
async fn a_denied_key_is_denied_locally_until_its_retry_time() {
    let mut redis = Redis::private();
    let connection = redis.connection_manager().await;
    let limit = Limit::new(Algorithm::TokenBucket, Rate::per_hour(1).unwrap()).with_burst(1);
    let limiter =
        RedisLimiter::new(connection, limit, "short:").unwrap().with_policy(FailurePolicy::Open);
    assert!(limiter.check("k").await.unwrap().allowed);
    let denied = limiter.check("k").await.unwrap();
    assert!(!denied.allowed);
    // With Redis gone, fail-open would admit: the shortcut answers first.
    redis.server().unwrap().stop();
    let again = limiter.check("k").await.unwrap();
    assert!(!again.allowed, "answered locally");
    assert!(again.retry_after.unwrap() <= denied.retry_after.unwrap());
    assert_eq!(limiter.fallbacks(), 0, "no round trip was attempted");
}
