//! Retry policies' bounds, and the worker's limits: concurrency, rate
//! limit, graceful shutdown, lost leases, bad configuration.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use sysblocks_scheduler::{
    Backend, Clock, HandlerOptions, Jitter, MemoryBackend, Registry, RetryPolicy, Scheduler,
    SchedulerError, Task, TaskState, TokioClock, Worker, WorkerConfig,
};

const START: u64 = 1_700_000_000_000;

proptest! {
    /// Every jitter stays within its documented bounds.
    #[test]
    fn delays_stay_within_the_jitter_bounds(
        base_ms in 1u64..2_000,
        cap_factor in 1u32..64,
        attempt in 1u32..40,
        previous_ms in 0u64..100_000,
        seed in any::<u64>(),
    ) {
        let base = Duration::from_millis(base_ms);
        let cap = base * cap_factor;
        let policy = RetryPolicy::new(base, cap, 50).unwrap();
        let mut rng = SmallRng::seed_from_u64(seed);
        let exp = policy.exponential(attempt);
        prop_assert!(exp <= cap && exp >= base.min(cap));
        let previous = Duration::from_millis(previous_ms);
        let none = policy.with_jitter(Jitter::None).delay_with(attempt, previous, &mut rng);
        prop_assert_eq!(none, exp);
        let full = policy.with_jitter(Jitter::Full).delay_with(attempt, previous, &mut rng);
        prop_assert!(full <= exp);
        let equal = policy.with_jitter(Jitter::Equal).delay_with(attempt, previous, &mut rng);
        prop_assert!(equal >= exp / 2 && equal <= exp);
        let decorrelated = policy.with_jitter(Jitter::Decorrelated).delay_with(attempt, previous, &mut rng);
        prop_assert!(decorrelated >= base && decorrelated <= cap.max(base));
        prop_assert!(decorrelated <= (previous.max(base) * 3).max(base));
    }

    /// The Sidekiq preset: n^4 + 15 + rand(10) × (n + 1) seconds.
    #[test]
    fn sidekiq_preset_follows_its_formula(attempt in 1u32..26, seed in any::<u64>()) {
        let policy = RetryPolicy::sidekiq();
        let mut rng = SmallRng::seed_from_u64(seed);
        let n = u64::from(attempt - 1);
        let d = policy.delay_with(attempt, Duration::ZERO, &mut rng).as_secs();
        let low = n.pow(4) + 15;
        prop_assert!(d >= low.min(7 * 86_400) && d <= (low + 9 * (n + 1)).min(7 * 86_400));
        prop_assert_eq!(policy.max_attempts(), 26);
    }
}

#[test]
fn bad_configuration_is_a_typed_error() {
    let backend = Arc::new(MemoryBackend::new());
    let zero = WorkerConfig { concurrency: 0, ..WorkerConfig::default() };
    assert!(matches!(
        Worker::new(backend.clone(), Registry::new(), zero),
        Err(SchedulerError::ZeroConcurrency)
    ));
    let no_lease = WorkerConfig { lease: Duration::ZERO, ..WorkerConfig::default() };
    assert!(Worker::new(backend, Registry::new(), no_lease).is_err());
    let one_s = Duration::from_secs(1);
    assert!(RetryPolicy::new(one_s, one_s, 0).is_err());
    assert!(RetryPolicy::new(Duration::ZERO, one_s, 3).is_err());
    assert!(RetryPolicy::new(one_s * 2, one_s, 3).is_err());
    assert!(SchedulerError::ZeroConcurrency.to_string().contains("concurrency"));
}

async fn spawn_worker<B: Backend>(
    worker: Arc<Worker<B>>,
    drain: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { worker.run(drain).await.unwrap() })
}

/// The worker's rate limit (the `rate-limit` feature).
#[cfg(feature = "rate-limit")]
mod rate_limited {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use sysblocks_ratelimit::{Rate, TokenBucket};
    use sysblocks_scheduler::{
        Clock, MemoryBackend, RateLimit, Registry, Scheduler, Task, TokioClock, Worker,
        WorkerConfig,
    };

