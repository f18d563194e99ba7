//! A worker process for the chaos test: runs the `record` handler on a
//! Redis queue until killed.
//!
//! Usage: `scheduler-worker REDIS_URL QUEUE`
//!
//! `record` takes a task number, works for a few milliseconds, then adds 1
//! to the task's field in the hash `{QUEUE}:completions`. Being killed
//! between the two leaves the task to another worker once its lease
//! expires: that is the at-least-once contract the test checks.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use sysblocks_scheduler::{RedisBackend, Registry, TaskError, Worker, WorkerConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(queue)) = (args.next(), args.next()) else {
        eprintln!("usage: scheduler-worker REDIS_URL QUEUE");
        std::process::exit(2);
    };
    let connection = redis::Client::open(url.as_str())?.get_connection_manager().await?;
    let backend = Arc::new(RedisBackend::new(connection.clone(), &queue)?);
    let completions = format!("{}completions", backend.prefix());
    let mut registry = Registry::new();
    registry.register("record", move |_ctx, n: u64| {
        let (mut connection, completions) = (connection.clone(), completions.clone());
        async move {
            let work = rand::rng().random_range(1..20);
            tokio::time::sleep(Duration::from_millis(work)).await;
            redis::cmd("HINCRBY")
                .arg(&completions)
                .arg(n)
                .arg(1)
                .query_async::<i64>(&mut connection)
                .await
                .map_err(TaskError::retry)?;
            Ok(())
        }
    });
    let config = WorkerConfig {
        concurrency: 8,
        lease: Duration::from_millis(1_000),
        ..WorkerConfig::default()
    };
    let worker = Worker::new(backend, registry, config)?;
    worker.run(Duration::from_secs(1)).await?;
    Ok(())
}
