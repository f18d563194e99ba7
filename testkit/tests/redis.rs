//! testkit's own proof that it hands out real servers.

use redis::AsyncCommands;
use sysblocks_testkit::{Cluster, Redis};

#[tokio::test]
async fn standalone_round_trip() {
    let redis = Redis::new();
    let mut con = redis.connection_manager().await;
    let key = redis.key("round-trip");
    let () = con.set(&key, "value-1").await.unwrap();
    let got: String = con.get(&key).await.unwrap();
    assert_eq!(got, "value-1");
    let n: i64 = con.incr(redis.key("n"), 5).await.unwrap();
    assert_eq!(n, 5, "a fresh prefix starts with no keys");
}

#[tokio::test]
async fn fixtures_do_not_share_keys() {
    let a = Redis::new();
    let b = Redis::new();
    assert_ne!(a.prefix(), b.prefix());
    let mut con = a.connection_manager().await;
    let () = con.set(a.key("k"), 1).await.unwrap();
    let other: Option<i64> = con.get(b.key("k")).await.unwrap();
    assert_eq!(other, None);
}

#[test]
fn private_server_stops_and_restarts_empty() {
    let mut redis = Redis::private();
    let mut con = redis.connection();
    let () = redis::cmd("SET").arg(redis.key("x")).arg(1).query(&mut con).unwrap();
    let server = redis.server().expect("a private fixture owns its server");
    server.stop();
    assert!(!server.is_running());
    assert!(
        redis::cmd("PING").query::<String>(&mut con).is_err(),
        "a stopped server must not answer"
    );
    redis.server().unwrap().restart();
    let mut con = redis.connection();
    let x: Option<i64> = redis::cmd("GET").arg(redis.key("x")).query(&mut con).unwrap();
    assert_eq!(x, None, "nothing is persisted across a restart");
}

#[tokio::test]
async fn cluster_spreads_keys_over_three_nodes() {
    let cluster = Cluster::new();
    assert_eq!(cluster.nodes().len(), 3, "the test cluster has three masters");
    let mut con = cluster.connection().await;
    for i in 0..300 {
        let () = con.set(cluster.key(&format!("spread:{i}")), i).await.unwrap();
    }
    for i in [0, 150, 299] {
        let v: i64 = con.get(cluster.key(&format!("spread:{i}"))).await.unwrap();
        assert_eq!(v, i);
    }
    let per_node = cluster.keys_per_node();
    assert_eq!(
        per_node.iter().sum::<usize>(),
        300,
        "every key is on exactly one master: {per_node:?}"
    );
    assert!(per_node.iter().all(|&n| n > 0), "keys land on all three masters: {per_node:?}");
}

#[tokio::test]
async fn cluster_hash_tag_keeps_keys_in_one_slot() {
    let cluster = Cluster::new();
    let mut con = cluster.connection().await;
    let a = cluster.key("{tag}:a");
    let b = cluster.key("{tag}:b");
    // A multi-key command is only accepted when both keys share one slot.
    let () = redis::cmd("MSET").arg(&a).arg(1).arg(&b).arg(2).query_async(&mut con).await.unwrap();
    let per_node = cluster.keys_per_node();
    assert_eq!(per_node.iter().filter(|&&n| n > 0).count(), 1, "{per_node:?}");
}
