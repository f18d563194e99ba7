//! The behaviour suite on Redis and on the 3-master Redis Cluster (started
//! by scripts/test.sh, or by the testkit fixtures), in real time.
#![cfg(feature = "redis")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use sysblocks_scheduler::{Clock, RedisBackend, SystemClock};
use sysblocks_testkit::{Cluster, Redis};

fn clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

async fn standalone(
    redis: &Redis,
    queue: &str,
) -> Arc<RedisBackend<redis::aio::ConnectionManager>> {
    Arc::new(RedisBackend::new(
        redis.connection_manager().await,
        &format!("{}{queue}", redis.prefix()),
    ))
}

async fn cluster(
    cluster: &Cluster,
    queue: &str,
) -> Arc<RedisBackend<redis::cluster_async::ClusterConnection>> {
    Arc::new(RedisBackend::new(cluster.connection().await, &format!("{}{queue}", cluster.prefix())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_retries_dead_letters_and_replay() {
    let redis = Redis::new();
    let backend = standalone(&redis, "retry").await;
    common::retries_then_dead_letter_then_replay(
        backend,
        clock(),
        Duration::from_millis(20),
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_random_dags_run_parents_first() {
    let redis = Redis::new();
    for seed in 0..3 {
        let backend = standalone(&redis, &format!("dag{seed}")).await;
        common::random_dags_respect_order(backend, clock(), seed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cycles_rejected_and_failures_propagate() {
    let redis = Redis::new();
    common::cycles_rejected_and_failures_propagate(standalone(&redis, "fail").await, clock()).await;
}

#[tokio::test]
async fn redis_leases_fence_stale_workers() {
    let redis = Redis::new();
    common::leases_fence_stale_workers(standalone(&redis, "lease").await, 1_700_000_000_000).await;
}

#[tokio::test]
async fn redis_priorities_delays_and_idempotency() {
    let redis = Redis::new();
    common::priorities_delays_and_idempotency(standalone(&redis, "prio").await, 1_700_000_000_000)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_panics_and_bad_tasks() {
    let redis = Redis::new();
    common::panics_and_bad_tasks_are_failed_attempts(standalone(&redis, "bad").await, clock())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_runs_the_same_suite() {
    let c = Cluster::new();
    common::leases_fence_stale_workers(cluster(&c, "lease").await, 1_700_000_000_000).await;
    common::priorities_delays_and_idempotency(cluster(&c, "prio").await, 1_700_000_000_000).await;
    common::cycles_rejected_and_failures_propagate(cluster(&c, "fail").await, clock()).await;
    common::random_dags_respect_order(cluster(&c, "dag").await, clock(), 1).await;
    common::retries_then_dead_letter_then_replay(
        cluster(&c, "retry").await,
        clock(),
        Duration::from_millis(20),
        false,
    )
    .await;
    common::panics_and_bad_tasks_are_failed_attempts(cluster(&c, "bad").await, clock()).await;
}

/// Two processes running the same cron job submit each tick once.
#[tokio::test]
async fn cron_ticks_are_submitted_once_across_schedulers() {
    use sysblocks_scheduler::{CronJob, CronSchedule, Scheduler};
    let redis = Redis::new();
    let backend = standalone(&redis, "cron").await;
    let job = CronJob::new(
        "nightly",
        "report",
        &(),
        CronSchedule::parse("0 3 * * *", "Europe/Paris").unwrap(),
    )
    .unwrap();
    let first = Scheduler::new(backend.clone(), clock());
    let second = Scheduler::new(standalone(&redis, "cron").await, clock());
    let after = 1_780_315_200_000; // 2026-06-01 12:00 UTC
    let a = first.fire_next(&job, after).await.unwrap();
    let b = second.fire_next(&job, after).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(a, Some(1_780_362_000_000), "03:00 Paris (CEST) = 01:00 UTC on 2 June");
    let counts = first.counts().await.unwrap();
    assert_eq!(counts.scheduled + counts.ready, 1, "one task for the tick");
}

#[tokio::test]
async fn succeeded_tasks_expire_after_the_retention() {
    use sysblocks_scheduler::{Backend, Scheduler, Task};
    let redis = Redis::new();
    let queue = format!("{}retention", redis.prefix());
    let mut connection = redis.connection_manager().await;
    let backend = Arc::new(
        RedisBackend::new(connection.clone(), &queue).with_retention(Duration::from_secs(60)),
    );
    let now = 1_700_000_000_000;
    let scheduler = Scheduler::new(backend.clone(), Arc::new(common::FixedClock(now)));
    let task = scheduler.submit(Task::new("j", &()).unwrap()).await.unwrap();
    let (claimed, _) = backend.claim(now, 1_000, 1).await.unwrap();
    backend.ack(task.id(), claimed[0].token, now).await.unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{}t:{}", backend.prefix(), task.id()))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!((50_000..=60_000).contains(&ttl), "ttl {ttl} ms");
}
