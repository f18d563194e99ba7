//! Exactness on real Redis: many tasks and several OS processes increment
//! one sharded counter; the total is exact on a standalone server and on the
//! 3-master cluster, whose nodes share the shards.
#![cfg(feature = "redis")]

use std::sync::Arc;

use sysblocks_sharded_counter::{RedisConnection, RedisShardedCounter};
use sysblocks_testkit::{Cluster, Redis};

const TASKS: u64 = 16;
const PER_TASK: u64 = 100_000;

async fn hammer(counter: Arc<RedisShardedCounter>) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let counter = counter.clone();
        tasks.spawn(async move {
            for _ in 0..PER_TASK {
                counter.incr(1).await.unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_tasks_exact_on_standalone() {
    let redis = Redis::new();
    let conn = redis.connection_manager().await;
    let counter = Arc::new(RedisShardedCounter::open(conn, &redis.key("views"), 8).await.unwrap());
    hammer(counter.clone()).await;
    assert_eq!(counter.get().await.unwrap(), (TASKS * PER_TASK) as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_tasks_exact_on_cluster_and_shards_spread() {
    let cluster = Cluster::new();
    let conn = cluster.connection().await;
    let counter =
        Arc::new(RedisShardedCounter::open(conn, &cluster.key("views"), 16).await.unwrap());
    hammer(counter.clone()).await;
    assert_eq!(counter.get().await.unwrap(), (TASKS * PER_TASK) as i64);
    let per_node = cluster.keys_per_node();
    // 16 shard keys plus the layout key.
    assert_eq!(per_node.iter().sum::<usize>(), 17, "{per_node:?}");
    assert!(per_node.iter().filter(|&&n| n > 0).count() >= 2, "shards on one node: {per_node:?}");
}

fn run_workers(mode: &str, urls: &str, name: &str, per_process: u64) {
    let children: Vec<_> = (0..3)
        .map(|_| {
            std::process::Command::new(env!("CARGO_BIN_EXE_counter-worker"))
                .args([mode, urls, name, "8", &per_process.to_string()])
                .spawn()
                .expect("counter-worker starts")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "a worker process failed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_exact_on_standalone() {
    let redis = Redis::new();
    let name = redis.key("procs");
    let url = redis.url().to_string();
    let worker_name = name.clone();
    tokio::task::spawn_blocking(move || run_workers("standalone", &url, &worker_name, 20_000))
        .await
        .unwrap();
    let conn = redis.connection_manager().await;
    let counter = RedisShardedCounter::open(conn, &name, 8).await.unwrap();
    assert_eq!(counter.get().await.unwrap(), 60_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_exact_on_cluster() {
    let cluster = Cluster::new();
    let name = cluster.key("procs");
    let urls = cluster.nodes().join(",");
    let worker_name = name.clone();
    tokio::task::spawn_blocking(move || run_workers("cluster", &urls, &worker_name, 20_000))
        .await
        .unwrap();
    let conn: RedisConnection = cluster.connection().await.into();
    let counter = RedisShardedCounter::open(conn, &name, 8).await.unwrap();
    assert_eq!(counter.get().await.unwrap(), 60_000);
}
