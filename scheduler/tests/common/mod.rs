//! The behaviour suite every backend must pass. Each function takes a
//! fresh backend; the test files run it on memory, Redis and the Cluster.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sysblocks_scheduler::{
    AttemptLimits, Backend, Clock, Dag, HandlerOptions, Jitter, OnParentFailure, Registry,
    RetryPolicy, Scheduler, SchedulerError, Submitted, Task, TaskError, TaskId, TaskState, Worker,
    WorkerConfig,
};

/// A task named "j" with a null payload, due at `at`, waiting for
/// `parents` (cancelled if one fails).
pub fn plain_task(id: &str, parents: &[&str], at: u64) -> sysblocks_scheduler::NewTask {
    sysblocks_scheduler::NewTask {
        id: TaskId::from(id),
        name: "j".into(),
        payload: "null".into(),
        priority: 0,
        run_at: at,
        parents: parents.iter().map(|&p| TaskId::from(p)).collect(),
        on_parent_failure: sysblocks_scheduler::OnParentFailure::Cancel,
        idempotency: None,
    }
}

/// Runs a worker until `done` holds (checked on the clock's own ticks),
/// then shuts it down. Panics if it takes more than `limit` on `clock`.
pub async fn run_until<B, F, Fut>(
    backend: Arc<B>,
    registry: Registry,
    clock: Arc<dyn Clock>,
    config: WorkerConfig,
    limit: Duration,
    done: F,
) where
    B: Backend,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let worker =
        Arc::new(Worker::new(backend, registry, config).unwrap().with_clock(clock.clone()));
    let running = tokio::spawn({
        let worker = worker.clone();
        async move { worker.run(Duration::from_secs(5)).await }
    });
    let deadline = clock.now_ms() + limit.as_millis() as u64;
    while !done().await {
        assert!(clock.now_ms() < deadline, "not done within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    worker.shutdown();
    running.await.unwrap().unwrap();
}

fn fast_config() -> WorkerConfig {
    WorkerConfig { concurrency: 4, lease: Duration::from_secs(5), ..WorkerConfig::default() }
}

/// Retries follow the policy within its jitter bounds; after the last
/// attempt the task is dead with its last error; a replay runs it again.
pub async fn retries_then_dead_letter_then_replay<B: Backend>(
    backend: Arc<B>,
    clock: Arc<dyn Clock>,
    base: Duration,
    check_timing: bool,
) {
    let attempts: Arc<Mutex<Vec<u64>>> = Arc::default();
    let healed = Arc::new(Mutex::new(false));
    let policy = RetryPolicy::new(base, base * 8, 4).unwrap();
    let mut registry = Registry::new();
    {
        let (attempts, healed, clock) = (attempts.clone(), healed.clone(), clock.clone());
        registry.register_with(
            "flaky",
            HandlerOptions { timeout: Duration::from_secs(5), retry: policy },
            move |ctx, n: u32| {
                let (attempts, healed, clock) = (attempts.clone(), healed.clone(), clock.clone());
                async move {
                    attempts.lock().unwrap().push(clock.now_ms());
                    if *healed.lock().unwrap() {
                        Ok(())
                    } else {
                        Err(TaskError::retry(format!("attempt {} of task {n} failed", ctx.attempt)))
                    }
                }
            },
        );
    }
    let scheduler = Scheduler::new(backend.clone(), clock.clone());
    let id = scheduler.submit(Task::new("flaky", &7u32).unwrap()).await.unwrap().id().clone();
    {
        let scheduler = scheduler.clone();
        let id = id.clone();
        run_until(
            backend.clone(),
            registry.clone(),
            clock.clone(),
            fast_config(),
            base * 40,
            move || {
                let (scheduler, id) = (scheduler.clone(), id.clone());
                async move { scheduler.info(&id).await.unwrap().unwrap().state == TaskState::Dead }
            },
        )
        .await;
    }
    let times = attempts.lock().unwrap().clone();
    assert_eq!(times.len(), 4, "max_attempts attempts in all");
    if check_timing {
        let poll = WorkerConfig::default().poll_interval.as_millis() as u64;
        for (n, gap) in times.windows(2).map(|w| w[1] - w[0]).enumerate() {
            let bound = policy.exponential(n as u32 + 1).as_millis() as u64;
            assert!(gap <= bound + poll + 1, "retry {} after {gap} ms, bound {bound} ms", n + 1);
        }
    }
    let info = scheduler.info(&id).await.unwrap().unwrap();
    assert_eq!(info.attempts, 4);
    assert_eq!(info.last_error.as_deref(), Some("attempt 4 of task 7 failed"));
    let dead = scheduler.dead_letters(10).await.unwrap();
    assert_eq!(dead.iter().map(|t| &t.id).collect::<Vec<_>>(), [&id]);
    assert_eq!(scheduler.counts().await.unwrap().dead, 1);

    *healed.lock().unwrap() = true;
    scheduler.replay(&id).await.unwrap();
    assert!(matches!(scheduler.replay(&id).await, Err(SchedulerError::WrongState { .. })));
    {
        let scheduler = scheduler.clone();
        let id = id.clone();
        run_until(backend, registry, clock, fast_config(), base * 40, move || {
            let (scheduler, id) = (scheduler.clone(), id.clone());
            async move { scheduler.info(&id).await.unwrap().unwrap().state == TaskState::Succeeded }
        })
        .await;
    }
    assert!(scheduler.dead_letters(10).await.unwrap().is_empty());
    assert_eq!(attempts.lock().unwrap().len(), 5);
}

/// Random DAGs: every task starts only after all its parents finished.
pub async fn random_dags_respect_order<B: Backend>(
    backend: Arc<B>,
    clock: Arc<dyn Clock>,
    seed: u64,
) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let log: Arc<Mutex<Vec<(String, &'static str)>>> = Arc::default();
    let mut registry = Registry::new();
    {
        let log = log.clone();
        registry.register("step", move |_ctx, key: String| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push((key.clone(), "start"));
                tokio::task::yield_now().await;
                log.lock().unwrap().push((key, "end"));
                Ok(())
            }
        });
    }
    let scheduler = Scheduler::new(backend.clone(), clock.clone()).with_registry(&registry);
    let n = 15;
    let mut dag = Dag::new();
    let mut edges = Vec::new();
    for i in 0..n {
        let key = format!("n{i}");
        dag.add(&key, Task::new("step", &key).unwrap().priority(rng.random_range(0..3)));
    }
    for j in 0..n {
        for i in 0..j {
            if rng.random_bool(0.2) {
                dag.edge(&format!("n{i}"), &format!("n{j}")).unwrap();
                edges.push((format!("n{i}"), format!("n{j}")));
            }
        }
    }
    let ids = scheduler.submit_dag(dag).await.unwrap();
    let all: Vec<_> = ids.values().cloned().collect();
    {
        let scheduler = scheduler.clone();
        run_until(backend, registry, clock, fast_config(), Duration::from_secs(60), move || {
            let (scheduler, all) = (scheduler.clone(), all.clone());
            async move {
                for id in &all {
                    if scheduler.info(id).await.unwrap().unwrap().state != TaskState::Succeeded {
                        return false;
                    }
                }
                true
            }
        })
        .await;
    }
    let log = log.lock().unwrap();
    let position = |key: &str, what| log.iter().position(|(k, w)| k == key && *w == what).unwrap();
    for (parent, child) in &edges {
        assert!(position(parent, "end") < position(child, "start"), "{parent} before {child}");
    }
}

