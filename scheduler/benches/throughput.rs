//! End-to-end throughput of no-op tasks and lateness of delayed tasks, in
//! memory and on Redis, with 1 and 4 workers.
//!
//! Run: `cargo bench -p sysblocks-scheduler --features redis --bench throughput`
//! (Redis from REDIS_URL, or a redis-server the bench starts itself). The
//! 4-worker rates are rows of BENCHMARKS.md: `scripts/bench.sh` runs this.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use sysblocks_benchkit::{Ab, Target};
use sysblocks_scheduler::{
    Backend, Clock, MemoryBackend, RedisBackend, Registry, Scheduler, Task, WallClock, Worker,
    WorkerConfig,
};

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing:
    // then only prove that the bench starts.
    let quick = !std::env::args().any(|a| a == "--bench");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        // The rows of BENCHMARKS.md: 4 workers draining no-op tasks, run
        // `runs` times, each run one sample.
        let runs = if quick { 1 } else { Ab::from_env().pairs.clamp(1, 7) };
        let n = if quick { 1_000 } else { 200_000 };
        let mut rates = Vec::new();
        for _ in 0..runs {
            let backend = Arc::new(MemoryBackend::new());
            submit_noops(&backend, n).await;
            rates.push(drain(backend, n, 4).await);
        }
        Ab::samples(
            "scheduler/memory_4_workers",
            &format!("no-op tasks drained by 4 workers from a MemoryBackend ({n} a run)"),
            "tasks/s",
            Target::AtLeast(500_000.0),
            rates,
        );
        let backend = Arc::new(MemoryBackend::new());
        submit_noops(&backend, n).await;
        let rate = drain(backend, n, 1).await;
        println!("memory  1 worker: {n} no-op tasks, {rate:>9.0} tasks/s");
        let (p50, p99) =
            lateness(Arc::new(MemoryBackend::new()), if quick { 100 } else { 2_000 }).await;
        println!("memory  lateness of delayed tasks: p50 {p50:.2} ms, p99 {p99:.2} ms");

        let redis = sysblocks_testkit::Redis::new();
        let connection = redis.connection_manager().await;
        let n = if quick { 1_000 } else { 20_000 };
        let mut rates = Vec::new();
        let mut scripts = CommandTime::default();
        // Run 0 warms the server up (its scripts loaded, its allocator
        // grown) and is not counted.
        for run in 0..=runs {
            let queue = format!("{}bench4_{run}", redis.prefix());
            let backend = Arc::new(RedisBackend::new(connection.clone(), &queue).unwrap());
            submit_noops(&backend, n).await;
            let before = CommandTime::read(&connection).await;
            let rate = drain(backend.clone(), n, 4).await;
            if run > 0 {
                rates.push(rate);
                scripts.add(&CommandTime::read(&connection).await, &before);
            }
            // Every run starts on the same server state: without the tasks
            // that earlier runs left (kept for the retention), whose growing
            // keyspace would make each run rehash more than the one before.
            redis.delete_keys(backend.prefix());
        }
        // What bounds the row: Redis's own time in the claim and ack
        // scripts (INFO commandstats, which counts inside the server).
        let tasks = (runs * n) as f64;
        let (usec, calls) = scripts.scripts();
        println!(
            "redis   4 workers: {:.1} us of Redis time in scripts per task ({:.0} us per call, {:.1} calls per 100 tasks)",
            usec / tasks,
            usec / calls.max(1) as f64,
            100.0 * calls as f64 / tasks,
        );
        // Where that time goes: the commands the scripts call, and the
        // rest (the scripts' own Lua, and turning each call's arguments
        // and reply to and from Lua).
        let inside = scripts.inside_scripts();
        let called: f64 = inside.iter().map(|c| c.1).sum();
        let top: Vec<String> = (inside.iter().take(6))
            .map(|(name, usec, calls)| {
                format!("{name} {:.2} us ({:.2} calls)", usec / tasks, *calls as f64 / tasks)
            })
            .collect();
        println!(
            "redis   per task, inside the scripts: {:.1} us in the commands they call ({}), {:.1} us in the scripts' own work",
            called / tasks,
            top.join(", "),
            (usec - called) / tasks,
        );
        Ab::samples(
            "scheduler/redis_4_workers",
            &format!(
                "no-op tasks drained by 4 workers from a RedisBackend, one server ({n} a run, each on a server without earlier runs' tasks)"
            ),
            "tasks/s",
            Target::AtLeast(100_000.0),
            rates,
        );
        let queue = format!("{}bench1", redis.prefix());
        let backend = Arc::new(RedisBackend::new(connection.clone(), &queue).unwrap());
        submit_noops(&backend, n).await;
        let rate = drain(backend, n, 1).await;
        println!("redis   1 worker: {n} no-op tasks, {rate:>9.0} tasks/s");
        let backend =
            Arc::new(RedisBackend::new(connection, &format!("{}late", redis.prefix())).unwrap());
        let (p50, p99) = lateness(backend, if quick { 100 } else { 2_000 }).await;
        println!("redis   lateness of delayed tasks: p50 {p50:.2} ms, p99 {p99:.2} ms");
    });
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.register("noop", |_ctx, (): ()| async { Ok(()) });
    registry
}

