//! A sixth node joins five under load: only the partitions of the
//! rebalance plan move (to it), the old owners drop them once everyone
//! switched, no acknowledged write is lost, and every read during the move
//! is one R + W > N allows (the history checker).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::cluster::TestCluster;
use common::workload::{self, key, value};
use sysblocks_kv::cluster::ClusterConfig;
use sysblocks_kv::history::{Recorder, check};
use sysblocks_kv::placement::Placement;

const KEYS: u32 = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sixth_node_joins_under_load() {
    let mut cluster = TestCluster::start("join", 5, common::cluster::FAULT_SETTINGS);
    let old = Placement::new(&ClusterConfig::load(&cluster.cluster_file()).unwrap()).unwrap();
    let urls: Vec<String> = (0..5).map(|i| cluster.redis_url(i)).collect();
    let recorder = Arc::new(Recorder::new());
    let progress = Arc::new(AtomicUsize::new(0));
    let first = workload::write_range(&urls, 0..KEYS, 0, 16, &recorder, &progress).await;
    assert_eq!(first.len(), KEYS as usize);

    // Load: overwrites with values unique per write, and reads.
    let running = Arc::new(AtomicBool::new(true));
    let generation = Arc::new(AtomicU32::new(1));
    let acked = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..8)
        .map(|c| {
            let url = urls[c % urls.len()].clone();
            let (running, generation, recorder, acked) =
                (running.clone(), generation.clone(), recorder.clone(), acked.clone());
            tokio::spawn(async move {
                let mut con = workload::connect(&url).await.expect("a live node");
                let mut i = c as u32 * 613;
                while running.load(Ordering::Relaxed) {
                    i = (i * 31 + 7) % KEYS;
                    if c % 2 == 0 {
                        let g = generation.fetch_add(1, Ordering::Relaxed);
                        if workload::set(&mut con, &recorder, &key(i), &value(i, g)).await {
                            acked.fetch_add(1, Ordering::Relaxed);
                        }
                    } else {
                        workload::get(&mut con, &recorder, &key(i)).await;
                    }
                }
            })
        })
        .collect();

    // n6 joins: it starts with the new file, then the others reload it.
    let six = cluster.add_node();
    cluster.write_file(6);
    let new = Placement::new(&ClusterConfig::load(&cluster.cluster_file()).unwrap()).unwrap();
    let plan = old.moves(&new);
    assert!(!plan.is_empty());
    cluster.spawn(six, true);
    for i in 0..5 {
        let (code, body) = cluster.http(i, "POST", "/reload", "").unwrap();
        assert_eq!(code, 200, "{body}");
        assert!(body.contains(&format!("\"moves\":{}", plan.len())), "{body}");
    }
    cluster.wait_ready(six);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let statuses: Vec<_> = (0..6).map(|i| cluster.status(i)).collect();
        let done = statuses.iter().all(|s| s["change"].is_null())
            && statuses.windows(2).all(|w| w[0]["epoch"] == w[1]["epoch"]);
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "the move did not finish: {statuses:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    running.store(false, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    assert!(acked.load(Ordering::Relaxed) > 0, "writes went on during the move");

    // Only the plan's partitions moved: each node serves exactly its
    // partitions under the new placement, n6 exactly the gained ones.
    for i in 0..6 {
        let id = cluster.nodes[i].id.clone();
        let status = cluster.status(i);
        let served: Vec<u64> = status["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["partition"].as_u64().unwrap())
            .collect();
        let expected: Vec<u64> = new.partitions_of(&id).map(u64::from).collect();
        assert_eq!(served, expected, "{id} serves the new placement's partitions");
    }
    let gained: Vec<u64> = plan.iter().map(|m| u64::from(m.partition)).collect();
    let served6: Vec<u64> = new.partitions_of("n6").map(u64::from).collect();
    assert_eq!(served6, gained, "n6 holds exactly the partitions of the plan");
    for m in &plan {
        assert_eq!(m.gained, ["n6"]);
        for lost in &m.lost {
            // The old owner dropped its rows of the partition.
            let i = cluster.nodes.iter().position(|n| n.id == *lost).unwrap();
            let k: Vec<Vec<u8>> =
                (0..KEYS).map(key).filter(|k| old.partition_of(k) == m.partition).take(5).collect();
            assert!(
                cluster.local(i, &k).iter().all(Option::is_none),
                "{lost} dropped {}",
                m.partition
            );
        }
    }

    // Converged, and nothing acknowledged is lost.
    cluster.wait_converged(Duration::from_secs(120));
    for (i, url) in cluster.running().iter().map(|&i| (i, cluster.redis_url(i))) {
        let mut con = workload::connect(&url).await.unwrap();
        for k in (i as u32..KEYS).step_by(6) {
            assert!(workload::get(&mut con, &recorder, &key(k)).await.is_some());
        }
    }
    let summary = check(&recorder.history()).unwrap_or_else(|v| panic!("history: {v}"));
    println!("{} partitions moved to n6; history {summary:?}", plan.len());
}
