//! Redis fixtures for the sysblocks tests: every Redis-backed test talks to a
//! real server or a real 3-master Redis Cluster, never to a mock.
//!
//! Where the servers come from, in order:
//!
//! 1. `REDIS_URL` (standalone) and `REDIS_CLUSTER_NODES` (comma-separated
//!    master URLs), which `scripts/test.sh` sets after starting throwaway
//!    servers on free loopback ports;
//! 2. otherwise the fixture starts its own `redis-server` from `PATH` on a free
//!    loopback port (three of them, joined into a cluster, for [`Cluster`]) and
//!    stops it when the fixture is dropped;
//! 3. otherwise the test fails with a message that names `scripts/test.sh`.
//!    A Redis test is never skipped.
//!
//! Keys of one fixture never collide with another's: each fixture hands out a
//! unique [`prefix`](Redis::prefix), and on a shared server it deletes its own
//! keys when dropped.
//!
//! ```no_run
//! # async fn demo() -> redis::RedisResult<()> {
//! let redis = sysblocks_testkit::Redis::new();
//! let mut con = redis.connection_manager().await;
//! let key = redis.key("greeting");
//! let _: () = redis::cmd("SET").arg(&key).arg("hello").query_async(&mut con).await?;
//! # Ok(()) }
//! ```
//!
//! Tests that must stop and restart Redis (fail-open policies, recovery after
//! a restart) use [`Redis::private`], which always owns its server.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Environment variable holding the URL of a standalone Redis.
pub const REDIS_URL_ENV: &str = "REDIS_URL";
/// Environment variable holding the comma-separated URLs of the cluster's masters.
pub const REDIS_CLUSTER_NODES_ENV: &str = "REDIS_CLUSTER_NODES";

/// How long a freshly started server may take to answer `PING`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a freshly joined cluster may take to report `cluster_state:ok`.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(20);
/// Number of hash slots in a Redis Cluster.
const CLUSTER_SLOTS: u16 = 16384;

/// Fails the current test with a message that says how to get a Redis.
fn no_redis(what: &str) -> ! {
    panic!(
        "{what}: no Redis is available for this test. Run the tests with scripts/test.sh, \
         which installs redis-server if needed and starts a standalone server and a 3-master \
         cluster (it exports {REDIS_URL_ENV} and {REDIS_CLUSTER_NODES_ENV}); or put \
         redis-server on PATH (Debian/Ubuntu: apt-get install redis-server redis-tools)."
    )
}

/// A key prefix no other fixture in this run (or any other process) uses.
fn unique_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("sbt:{}:{n}:{nanos:x}:", std::process::id())
}