/// A cycle is refused; a dead parent cancels or fails its descendants.
pub async fn cycles_rejected_and_failures_propagate<B: Backend>(
    backend: Arc<B>,
    clock: Arc<dyn Clock>,
) {
    let mut registry = Registry::new();
    registry.register("ok", |_ctx, (): ()| async { Ok(()) });
    registry.register("doomed", |_ctx, (): ()| async { Err(TaskError::permanent("cannot work")) });
    let scheduler = Scheduler::new(backend.clone(), clock.clone()).with_registry(&registry);

    let mut cyclic = Dag::new();
    for key in ["a", "b", "c"] {
        cyclic.add(key, Task::new("ok", &()).unwrap());
    }
    cyclic.edge("a", "b").unwrap().edge("b", "c").unwrap().edge("c", "a").unwrap();
    assert!(matches!(scheduler.submit_dag(cyclic).await, Err(SchedulerError::Cycle { .. })));
    assert_eq!(scheduler.counts().await.unwrap(), Default::default(), "nothing was submitted");

    let mut dag = Dag::new();
    dag.add("root", Task::new("doomed", &()).unwrap());
    dag.add("cancelled", Task::new("ok", &()).unwrap());
    dag.add("failed", Task::new("ok", &()).unwrap().on_parent_failure(OnParentFailure::Fail));
    dag.add("grandchild", Task::new("ok", &()).unwrap());
    dag.add("independent", Task::new("ok", &()).unwrap());
    dag.edge("root", "cancelled").unwrap();
    dag.edge("root", "failed").unwrap();
    dag.edge("cancelled", "grandchild").unwrap();
    let ids = scheduler.submit_dag(dag).await.unwrap();
    {
        let scheduler = scheduler.clone();
        run_until(backend, registry, clock, fast_config(), Duration::from_secs(60), move || {
            let scheduler = scheduler.clone();
            async move {
                let c = scheduler.counts().await.unwrap();
                c.succeeded == 1 && c.dead == 2 && c.cancelled == 2
            }
        })
        .await;
    }
    let state = |key: &str| {
        let (scheduler, id) = (scheduler.clone(), ids[key].clone());
        async move { scheduler.info(&id).await.unwrap().unwrap() }
    };
    assert_eq!(state("root").await.state, TaskState::Dead);
    assert_eq!(state("cancelled").await.state, TaskState::Cancelled);
    assert_eq!(state("grandchild").await.state, TaskState::Cancelled);
    let failed = state("failed").await;
    assert_eq!(failed.state, TaskState::Dead);
    assert!(failed.last_error.unwrap().contains(ids["root"].as_str()));
    assert_eq!(state("independent").await.state, TaskState::Succeeded);
    assert_eq!(state("root").await.last_error.as_deref(), Some("cannot work"));
}

