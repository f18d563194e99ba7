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
use crate::charts::{Chart, Corner, Kind, Series};
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
    if options.drawing() {
        options.chart(retry_chart);
        let lateness = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(lateness())?;
        options.chart(|| lateness_chart(&lateness));
    }
    super::with_redis(options, &section, "a queue shared in Redis", on_redis)?;
    section.finish();
    Ok(())
}

/// A worker, and the task that runs it.
type Started = (
    Arc<Worker<MemoryBackend>>,
    tokio::task::JoinHandle<Result<(), sysblocks_scheduler::SchedulerError>>,
);

/// Starts one in-memory worker polling every 100 ms on `clock`; returns it
/// and the task that runs it.
fn start_worker(
    backend: Arc<MemoryBackend>,
    registry: Registry,
    clock: impl Clock + 'static,
) -> Result<Started, Box<dyn Error>> {
    let config =
        WorkerConfig { poll_interval: Duration::from_millis(100), ..WorkerConfig::default() };
    let worker = Arc::new(Worker::new(backend, registry, config)?.with_clock(clock));
    let running = tokio::spawn({
        let worker = worker.clone();
        async move { worker.run(Duration::from_secs(1)).await }
    });
    Ok((worker, running))
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

    let (worker, running) = start_worker(backend, registry, clock.clone())?;
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

/// 100 sampled waits for each retry of a policy of base 1 s, cap 30 s,
/// full jitter, with the exponential bound they are drawn under.
fn retry_chart() -> Chart {
    use rand::SeedableRng;
    let policy = RetryPolicy::new(Duration::from_secs(1), Duration::from_secs(30), 8)
        .unwrap_or_else(|_| RetryPolicy::default());
    let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
    let mut samples = Vec::new();
    let mut bound = Vec::new();
    for attempt in 1..8u32 {
        for _ in 0..100 {
            let wait = policy.delay_with(attempt, Duration::ZERO, &mut rng).as_secs_f64();
            // Spread sideways a little, so that the points do not hide
            // each other.
            let nudge = rand::Rng::random_range(&mut rng, -0.25..0.25);
            samples.push((f64::from(attempt) + nudge, wait));
        }
        let ceiling = (2f64.powi(i32::try_from(attempt).unwrap_or(0) - 1)).min(30.0);
        bound.push((f64::from(attempt) - 0.4, ceiling));
        bound.push((f64::from(attempt) + 0.4, ceiling));
    }
    Chart::new(
        "scheduler",
        "scheduler-retries.svg",
        "Retry waits: base 1 s doubling, capped at 30 s, full jitter",
        "failed attempt",
        "wait before the next attempt (s)",
    )
    .with(Series::new("100 sampled waits per attempt", Kind::Points, samples))
    .with(Series::new("the bound: 1 s x 2^(n-1), at most 30 s", Kind::Reference, bound))
    .caption(
        "Each wait is drawn evenly between zero and a bound that doubles per attempt, so \
         tasks that failed together retry spread out instead of all at once; the cap \
         keeps the band from growing past 30 s.",
    )
}

/// How late 300 tasks due over 3 s start, on the wall clock, with one
/// in-memory worker: milliseconds past their due time.
async fn lateness() -> Result<Vec<f64>, Box<dyn Error>> {
    let backend = Arc::new(MemoryBackend::new());
    let clock: Arc<dyn Clock> = Arc::new(WallClock);
    let late: Arc<Mutex<Vec<f64>>> = Arc::default();
    let mut registry = Registry::new();
    {
        let (late, clock) = (late.clone(), clock.clone());
        registry.register("due", move |_ctx, due: u64| {
            let (late, clock) = (late.clone(), clock.clone());
            async move {
                let ms = clock.now_ms().saturating_sub(due) as f64;
                late.lock().unwrap_or_else(|e| e.into_inner()).push(ms);
                Ok(())
            }
        });
    }
    let scheduler = Scheduler::new(backend.clone(), clock.clone());
    let start = clock.now_ms() + 200;
    let tasks = (0..300u64)
        .map(|i| {
            let due = start + i * 10;
            Task::new("due", &due).map(|t| t.at(due))
        })
        .collect::<Result<_, _>>()?;
    scheduler.submit_all(tasks).await?;
    let (worker, running) = start_worker(backend, registry, clock.clone())?;
    while scheduler.counts().await?.succeeded < 300 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.shutdown();
    running.await??;
    let late = late.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(late)
}

fn lateness_chart(late: &[f64]) -> Chart {
    let width = 0.5;
    let mut counts = std::collections::BTreeMap::new();
    for ms in late {
        *counts.entry((ms / width).floor() as i64).or_insert(0u32) += 1;
    }
    let bars = counts
        .iter()
        .map(|(bucket, n)| (*bucket as f64 * width + width / 2.0, f64::from(*n)))
        .collect();
    let mut sorted = late.to_vec();
    sorted.sort_by(f64::total_cmp);
    let p99 = sorted.get(sorted.len() * 99 / 100).copied().unwrap_or_default();
    Chart::new(
        "scheduler",
        "scheduler-lateness.svg",
        "How late 300 tasks start after their due time (wall clock)",
        "lateness (ms, the clock's resolution)",
        "tasks",
    )
    .legend_at(Corner::UpperRight)
    .with(Series::new(format!("tasks (p99 {p99:.1} ms)"), Kind::Bars, bars))
    .caption(
        "The worker sleeps until the earliest due task instead of polling blindly, so \
         tasks start within a few milliseconds of their due time; the poll interval only \
         bounds how soon it notices a task that another process submits.",
    )
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
