//! RedisConnection against a real server: commands, pipelines and scripts
//! pass through; a hung or dead server fails each command within the bound
//! instead of the client's own (much longer) retries; the connection works
//! again once the server is back.
#![cfg(feature = "redis")]

use std::time::{Duration, Instant};

use sysblocks_core::{DEFAULT_COMMAND_TIMEOUT, RedisConnection, is_timeout};
use sysblocks_testkit::{Cluster, Redis};

#[tokio::test]
async fn commands_pipelines_and_scripts_pass_through() {
    let redis = Redis::new();
    let cluster = Cluster::new();
    let standalone = RedisConnection::from(redis.connection_manager().await);
    let multiplexed =
        RedisConnection::from(redis.client().get_multiplexed_async_connection().await.unwrap());
    let clustered = RedisConnection::from(cluster.connection().await);
    assert!(!standalone.is_cluster() && !multiplexed.is_cluster() && clustered.is_cluster());
    assert_eq!(standalone.timeout(), DEFAULT_COMMAND_TIMEOUT);
    for (conn, key) in
        [(standalone, redis.key("a")), (multiplexed, redis.key("b")), (clustered, cluster.key("c"))]
    {
        let _: () = conn.run(redis::cmd("SET").arg(&key).arg(41)).await.unwrap();
        let script = redis::Script::new("return redis.call('INCR', KEYS[1])");
        let n: i64 = script.key(&key).invoke_async(&mut conn.clone()).await.unwrap();
        assert_eq!(n, 42);
        // Keys in different slots: fine on a cluster too, one command each.
        let other = format!("{key}:other");
        let mut set = redis::cmd("SET");
        set.arg(&other).arg("x");
        let mut get = redis::cmd("GET");
        get.arg(&key);
        let mut bad = redis::cmd("INCR");
        bad.arg(&other);
        let replies = conn.run_each::<String>(&[set, get, bad]).await;
        assert_eq!(replies[0].as_deref().unwrap(), "OK");
        assert_eq!(replies[1].as_deref().unwrap(), "42");
        assert!(replies[2].is_err(), "each command fails on its own");
    }
}

/// A paused (SIGSTOP) server answers nothing: every command fails with a
/// timeout near the bound. A killed one: the same, however the client
/// reconnects. Both work again once the server is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_or_dead_server_fails_each_command_within_the_bound() {
    let mut redis = Redis::private();
    let bound = Duration::from_millis(100);
    let conn = RedisConnection::from(redis.connection_manager().await).with_timeout(bound);
    let ping = || async { conn.run::<String>(&redis::cmd("PING")).await };
    assert_eq!(ping().await.unwrap(), "PONG");

    redis.server().unwrap().pause();
    for _ in 0..3 {
        let started = Instant::now();
        let error = ping().await.unwrap_err();
        assert!(is_timeout(&error), "{error}");
        // The bound is promised: allow ten times it, never a hang.
        assert!(started.elapsed() < bound * 10, "took {:?}", started.elapsed());
    }
    let replies = conn.run_each::<String>(&[redis::cmd("PING"), redis::cmd("PING")]).await;
    assert!(replies.iter().all(|r| r.as_ref().is_err_and(is_timeout)));
    redis.server().unwrap().resume();

    redis.server().unwrap().stop();
    for _ in 0..3 {
        let started = Instant::now();
        assert!(ping().await.is_err());
        assert!(started.elapsed() < bound * 10, "took {:?}", started.elapsed());
    }
    redis.server().unwrap().restart();
    // The manager reconnects with its own backoff: retry for up to 30 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    while ping().await.is_err() {
        assert!(Instant::now() < deadline, "commands work again once Redis is back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