    use super::{START, spawn_worker};

    #[tokio::test(start_paused = true)]
    async fn concurrency_and_rate_limit_are_respected() {
        let backend = Arc::new(MemoryBackend::new());
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(Duration::from_millis(START)));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let starts: Arc<std::sync::Mutex<Vec<u64>>> = Arc::default();
        let mut registry = Registry::new();
        {
            let (running, peak) = (running.clone(), peak.clone());
            let (starts, clock) = (starts.clone(), clock.clone());
            registry.register("slow", move |_ctx, (): ()| {
                let (running, peak) = (running.clone(), peak.clone());
                let (starts, clock) = (starts.clone(), clock.clone());
                async move {
                    starts.lock().unwrap().push(clock.now_ms());
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                }
            });
        }
        let scheduler = Scheduler::new(backend.clone(), clock.clone());
        scheduler
            .submit_all((0..40).map(|_| Task::new("slow", &()).unwrap()).collect())
            .await
            .unwrap();
        // At most 3 at once, and at most 10 started per second (burst 10), on
        // tokio's virtual clock.
        let bucket =
            TokenBucket::with_clock(10, Rate::per_second(10).unwrap(), VirtualClock::new())
                .unwrap();
        let config = WorkerConfig {
            concurrency: 3,
            rate_limit: Some(RateLimit::local(bucket)),
            ..WorkerConfig::default()
        };
        let worker = Arc::new(
            Worker::new(backend.clone(), registry, config).unwrap().with_clock(clock.clone()),
        );
        let handle = spawn_worker(worker.clone(), Duration::from_secs(1)).await;
        let started = clock.now_ms();
        while scheduler.counts().await.unwrap().succeeded < 40 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        worker.shutdown();
        handle.await.unwrap();
        assert_eq!(
            peak.load(Ordering::SeqCst),
            3,
            "the concurrency limit is reached, never passed"
        );
        // GCRA with burst 10 at 10/s: at most 10 + 10 starts in any second, and
        // the 30 beyond the burst take at least 2.9 s.
        let starts = starts.lock().unwrap().clone();
        for &t in &starts {
            let in_window = starts.iter().filter(|&&s| s >= t && s < t + 1_000).count();
            assert!(in_window <= 20, "{in_window} starts within a second");
        }
        assert!(starts.last().unwrap() - started >= 2_900, "the rate limit paced the starts");
    }

    /// Tokio's virtual clock for the rate limiter.
    #[derive(Debug)]
    struct VirtualClock(tokio::time::Instant);

    impl VirtualClock {
        fn new() -> Self {
            VirtualClock(tokio::time::Instant::now())
        }
    }

    impl sysblocks_ratelimit::Clock for VirtualClock {
        fn now_nanos(&self) -> u64 {
            self.0.elapsed().as_nanos() as u64
        }
    }
}

#[tokio::test(start_paused = true)]
async fn shutdown_drains_within_the_deadline_then_releases_the_rest() {
    let backend = Arc::new(MemoryBackend::new());
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(Duration::from_millis(START)));
    let mut registry = Registry::new();
    registry.register("quick", |_ctx, (): ()| async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Ok(())
    });
    registry.register("stuck", |ctx, (): ()| async move {
        // Runs until cancelled: the worker's shutdown tells it to stop.
        ctx.cancelled().await;
        Err(sysblocks_scheduler::TaskError::retry("cancelled"))
    });
    let scheduler = Scheduler::new(backend.clone(), clock.clone());
    let quick = scheduler.submit(Task::new("quick", &()).unwrap()).await.unwrap();
    let stuck = scheduler.submit(Task::new("stuck", &()).unwrap()).await.unwrap();
    let worker = Arc::new(
        Worker::new(backend.clone(), registry, WorkerConfig::default())
            .unwrap()
            .with_clock(clock.clone()),
    );
    let handle = spawn_worker(worker.clone(), Duration::from_millis(100)).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(scheduler.counts().await.unwrap().running, 2);
    worker.shutdown();
    handle.await.unwrap();
    assert_eq!(scheduler.info(quick.id()).await.unwrap().unwrap().state, TaskState::Succeeded);
    let stuck = scheduler.info(stuck.id()).await.unwrap().unwrap();
    assert_eq!(stuck.state, TaskState::Ready, "released back to the queue");
    assert_eq!(stuck.attempts, 0, "a released attempt does not count");
    assert_eq!(worker.stats().released, 1);
}