/// Leases: a stale token is refused; an expired lease is reaped and the
/// task handed out again with a new token.
pub async fn leases_fence_stale_workers<B: Backend>(backend: Arc<B>, now: u64) {
    let task = Task::new("job", &1).unwrap();
    let id = task.id().clone();
    let scheduler = Scheduler::new(backend.clone(), Arc::new(FixedClock(now)));
    scheduler.submit(task).await.unwrap();
    let (first, _) = backend.claim(now, 1_000, 10).await.unwrap();
    assert_eq!(first.len(), 1);
    let old = first[0].token;
    assert_eq!(first[0].attempt, 1);
    backend.renew(&id, old, now + 500, 1_000).await.unwrap();
    assert_eq!(
        backend.reap(now + 1_400, &AttemptLimits::default()).await.unwrap(),
        0,
        "the renewal moved the expiry"
    );
    assert_eq!(backend.reap(now + 1_600, &AttemptLimits::default()).await.unwrap(), 1);
    let info = backend.info(&id).await.unwrap().unwrap();
    assert_eq!(info.state, TaskState::Ready);
    let (second, _) = backend.claim(now + 1_700, 1_000, 10).await.unwrap();
    assert_eq!(second[0].attempt, 2);
    assert_ne!(second[0].token, old);
    assert!(matches!(
        backend.ack(&id, old, now + 1_800).await,
        Err(SchedulerError::StaleLease { .. })
    ));
    assert!(matches!(
        backend.renew(&id, old, now + 1_800, 1_000).await,
        Err(SchedulerError::StaleLease { .. })
    ));
    assert!(matches!(
        backend.fail(&id, old, now + 1_800, "x", None).await,
        Err(SchedulerError::StaleLease { .. })
    ));
    backend.ack(&id, second[0].token, now + 1_900).await.unwrap();
    assert_eq!(backend.info(&id).await.unwrap().unwrap().state, TaskState::Succeeded);
    assert!(matches!(
        backend.ack(&id, second[0].token, now + 2_000).await,
        Err(SchedulerError::StaleLease { .. })
    ));
}

