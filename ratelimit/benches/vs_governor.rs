//! TokenBucket and Keyed against governor on the same workloads, and the
//! Redis limiter's decisions per second next to raw INCR on one connection.
//!
//! Run: `cargo bench -p sysblocks-ratelimit --features redis --bench vs_governor`
//! (the Redis rows use REDIS_URL, or start their own redis-server).

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use governor::{Quota, RateLimiter};
use sysblocks_ratelimit::{Algorithm, Keyed, Limit, Rate, RedisLimiter, TokenBucket};

mod common;
use common::{KEYS, OPS_PER_TASK, TASKS, always_denies, never_denies};

fn direct(c: &mut Criterion) {
    let mut group = c.benchmark_group("direct");
    group.throughput(Throughput::Elements(1));
    let (ours, theirs) = never_denies();
    group.bench_function("allowed/sysblocks", |b| b.iter(|| black_box(ours.check().allowed)));
    group.bench_function("allowed/governor", |b| b.iter(|| black_box(theirs.check().is_ok())));
    let (ours, theirs) = always_denies();
    group.bench_function("denied/sysblocks", |b| b.iter(|| black_box(ours.check().allowed)));
    group.bench_function("denied/governor", |b| b.iter(|| black_box(theirs.check().is_ok())));
    group.finish();
}

/// Two threads share one limiter; each makes `iters` checks. The time
/// reported is wall time per check per thread.
fn two_threads<F: Fn() -> bool + Sync>(iters: u64, check: F) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..iters {
                    black_box(check());
                }
            });
        }
    });
    start.elapsed()
}

fn shared(c: &mut Criterion) {
    let mut group = c.benchmark_group("two_threads");
    group.throughput(Throughput::Elements(1));
    let (ours, theirs) = never_denies();
    group.bench_function("sysblocks", |b| {
        b.iter_custom(|n| two_threads(n, || ours.check().allowed));
    });
    group.bench_function("governor", |b| {
        b.iter_custom(|n| two_threads(n, || theirs.check().is_ok()));
    });
    group.finish();
}

fn keyed(c: &mut Criterion) {
    let mut group = c.benchmark_group("keyed_1000");
    group.throughput(Throughput::Elements(1));
    let rate = Rate::per_second(1_000_000).unwrap();
    let ours = Keyed::new(10_000, move || TokenBucket::new(1_000_000, rate)).unwrap();
    let max = NonZeroU32::new(1_000_000).unwrap();
    let theirs = RateLimiter::keyed(Quota::per_second(max).allow_burst(max));
    let mut key = 0u64;
    group.bench_function("sysblocks", |b| {
        b.iter(|| {
            key = (key + 1) % KEYS;
            black_box(ours.check(&key).is_ok_and(|d| d.allowed))
        });
    });
    let mut key = 0u64;
    group.bench_function("governor", |b| {
        b.iter(|| {
            key = (key + 1) % KEYS;
            black_box(theirs.check_key(&key).is_ok())
        });
    });
    group.finish();
}

fn redis(c: &mut Criterion) {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let redis = sysblocks_testkit::Redis::new();
    let connection = runtime.block_on(redis.connection_manager());
    let mut group = c.benchmark_group("redis_64_tasks");
    group.throughput(Throughput::Elements(TASKS * OPS_PER_TASK));
    group.sample_size(10);

    let counter = redis.key("incr");
    group.bench_function("raw_incr", |b| {
        b.iter_custom(|iters| common::raw_incr(&runtime, iters, &connection, &counter));
    });

    let limit = Limit::new(Algorithm::TokenBucket, Rate::per_second(1_000_000).unwrap())
        .with_burst(1_000_000);
    let limiter = Arc::new(
        RedisLimiter::new(connection, limit, &redis.key("limit:")).unwrap().with_shortcut(0),
    );
    let keys: Arc<Vec<String>> = Arc::new((0..KEYS).map(|k| format!("user:{k}")).collect());
    group.bench_function("token_bucket_decisions", |b| {
        b.iter_custom(|iters| {
            let (limiter, keys) = (limiter.clone(), keys.clone());
            common::tasks(&runtime, iters, move |i| {
                let (limiter, keys) = (limiter.clone(), keys.clone());
                async move {
                    let key = &keys[(i % KEYS) as usize];
                    assert!(limiter.check(key).await.unwrap().allowed);
                }
            })
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = direct, shared, keyed, redis
}
criterion_main!(benches);
