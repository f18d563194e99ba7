//! Tour section: 100 tasks on a paused clock, some failing for a while,
//! some for good; retries with their delays, dead letters and a replay; a
//! small DAG; a cron job; and with `--redis`, the same queue in Redis.

use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sysblocks_scheduler::{
    Clock, CronJob, CronSchedule, Dag, HandlerOptions, MemoryBackend, RedisBackend, Registry,
    RetryPolicy, Scheduler, Task, TaskError, TaskState, TokioClock, WallClock, Worker,
    WorkerConfig,
};

use super::TourOptions;
use crate::report::Section;

/// 2026-06-01 12:00 UTC, the paused clock's start.
const START: u64 = 1_780_315_200_000;

/// Runs the section.
///
/// # Errors
/// Only on a bug, or when the Redis given with `--redis` fails.
pub fn run(options: &TourOptions) -> Result<(), Box<dyn Error>> {
    let section = Section::start("scheduler: retries, dead letters, DAG, cron");
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build()?;
    runtime.block_on(in_memory(&section))?;
    super::with_redis(options, &section, "a queue shared in Redis", on_redis)?;
    section.finish();
    Ok(())
}

async fn in_memory(section: &Section) -> Result<(), Box<dyn Error>> {
    let backend = Arc::new(MemoryBackend::new());
    let clock = Arc::new(TokioClock::starting_at(Duration::from_millis(START)));
    let attempts: Arc<Mutex<Vec<(u32, u64)>>> = Arc::default();
    let order: Arc<Mutex<Vec<String>>> = Arc::default();
    let ticks: Arc<Mutex<Vec<u64>>> = Arc::default();
    let policy = RetryPolicy::new(Duration::from_secs(1), Duration::from_secs(30), 4)?;
    let options = HandlerOptions { timeout: Duration::from_secs(10), retry: policy };
    let mut registry = Registry::new();
    {
        let (attempts, clock) = (attempts.clone(), clock.clone());
        // Task n: n % 10 == 0 always fails; n % 4 == 1 fails twice first.
        registry.register_with("work", options, move |ctx, n: u32| {
            let (attempts, clock) = (attempts.clone(), clock.clone());
            async move {
                if n == 1 {
                    attempts
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((ctx.attempt, clock.now_ms()));
                }
                if n.is_multiple_of(10) {
                    Err(TaskError::retry(format!("task {n}: the service is down")))
                } else if n % 4 == 1 && ctx.attempt <= 2 {
                    Err(TaskError::retry(format!("task {n}: timed out")))
                } else {
                    Ok(())
                }
            }
        });
    }
    {
        let order = order.clone();
        registry.register("step", move |_ctx, name: String| {
            let order = order.clone();
            async move {
                order.lock().unwrap_or_else(|e| e.into_inner()).push(name);
                Ok(())
            }
        });
    }
    {
        let (ticks, clock) = (ticks.clone(), clock.clone());
        registry.register("report", move |_ctx, (): ()| {
            let (ticks, clock) = (ticks.clone(), clock.clone());
            async move {
                ticks.lock().unwrap_or_else(|e| e.into_inner()).push(clock.now_ms());
                Ok(())
            }
        });
    }
    let scheduler = Scheduler::new(backend.clone(), clock.clone()).with_registry(&registry);
    let work = scheduler
        .submit_all((0..100u32).map(|n| Task::new("work", &n)).collect::<Result<_, _>>()?)
        .await?;
    let mut dag = Dag::new();
    for step in ["fetch", "resize", "thumbnail", "publish"] {
        dag.add(step, Task::new("step", step)?);
    }
    dag.edge("fetch", "resize")?.edge("fetch", "thumbnail")?;
    dag.edge("resize", "publish")?.edge("thumbnail", "publish")?;
    scheduler.submit_dag(dag).await?;
    let job = CronJob::new(
        "hourly-report",
        "report",
        &(),
        CronSchedule::parse("0 * * * *", "Europe/Paris")?,
    )?;
    let cron = tokio::spawn({
        let scheduler = scheduler.clone();
        async move { scheduler.run_cron(job).await }
    });

    let config =
        WorkerConfig { poll_interval: Duration::from_millis(100), ..WorkerConfig::default() };
    let worker = Arc::new(Worker::new(backend, registry, config)?.with_clock(clock.clone()));
    let running = tokio::spawn({
        let worker = worker.clone();
        async move { worker.run(Duration::from_secs(1)).await }
    });
    // Three hours (and a minute) of virtual time pass in a moment.
    tokio::time::sleep(Duration::from_secs(3 * 3600 + 60)).await;

    let (mut succeeded, mut dead_work) = (0, 0);
    for submitted in &work {
        match scheduler.info(submitted.id()).await?.map(|i| i.state) {
            Some(TaskState::Succeeded) => succeeded += 1,
            Some(TaskState::Dead) => dead_work += 1,
            _ => {}
        }
    }
    section.row(
        "100 tasks (10 always fail, 25 fail twice)",
        format!("{succeeded} succeeded, {dead_work} dead after 4 attempts"),
    );
    let attempts = attempts.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let gaps: Vec<String> = attempts
        .windows(2)
        .map(|w| format!("{:.2} s", (w[1].1 - w[0].1) as f64 / 1000.0))
        .collect();
    section.row("  task 1's retries after (full jitter, bounds 1 s, 2 s)", gaps.join(", "));
    let dead = scheduler.dead_letters(100).await?;
    if let Some(first) = dead.first() {
        section.row(
            "  a dead letter",
            format!(
                "{} attempts, last error {:?}",
                first.attempts,
                first.last_error.clone().unwrap_or_default()
            ),
        );
        scheduler.replay(&first.id).await?;
        section
            .row("  replayed", format!("{:?}", scheduler.info(&first.id).await?.map(|i| i.state)));
    }
    section.row(
        "DAG fetch -> (resize, thumbnail) -> publish",
        order.lock().unwrap_or_else(|e| e.into_inner()).join(", "),
    );
    let ticks = ticks.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let minutes: Vec<String> =
        ticks.iter().map(|t| format!("+{} min", (t - START) / 60_000)).collect();
    section.row("cron \"0 * * * *\" over 3 paused hours", minutes.join(", "));
    cron.abort();
    worker.shutdown();
    running.await??;
    Ok(())
}