#[tokio::test(start_paused = true)]
async fn a_worker_that_loses_its_lease_stops_and_another_finishes() {
    let backend = Arc::new(MemoryBackend::new());
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(Duration::from_millis(START)));
    let scheduler = Scheduler::new(backend.clone(), clock.clone());
    let task = scheduler.submit(Task::new("job", &()).unwrap()).await.unwrap();
    // A worker claims it and vanishes without renewing.
    let (claimed, _) = backend.claim(clock.now_ms(), 1_000, 1).await.unwrap();
    let stale = claimed[0].token;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    // The handler records the attempt it ran as; the test checks it after
    // (a failing assertion inside a handler would only fail the attempt).
    let attempts: Arc<std::sync::Mutex<Vec<u32>>> = Arc::default();
    let mut registry = Registry::new();
    let options = HandlerOptions { timeout: Duration::from_secs(5), retry: RetryPolicy::default() };
    {
        let attempts = attempts.clone();
        registry.register_with("job", options, move |ctx, (): ()| {
            let attempts = attempts.clone();
            async move {
                attempts.lock().unwrap().push(ctx.attempt);
                Ok(())
            }
        });
    }
    let worker = Arc::new(
        Worker::new(backend.clone(), registry, WorkerConfig::default())
            .unwrap()
            .with_clock(clock.clone()),
    );
    let handle = spawn_worker(worker.clone(), Duration::from_secs(1)).await;
    let deadline = clock.now_ms() + 60_000;
    while scheduler.info(task.id()).await.unwrap().unwrap().state != TaskState::Succeeded {
        assert!(clock.now_ms() < deadline, "the reaped task runs again within a minute");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    worker.shutdown();
    handle.await.unwrap();
    assert_eq!(*attempts.lock().unwrap(), [2], "one run, the second attempt, after the reaper");
    // The vanished worker's late ack is refused.
    assert!(matches!(
        backend.ack(task.id(), stale, clock.now_ms()).await,
        Err(SchedulerError::StaleLease { .. })
    ));
}

/// An idle worker backs off: over ten seconds with nothing to do it makes
/// a few dozen claims, not one every 5 ms (2,000); a task submitted to the
/// idle queue is still started within the longest pause.
#[tokio::test(start_paused = true)]
async fn an_idle_worker_backs_off_and_still_notices_new_work() {
    let backend = Arc::new(MemoryBackend::new());
    let clock = TokioClock::starting_at(Duration::from_millis(START));
    // The handler sends the time it started at.
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let mut registry = Registry::new();
    {
        let (started, clock) = (started_tx, clock);
        registry.register("job", move |_ctx, (): ()| {
            let started = started.clone();
            async move {
                let _ = started.send(clock.now_ms());
                Ok(())
            }
        });
    }
    let config = WorkerConfig::default();
    let max_pause = config.max_poll_interval;
    let worker =
        Arc::new(Worker::new(backend.clone(), registry, config).unwrap().with_clock(clock));
    let handle = spawn_worker(worker.clone(), Duration::from_secs(1)).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_claims = worker.stats().claims;
    assert!(idle_claims <= 40, "{idle_claims} claims in 10 idle seconds");
    assert!(idle_claims >= 10, "the worker kept looking ({idle_claims} claims)");
    let scheduler = Scheduler::new(backend.clone(), Arc::new(clock));
    let submitted_at = clock.now_ms();
    scheduler.submit(Task::new("job", &()).unwrap()).await.unwrap();
    let waited = started.recv().await.unwrap() - submitted_at;
    assert!(waited <= max_pause.as_millis() as u64, "noticed after {waited} ms");
    worker.shutdown();
    handle.await.unwrap();
}