/// Priorities, delays, idempotency keys and counts.
pub async fn priorities_delays_and_idempotency<B: Backend>(backend: Arc<B>, now: u64) {
    let scheduler = Scheduler::new(backend.clone(), Arc::new(FixedClock(now)));
    let low = scheduler.submit(Task::new("j", &0).unwrap().priority(1)).await.unwrap();
    let high = scheduler.submit(Task::new("j", &0).unwrap().priority(9)).await.unwrap();
    let later = scheduler
        .submit(Task::new("j", &0).unwrap().after(Duration::from_secs(10)).priority(255))
        .await
        .unwrap();
    let first = scheduler
        .submit(Task::new("j", &0).unwrap().idempotency_key("k", Duration::from_secs(60)))
        .await
        .unwrap();
    let again = scheduler
        .submit(Task::new("j", &0).unwrap().idempotency_key("k", Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(matches!(first, Submitted::New(_)));
    assert_eq!(again, Submitted::Duplicate(first.id().clone()));
    let counts = scheduler.counts().await.unwrap();
    assert_eq!((counts.ready, counts.scheduled), (3, 1));
    let (claimed, next_due) = backend.claim(now, 1_000, 2).await.unwrap();
    assert_eq!(claimed.iter().map(|c| &c.id).collect::<Vec<_>>(), [high.id(), low.id()]);
    assert_eq!(next_due, Some(now + 10_000));
    let (claimed, _) = backend.claim(now + 10_000, 1_000, 5).await.unwrap();
    assert_eq!(claimed.iter().map(|c| &c.id).collect::<Vec<_>>(), [later.id(), first.id()]);
    // After the window, the same key is a new task.
    let fresh = Scheduler::new(backend.clone(), Arc::new(FixedClock(now + 61_000)));
    assert!(matches!(
        fresh
            .submit(Task::new("j", &0).unwrap().idempotency_key("k", Duration::from_secs(60)))
            .await
            .unwrap(),
        Submitted::New(_)
    ));
    let dup = Task::new("j", &0).unwrap().with_id(low.id().as_str());
    assert!(matches!(scheduler.submit(dup).await, Err(SchedulerError::DuplicateId { .. })));
    let orphan = Task::new("j", &0).unwrap().after_parent(&"missing".into());
    assert!(matches!(scheduler.submit(orphan).await, Err(SchedulerError::UnknownParent { .. })));
}

/// A panicking handler is a failed attempt, not a dead worker; unknown
/// names and bad payloads end in the dead letters with the reason.
pub async fn panics_and_bad_tasks_are_failed_attempts<B: Backend>(
    backend: Arc<B>,
    clock: Arc<dyn Clock>,
) {
    let mut registry = Registry::new();
    let once = RetryPolicy::new(Duration::from_millis(10), Duration::from_millis(10), 2)
        .unwrap()
        .with_jitter(Jitter::None);
    let options = HandlerOptions { timeout: Duration::from_secs(5), retry: once };
    registry.register_with("panics", options, |ctx, (): ()| async move {
        if ctx.attempt == 1 {
            panic!("boom");
        }
        Ok(())
    });
    registry.register("typed", |_ctx, _n: u64| async { Ok(()) });
    let scheduler = Scheduler::new(backend.clone(), clock.clone());
    let panics = scheduler.submit(Task::new("panics", &()).unwrap()).await.unwrap();
    let unknown = scheduler.submit(Task::new("nobody", &()).unwrap()).await.unwrap();
    let bad = scheduler.submit(Task::new("typed", "not a number").unwrap()).await.unwrap();
    {
        let scheduler = scheduler.clone();
        run_until(
            backend,
            registry.clone(),
            clock,
            fast_config(),
            Duration::from_secs(60),
            move || {
                let scheduler = scheduler.clone();
                async move {
                    let c = scheduler.counts().await.unwrap();
                    c.succeeded == 1 && c.dead == 2
                }
            },
        )
        .await;
    }
    let info = scheduler.info(panics.id()).await.unwrap().unwrap();
    assert_eq!((info.state, info.attempts), (TaskState::Succeeded, 2));
    let unknown = scheduler.info(unknown.id()).await.unwrap().unwrap();
    assert!(unknown.last_error.unwrap().contains("no handler"));
    let bad = scheduler.info(bad.id()).await.unwrap().unwrap();
    assert!(bad.last_error.unwrap().contains("does not deserialize"));
    // With the registry, the same mistakes are refused at submit time.
    let checked = scheduler.clone().with_registry(&registry);
    assert!(matches!(
        checked.submit(Task::new("nobody", &()).unwrap()).await,
        Err(SchedulerError::UnknownTask { .. })
    ));
    assert!(matches!(
        checked.submit(Task::new("typed", "x").unwrap()).await,
        Err(SchedulerError::BadPayload { .. })
    ));
}

/// A clock that stands still, at a time in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub u64);

impl Clock for FixedClock {
    fn now_nanos(&self) -> u64 {
        self.0 * 1_000_000
    }
}

/// A task whose attempts keep losing their lease (its worker dies or hangs
/// on it) is reaped into the dead letters on its last allowed attempt, with
/// a "lease expired" error, instead of running forever.
pub async fn poison_tasks_die_after_their_attempts<B: Backend>(backend: Arc<B>, now: u64) {
    let scheduler = Scheduler::new(backend.clone(), Arc::new(FixedClock(now)));
    let poison = scheduler.submit(Task::new("poison", &1).unwrap()).await.unwrap().id().clone();
    let mut limits = AttemptLimits::new(10);
    limits.set("poison", 3);
    let mut t = now;
    for attempt in 1..=3u32 {
        let (claimed, _) = backend.claim(t, 1_000, 10).await.unwrap();
        assert_eq!(claimed.len(), 1, "attempt {attempt} claims the task again");
        assert_eq!(claimed[0].attempt, attempt);
        t += 2_000; // the worker died: no renewal, no ack
        assert_eq!(backend.reap(t, &limits).await.unwrap(), 1);
    }
    let info = backend.info(&poison).await.unwrap().unwrap();
    assert_eq!(info.state, TaskState::Dead, "dead after its last attempt, not retried forever");
    assert!(info.last_error.as_deref().unwrap_or("").contains("lease expired"), "{info:?}");
    let dead = backend.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, poison);
    let (claimed, _) = backend.claim(t, 1_000, 10).await.unwrap();
    assert!(claimed.is_empty(), "a dead task is not claimed");
    // A task of another name keeps the default: one reap makes it ready.
    let other = scheduler.submit(Task::new("other", &1).unwrap()).await.unwrap().id().clone();
    backend.claim(t, 1_000, 10).await.unwrap();
    backend.reap(t + 2_000, &limits).await.unwrap();
    assert_eq!(backend.info(&other).await.unwrap().unwrap().state, TaskState::Ready);
}

/// Extreme inputs give every backend the same typed errors or results.
pub async fn extreme_inputs_agree_across_backends<B: Backend>(backend: Arc<B>, now: u64) {
    let scheduler = Scheduler::new(backend.clone(), Arc::new(FixedClock(now)));
    for task in [
        Task::new("far", &1).unwrap().at(u64::MAX),
        Task::new("far", &1).unwrap().at(1 << 63),
        Task::new("far", &1).unwrap().after(Duration::MAX),
    ] {
        assert!(
            matches!(scheduler.submit(task).await, Err(SchedulerError::TimeOutOfRange { .. })),
            "a due time past 2^53 ms is refused, not stored wrapped"
        );
    }
    let edge = scheduler
        .submit(Task::new("edge", &1).unwrap().at(sysblocks_scheduler::MAX_TIME_MS))
        .await
        .unwrap()
        .id()
        .clone();
    let info = backend.info(&edge).await.unwrap().unwrap();
    assert_eq!((info.state, info.run_at), (TaskState::Scheduled, sysblocks_scheduler::MAX_TIME_MS));
    let (claimed, _) = backend.claim(now, 1_000, 10).await.unwrap();
    assert!(claimed.is_empty(), "not due for a long time");
    // A retry past the range is clamped to its end, on both backends.
    let id = scheduler.submit(Task::new("job", &1).unwrap()).await.unwrap().id().clone();
    let (claimed, _) = backend.claim(now, 1_000, 10).await.unwrap();
    backend.fail(&id, claimed[0].token, now, "later", Some(u64::MAX)).await.unwrap();
    let info = backend.info(&id).await.unwrap().unwrap();
    assert_eq!((info.state, info.run_at), (TaskState::Retrying, sysblocks_scheduler::MAX_TIME_MS));
    // A claim with no limit, or of none, works.
    let ids: Vec<TaskId> = scheduler
        .submit_all((0..3).map(|_| Task::new("job", &1).unwrap()).collect())
        .await
        .unwrap()
        .iter()
        .map(|s| s.id().clone())
        .collect();
    assert!(backend.claim(now, 1_000, 0).await.unwrap().0.is_empty(), "a claim of none");
    let (claimed, _) = backend.claim(now, 1_000, usize::MAX).await.unwrap();
    let got: Vec<TaskId> = claimed.iter().map(|c| c.id.clone()).collect();
    assert_eq!(got, ids, "every ready task, in order");
    // Listing dead letters with no limit works.
    assert!(backend.dead_letters(usize::MAX).await.unwrap().is_empty());
    assert!(backend.dead_letters(0).await.unwrap().is_empty());
}

/// `wait` resolves with each task's final state and its payload, in memory
/// and on Redis: a success, a dead letter, a cancelled dependant; a task
/// that is not done in time is a typed timeout, an unknown one NotFound.
pub async fn wait_resolves_with_the_final_state<B: Backend>(
    backend: Arc<B>,
    clock: Arc<dyn Clock>,
) {
    let scheduler = Scheduler::new(backend.clone(), clock.clone());
    let mut registry = Registry::new();
    registry.register("ok", |_ctx, _n: u32| async { Ok(()) });
    registry.register("bad", |_ctx, _n: u32| async { Err(TaskError::permanent("no")) });
    let worker = Arc::new(
        Worker::new(backend.clone(), registry, fast_config()).unwrap().with_clock(clock.clone()),
    );
    let running = tokio::spawn({
        let worker = worker.clone();
        async move { worker.run(Duration::from_secs(5)).await }
    });
    let ok = scheduler.submit(Task::new("ok", &1u32).unwrap()).await.unwrap().id().clone();
    let bad = scheduler.submit(Task::new("bad", &2u32).unwrap()).await.unwrap().id().clone();
    let child = scheduler
        .submit(Task::new("ok", &3u32).unwrap().after_parent(&bad))
        .await
        .unwrap()
        .id()
        .clone();
    let done =
        scheduler.wait_all(&[ok, bad.clone(), child], Duration::from_secs(30)).await.unwrap();
    let states: Vec<TaskState> = done.iter().map(|i| i.state).collect();
    assert_eq!(states, [TaskState::Succeeded, TaskState::Dead, TaskState::Cancelled]);
    assert_eq!((done[0].payload.as_str(), done[1].payload.as_str()), ("1", "2"));
    let dead = scheduler.dead_letters(10).await.unwrap();
    assert_eq!(
        (dead[0].id.clone(), dead[0].payload.as_str()),
        (bad, "2"),
        "a dead letter says what the job was"
    );
    let later = scheduler
        .submit(Task::new("ok", &4u32).unwrap().after(Duration::from_secs(3600)))
        .await
        .unwrap()
        .id()
        .clone();
    assert!(matches!(
        scheduler.wait(&later, Duration::from_millis(50)).await,
        Err(SchedulerError::WaitTimedOut { .. })
    ));
    assert!(matches!(
        scheduler.wait(&TaskId::from("no-such-task"), Duration::from_secs(1)).await,
        Err(SchedulerError::NotFound { .. })
    ));
    worker.shutdown();
    running.await.unwrap().unwrap();
}
