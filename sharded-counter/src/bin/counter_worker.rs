//! A worker process for the multi-process exactness test: increments a
//! sharded counter N times and exits.
//!
//! `counter-worker <standalone|cluster> <url[,url...]> <name> <shards> <count>`

use std::process::ExitCode;

use sysblocks_sharded_counter::{RedisConnection, RedisShardedCounter};

async fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let [mode, urls, name, shards, count] = args else {
        return Err(
            "usage: counter-worker <standalone|cluster> <urls> <name> <shards> <count>".into()
        );
    };
    let conn: RedisConnection = match mode.as_str() {
        "standalone" => redis::Client::open(urls.as_str())?.get_connection_manager().await?.into(),
        "cluster" => redis::cluster::ClusterClient::new(urls.split(',').collect::<Vec<_>>())?
            .get_async_connection()
            .await?
            .into(),
        other => return Err(format!("unknown mode {other:?}").into()),
    };
    let counter = RedisShardedCounter::open(conn, name, shards.parse()?).await?;
    let count: u64 = count.parse()?;
    let mut tasks = tokio::task::JoinSet::new();
    let counter = std::sync::Arc::new(counter);
    for _ in 0..8 {
        let counter = counter.clone();
        tasks.spawn(async move {
            for _ in 0..count / 8 {
                counter.incr(1).await?;
            }
            Ok::<_, sysblocks_sharded_counter::CounterError>(())
        });
    }
    for _ in 0..count % 8 {
        counter.incr(1).await?;
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("counter-worker: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("counter-worker: {e}");
            ExitCode::FAILURE
        }
    }
}
