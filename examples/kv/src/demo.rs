//! `kv-cluster`, the demo: starts real `kv-node` processes on loopback in a
//! temp dir, loads them, SIGKILLs one while writes go on, restarts it, and
//! shows what each repair moved against what the node missed and against
//! the dataset. Also the harness of the repair and memory measurements
//! (`--nodes 3 --keys 100000 --missed 100`).
//!
//! Everything it starts is killed when it ends, fails, or is interrupted
//! (the children are killed on drop; the temp dir is removed on drop).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::process::{Child, Command};

use crate::client::Client;
use crate::metrics::sample;

/// What to run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Nodes to start (N = min(3, nodes)).
    pub nodes: usize,
    /// Keys written before the kill.
    pub keys: u32,
    /// Keys written while one node is down.
    pub missed: u32,
    /// Bytes per value.
    pub value_bytes: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// The `kv-node` binary.
    pub node_binary: PathBuf,
    /// Keep the data directory (printed) instead of removing it.
    pub keep: bool,
    /// Skip the kill (load and measure only).
    pub no_kill: bool,
    /// Each node's redb page cache, in MiB.
    pub cache_mb: u64,
}

/// What happened.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Writes per second while loading.
    pub load_ops_per_s: f64,
    /// Key and value bytes written in all.
    pub dataset_bytes: u64,
    /// Writes acknowledged while the node was down.
    pub missed_acked: u32,
    /// Key and value bytes of those writes that belong to the killed node.
    pub missed_bytes: u64,
    /// Keys repaired, by anti-entropy, hinted handoff and read repair.
    pub repaired_keys: [u64; 3],
    /// Bytes repaired, likewise.
    pub repaired_bytes: [u64; 3],
    /// Bytes of Merkle sync traffic from the restart to convergence.
    pub sync_bytes: u64,
    /// From the restart until every replica agreed.
    pub converge: Duration,
    /// From spawning the killed node until it answered.
    pub restart: Duration,
    /// Its summary rebuild, as it reported.
    pub rebuild_ms: u64,
    /// Resident memory of each node after loading, in bytes.
    pub rss: Vec<u64>,
    /// Resident memory of the restarted node once the replicas agree.
    pub rss_after_restart: u64,
}

struct Proc {
    id: String,
    data: SocketAddr,
    admin: SocketAddr,
    sync: SocketAddr,
    child: Option<Child>,
}

