//! The workloads both rate-limiter benches run: `vs_governor` (criterion)
//! and `ab` (the A/B rows of BENCHMARKS.md).
#![allow(dead_code)] // each bench uses a part

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::{Quota, RateLimiter};
use sysblocks_ratelimit::{Rate, TokenBucket};

/// Keys of the keyed rows, round robin.
pub const KEYS: u64 = 1000;
/// Tasks of the Redis rows, each making `OPS_PER_TASK` calls.
pub const TASKS: u64 = 64;
/// Calls per task in the Redis rows.
pub const OPS_PER_TASK: u64 = 200;

/// Two limiters, ours and governor's, that never deny: one token per
/// nanosecond and a burst of 2^32 - 1.
pub fn never_denies() -> (TokenBucket, governor::DefaultDirectRateLimiter) {
    let ours =
        TokenBucket::new(u64::from(u32::MAX), Rate::per_second(1_000_000_000).unwrap()).unwrap();
    let per_nano = NonZeroU32::new(1_000_000_000).unwrap();
    let theirs = RateLimiter::direct(Quota::per_second(per_nano).allow_burst(NonZeroU32::MAX));
    (ours, theirs)
}

/// Two limiters, ours and governor's, that are empty: every check denied.
pub fn always_denies() -> (TokenBucket, governor::DefaultDirectRateLimiter) {
    let ours = TokenBucket::new(1, Rate::per_hour(1).unwrap()).unwrap();
    let theirs = RateLimiter::direct(Quota::per_hour(NonZeroU32::MIN));
    assert!(ours.check().allowed && theirs.check().is_ok());
    (ours, theirs)
}

/// Times `rounds` rounds of `TASKS` tasks that each await `op` `OPS_PER_TASK`
/// times.
pub fn tasks<F, Fut>(runtime: &tokio::runtime::Runtime, rounds: u64, op: F) -> Duration
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    runtime.block_on(async {
        let start = Instant::now();
        for _ in 0..rounds {
            let mut set = tokio::task::JoinSet::new();
            for task in 0..TASKS {
                let op = op.clone();
                set.spawn(async move {
                    for i in 0..OPS_PER_TASK {
                        op(task * OPS_PER_TASK + i).await;
                    }
                });
            }
            while set.join_next().await.is_some() {}
        }
        start.elapsed()
    })
}

/// Times `rounds` rounds of raw `INCR`s of `counter` on `connection`, the
/// Redis rows' baseline: the cheapest command on the same connection.
pub fn raw_incr(
    runtime: &tokio::runtime::Runtime,
    rounds: u64,
    connection: &redis::aio::ConnectionManager,
    counter: &str,
) -> Duration {
    let (connection, counter) = (connection.clone(), counter.to_string());
    tasks(runtime, rounds, move |_| {
        let (mut connection, counter) = (connection.clone(), counter.clone());
        async move {
            let _: i64 =
                redis::cmd("INCR").arg(&counter).query_async(&mut connection).await.unwrap();
        }
    })
}
