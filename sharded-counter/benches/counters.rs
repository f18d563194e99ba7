//! Counters side by side, in one run:
//!
//! * in-process: `StripedCounter` vs one `AtomicI64` vs `fast_counter`'s
//!   `ConcurrentCounter`, with 1 and 2 threads adding;
//! * Redis: naive `INCR` on one hot key vs `RedisShardedCounter` vs
//!   `BatchedCounter`, 16 tasks, acknowledged increments per second.
//!
//! Run: `cargo bench -p sysblocks-sharded-counter --all-features --bench counters`
//! (Redis from `REDIS_URL`, or a private `redis-server` started by testkit).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sysblocks_sharded_counter::{
    BatchedCounter, RedisConnection, RedisShardedCounter, StripedCounter,
};

const ADDS_PER_THREAD: u64 = 200_000;

trait Counter: Sync {
    fn name() -> &'static str;
    fn make() -> Self;
    fn add(&self, n: i64);
    fn total(&self) -> i64;
}

impl Counter for StripedCounter {
    fn name() -> &'static str {
        "striped"
    }
    fn make() -> Self {
        StripedCounter::new()
    }
    #[inline(always)]
    fn add(&self, n: i64) {
        StripedCounter::add(self, n);
    }
    fn total(&self) -> i64 {
        self.sum()
    }
}

impl Counter for AtomicI64 {
    fn name() -> &'static str {
        "one_atomic"
    }
    fn make() -> Self {
        AtomicI64::new(0)
    }
    #[inline(always)]
    fn add(&self, n: i64) {
        self.fetch_add(n, Ordering::Relaxed);
    }
    fn total(&self) -> i64 {
        self.load(Ordering::Relaxed)
    }
}

impl Counter for fast_counter::ConcurrentCounter {
    fn name() -> &'static str {
        "fast_counter"
    }
    fn make() -> Self {
        fast_counter::ConcurrentCounter::new(
            std::thread::available_parallelism().map_or(4, |n| n.get()),
        )
    }
    #[inline(always)]
    fn add(&self, n: i64) {
        fast_counter::ConcurrentCounter::add(self, n as isize);
    }
    fn total(&self) -> i64 {
        self.sum() as i64
    }
}

fn bench_counter<C: Counter>(c: &mut Criterion) {
    let mut group = c.benchmark_group("in_process");
    for threads in [1u64, 2] {
        group.throughput(Throughput::Elements(threads * ADDS_PER_THREAD));
        let counter = C::make();
        group.bench_function(BenchmarkId::new(C::name(), format!("{threads}_threads")), |b| {
            b.iter(|| {
                std::thread::scope(|s| {
                    for _ in 0..threads {
                        s.spawn(|| {
                            for _ in 0..ADDS_PER_THREAD {
                                counter.add(black_box(1));
                            }
                        });
                    }
                });
            });
        });
        black_box(counter.total());
    }
    group.finish();
}

fn in_process(c: &mut Criterion) {
    bench_counter::<StripedCounter>(c);
    bench_counter::<AtomicI64>(c);
    bench_counter::<fast_counter::ConcurrentCounter>(c);
}

const TASKS: u64 = 16;
const REDIS_INCRS_PER_TASK: u64 = 2_000;

/// Times `iters` rounds of `TASKS` tasks that each await `op` a fixed number
/// of times.
fn time_tasks<F, Fut>(runtime: &tokio::runtime::Runtime, iters: u64, op: F) -> Duration
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    runtime.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..TASKS {
                let op = op.clone();
                tasks.spawn(async move {
                    for _ in 0..REDIS_INCRS_PER_TASK {
                        op().await;
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
        }
        start.elapsed()
    })
}

/// `INCR` on one hot key vs a 16-shard counter, over one connection (a
/// standalone manager or a cluster connection).
fn naive_vs_sharded<C>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &tokio::runtime::Runtime,
    conn: C,
    hot_key: String,
    sharded_name: &str,
) where
    C: redis::aio::ConnectionLike + Into<RedisConnection> + Clone + Send + Sync + 'static,
{
    let naive_conn = conn.clone();
    group.bench_function("naive_incr_one_key", |b| {
        b.iter_custom(|iters| {
            let (conn, key) = (naive_conn.clone(), hot_key.clone());
            time_tasks(runtime, iters, move || {
                let (mut con, key) = (conn.clone(), key.clone());
                async move {
                    let _: i64 = redis::cmd("INCR").arg(&key).query_async(&mut con).await.unwrap();
                }
            })
        });
    });
    let sharded =
        Arc::new(runtime.block_on(RedisShardedCounter::open(conn, sharded_name, 16)).unwrap());
    group.bench_function("sharded_counter_16_shards", |b| {
        b.iter_custom(|iters| {
            let counter = sharded.clone();
            time_tasks(runtime, iters, move || {
                let counter = counter.clone();
                async move { counter.incr(1).await.unwrap() }
            })
        });
    });
}

fn redis_throughput(c: &mut Criterion) {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let redis = sysblocks_testkit::Redis::new();
    let conn = runtime.block_on(redis.connection_manager());
    let mut group = c.benchmark_group("redis_incr");
    group.sample_size(10);
    group.throughput(Throughput::Elements(TASKS * REDIS_INCRS_PER_TASK));
    naive_vs_sharded(&mut group, &runtime, conn.clone(), redis.key("hot"), &redis.key("sharded"));

    // Batched: a hundred times the adds (acknowledged locally), plus the
    // flush that puts them all in Redis, timed together.
    let target =
        runtime.block_on(RedisShardedCounter::open(conn, &redis.key("batched"), 16)).unwrap();
    let batched = Arc::new(runtime.block_on(async {
        BatchedCounter::start(target, Duration::from_millis(50), 1_000_000).unwrap()
    }));
    group.throughput(Throughput::Elements(TASKS * REDIS_INCRS_PER_TASK * 100));
    group.bench_function("batched_counter", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut tasks = tokio::task::JoinSet::new();
                    for _ in 0..TASKS {
                        let counter = batched.clone();
                        tasks.spawn(async move {
                            for _ in 0..REDIS_INCRS_PER_TASK * 100 {
                                counter.add(1);
                            }
                        });
                    }
                    while tasks.join_next().await.is_some() {}
                    batched.flush().await.unwrap();
                }
                start.elapsed()
            })
        });
    });
    group.finish();
}

/// The same two workloads on the 3-master cluster: the shards spread over
/// the nodes, the hot key pins one.
fn cluster_throughput(c: &mut Criterion) {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let cluster = sysblocks_testkit::Cluster::new();
    let conn = runtime.block_on(cluster.connection());
    let mut group = c.benchmark_group("cluster_incr");
    group.sample_size(10);
    group.throughput(Throughput::Elements(TASKS * REDIS_INCRS_PER_TASK));
    naive_vs_sharded(&mut group, &runtime, conn, cluster.key("hot"), &cluster.key("sharded"));
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = in_process, redis_throughput, cluster_throughput
}
criterion_main!(benches);
