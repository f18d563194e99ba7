//! Five real nodes, N=3 W=2 R=2: 20,000 writes; one node SIGKILLed while
//! 5,000 more are written and read; it restarts; anti-entropy (and the
//! hints) bring it back. Every acknowledged write is then on every one of
//! its replicas, the clients' history passes the checker, and the repair
//! moved bytes in proportion to what the node missed, not to the dataset.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::cluster::TestCluster;
use common::workload::{self, key, value};
use sysblocks_kv::cluster::ClusterConfig;
use sysblocks_kv::history::{Recorder, check};
use sysblocks_kv::placement::Placement;

fn repair_bytes(cluster: &TestCluster) -> f64 {
    ["anti_entropy", "hinted_handoff", "read_repair"]
        .iter()
        .map(|kind| cluster.metric(&format!("kv_repair_bytes_total{{kind=\"{kind}\"}}")))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_node_is_repaired_with_what_it_missed() {
    let mut cluster = TestCluster::start("kill", 5, common::cluster::FAULT_SETTINGS);
    let placement = Placement::new(&ClusterConfig::load(&cluster.cluster_file()).unwrap()).unwrap();
    let urls: Vec<String> = (0..5).map(|i| cluster.redis_url(i)).collect();
    let recorder = Arc::new(Recorder::new());
    let progress = Arc::new(AtomicUsize::new(0));

    // 20,000 writes with every node up: all acknowledged.
    let first = workload::write_range(&urls, 0..20_000, 1, 16, &recorder, &progress).await;
    assert_eq!(first.len(), 20_000, "with every node up, every write is acknowledged");

    // 5,000 more through the other four nodes, with readers beside them;
    // n3 is killed after the first 500.
    let victim = 2;
    let others: Vec<String> = [0, 1, 3, 4].iter().map(|&i| urls[i].clone()).collect();
    progress.store(0, Ordering::Relaxed);
    let writes = {
        let (others, recorder, progress) = (others.clone(), recorder.clone(), progress.clone());
        tokio::spawn(async move {
            workload::write_range(&others, 20_000..25_000, 1, 16, &recorder, &progress).await
        })
    };
    let reading = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let readers: Vec<_> = (0..4)
        .map(|r| {
            let (url, recorder, reading) = (others[r].clone(), recorder.clone(), reading.clone());
            tokio::spawn(async move {
                let mut con = workload::connect(&url).await.expect("a live node");
                let mut i = r as u32;
                while reading.load(Ordering::Relaxed) {
                    workload::get(&mut con, &recorder, &key(i % 20_000)).await;
                    i = i.wrapping_mul(7919).wrapping_add(13);
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while progress.load(Ordering::Relaxed) < 500 {
        assert!(Instant::now() < deadline, "the writes stalled");
        tokio::task::yield_now().await;
    }
    cluster.kill(victim);
    let second = writes.await.unwrap();
    assert_eq!(second.len(), 5_000, "W=2 of 3 is met with one replica down");

    // What n3 can have missed: the writes of its partitions after the
    // first 500 (an upper bound; some may have reached it before the kill).
    let victim_id = cluster.nodes[victim].id.clone();
    let ours = |i: &u32| placement.holds(&victim_id, placement.partition_of(&key(*i)));
    let missed_bytes: usize =
        second.iter().filter(|i| ours(i)).map(|&i| key(i).len() + value(i, 1).len()).sum();
    let dataset_bytes: usize = (0..25_000).map(|i| key(i).len() + value(i, 1).len()).sum();
    let before = repair_bytes(&cluster);
    let wire_before = cluster.metric("kv_sync_sent_bytes_total");

    cluster.spawn(victim, false);
    cluster.wait_ready(victim);
    let took = cluster.wait_converged(Duration::from_secs(120));
    // The hints still held are delivered too (they lose to what
    // anti-entropy brought, or win where it did not come yet).
    let deadline = Instant::now() + Duration::from_secs(60);
    while cluster.metric("kv_hints_pending") > 0.0 {
        assert!(Instant::now() < deadline, "hints were not delivered");
        std::thread::sleep(Duration::from_millis(100));
    }
    reading.store(false, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    let repaired = repair_bytes(&cluster) - before;
    let wire = cluster.metric("kv_sync_sent_bytes_total") - wire_before;
    println!(
        "converged {took:?} after the restart; repaired {repaired} bytes for at most {missed_bytes} \
         missed ({:.2}x); dataset {dataset_bytes} bytes; sync traffic from the restart on {wire} bytes",
        repaired / missed_bytes as f64
    );
    assert!(repaired > 0.0, "the restarted node was repaired");
    assert!(
        repaired <= 3.0 * missed_bytes as f64,
        "repair moved {repaired} bytes for {missed_bytes} bytes of missed writes"
    );
    assert!(repaired < dataset_bytes as f64 / 5.0, "repair is not a copy of the dataset");

    // Every acknowledged write, on every one of its replicas.
    let acked: Vec<u32> = first.iter().chain(&second).copied().collect();
    for (i, node) in cluster.nodes.iter().enumerate() {
        let mine: Vec<u32> = acked
            .iter()
            .copied()
            .filter(|&k| placement.holds(&node.id, placement.partition_of(&key(k))))
            .collect();
        let keys: Vec<Vec<u8>> = mine.iter().map(|&k| key(k)).collect();
        let held = cluster.local(i, &keys);
        for (k, got) in mine.iter().zip(held) {
            assert_eq!(got, Some(Some(value(*k, 1))), "key {k} on {}", node.id);
        }
    }

    // And what the clients saw is what R + W > N allows.
    let mut con = workload::connect(&urls[victim]).await.unwrap();
    for i in (0..25_000).step_by(25) {
        assert!(workload::get(&mut con, &recorder, &key(i)).await.is_some());
    }
    let summary = check(&recorder.history()).unwrap_or_else(|v| panic!("history: {v}"));
    println!("history: {summary:?}");
}