async fn on_redis(section: &Section, url: &str) -> Result<(), Box<dyn Error>> {
    let connection = redis::Client::open(url)?.get_connection_manager().await?;
    let queue = format!("sysblocks-tour-{}", std::process::id());
    let backend = Arc::new(RedisBackend::new(connection.clone(), &queue)?);
    let clock: Arc<dyn Clock> = Arc::new(WallClock);
    let mut registry = Registry::new();
    registry.register("noop", |_ctx, _n: u32| async { Ok(()) });
    let scheduler = Scheduler::new(backend.clone(), clock.clone());
    let n = 5_000u32;
    let started = std::time::Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1_000) {
        scheduler
            .submit_all(chunk.iter().map(|i| Task::new("noop", i)).collect::<Result<_, _>>()?)
            .await?;
    }
    let workers: Vec<_> = (0..2)
        .map(|_| {
            Worker::new(backend.clone(), registry.clone(), WorkerConfig::default())
                .map(|w| Arc::new(w.with_clock(clock.clone())))
        })
        .collect::<Result<_, _>>()?;
    let handles: Vec<_> = workers
        .iter()
        .map(|w| {
            let w = w.clone();
            tokio::spawn(async move { w.run(Duration::from_secs(1)).await })
        })
        .collect();
    while scheduler.counts().await?.succeeded < u64::from(n) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    for w in &workers {
        w.shutdown();
    }
    for h in handles {
        h.await??;
    }
    section.row(
        "Redis: 5,000 tasks, 2 workers",
        format!("{:.0} tasks/s end to end", f64::from(n) / took.as_secs_f64()),
    );
    let mut con = connection;
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{{{queue}}}:*")).query_async(&mut con).await?;
    for chunk in keys.chunks(500) {
        let _: () = redis::cmd("DEL").arg(chunk).query_async(&mut con).await?;
    }
    Ok(())
}
