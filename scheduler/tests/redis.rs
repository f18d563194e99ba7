//! The behaviour suite on Redis and on the 3-master Redis Cluster (started
//! by scripts/test.sh, or by the testkit fixtures), in real time.
#![cfg(feature = "redis")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use sysblocks_scheduler::{Clock, RedisBackend, WallClock};
use sysblocks_testkit::{Cluster, Redis};

fn clock() -> Arc<dyn Clock> {
    Arc::new(WallClock)
}

async fn standalone(redis: &Redis, queue: &str) -> Arc<RedisBackend> {
    Arc::new(
        RedisBackend::new(redis.connection_manager().await, &format!("{}{queue}", redis.prefix()))
            .unwrap(),
    )
}

async fn cluster(cluster: &Cluster, queue: &str) -> Arc<RedisBackend> {
    Arc::new(
        RedisBackend::new(cluster.connection().await, &format!("{}{queue}", cluster.prefix()))
            .unwrap(),
    )
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
    common::poison_tasks_die_after_their_attempts(cluster(&c, "poison").await, 1_700_000_000_000)
        .await;
    common::wait_resolves_with_the_final_state(cluster(&c, "wait").await, clock()).await;
    common::extreme_inputs_agree_across_backends(cluster(&c, "extreme").await, 1_700_000_000_000)
        .await;
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
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
    // Both fire at the same moment, on two connections.
    let (a, b) = tokio::join!(first.fire_next(&job, after), second.fire_next(&job, after));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b);
    assert_eq!(a, Some(1_780_362_000_000), "03:00 Paris (CEST) = 01:00 UTC on 2 June");
    let counts = first.counts().await.unwrap();
    assert_eq!(counts.scheduled + counts.ready, 1, "one task for the tick");
}

#[tokio::test]
async fn an_ack_releases_the_children_of_a_task_stored_without_the_kids_field() {
    use sysblocks_scheduler::{Backend, TaskId, TaskState};
    let redis = Redis::new();
    let mut connection = redis.connection_manager().await;
    let backend =
        RedisBackend::new(connection.clone(), &format!("{}kids", redis.prefix())).unwrap();
    let now = 1_700_000_000_000;
    let task = |id: &str, parents: &[&str]| common::plain_task(id, parents, now);
    backend.submit(vec![task("p", &[]), task("q", &[]), task("c", &["p"])], now).await.unwrap();
    // A parent stored by a version that did not keep the field: its ack
    // must still read its children list.
    let _: () = redis::cmd("HDEL")
        .arg(format!("{}t:p", backend.prefix()))
        .arg("kids")
        .query_async(&mut connection)
        .await
        .unwrap();
    let (claimed, _) = backend.claim(now, 1_000, 2).await.unwrap();
    let acks: Vec<(TaskId, u64)> = claimed.iter().map(|c| (c.id.clone(), c.token)).collect();
    let answers = backend.ack_many(&acks, now).await.unwrap();
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    let child = backend.info(&TaskId::from("c")).await.unwrap().unwrap();
    assert_eq!(child.state, TaskState::Ready, "released by its parent's ack");
}

#[tokio::test]
async fn a_child_submitted_while_its_parent_runs_is_released_by_the_parents_ack() {
    use sysblocks_scheduler::{Backend, TaskId, TaskState};
    let redis = Redis::new();
    let backend = standalone(&redis, "late_child").await;
    let now = 1_700_000_000_000;
    let task = |id: &str, parents: &[&str]| common::plain_task(id, parents, now);
    backend.submit(vec![task("p", &[])], now).await.unwrap();
    // Claimed while it had no children: its ack must still find the one
    // submitted after the claim.
    let (claimed, _) = backend.claim(now, 1_000, 1).await.unwrap();
    backend.submit(vec![task("c", &["p"])], now).await.unwrap();
    let child = backend.info(&TaskId::from("c")).await.unwrap().unwrap();
    assert_eq!(child.state, TaskState::Waiting, "its parent is running");
    backend.ack(&claimed[0].id, claimed[0].token, now).await.unwrap();
    let child = backend.info(&TaskId::from("c")).await.unwrap().unwrap();
    assert_eq!(child.state, TaskState::Ready, "released by its parent's ack");
}