/// Redis's own time per command, from INFO commandstats: microseconds
/// and calls of each command, scripts (`evalsha`) and the commands they
/// call (counted inside a script's time too) alike.
#[derive(Debug, Default, Clone)]
struct CommandTime(BTreeMap<String, (f64, u64)>);

impl CommandTime {
    async fn read(connection: &redis::aio::ConnectionManager) -> Self {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut connection.clone())
            .await
            .expect("INFO commandstats");
        let mut commands = BTreeMap::new();
        for line in info.lines() {
            let Some((name, fields)) =
                line.strip_prefix("cmdstat_").and_then(|l| l.split_once(':'))
            else {
                continue;
            };
            let field = |key: &str| {
                fields
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            commands.insert(name.to_string(), (field("usec"), field("calls") as u64));
        }
        CommandTime(commands)
    }

    /// Adds what happened between two readings.
    fn add(&mut self, after: &CommandTime, before: &CommandTime) {
        for (name, &(usec, calls)) in &after.0 {
            let (usec_before, calls_before) = before.0.get(name).copied().unwrap_or_default();
            let total = self.0.entry(name.clone()).or_default();
            total.0 += usec - usec_before;
            total.1 += calls - calls_before;
        }
    }

    /// The scripts' time and calls.
    fn scripts(&self) -> (f64, u64) {
        self.0.get("evalsha").copied().unwrap_or_default()
    }

    /// The commands the scripts called, most time first: everything but
    /// the scripts themselves and what the bench sends outside them (its
    /// polling of the counts, these readings).
    fn inside_scripts(&self) -> Vec<(&str, f64, u64)> {
        let mut inside: Vec<_> = (self.0.iter())
            .filter(|(name, _)| !matches!(name.as_str(), "evalsha" | "hgetall" | "info"))
            .map(|(name, &(usec, calls))| (name.as_str(), usec, calls))
            .collect();
        inside.sort_by(|a, b| b.1.total_cmp(&a.1));
        inside
    }
}

/// Submits `n` no-op tasks.
async fn submit_noops<B: Backend>(backend: &Arc<B>, n: usize) {
    let scheduler = Scheduler::new(backend.clone(), Arc::new(WallClock));
    let tasks: Vec<Task> = (0..n).map(|_| Task::new("noop", &()).expect("serialises")).collect();
    for chunk in tasks.chunks(1_000) {
        scheduler.submit_all(chunk.to_vec()).await.expect("submit");
    }
}

/// Times `workers` workers draining the `n` tasks submitted; tasks per
/// second.
async fn drain<B: Backend>(backend: Arc<B>, n: usize, workers: usize) -> f64 {
    let clock: Arc<dyn Clock> = Arc::new(WallClock);
    let start = Instant::now();
    let config = WorkerConfig { concurrency: 64, ..WorkerConfig::default() };
    let pool: Vec<_> = (0..workers)
        .map(|_| {
            Arc::new(
                Worker::new(backend.clone(), registry(), config.clone())
                    .expect("worker")
                    .with_clock(clock.clone()),
            )
        })
        .collect();
    let handles: Vec<_> = pool
        .iter()
        .map(|w| {
            let w = w.clone();
            tokio::spawn(async move { w.run(Duration::from_secs(5)).await })
        })
        .collect();
    while backend.counts().await.expect("counts").succeeded < n as u64 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = start.elapsed();
    for w in &pool {
        w.shutdown();
    }
    for h in handles {
        h.await.expect("joins").expect("runs");
    }
    n as f64 / elapsed.as_secs_f64()
}

/// Submits `n` tasks due at random times over the next 2 s and measures
/// how late each starts (p50, p99 in ms).
async fn lateness<B: Backend>(backend: Arc<B>, n: usize) -> (f64, f64) {
    let clock: Arc<dyn Clock> = Arc::new(WallClock);
    let late: Arc<Mutex<Vec<f64>>> = Arc::default();
    let mut registry = Registry::new();
    {
        let late = late.clone();
        registry.register("due", move |_ctx, due_us: u64| {
            let late = late.clone();
            async move {
                let now_us = wall_us();
                late.lock().expect("lock").push(now_us.saturating_sub(due_us) as f64 / 1000.0);
                Ok(())
            }
        });
    }
    let worker = Arc::new(
        Worker::new(backend.clone(), registry, WorkerConfig::default())
            .expect("worker")
            .with_clock(clock.clone()),
    );
    let running = tokio::spawn({
        let worker = worker.clone();
        async move { worker.run(Duration::from_secs(5)).await }
    });
    let scheduler = Scheduler::new(backend.clone(), clock);
    let base = wall_us() / 1000 + 200;
    let mut rng = rand::rng();
    let tasks: Vec<Task> = (0..n)
        .map(|_| {
            let at = base + rng.random_range(0..2_000);
            Task::new("due", &(at * 1000)).expect("serialises").at(at)
        })
        .collect();
    scheduler.submit_all(tasks).await.expect("submit");
    while late.lock().expect("lock").len() < n {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    worker.shutdown();
    running.await.expect("joins").expect("runs");
    let mut late = late.lock().expect("lock").clone();
    late.sort_by(f64::total_cmp);
    let at = |q: f64| late[((late.len() - 1) as f64 * q) as usize];
    (at(0.5), at(0.99))
}

fn wall_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