/// Attempts are polled once on the worker's own loop, and a first poll
/// that runs long sends the rest of the batch to tasks of their own: four
/// handlers that each compute for a while before their first await still
/// run two at a time on a two-thread runtime (all polled in turn on the
/// loop, they would run one at a time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_that_compute_before_awaiting_still_run_in_parallel() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let backend = Arc::new(MemoryBackend::new());
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    // A permit per handler that has returned.
    let finished = Arc::new(tokio::sync::Semaphore::new(0));
    let mut registry = Registry::new();
    {
        let (running, peak, finished) = (running.clone(), peak.clone(), finished.clone());
        registry.register("compute", move |_ctx, (): ()| {
            let (running, peak, finished) = (running.clone(), peak.clone(), finished.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                // Busy for 200 ms without awaiting, while watching for a
                // second handler to be running too.
                let start = std::time::Instant::now();
                while start.elapsed() < Duration::from_millis(200)
                    && peak.load(Ordering::SeqCst) < 2
                {
                    std::hint::spin_loop();
                }
                running.fetch_sub(1, Ordering::SeqCst);
                finished.add_permits(1);
                Ok(())
            }
        });
    }
    let scheduler = Scheduler::new(backend.clone(), Arc::new(sysblocks_scheduler::WallClock));
    scheduler
        .submit_all((0..4).map(|_| Task::new("compute", &()).unwrap()).collect())
        .await
        .unwrap();
    let config = WorkerConfig { concurrency: 4, ..WorkerConfig::default() };
    let worker = Arc::new(Worker::new(backend.clone(), registry, config).unwrap());
    let handle = spawn_worker(worker.clone(), Duration::from_secs(5)).await;
    drop(finished.acquire_many(4).await.unwrap());
    worker.shutdown();
    handle.await.unwrap();
    assert_eq!(peak.load(Ordering::SeqCst), 2, "two handlers ran at once");
    // Acked, whether they finished on the loop or as tasks of their own.
    assert_eq!(scheduler.counts().await.unwrap().succeeded, 4);
}

/// Durations at their extremes are taken, not a panic: a worker whose
/// lease and poll intervals are `Duration::MAX` runs tasks and stops on
/// shutdown (doubling its idle pause once overflowed), and `wait` and
/// `wait_all` take `Duration::MAX` as "however long it takes".
#[tokio::test(start_paused = true)]
async fn extreme_durations_are_taken_without_a_panic() {
    let backend = Arc::new(MemoryBackend::new());
    let clock = TokioClock::starting_at(Duration::from_millis(START));
    let mut registry = Registry::new();
    registry.register("job", |_ctx, (): ()| async { Ok(()) });
    let config = WorkerConfig {
        lease: Duration::MAX,
        poll_interval: Duration::MAX,
        max_poll_interval: Duration::MAX,
        ..WorkerConfig::default()
    };
    let worker =
        Arc::new(Worker::new(backend.clone(), registry, config).unwrap().with_clock(clock));
    let scheduler = Scheduler::new(backend.clone(), Arc::new(clock));
    let first = scheduler.submit(Task::new("job", &()).unwrap()).await.unwrap().id().clone();
    let second = scheduler.submit(Task::new("job", &()).unwrap()).await.unwrap().id().clone();
    let handle = spawn_worker(worker.clone(), Duration::MAX).await;
    let done = scheduler.wait(&first, Duration::MAX).await.unwrap();
    assert_eq!(done.state, TaskState::Succeeded);
    let all = scheduler.wait_all(&[first, second], Duration::MAX).await.unwrap();
    assert!(all.iter().all(|t| t.state == TaskState::Succeeded));
    // The worker is idle now, in its longest pause; shutdown still ends it.
    worker.shutdown();
    handle.await.unwrap();
}