/// A `redis-server` process owned by a test: started on a free loopback port
/// in a private temporary directory, persisting nothing, killed and cleaned up
/// on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    cluster: bool,
    persistent: bool,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a standalone server.
    ///
    /// # Panics
    /// When `redis-server` is not on `PATH` or does not come up; the message
    /// names `scripts/test.sh`.
    pub fn start() -> RedisServer {
        Self::spawn_on_free_port(false)
    }

    /// Starts a server that keeps its data across [`stop`](Self::stop) and
    /// [`restart`](Self::restart): an append-only file synced on every write,
    /// so even a kill loses no acknowledged write.
    pub fn start_persistent() -> RedisServer {
        Self::spawn_on_free_port_with(false, true)
    }

    /// Starts a server with `cluster-enabled yes` that owns no slots yet.
    fn start_cluster_node() -> RedisServer {
        Self::spawn_on_free_port(true)
    }

    fn spawn_on_free_port(cluster: bool) -> RedisServer {
        Self::spawn_on_free_port_with(cluster, false)
    }

    fn spawn_on_free_port_with(cluster: bool, persistent: bool) -> RedisServer {
        let mut last_error = String::new();
        // A free port can be taken by someone else between our probe and the
        // server's bind; a few attempts make that race harmless.
        for _ in 0..8 {
            let port = free_port(cluster);
            let dir = std::env::temp_dir()
                .join(format!("sysblocks-redis-{port}-{}", unique_prefix().replace(':', "-")));
            if let Err(e) = std::fs::create_dir_all(&dir) {
                panic!("cannot create a temporary directory {}: {e}", dir.display());
            }
            let mut server = RedisServer { port, dir, cluster, persistent, child: None };
            match server.launch() {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("redis-server did not start: {last_error}");
    }

    /// Starts the process on `self.port` and waits until it answers `PING`.
    fn launch(&mut self) -> Result<(), String> {
        let mut cmd = Command::new("redis-server");
        let aof = if self.persistent { "yes" } else { "no" };
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", aof])
            .args(["--appendfsync", "always"])
            .args(["--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.cluster {
            cmd.args(["--cluster-enabled", "yes", "--cluster-node-timeout", "5000"])
                .arg("--cluster-config-file")
                .arg(self.dir.join("nodes.conf"));
        }
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                no_redis("redis-server is not on PATH")
            }
            Err(e) => return Err(format!("spawning redis-server: {e}")),
        };
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!(
                    "redis-server on port {} exited at start with {status}",
                    self.port
                ));
            }
            if ping(&self.url()).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!("redis-server on port {} did not answer PING", self.port));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The server's URL, `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's private directory; removed when the server is dropped.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the server process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Freezes the server with SIGSTOP: it keeps its connections open but
    /// answers nothing (a hung node) until [`resume`](Self::resume).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a [`pause`](Self::pause)d server run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill").arg(signal).arg(child.id().to_string()).status();
            assert!(status.is_ok_and(|s| s.success()), "kill {signal} failed");
        }
    }

    /// Kills the server (as a crash would: no shutdown, no save). Clients see
    /// connection errors until [`restart`](Self::restart).
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Starts the server again on the same port: empty, or with its data for
    /// a [`start_persistent`](Self::start_persistent) server.
    ///
    /// # Panics
    /// When the port was taken meanwhile or the server does not come up.
    pub fn restart(&mut self) {
        self.kill();
        if let Err(e) = self.launch() {
            panic!("redis-server did not restart: {e}");
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port nobody listens on; for a cluster node, `port + 10000`
/// (its cluster bus) must be free too.
fn free_port(cluster: bool) -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("cannot bind a loopback port: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        if port == 0 {
            continue;
        }
        if !cluster {
            return port;
        }
        if port <= 65535 - 10000 && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
}

fn ping(url: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut con = client.get_connection_with_timeout(Duration::from_millis(200))?;
    redis::cmd("PING").query::<String>(&mut con).map(drop)
}

/// The SCAN pattern for a fixture's keys: its unique prefix anywhere in the
/// key, so that keys wrapped in a hash tag (`{prefix...}`) are found too.
fn fixture_pattern(prefix: &str) -> String {
    format!("*{prefix}*")
}

/// Deletes every key containing `prefix` on one server (best effort: what
/// a fixture's `Drop` does).
fn delete_prefix(url: &str, prefix: &str) {
    let _ = delete_matching(url, prefix);
}

/// Deletes every key containing `prefix` on one server.
fn delete_matching(url: &str, prefix: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut con = client.get_connection_with_timeout(Duration::from_secs(1))?;
    let pattern = fixture_pattern(prefix);
    let mut cursor: u64 = 0;
    loop {
        let (next, keys) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query::<(u64, Vec<String>)>(&mut con)?;
        // One DEL per key: on a cluster node the keys of one scan batch may
        // live in different slots, and a multi-key DEL would be refused.
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.cmd("DEL").arg(key).ignore();
        }
        if !keys.is_empty() {
            pipe.query::<()>(&mut con)?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// A standalone Redis for one test, with a key prefix of its own.
#[derive(Debug)]
pub struct Redis {
    url: String,
    prefix: String,
    server: Option<RedisServer>,
}

impl Redis {
    /// The server from `REDIS_URL`, or a private one started from `PATH`.
    ///
    /// # Panics
    /// When neither is available; the message names `scripts/test.sh`.
    pub fn new() -> Redis {
        match std::env::var(REDIS_URL_ENV) {
            Ok(url) if !url.trim().is_empty() => {
                if let Err(e) = ping(&url) {
                    no_redis(&format!("{REDIS_URL_ENV}={url} does not answer PING ({e})"));
                }
                Redis { url, prefix: unique_prefix(), server: None }
            }
            _ => Self::private(),
        }
    }

    /// A server of this fixture's own that keeps its data across a stop and
    /// restart (see [`RedisServer::start_persistent`]).
    pub fn private_persistent() -> Redis {
        let server = RedisServer::start_persistent();
        Redis { url: server.url(), prefix: unique_prefix(), server: Some(server) }
    }

    /// Always a server of this fixture's own, which the test may
    /// [`stop`](RedisServer::stop) and [`restart`](RedisServer::restart)
    /// through [`server`](Self::server).
    ///
    /// # Panics
    /// When `redis-server` is not on `PATH`; the message names `scripts/test.sh`.
    pub fn private() -> Redis {
        let server = RedisServer::start();
        Redis { url: server.url(), prefix: unique_prefix(), server: Some(server) }
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The prefix every key of this fixture should contain (at the start, or
    /// right after a hash tag's `{`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `name` under this fixture's prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The owned server, for tests that stop and restart it; `None` when the
    /// fixture uses the shared server from `REDIS_URL`.
    pub fn server(&mut self) -> Option<&mut RedisServer> {
        self.server.as_mut()
    }

    /// A client for the server.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url.as_str())
            .unwrap_or_else(|e| panic!("bad Redis URL {}: {e}", self.url))
    }

    /// A blocking connection.
    pub fn connection(&self) -> redis::Connection {
        self.client()
            .get_connection()
            .unwrap_or_else(|e| no_redis(&format!("cannot connect to {} ({e})", self.url)))
    }

    /// Deletes every key that contains `part` (a key of this fixture, or
    /// the start of some: pass something under [`prefix`](Self::prefix),
    /// so that no other fixture's keys go).
    ///
    /// # Panics
    /// When the server cannot be reached or refuses the deletes.
    pub fn delete_keys(&self, part: &str) {
        delete_matching(&self.url, part)
            .unwrap_or_else(|e| panic!("deleting the keys containing {part:?} failed: {e}"));
    }

    /// A reconnecting async connection, the kind the sysblocks crates take.
    pub async fn connection_manager(&self) -> redis::aio::ConnectionManager {
        self.client()
            .get_connection_manager()
            .await
            .unwrap_or_else(|e| no_redis(&format!("cannot connect to {} ({e})", self.url)))
    }
}

impl Default for Redis {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if self.server.is_none() {
            delete_prefix(&self.url, &self.prefix);
        }
    }
}

/// A 3-master Redis Cluster for one test, with a key prefix of its own.
#[derive(Debug)]
pub struct Cluster {
    nodes: Vec<String>,
    prefix: String,
    servers: Vec<RedisServer>,
}

impl Cluster {
    /// The cluster from `REDIS_CLUSTER_NODES`, or a private one of three
    /// masters started from `PATH`.
    ///
    /// # Panics
    /// When neither is available; the message names `scripts/test.sh`.
    pub fn new() -> Cluster {
        match std::env::var(REDIS_CLUSTER_NODES_ENV) {
            Ok(list) if !list.trim().is_empty() => {
                let nodes: Vec<String> = list
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                for node in &nodes {
                    if let Err(e) = ping(node) {
                        no_redis(&format!(
                            "cluster node {node} from {REDIS_CLUSTER_NODES_ENV} does not answer PING ({e})"
                        ));
                    }
                }
                Cluster { nodes, prefix: unique_prefix(), servers: Vec::new() }
            }
            _ => Self::private(),
        }
    }

    /// Always a cluster of this fixture's own: three masters, no replicas.
    pub fn private() -> Cluster {
        let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start_cluster_node()).collect();
        let nodes: Vec<String> = servers.iter().map(RedisServer::url).collect();
        if let Err(e) = form_cluster(&servers) {
            panic!("could not form a Redis Cluster from {nodes:?}: {e}");
        }
        Cluster { nodes, prefix: unique_prefix(), servers }
    }

    /// The masters' URLs.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// The prefix every key of this fixture should contain (at the start, or
    /// right after a hash tag's `{`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `name` under this fixture's prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// A cluster client seeded with every master.
    pub fn client(&self) -> redis::cluster::ClusterClient {
        redis::cluster::ClusterClient::new(self.nodes.clone())
            .unwrap_or_else(|e| panic!("bad cluster node list {:?}: {e}", self.nodes))
    }

    /// An async cluster connection, the kind the sysblocks crates take.
    pub async fn connection(&self) -> redis::cluster_async::ClusterConnection {
        self.client().get_async_connection().await.unwrap_or_else(|e| {
            no_redis(&format!("cannot connect to the cluster {:?} ({e})", self.nodes))
        })
    }

    /// The index (in [`nodes`](Self::nodes)) of the master that owns
    /// `key`'s slot, asked of the cluster itself (`CLUSTER KEYSLOT`,
    /// `CLUSTER SLOTS`).
    pub fn node_of_key(&self, key: &str) -> usize {
        let mut con = self.node_connection(0);
        let slot: i64 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query(&mut con).unwrap();
        let ranges: Vec<redis::Value> = redis::cmd("CLUSTER").arg("SLOTS").query(&mut con).unwrap();
        for range in ranges {
            let redis::Value::Array(fields) = range else { continue };
            let int = |v: &redis::Value| match v {
                redis::Value::Int(n) => *n,
                _ => -1,
            };
            let (start, end) = (int(&fields[0]), int(&fields[1]));
            if !(start..=end).contains(&slot) {
                continue;
            }
            let redis::Value::Array(master) = &fields[2] else { continue };
            let port = int(&master[1]);
            if let Some(i) = self.nodes.iter().position(|n| n.contains(&format!(":{port}"))) {
                return i;
            }
        }
        panic!("no master owns the slot of {key:?}");
    }

    /// The server behind master `index`, for a [`private`](Self::private)
    /// cluster (to stop, pause or resume it); `None` on a shared cluster.
    pub fn server(&mut self, index: usize) -> Option<&mut RedisServer> {
        self.servers.get_mut(index)
    }

    /// A blocking connection to one master (not cluster-aware): for checking
    /// where keys landed.
    pub fn node_connection(&self, index: usize) -> redis::Connection {
        let url = &self.nodes[index];
        redis::Client::open(url.as_str())
            .and_then(|c| c.get_connection())
            .unwrap_or_else(|e| no_redis(&format!("cannot connect to cluster node {url} ({e})")))
    }

    /// How many keys containing this fixture's prefix each master holds, in
    /// the order of [`nodes`](Self::nodes).
    pub fn keys_per_node(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .map(|i| {
                let mut con = self.node_connection(i);
                let pattern = fixture_pattern(&self.prefix);
                let mut cursor: u64 = 0;
                let mut count = 0;
                loop {
                    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query(&mut con)
                        .unwrap_or_else(|e| panic!("SCAN on {} failed: {e}", self.nodes[i]));
                    count += keys.len();
                    if next == 0 {
                        return count;
                    }
                    cursor = next;
                }
            })
            .collect()
    }
}

impl Default for Cluster {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.servers.is_empty() {
            for node in &self.nodes {
                delete_prefix(node, &self.prefix);
            }
        }
    }
}

/// Splits the slots evenly over the servers, introduces them to each other
/// and waits until every node reports a healthy cluster.
fn form_cluster(servers: &[RedisServer]) -> redis::RedisResult<()> {
    let per_node = CLUSTER_SLOTS / servers.len() as u16;
    for (i, server) in servers.iter().enumerate() {
        let first = i as u16 * per_node;
        let last = if i + 1 == servers.len() { CLUSTER_SLOTS - 1 } else { first + per_node - 1 };
        let mut con = redis::Client::open(server.url())?.get_connection()?;
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("ADDSLOTS");
        for slot in first..=last {
            cmd.arg(slot);
        }
        cmd.query::<()>(&mut con)?;
    }
    let mut first = redis::Client::open(servers[0].url())?.get_connection()?;
    for server in &servers[1..] {
        redis::cmd("CLUSTER")
            .arg("MEET")
            .arg("127.0.0.1")
            .arg(server.port())
            .query::<()>(&mut first)?;
    }
    let deadline = Instant::now() + CLUSTER_TIMEOUT;
    for server in servers {
        let mut con = redis::Client::open(server.url())?.get_connection()?;
        loop {
            let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut con)?;
            let known = format!("cluster_known_nodes:{}", servers.len());
            if info.contains("cluster_state:ok") && info.contains(&known) {
                break;
            }
            if Instant::now() > deadline {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "cluster did not become healthy",
                    info,
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

/// A TCP proxy on loopback in front of a Redis server that can drop a
/// reply: armed with [`drop_next_reply`](Self::drop_next_reply), it lets the
/// next request through to Redis, which applies it, then closes the client's
/// connection instead of passing the reply on. The client sees an I/O error
/// for a command that did happen: the "applied, then reply lost" case that
/// retry-safe writes must survive.
#[derive(Debug)]
pub struct ReplyDropper {
    port: u16,
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    dropped: std::sync::Arc<AtomicU64>,
}

impl ReplyDropper {
    /// A proxy in front of the server at `upstream` (`host:port`). It
    /// serves until the test process ends.
    pub fn start(upstream: &str) -> ReplyDropper {
        use std::sync::Arc;
        use std::sync::atomic::AtomicBool;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        let armed = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let upstream = upstream.to_string();
        let (armed2, dropped2) = (armed.clone(), dropped.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = std::net::TcpStream::connect(&upstream) else { continue };
                let (armed, dropped) = (armed2.clone(), dropped2.clone());
                proxy_pair(client, server, armed, dropped);
            }
        });
        ReplyDropper { port, armed, dropped }
    }

    /// A proxy in front of the fixture's standalone server.
    pub fn for_redis(redis: &Redis) -> ReplyDropper {
        let url = redis.url();
        let address = url.trim_start_matches("redis://").trim_end_matches('/');
        let address = address.split('/').next().unwrap_or(address);
        Self::start(address)
    }

    /// The URL that reaches Redis through the proxy.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Drops the next reply that comes back from Redis (on any connection)
    /// and closes that connection.
    pub fn drop_next_reply(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// How many replies were dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::SeqCst)
    }
}

/// Copies bytes both ways between a client and the server, until either
/// side closes or an armed dropper eats a reply.
fn proxy_pair(
    client: std::net::TcpStream,
    server: std::net::TcpStream,
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    dropped: std::sync::Arc<AtomicU64>,
) {
    use std::io::{Read, Write};
    use std::net::Shutdown;
    let (Ok(mut client_r), Ok(mut server_w)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n @ 1..) = client_r.read(&mut buf) {
            if server_w.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = server_w.shutdown(Shutdown::Both);
    });
    std::thread::spawn(move || {
        let (mut server_r, mut client_w) = (server, client);
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n @ 1..) = server_r.read(&mut buf) {
            if armed.swap(false, Ordering::SeqCst) {
                dropped.fetch_add(1, Ordering::SeqCst);
                break;
            }
            if client_w.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = client_w.shutdown(Shutdown::Both);
        let _ = server_r.shutdown(Shutdown::Both);
    });
}