#[tokio::test]
async fn succeeded_tasks_expire_after_the_retention() {
    use sysblocks_scheduler::{Backend, Scheduler, Task};
    let redis = Redis::new();
    let queue = format!("{}retention", redis.prefix());
    let mut connection = redis.connection_manager().await;
    let backend = Arc::new(
        RedisBackend::new(connection.clone(), &queue)
            .unwrap()
            .with_retention(Duration::from_secs(60)),
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

#[tokio::test]
async fn redis_poison_tasks_die_after_their_attempts() {
    let redis = Redis::new();
    common::poison_tasks_die_after_their_attempts(
        standalone(&redis, "poison").await,
        1_700_000_000_000,
    )
    .await;
}

#[tokio::test]
async fn redis_extreme_inputs_agree_with_memory() {
    let redis = Redis::new();
    common::extreme_inputs_agree_across_backends(
        standalone(&redis, "extreme").await,
        1_700_000_000_000,
    )
    .await;
}

#[tokio::test]
async fn queue_names_that_would_break_the_hash_tag_are_refused() {
    use sysblocks_scheduler::SchedulerError;
    let redis = Redis::new();
    for name in ["", "a{b", "}", "{q}"] {
        assert!(matches!(
            RedisBackend::new(redis.connection_manager().await, name),
            Err(SchedulerError::InvalidQueue { .. })
        ));
    }
}

/// Renewals that fail (Redis frozen for longer than the lease) stop the
/// attempt: its handler sees `cancelled()` before the lease can have run
/// out, and it is not acknowledged, so a second worker that reaps the task
/// never runs it while the first still does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_renewals_cancel_the_handler_before_the_lease_runs_out() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Instant;
    use sysblocks_scheduler::{
        Backend, Registry, Scheduler, Task, TaskState, Worker, WorkerConfig,
    };
    let mut redis = Redis::private();
    let backend = standalone(&redis, "renew").await;
    let scheduler = Scheduler::new(backend.clone(), clock());
    let id = scheduler.submit(Task::new("long", &()).unwrap()).await.unwrap().id().clone();
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let (cancelled_tx, mut cancelled) = tokio::sync::mpsc::unbounded_channel();
    let finished = Arc::new(AtomicU64::new(0));
    let mut registry = Registry::new();
    let done = finished.clone();
    /// Says when the handler stopped: on `cancelled()`, or when the worker
    /// drops its future (how an async attempt is cancelled).
    struct Stopped(tokio::sync::mpsc::UnboundedSender<Instant>);
    impl Drop for Stopped {
        fn drop(&mut self) {
            let _ = self.0.send(Instant::now());
        }
    }
    registry.register("long", move |ctx, (): ()| {
        let (started_tx, cancelled_tx, done) = (started_tx.clone(), cancelled_tx.clone(), done.clone());
        async move {
            let _stopped = Stopped(cancelled_tx);
            started_tx.send(Instant::now()).unwrap();
            tokio::select! {
                () = ctx.cancelled() => {}
                () = tokio::time::sleep(Duration::from_secs(60)) => { done.fetch_add(1, Ordering::SeqCst); }
            }
            Ok(())
        }
    });
    let lease = Duration::from_millis(900);
    let config = WorkerConfig { lease, concurrency: 1, ..WorkerConfig::default() };
    let worker =
        Arc::new(Worker::new(backend.clone(), registry, config).unwrap().with_clock(clock()));
    let running = tokio::spawn({
        let worker = worker.clone();
        async move { worker.run(Duration::from_millis(100)).await }
    });
    let claimed_by = started.recv().await.unwrap();
    redis.server().unwrap().pause();
    let stopped = tokio::time::timeout(lease * 10, cancelled.recv())
        .await
        .expect("the attempt was not stopped while its renewals failed")
        .unwrap();
    // The attempt stops within the lease it holds (a generous bound: the
    // lease runs from just before `claimed_by`).
    assert!(stopped - claimed_by < lease, "stopped {:?} after the claim", stopped - claimed_by);
    redis.server().unwrap().resume();
    assert_eq!(worker.stats().lost_leases, 1);
    assert_eq!(worker.stats().succeeded, 0, "no ack after a lost lease");
    let info = backend.info(&id).await.unwrap().unwrap();
    assert!(matches!(info.state, TaskState::Running | TaskState::Ready), "{info:?}");
    worker.shutdown();
    running.await.unwrap().unwrap();
    assert_eq!(finished.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_wait_resolves_with_the_final_state() {
    let redis = Redis::new();
    common::wait_resolves_with_the_final_state(standalone(&redis, "wait").await, clock()).await;
}

/// Two workers, each with its own connection and `RedisLimiter`, share one
/// limit of 10 starts per day (a fixed window, so the window cannot end
/// during the test unless it crosses midnight UTC, which is detected):
/// together they start exactly 10 of 30 tasks, never more.
#[cfg(feature = "rate-limit")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_one_redis_rate_limit() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use sysblocks_ratelimit::{Algorithm, KeyedLimiter, Limit, Rate, RedisLimiter};
    use sysblocks_scheduler::{RateLimit, Registry, Scheduler, Task, Worker, WorkerConfig};

    let redis = Redis::new();
    let day = Duration::from_secs(86_400);
    let limit = Limit::new(Algorithm::FixedWindow, Rate::new(10, day).unwrap());
    let server_day = async || {
        let mut con = redis.connection_manager().await;
        let (secs, _): (u64, u64) = redis::cmd("TIME").query_async(&mut con).await.unwrap();
        secs / 86_400
    };
    for attempt in 0.. {
        let first_day = server_day().await;
        let queue = format!("shared-limit-{attempt}");
        let backend = standalone(&redis, &queue).await;
        let started = Arc::new(AtomicUsize::new(0));
        let tenth = Arc::new(tokio::sync::Notify::new());
        let registry = || {
            let (started, tenth) = (started.clone(), tenth.clone());
            let mut registry = Registry::new();
            registry.register("job", move |_ctx, (): ()| {
                let (started, tenth) = (started.clone(), tenth.clone());
                async move {
                    if started.fetch_add(1, Ordering::SeqCst) + 1 == 10 {
                        tenth.notify_one();
                    }
                    Ok(())
                }
            });
            registry
        };
        let scheduler = Scheduler::new(backend.clone(), clock());
        let tasks = (0..30).map(|_| Task::new("job", &()).unwrap()).collect();
        scheduler.submit_all(tasks).await.unwrap();
        let prefix = format!("{}{queue}:limit:", redis.prefix());
        let mut workers = Vec::new();
        for _ in 0..2 {
            let limiter =
                RedisLimiter::new(redis.connection_manager().await, limit, &prefix).unwrap();
            let config = WorkerConfig {
                concurrency: 4,
                rate_limit: Some(RateLimit::shared(limiter, "starts")),
                ..WorkerConfig::default()
            };
            let worker = Arc::new(
                Worker::new(backend.clone(), registry(), config).unwrap().with_clock(clock()),
            );
            let running = tokio::spawn({
                let worker = worker.clone();
                async move { worker.run(Duration::from_secs(5)).await }
            });
            workers.push((worker, running));
        }
        tokio::time::timeout(Duration::from_secs(30), tenth.notified())
            .await
            .expect("ten tasks start within 30 s");
        // Both workers keep asking for a while: the limit must hold. (An
        // absence cannot be signalled; a third of a second is many polls.)
        tokio::time::sleep(Duration::from_millis(300)).await;
        for (worker, _) in &workers {
            worker.shutdown();
        }
        for (_, running) in workers {
            running.await.unwrap().unwrap();
        }
        if server_day().await != first_day {
            continue; // the window ended during the test: run it again
        }
        let counts = scheduler.counts().await.unwrap();
        assert_eq!(started.load(Ordering::SeqCst), 10, "exactly the limit started");
        assert_eq!(counts.succeeded, 10);
        assert_eq!(counts.ready, 20, "the rest wait for the next window: {counts:?}");
        let observer = RedisLimiter::new(redis.connection_manager().await, limit, &prefix).unwrap();
        let peek = observer.peek_n("starts", 1).await.unwrap();
        assert_eq!((peek.allowed, peek.remaining), (false, 0), "the window's budget is used up");
        assert_eq!(KeyedLimiter::<str>::limit(&observer), 10);
        break;
    }
}

/// With Redis gone, a queue operation fails within the connection's bound
/// (not the client's own reconnection attempts) and keeps the Redis error
/// as its source; the queue works again once Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_fails_fast_with_its_error_as_the_source() {
    use sysblocks_scheduler::{Backend, RedisConnection, SchedulerError};
    let mut redis = Redis::private();
    let bound = Duration::from_millis(200);
    let connection = RedisConnection::from(redis.connection_manager().await).with_timeout(bound);
    let backend = RedisBackend::new(connection, "q").unwrap();
    assert_eq!(backend.counts().await.unwrap().ready, 0);
    redis.server().unwrap().stop();
    let started = std::time::Instant::now();
    let error = backend.counts().await.unwrap_err();
    assert!(started.elapsed() < bound * 10, "took {:?}", started.elapsed());
    assert!(matches!(error, SchedulerError::Backend(_)), "{error}");
    let source = std::error::Error::source(&error).expect("a source");
    assert!(source.downcast_ref::<redis::RedisError>().is_some(), "{source:?}");
    redis.server().unwrap().restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while backend.counts().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "the queue works again once Redis is back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
