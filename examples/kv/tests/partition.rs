//! A network partition made by the node's fault layer (switched on through
//! the admin port): the cut-off node answers what its quorum allows and no
//! more; the majority side goes on; a SIGSTOPped node delays nobody past
//! the timeout; after healing, every replica converges and every
//! acknowledged write is on every replica.

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use common::cluster::TestCluster;
use common::workload::{self, key, value};
use sysblocks_kv::cluster::ClusterConfig;
use sysblocks_kv::history::{Recorder, check};
use sysblocks_kv::placement::Placement;

async fn query(
    con: &mut redis::aio::MultiplexedConnection,
    args: &[&[u8]],
) -> redis::RedisResult<redis::Value> {
    let mut cmd = redis::cmd(std::str::from_utf8(args[0]).unwrap());
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(con).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_off_node_answers_what_its_quorum_allows_and_heals() {
    let cluster = TestCluster::start("partition", 5, common::cluster::FAULT_SETTINGS);
    let placement = Placement::new(&ClusterConfig::load(&cluster.cluster_file()).unwrap()).unwrap();
    let urls: Vec<String> = (0..5).map(|i| cluster.redis_url(i)).collect();
    let recorder = Arc::new(Recorder::new());
    let progress = Arc::new(AtomicUsize::new(0));
    let first = workload::write_range(&urls, 0..2_000, 1, 8, &recorder, &progress).await;
    assert_eq!(first.len(), 2_000);

    // Cut n1 off from everyone.
    let (code, body) = cluster.http(0, "POST", "/faults?drop=n2,n3,n4,n5", "").unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(cluster.http(0, "POST", "/faults?drop=n9", "").unwrap().0, 400, "unknown peer");
    let mut cut = workload::connect(&urls[0]).await.unwrap();
    let mine = |i: u32| placement.holds("n1", placement.partition_of(&key(i)));
    let held: Vec<u32> = (0..2_000).filter(|&i| mine(i)).take(50).collect();
    let elsewhere: Vec<u32> = (0..2_000).filter(|&i| !mine(i)).take(50).collect();
    for &i in &held {
        let k = key(i);
        let r2 = query(&mut cut, &[b"GET", &k]).await;
        assert!(r2.unwrap_err().to_string().contains("NOQUORUM"), "R=2 needs a peer");
        let r1 = query(&mut cut, &[b"GET", &k, b"R", b"1"]).await.unwrap();
        assert_eq!(r1, redis::Value::BulkString(value(i, 1)), "R=1 is its own replica");
        let w2 = query(&mut cut, &[b"SET", &k, b"x", b"W", b"2"]).await;
        assert!(w2.unwrap_err().to_string().contains("NOQUORUM"));
    }
    for &i in &elsewhere {
        let r1 = query(&mut cut, &[b"GET", &key(i), b"R", b"1"]).await;
        assert!(r1.unwrap_err().to_string().contains("NOQUORUM"), "no replica reachable");
    }
    // W=1 writes on the cut-off side are acknowledged by its own replica.
    let lonely: Vec<Vec<u8>> = (0..10_000u32)
        .map(|i| format!("lonely:{i}").into_bytes())
        .filter(|k| placement.holds("n1", placement.partition_of(k)))
        .take(100)
        .collect();
    for k in &lonely {
        let ok = query(&mut cut, &[b"SET", k, b"alone", b"W", b"1"]).await.unwrap();
        assert_eq!(ok, redis::Value::Okay);
    }
    // The majority side writes a second generation of every key.
    let majority: Vec<String> = urls[1..].to_vec();
    let second = workload::write_range(&majority, 0..2_000, 2, 8, &recorder, &progress).await;
    assert_eq!(second.len(), 2_000, "the majority side meets W=2 without n1");

    // A SIGSTOPped node: requests wait at most the timeout for it.
    cluster.signal(1, "-STOP");
    let mut con = workload::connect(&urls[2]).await.unwrap();
    for i in 0..200 {
        let started = Instant::now();
        let _ = workload::set(&mut con, &recorder, &key(i), &value(i, 3)).await;
        // 300 ms timeout per replica call; 10x is a generous bound.
        assert!(started.elapsed() < Duration::from_secs(3), "a write hung on a stopped node");
    }
    cluster.signal(1, "-CONT");

    // Heal, converge, and check.
    assert_eq!(cluster.http(0, "POST", "/faults", "").unwrap().0, 200);
    cluster.wait_converged(Duration::from_secs(120));
    // Generation 2 of every key was acknowledged; generation 3 of the first
    // 200 maybe (the history check below judges those reads).
    let latest: Vec<(Vec<u8>, Vec<u8>)> = (0..2_000).map(|i| (key(i), value(i, 2))).collect();
    for (i, node) in cluster.nodes.iter().enumerate() {
        let keys = &lonely;
        let mine: Vec<usize> = (0..keys.len())
            .filter(|&j| placement.holds(&node.id, placement.partition_of(&keys[j])))
            .collect();
        let held = cluster.local(i, &mine.iter().map(|&j| keys[j].clone()).collect::<Vec<_>>());
        for got in held {
            assert_eq!(
                got,
                Some(Some(b"alone".to_vec())),
                "a W=1 write reached every replica on {}",
                node.id
            );
        }
        let mine: Vec<(Vec<u8>, Vec<u8>)> = latest
            .iter()
            .filter(|(k, _)| placement.holds(&node.id, placement.partition_of(k)))
            .cloned()
            .collect();
        let held = cluster.local(i, &mine.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>());
        for ((k, v), got) in mine.iter().zip(held) {
            let got = got.flatten().expect("every key is on every replica");
            let g = String::from_utf8_lossy(&got[7..11]).to_string();
            assert!(
                g == "0002" || g == "0003",
                "{} holds generation {g} of {:?}, not {v:?}",
                node.id,
                k
            );
        }
    }
    for (i, url) in urls.iter().enumerate() {
        let mut con = workload::connect(url).await.unwrap();
        for k in (0..2_000).step_by(10 + i) {
            assert!(workload::get(&mut con, &recorder, &key(k)).await.is_some());
        }
    }
    check(&recorder.history()).unwrap_or_else(|v| panic!("history: {v}"));
}