struct Cluster {
    dir: PathBuf,
    cache_mb: u64,
    keep: bool,
    binary: PathBuf,
    nodes: Vec<Proc>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(child) = &mut node.child {
                let _ = child.start_kill();
            }
        }
        if self.keep {
            eprintln!("data kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Where [`free_ports`] looks: below Linux's ephemeral range (32768 and
/// up), so that no outgoing connection can take a port between the check
/// and the node's bind.
const PORTS: std::ops::Range<u16> = 12_000..32_000;

/// `n` distinct free loopback ports: all bound at once, then released, so
/// that none is handed out twice; picked at random from 12,000 to 32,000,
/// below the ephemeral range, so that nothing else takes them meanwhile
/// but another program choosing ports the same way.
///
/// # Errors
/// No free port after many tries.
pub fn free_ports(n: usize) -> std::io::Result<Vec<SocketAddr>> {
    use std::hash::{BuildHasher, Hasher};
    let seed = std::collections::hash_map::RandomState::new();
    let span = u64::from(PORTS.end - PORTS.start);
    let mut held: Vec<TcpListener> = Vec::with_capacity(n);
    let mut tries = 0u64;
    while held.len() < n {
        tries += 1;
        if tries > 100_000 {
            return Err(std::io::Error::other("no free loopback port"));
        }
        let mut h = seed.build_hasher();
        h.write_u64(tries);
        let port = PORTS.start + (h.finish() % span) as u16;
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            held.push(listener);
        }
    }
    held.iter().map(TcpListener::local_addr).collect()
}

/// A one-shot HTTP/1.1 request to an admin port: status and body.
///
/// # Errors
/// The connection failed, or the answer is not HTTP.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("not HTTP"))?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Whether the nodes' `/status` pages agree: every partition has the same
/// root on every node that reports it.
pub fn replicas_agree(statuses: &[Value]) -> bool {
    let mut roots: std::collections::HashMap<u64, &str> = std::collections::HashMap::new();
    for status in statuses {
        let Some(partitions) = status["partitions"].as_array() else { return false };
        for p in partitions {
            let (Some(partition), Some(root)) = (p["partition"].as_u64(), p["root"].as_str())
            else {
                return false;
            };
            if *roots.entry(partition).or_insert(root) != root {
                return false;
            }
        }
    }
    true
}

/// A node's resident memory in bytes (Linux), from `/proc`.
pub fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl Cluster {
    fn file(&self) -> PathBuf {
        self.dir.join("cluster.toml")
    }

    fn spawn(&mut self, i: usize) -> Result<(), String> {
        let node = &self.nodes[i];
        let log = std::fs::File::create(self.dir.join(format!("{}.log", node.id)))
            .map_err(|e| e.to_string())?;
        let child = Command::new(&self.binary)
            .args(["--id", &node.id, "--cluster"])
            .arg(self.file())
            .arg("--data")
            .arg(self.dir.join(&node.id))
            .args(["--cache-mb", &self.cache_mb.to_string()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        self.nodes[i].child = Some(child);
        Ok(())
    }

    async fn wait_ready(&self, i: usize) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !matches!(http(self.nodes[i].admin, "GET", "/status", ""), Ok((200, _))) {
            if Instant::now() > deadline {
                return Err(format!("{} did not start; see its log", self.nodes[i].id));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    fn running(&self) -> impl Iterator<Item = &Proc> {
        self.nodes.iter().filter(|n| n.child.is_some())
    }

    fn metric(&self, series: &str) -> u64 {
        self.running()
            .filter_map(|n| http(n.admin, "GET", "/metrics", "").ok())
            .filter_map(|(_, page)| sample(&page, series))
            .sum::<f64>() as u64
    }

    async fn wait_converged(&self) -> Result<Duration, String> {
        let started = Instant::now();
        loop {
            let statuses: Vec<Value> = self
                .running()
                .filter_map(|n| http(n.admin, "GET", "/status", "").ok())
                .filter_map(|(_, body)| serde_json::from_str(&body).ok())
                .collect();
            let hints = self.metric("kv_hints_pending");
            if statuses.len() == self.running().count() && replicas_agree(&statuses) && hints == 0 {
                return Ok(started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(600) {
                return Err("the replicas did not converge in 10 minutes".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn key(i: u32) -> Vec<u8> {
    format!("key:{i:08}").into_bytes()
}

fn value(i: u32, bytes: usize) -> Vec<u8> {
    let mut v = format!("value-{i}-").into_bytes();
    v.resize(bytes, b'.');
    v
}

/// Which keys' bytes a load counts.
type KeyFilter = Arc<dyn Fn(&[u8]) -> bool + Send + Sync>;

/// Writes keys `from..to` with `clients` pipelined clients over `targets`;
/// returns how many were acknowledged and the bytes of those for which
/// `count` holds.
async fn load(
    targets: &[SocketAddr],
    from: u32,
    to: u32,
    options: &DemoOptions,
    count: KeyFilter,
) -> Result<(u32, u64), String> {
    let next = Arc::new(AtomicU32::new(from));
    let mut tasks = Vec::new();
    for c in 0..options.clients {
        let addr = targets[c % targets.len()];
        let (next, count, value_bytes) = (next.clone(), count.clone(), options.value_bytes);
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(addr).await.map_err(|e| e.to_string())?;
            let (mut acked, mut bytes) = (0u32, 0u64);
            loop {
                let start = next.fetch_add(32, Ordering::Relaxed);
                if start >= to {
                    return Ok::<_, String>((acked, bytes));
                }
                let batch: Vec<u32> = (start..(start + 32).min(to)).collect();
                let commands: Vec<Vec<Vec<u8>>> = batch
                    .iter()
                    .map(|&i| vec![b"SET".to_vec(), key(i), value(i, value_bytes)])
                    .collect();
                let replies = client.pipeline(&commands).await.map_err(|e| e.to_string())?;
                for (&i, reply) in batch.iter().zip(replies) {
                    if matches!(reply, crate::resp::Reply::Simple(_)) {
                        acked += 1;
                        if count(&key(i)) {
                            bytes += (key(i).len() + value_bytes) as u64;
                        }
                    }
                }
            }
        }));
    }
    let (mut acked, mut bytes) = (0, 0);
    for task in tasks {
        let (a, b) = task.await.map_err(|e| e.to_string())??;
        acked += a;
        bytes += b;
    }
    Ok((acked, bytes))
}

/// Runs the demo, printing as it goes.
///
/// # Errors
/// A node that does not start, a client that cannot connect, a cluster
/// that does not converge.
pub async fn run(options: DemoOptions) -> Result<Report, String> {
    if options.nodes == 0 || options.clients == 0 || options.value_bytes == 0 {
        return Err("--nodes, --clients and --value-bytes must be at least 1".into());
    }
    if !options.node_binary.is_file() {
        // `cargo run --bin kv-cluster` builds kv-cluster alone.
        return Err(format!(
            "no kv-node at {}: build the package's binaries first, \
             `cargo build --release -p sysblocks-kv --bins` (or give --node-binary PATH)",
            options.node_binary.display()
        ));
    }
    let dir = std::env::temp_dir().join(format!("kv-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut cluster = Cluster {
        dir,
        cache_mb: options.cache_mb,
        keep: options.keep,
        binary: options.node_binary.clone(),
        nodes: Vec::new(),
    };
    let mut text = String::from("[cluster]\nsync_interval_ms = 500\n");
    let ports = free_ports(3 * options.nodes).map_err(|e| e.to_string())?;
    for (i, three) in ports.chunks(3).enumerate() {
        let proc = Proc {
            id: format!("n{}", i + 1),
            data: three[0],
            admin: three[1],
            sync: three[2],
            child: None,
        };
        let _ = write!(
            text,
            "[[node]]\nid = \"{}\"\ndata = \"{}\"\nadmin = \"{}\"\nsync = \"{}\"\n",
            proc.id, proc.data, proc.admin, proc.sync
        );
        cluster.nodes.push(proc);
    }
    std::fs::write(cluster.file(), &text).map_err(|e| e.to_string())?;
    let config = crate::cluster::ClusterConfig::parse(&text).map_err(|e| e.to_string())?;
    let placement = Arc::new(crate::placement::Placement::new(&config).map_err(|e| e.to_string())?);
    println!(
        "starting {} nodes (N={} W={} R={}) in {}",
        options.nodes,
        config.replicas,
        config.write_quorum,
        config.read_quorum,
        cluster.dir.display()
    );
    for i in 0..options.nodes {
        cluster.spawn(i)?;
    }
    for i in 0..options.nodes {
        cluster.wait_ready(i).await?;
    }
    let mut report = Report::default();
    let all: Vec<SocketAddr> = cluster.nodes.iter().map(|n| n.data).collect();
    let started = Instant::now();
    let (acked, bytes) = load(&all, 0, options.keys, &options, Arc::new(|_: &[u8]| true)).await?;
    report.load_ops_per_s = f64::from(acked) / started.elapsed().as_secs_f64();
    report.dataset_bytes = bytes;
    println!(
        "wrote {acked} keys of {} bytes in {:.1?} ({:.0} writes/s)",
        options.value_bytes,
        started.elapsed(),
        report.load_ops_per_s
    );
    report.rss = cluster
        .nodes
        .iter()
        .filter_map(|n| n.child.as_ref().and_then(Child::id).and_then(resident_bytes))
        .collect();
    for (node, rss) in cluster.nodes.iter().zip(&report.rss) {
        println!("  {} resident memory {:.1} MiB", node.id, *rss as f64 / f64::from(1 << 20));
    }
    if options.no_kill {
        return Ok(report);
    }

    let victim = 2.min(options.nodes - 1);
    let victim_id = cluster.nodes[victim].id.clone();
    if let Some(child) = &mut cluster.nodes[victim].child {
        child.kill().await.map_err(|e| e.to_string())?;
    }
    cluster.nodes[victim].child = None;
    println!("killed {victim_id} (SIGKILL); writing {} more keys", options.missed);
    let others: Vec<SocketAddr> =
        cluster.nodes.iter().filter(|n| n.child.is_some()).map(|n| n.data).collect();
    let (p, id) = (placement.clone(), victim_id.clone());
    let theirs = Arc::new(move |k: &[u8]| p.holds(&id, p.partition_of(k)));
    let to = options.keys.saturating_add(options.missed);
    let (acked, missed_bytes) = if others.is_empty() {
        (0, 0) // one node: nothing can be written while it is down
    } else {
        load(&others, options.keys, to, &options, theirs).await?
    };
    report.missed_acked = acked;
    report.missed_bytes = missed_bytes;
    report.dataset_bytes += u64::from(acked) * (options.value_bytes as u64 + 12);
    println!("  {acked} acknowledged; {missed_bytes} bytes of them belong to {victim_id}");

    let kinds = ["anti_entropy", "hinted_handoff", "read_repair"];
    let before: Vec<(u64, u64)> = kinds
        .iter()
        .map(|k| {
            (
                cluster.metric(&format!("kv_repair_keys_total{{kind=\"{k}\"}}")),
                cluster.metric(&format!("kv_repair_bytes_total{{kind=\"{k}\"}}")),
            )
        })
        .collect();
    let sync_before = cluster.metric("kv_sync_sent_bytes_total");
    let restarted = Instant::now();
    cluster.spawn(victim)?;
    cluster.wait_ready(victim).await?;
    report.restart = restarted.elapsed();
    report.converge = cluster.wait_converged().await?;
    for (i, k) in kinds.iter().enumerate() {
        report.repaired_keys[i] =
            cluster.metric(&format!("kv_repair_keys_total{{kind=\"{k}\"}}")) - before[i].0;
        report.repaired_bytes[i] =
            cluster.metric(&format!("kv_repair_bytes_total{{kind=\"{k}\"}}")) - before[i].1;
    }
    report.sync_bytes = cluster.metric("kv_sync_sent_bytes_total").saturating_sub(sync_before);
    if let Ok((_, body)) = http(cluster.nodes[victim].admin, "GET", "/status", "") {
        let status: Value = serde_json::from_str(&body).unwrap_or_default();
        report.rebuild_ms = status["open"]["rebuild_ms"].as_u64().unwrap_or(0);
    }
    report.rss_after_restart = cluster.nodes[victim]
        .child
        .as_ref()
        .and_then(Child::id)
        .and_then(resident_bytes)
        .unwrap_or(0);
    let repaired: u64 = report.repaired_bytes.iter().sum();
    println!(
        "restarted {victim_id}: answering after {:.1?} (summaries rebuilt in {} ms, {:.1} MiB resident); \
         replicas agree {:.1?} later",
        report.restart,
        report.rebuild_ms,
        report.rss_after_restart as f64 / f64::from(1 << 20),
        report.converge
    );
    println!(
        "repair: anti-entropy {} keys / {} bytes, hinted handoff {} / {}, read repair {} / {}",
        report.repaired_keys[0],
        report.repaired_bytes[0],
        report.repaired_keys[1],
        report.repaired_bytes[1],
        report.repaired_keys[2],
        report.repaired_bytes[2]
    );
    println!(
        "  {repaired} bytes repaired for {} bytes missed ({:.2}x), {} bytes of sync traffic; the dataset is {} bytes",
        report.missed_bytes,
        repaired as f64 / report.missed_bytes.max(1) as f64,
        report.sync_bytes,
        report.dataset_bytes
    );
    for node in &mut cluster.nodes {
        if let Some(child) = &node.child
            && let Some(pid) = child.id()
        {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
        if let Some(child) = &mut node.child {
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        }
        node.child = None;
    }
    println!("stopped every node");
    Ok(report)
}

/// The `kv-node` binary beside the running one (as cargo builds them).
pub fn sibling_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent().unwrap_or(Path::new(".")).join(name)
}
