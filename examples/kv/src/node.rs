//! One `kv-node` process: its storage, its membership, its three ports
//! (data, sync, admin) and its background tasks (anti-entropy, hint
//! delivery, rebalancing, tombstone purge), all stopped by one shutdown
//! signal.
//!
//! ```text
//!             data port (RESP)         sync port (peers)          admin port (HTTP)
//!                   │                        │                          │
//!            per-client limits        replica reads/writes        /status /metrics
//!                   │                 sync sessions (merkle)      /faults /reload
//!              coordinator ──fan-out──▶ replicas (other nodes' sync ports)
//!                   │                        │
//!             read cache (lru)               ▼
//!                   └────────────────▶  store: redb rows + one MerkleSummary per partition
//! ```

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use sysblocks_lru_cache::ConcurrentLruCache;
use sysblocks_ratelimit::{Keyed, Rate, TokenBucket};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::hlc::Hlc;
use crate::membership::{Membership, View};
use crate::metrics::Metrics;
use crate::peer::{Faults, Peers, Reply, Request};
use crate::store::{OpenStats, Store};

/// How a node is started.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Its id in the cluster file.
    pub id: String,
    /// The cluster file.
    pub cluster_file: PathBuf,
    /// Its data directory (the database and the cluster file it serves).
    pub data_dir: PathBuf,
    /// A new node joining a running cluster: the cluster file it is given
    /// is the one to move to, and the one the cluster serves now is asked
    /// of the other nodes.
    pub join: bool,
    /// The database's page cache, in bytes.
    pub cache_bytes: usize,
}

/// Health of a peer as this node's calls see it.
#[derive(Debug, Clone, Default)]
pub struct PeerHealth {
    /// Calls that failed in a row.
    pub failures: u64,
    /// The last failure's reason.
    pub last_error: Option<String>,
}

/// The state every task of a node shares.
pub struct Shared {
    /// This node's id.
    pub id: String,
    /// How it was started.
    pub options: NodeOptions,
    /// The cluster files it serves and moves to.
    pub membership: RwLock<Membership>,
    /// Its storage.
    pub store: Store,
    /// Its version clock.
    pub hlc: Hlc,
    /// Connections to the other nodes.
    pub peers: Peers,
    /// The fault layer.
    pub faults: Arc<Faults>,
    /// Its counters.
    pub metrics: Metrics,
    /// The coordinator's read cache, when `cache_ttl_ms` > 0.
    pub cache: Option<ConcurrentLruCache<Vec<u8>, Option<Vec<u8>>>>,
    /// Requests per client address.
    pub limiter: Keyed<IpAddr, TokenBucket>,
    /// Open connections per client address.
    pub connections: Mutex<HashMap<IpAddr, u64>>,
    /// Peers' health.
    pub health: Mutex<HashMap<String, PeerHealth>>,
    /// What the store found at start.
    pub open_stats: OpenStats,
    /// When the node started.
    pub started: Instant,
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Shared {
    /// The membership, read-locked (hold it briefly, never across an await).
    pub fn membership(&self) -> std::sync::RwLockReadGuard<'_, Membership> {
        self.membership.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The membership, write-locked.
    pub fn membership_mut(&self) -> std::sync::RwLockWriteGuard<'_, Membership> {
        self.membership.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// A future that completes when the node shuts down.
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut receiver = self.shutdown.subscribe();
        async move {
            let _ = receiver.wait_for(|stop| *stop).await;
        }
    }

    /// Whether the node is shutting down.
    pub fn is_stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Calls a peer, recording its health.
    ///
    /// # Errors
    /// As [`Peers::call`].
    pub async fn call(
        &self,
        peer: &str,
        request: &Request,
    ) -> Result<Reply, crate::peer::PeerError> {
        let result = self.peers.call(peer, request).await;
        self.record(peer, result.as_ref().err().map(ToString::to_string));
        result
    }

    /// Records the outcome of a call to `peer` (`None`: it succeeded).
    pub fn record(&self, peer: &str, error: Option<String>) {
        let mut health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = health.entry(peer.to_owned()).or_default();
        match error {
            None => entry.failures = 0,
            Some(e) => {
                entry.failures += 1;
                entry.last_error = Some(e);
            }
        }
    }

    /// Reads the cluster file again and starts moving to it if it changed;
    /// returns how many partitions move.
    ///
    /// # Errors
    /// The file is not valid (the old one stays in force), this node is
    /// not in it, or a change is already in progress.
    pub fn reload(&self) -> Result<usize, String> {
        let text = std::fs::read_to_string(&self.options.cluster_file)
            .map_err(|e| format!("cannot read the cluster file: {e}"))?;
        let next = View::parse(&text)?;
        if next.config.node(&self.id).is_none() {
            return Err(format!("node {:?} is not in the new cluster file", self.id));
        }
        let mut membership = self.membership_mut();
        let moved = membership.begin(next)?;
        self.peers.set_addresses(addresses(&membership));
        Ok(moved)
    }
}

/// The sync addresses of every node but this one.
pub(crate) fn addresses(membership: &Membership) -> HashMap<String, SocketAddr> {
    membership
        .all_nodes()
        .into_iter()
        .filter(|n| *n != membership.me)
        .filter_map(|n| membership.sync_address(&n).map(|a| (n, a)))
        .collect()
}

/// A running node: its addresses, and the handle that stops it.
#[derive(Debug)]
pub struct Node {
    /// The shared state (tests and the admin port read it).
    pub shared: Arc<Shared>,
    /// The data port's address.
    pub data: SocketAddr,
    /// The admin port's address.
    pub admin: SocketAddr,
    /// The sync port's address.
    pub sync: SocketAddr,
    tasks: tokio::task::JoinSet<()>,
}

