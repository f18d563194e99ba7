//! The coordinator's read cache (single flight, invalidation by writes
//! through the node, the staleness bound it documents), the per-client
//! limits, and a graceful stop on SIGTERM, against real node processes.

mod common;

use std::time::{Duration, Instant};

use common::cluster::TestCluster;

fn get(con: &mut redis::Connection, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(con).unwrap()
}

fn set(con: &mut redis::Connection, key: &str, value: &str) {
    let _: () = redis::cmd("SET").arg(key).arg(value).query(con).unwrap();
}

#[test]
fn the_read_cache_flies_once_invalidates_and_keeps_its_staleness_bound() {
    let cluster = TestCluster::start("cache", 3, "replicas = 3\ncache_ttl_ms = 2000");
    let one = redis::Client::open(cluster.redis_url(0)).unwrap();
    let two = redis::Client::open(cluster.redis_url(1)).unwrap();
    let mut via_one = one.get_connection().unwrap();
    let mut via_two = two.get_connection().unwrap();
    set(&mut via_one, "hot", "v1");

    // 100 clients ask node 2 for a cold key at once: one quorum read (or a
    // few, for clients that arrive after the first flight landed and the
    // entry expired), not a hundred.
    let (_, page) = cluster.http(1, "GET", "/metrics", "").unwrap();
    let before = sysblocks_kv::metrics::sample(&page, "kv_quorum_reads_total").unwrap();
    let barrier = std::sync::Barrier::new(100);
    std::thread::scope(|s| {
        for _ in 0..100 {
            s.spawn(|| {
                let mut con = two.get_connection().unwrap();
                barrier.wait();
                assert_eq!(get(&mut con, "hot").as_deref(), Some("v1"));
            });
        }
    });
    let (_, page) = cluster.http(1, "GET", "/metrics", "").unwrap();
    let reads = sysblocks_kv::metrics::sample(&page, "kv_quorum_reads_total").unwrap() - before;
    assert!((1.0..=5.0).contains(&reads), "{reads} quorum reads for 100 concurrent GETs");
    // The next read, well within the TTL, is answered from the cache.
    let hits = |page: &str| sysblocks_kv::metrics::sample(page, "kv_cache_hits_total").unwrap();
    let hits_before = hits(&page);
    assert_eq!(get(&mut via_two, "hot").as_deref(), Some("v1"));
    let (_, page) = cluster.http(1, "GET", "/metrics", "").unwrap();
    assert_eq!(hits(&page), hits_before + 1.0, "a GET within the TTL is a cache hit");

    // A write through node 2 invalidates its cache at once.
    set(&mut via_two, "hot", "v2");
    assert_eq!(get(&mut via_two, "hot").as_deref(), Some("v2"));
    // A write through another node: node 2 may serve v2 until its entry
    // expires (2 s), and must see v3 after; 10x the bound is generous.
    set(&mut via_one, "hot", "v3");
    // A read that names its own R goes to the replicas: fresh at once.
    let fresh: Option<String> =
        redis::cmd("GET").arg("hot").arg("R").arg("2").query(&mut via_two).unwrap();
    assert_eq!(fresh.as_deref(), Some("v3"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(&mut via_two, "hot").as_deref() != Some("v3") {
        assert!(Instant::now() < deadline, "the cache served a stale value past 10x its TTL");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn client_limits_refuse_extra_connections_and_requests_with_an_error() {
    let cluster =
        TestCluster::start("limits", 1, "replicas = 1\nclient_connections = 3\nclient_rps = 20");
    let client = redis::Client::open(cluster.redis_url(0)).unwrap();
    let mut open: Vec<redis::Connection> =
        (0..3).map(|_| client.get_connection().unwrap()).collect();
    // The fourth connection is answered with an error and closed.
    let mut fourth = std::net::TcpStream::connect(cluster.nodes[0].data).unwrap();
    fourth.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reply = String::new();
    std::io::Read::read_to_string(&mut fourth, &mut reply).unwrap();
    assert!(reply.starts_with("-ERR too many connections"), "{reply:?}");
    // 100 requests at once against 20 per second (a burst of 20).
    let con = &mut open[0];
    let (mut ok, mut limited) = (0, 0);
    for _ in 0..100 {
        match redis::cmd("GET").arg("k").query::<Option<String>>(con) {
            Ok(_) => ok += 1,
            Err(e) => {
                assert!(e.to_string().contains("too many requests"), "{e}");
                limited += 1;
            }
        }
    }
    assert!((20..=40).contains(&ok), "{ok} passed, {limited} limited");
    // Closing a connection frees its place.
    drop(open);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Refused (reset) until the server has seen the others close.
        if let Ok(mut con) = client.get_connection()
            && redis::cmd("PING").query::<String>(&mut con).is_ok()
        {
            break;
        }
        assert!(Instant::now() < deadline, "a closed connection's place was not freed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_stops_a_node_gracefully_and_its_writes_are_there_after() {
    let mut cluster = TestCluster::start("sigterm", 1, "replicas = 1");
    let client = redis::Client::open(cluster.redis_url(0)).unwrap();
    let mut con = client.get_connection().unwrap();
    for i in 0..100 {
        set(&mut con, &format!("k{i}"), &format!("v{i}"));
    }
    let status = cluster.terminate(0, Duration::from_secs(50));
    assert!(status.success(), "kv-node exits 0 on SIGTERM: {status:?}");
    cluster.spawn(0, false);
    cluster.wait_ready(0);
    let mut con = client.get_connection().unwrap();
    for i in 0..100 {
        assert_eq!(get(&mut con, &format!("k{i}")), Some(format!("v{i}")));
    }
}
