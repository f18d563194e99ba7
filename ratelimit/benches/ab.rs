//! The rows of BENCHMARKS.md for the rate limiter, measured A/B: ours and
//! governor (or raw `INCR`) alternate in one process, and each ratio comes
//! with its 90% interval (see `sysblocks-benchkit`).
//!
//! Run: `cargo bench -p sysblocks-ratelimit --features redis --bench ab`
//! (`AB_ONLY=keyed` for one row; the Redis row uses REDIS_URL, or starts
//! its own redis-server). `scripts/bench.sh` runs every crate's.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{Quota, RateLimiter};
use sysblocks_benchkit::{Ab, Target, on_threads, timed};
use sysblocks_ratelimit::{Algorithm, Keyed, Limit, Rate, RedisLimiter, TokenBucket};

mod common;
use common::{KEYS, always_denies, never_denies, raw_incr, tasks};

fn main() {
    let ab = Ab::from_env();
    let below = Target::Below(0.9);

    if Ab::wants("ratelimit/allowed") {
        let (ours, theirs) = never_denies();
        ab.time_ratio(
            "ratelimit/allowed",
            "TokenBucket vs governor, one limiter, every check allowed",
            below,
            |n| timed(n, || _ = black_box(ours.check().allowed)),
            |n| timed(n, || _ = black_box(theirs.check().is_ok())),
        );
    }
    if Ab::wants("ratelimit/denied") {
        let (ours, theirs) = always_denies();
        ab.time_ratio(
            "ratelimit/denied",
            "TokenBucket vs governor, one empty limiter, every check denied",
            below,
            |n| timed(n, || _ = black_box(ours.check().allowed)),
            |n| timed(n, || _ = black_box(theirs.check().is_ok())),
        );
    }
    if Ab::wants("ratelimit/two_threads") {
        let (ours, theirs) = never_denies();
        ab.time_ratio(
            "ratelimit/two_threads",
            "TokenBucket vs governor, 2 threads sharing one limiter",
            below,
            |n| on_threads(2, n, || _ = black_box(ours.check().allowed)),
            |n| on_threads(2, n, || _ = black_box(theirs.check().is_ok())),
        );
    }
    if Ab::wants("ratelimit/keyed_1000") {
        let rate = Rate::per_second(1_000_000).unwrap();
        let ours = Keyed::new(10_000, move || TokenBucket::new(1_000_000, rate)).unwrap();
        let max = NonZeroU32::new(1_000_000).unwrap();
        let theirs = RateLimiter::keyed(Quota::per_second(max).allow_burst(max));
        let (mut a, mut b) = (0u64, 0u64);
        ab.time_ratio(
            "ratelimit/keyed_1000",
            "Keyed TokenBucket vs governor's keyed limiter, 1000 keys round robin",
            below,
            |n| {
                timed(n, || {
                    a = (a + 1) % KEYS;
                    _ = black_box(ours.check(&a).is_ok_and(|d| d.allowed));
                })
            },
            |n| {
                timed(n, || {
                    b = (b + 1) % KEYS;
                    _ = black_box(theirs.check_key(&b).is_ok());
                })
            },
        );
    }
    if Ab::wants("ratelimit/redis_64_tasks") {
        redis_row(&ab);
    }
}

/// RedisLimiter decisions against raw INCR on the same connection, 64
/// tasks, 1000 keys; throughput ratio.
fn redis_row(ab: &Ab) {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let redis = sysblocks_testkit::Redis::new();
    let connection = runtime.block_on(redis.connection_manager());
    let counter = redis.key("incr");
    let limit = Limit::new(Algorithm::TokenBucket, Rate::per_second(1_000_000).unwrap())
        .with_burst(1_000_000);
    let limiter = Arc::new(
        RedisLimiter::new(connection.clone(), limit, &redis.key("limit:"))
            .unwrap()
            .with_shortcut(0),
    );
    let keys: Arc<Vec<String>> = Arc::new((0..KEYS).map(|k| format!("user:{k}")).collect());
    ab.throughput_ratio(
        "ratelimit/redis_64_tasks",
        "RedisLimiter token bucket decisions vs raw INCR on the same connection, 64 tasks",
        Target::AtLeast(0.8),
        |rounds| {
            let (limiter, keys) = (limiter.clone(), keys.clone());
            tasks(&runtime, rounds, move |i| {
                let (limiter, keys) = (limiter.clone(), keys.clone());
                async move {
                    let key = &keys[(i % KEYS) as usize];
                    assert!(limiter.check(key).await.unwrap().allowed);
                }
            })
        },
        |rounds| raw_incr(&runtime, rounds, &connection, &counter),
    );
}