impl Node {
    /// Opens the storage, settles which cluster file to serve, binds the
    /// three ports and starts every task.
    ///
    /// # Errors
    /// A bad cluster file (with its line), a node id not in it, a storage
    /// error, or a port that cannot be bound.
    pub async fn start(options: NodeOptions) -> Result<Node, String> {
        let text = std::fs::read_to_string(&options.cluster_file).map_err(|e| {
            format!("cannot read the cluster file {}: {e}", options.cluster_file.display())
        })?;
        let file = View::parse(&text)?;
        let me = file
            .config
            .node(&options.id)
            .cloned()
            .ok_or_else(|| format!("node {:?} is not in the cluster file", options.id))?;
        std::fs::create_dir_all(&options.data_dir)
            .map_err(|e| format!("cannot create {}: {e}", options.data_dir.display()))?;
        let served_path = options.data_dir.join("cluster.toml");
        let current = match std::fs::read_to_string(&served_path) {
            Ok(served) => View::parse(&served)?,
            Err(_) if options.join => fetch_current(&options.id, &file).await?,
            Err(_) => file.clone(),
        };
        let (store, open_stats) = crate::store::Store::open(
            &options.data_dir.join("data.redb"),
            current.config.partitions,
            options.cache_bytes,
        )
        .map_err(|e| e.to_string())?;
        tracing::info!(
            node = %options.id,
            rows = open_stats.rows,
            rebuild_ms = open_stats.rebuild.as_millis() as u64,
            "storage open, summaries rebuilt"
        );
        let mut membership = Membership::new(options.id.clone(), current.clone());
        let moved = membership.begin(file.clone())?;
        if moved > 0 {
            tracing::info!(partitions = moved, "moving to the cluster file given");
        }
        std::fs::write(&served_path, current.text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", served_path.display()))?;
        let tuning = membership.config().tuning;
        store.set_hint_limit(tuning.max_hints);
        let faults = Arc::new(Faults::default());
        let peers = Peers::new(
            options.id.clone(),
            addresses(&membership),
            faults.clone(),
            Duration::from_millis(tuning.timeout_ms),
        );
        let cache = if tuning.cache_ttl_ms > 0 {
            let cache = ConcurrentLruCache::builder()
                .capacity(usize::try_from(tuning.cache_entries).unwrap_or(usize::MAX))
                .time_to_live(Duration::from_millis(tuning.cache_ttl_ms))
                .build()
                .map_err(|e| format!("read cache: {e}"))?;
            Some(cache)
        } else {
            None
        };
        let rate = Rate::per_second(tuning.client_rps).map_err(|e| e.to_string())?;
        let limiter = Keyed::new(100_000, move || TokenBucket::new(tuning.client_rps, rate))
            .map_err(|e| e.to_string())?;
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            id: options.id.clone(),
            options,
            membership: RwLock::new(membership),
            store,
            hlc: Hlc::new(),
            peers,
            faults,
            metrics: Metrics::default(),
            cache,
            limiter,
            connections: Mutex::new(HashMap::new()),
            health: Mutex::new(HashMap::new()),
            open_stats,
            started: Instant::now(),
            shutdown,
        });
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))
        };
        let data = bind(me.data).await?;
        let sync = bind(me.sync).await?;
        let admin = bind(me.admin).await?;
        let (data_addr, sync_addr, admin_addr) = (
            data.local_addr().map_err(|e| e.to_string())?,
            sync.local_addr().map_err(|e| e.to_string())?,
            admin.local_addr().map_err(|e| e.to_string())?,
        );
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(crate::coordinator::serve_clients(shared.clone(), data));
        tasks.spawn(crate::replica::serve_peers(shared.clone(), sync));
        tasks.spawn(crate::admin::serve(shared.clone(), admin));
        tasks.spawn(crate::repair::anti_entropy(shared.clone()));
        tasks.spawn(crate::repair::deliver_hints(shared.clone()));
        tasks.spawn(crate::repair::purge_tombstones(shared.clone()));
        tasks.spawn(crate::rebalance::run(shared.clone()));
        tracing::info!(node = %shared.id, %data_addr, %sync_addr, %admin_addr, "listening");
        Ok(Node { shared, data: data_addr, admin: admin_addr, sync: sync_addr, tasks })
    }

    /// Stops every task: listeners stop accepting, connections get up to
    /// `grace` to finish, then everything still running is cancelled.
    /// Acknowledged writes are already durable.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.shared.shutdown.send(true);
        let drain = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, drain).await.is_err() {
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
    }
}

/// Asks the nodes of `file` for the cluster file they serve, until one
/// answers (they answer once they know this node, from their new file).
async fn fetch_current(me: &str, file: &View) -> Result<View, String> {
    let addresses: HashMap<String, SocketAddr> =
        file.config.nodes.iter().filter(|n| n.id != me).map(|n| (n.id.clone(), n.sync)).collect();
    let timeout = Duration::from_millis(file.config.tuning.timeout_ms);
    let peers = Peers::new(me.to_owned(), addresses.clone(), Arc::default(), timeout);
    let started = Instant::now();
    loop {
        for peer in addresses.keys() {
            if let Ok(Reply::Config(text)) = peers.call(peer, &Request::Config).await {
                tracing::info!(%peer, "joining: the cluster's current file is known");
                return View::parse(&text);
            }
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err("joining: no node answered with its cluster file for 10 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
