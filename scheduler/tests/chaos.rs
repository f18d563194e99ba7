//! Faults against the Redis backend: worker processes killed with SIGKILL
//! while tasks run, and Redis itself restarted mid-run. No task is lost, and
//! every duplicate run is explained by an expired lease.
#![cfg(feature = "redis")]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sysblocks_scheduler::{
    Backend, RedisBackend, Registry, Scheduler, Task, WallClock, Worker, WorkerConfig,
};
use sysblocks_testkit::Redis;
use tokio::process::{Child, Command};

const TASKS: u64 = 2_000;

fn spawn_worker(url: &str, queue: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_scheduler-worker"))
        .arg(url)
        .arg(queue)
        .kill_on_drop(true)
        .spawn()
        .expect("the scheduler-worker binary starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_lose_no_task() {
    let redis = Redis::new();
    let queue = format!("{}chaos", redis.prefix());
    let mut connection = redis.connection_manager().await;
    let backend = Arc::new(RedisBackend::new(connection.clone(), &queue).unwrap());
    let scheduler = Scheduler::new(backend.clone(), Arc::new(WallClock));
    let tasks: Vec<Task> = (0..TASKS).map(|n| Task::new("record", &n).unwrap()).collect();
    for chunk in tasks.chunks(500) {
        scheduler.submit_all(chunk.to_vec()).await.unwrap();
    }

    let mut workers: Vec<Child> = (0..3).map(|_| spawn_worker(redis.url(), &queue)).collect();
    let mut rng = SmallRng::seed_from_u64(3);
    let mut kills = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let done = backend.counts().await.unwrap().succeeded;
        if done == TASKS {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {done} of {TASKS} done in 120 s");
        // The chaos schedule: every 100-400 ms, SIGKILL a random worker
        // (mid-task, most likely) and start a replacement.
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..400))).await;
        if kills < 12 {
            let victim = rng.random_range(0..workers.len());
            workers[victim].start_kill().unwrap();
            workers[victim].wait().await.unwrap();
            workers[victim] = spawn_worker(redis.url(), &queue);
            kills += 1;
        }
    }
    for worker in &mut workers {
        worker.start_kill().unwrap();
        worker.wait().await.unwrap();
    }

    let completions: HashMap<u64, u64> = redis::cmd("HGETALL")
        .arg(format!("{}completions", backend.prefix()))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(kills >= 3, "the chaos ran ({kills} kills)");
    for n in 0..TASKS {
        assert!(completions.get(&n).copied().unwrap_or(0) >= 1, "task {n} never completed");
    }
    // A task ran twice only if a worker died holding it: its lease expired
    // and the reaper handed it on, so it was claimed (an attempt counted)
    // at least once more than it completed. The handler never fails.
    let ids: HashMap<u64, String> =
        tasks.iter().enumerate().map(|(n, t)| (n as u64, t.id().to_string())).collect();
    let mut duplicates = 0;
    for (n, &count) in &completions {
        if count > 1 {
            duplicates += count - 1;
            let attempts: u64 = redis::cmd("HGET")
                .arg(format!("{}t:{}", backend.prefix(), ids[n]))
                .arg("attempts")
                .query_async(&mut connection)
                .await
                .unwrap();
            assert!(attempts >= count, "task {n} ran {count} times in {attempts} attempts");
        }
    }
    println!("{kills} kills, {duplicates} duplicate runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_mid_run_loses_nothing() {
    let mut redis = Redis::private_persistent();
    let connection = redis.connection_manager().await;
    let backend = Arc::new(RedisBackend::new(connection, "restart").unwrap());
    let done: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let mut registry = Registry::new();
    {
        let done = done.clone();
        registry.register("note", move |_ctx, n: u64| {
            let done = done.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                done.lock().unwrap().insert(n);
                Ok(())
            }
        });
    }
    let scheduler = Scheduler::new(backend.clone(), Arc::new(WallClock));
    let total = 600u64;
    let tasks: Vec<Task> = (0..total).map(|n| Task::new("note", &n).unwrap()).collect();
    scheduler.submit_all(tasks).await.unwrap();
    let config =
        WorkerConfig { concurrency: 4, lease: Duration::from_secs(2), ..WorkerConfig::default() };
    let worker = Arc::new(Worker::new(backend.clone(), registry, config).unwrap());
    let running = tokio::spawn({
        let worker = worker.clone();
        async move { worker.run(Duration::from_secs(5)).await }
    });
    // Let some work happen, then take Redis away and bring it back.
    while done.lock().unwrap().len() < 100 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    redis.server().unwrap().stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.server().unwrap().restart();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(counts) = backend.counts().await
            && counts.succeeded == total
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the worker resumes after a restart");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.shutdown();
    running.await.unwrap().unwrap();
    assert_eq!(done.lock().unwrap().len() as u64, total, "every task ran");
    let counts = backend.counts().await.unwrap();
    assert_eq!((counts.ready, counts.running, counts.dead), (0, 0, 0));
}
