//! The cluster file: which nodes there are, where they listen, their zones
//! and weights, and the replication settings, in TOML.
//!
//! ```toml
//! [cluster]
//! replicas = 3      # N: copies of each key (default 3)
//! write_quorum = 2  # W: acknowledgements a write waits for (default N/2 + 1)
//! read_quorum = 2   # R: replies a read waits for (default N/2 + 1)
//! partitions = 64   # fixed partitions of the hash space (a power of two)
//! timeout_ms = 500          # how long a coordinator waits for a replica
//! sync_interval_ms = 1000   # how often each partition is synced with its replicas
//! cache_ttl_ms = 0          # the read cache's staleness bound (0: no cache)
//! cache_entries = 10000     # the read cache's size
//! tombstone_horizon_s = 86400  # deletes are forgotten after this long
//! client_rps = 100000       # requests per second per client address
//! client_connections = 1024 # open connections per client address
//! max_hints = 1000000       # hints a node keeps for nodes that are down
//!
//! [[node]]
//! id = "n1"
//! data = "127.0.0.1:7001"   # the RESP port
//! admin = "127.0.0.1:8001"  # HTTP: /status, /metrics
//! sync = "127.0.0.1:9001"   # anti-entropy and replication between nodes
//! zone = "a"                # optional; all nodes or none
//! weight = 1                # optional, default 1
//! ```
//!
//! A file that is not valid is refused with an error naming the line:
//! a syntax error, an unknown field, a missing or malformed address, a
//! duplicate node id or address, quorums that do not fit N.
//!
//! ```
//! use sysblocks_kv::cluster::ClusterConfig;
//!
//! let text = "[[node]]\nid = \"n1\"\ndata = \"127.0.0.1:7001\"\nadmin = \"127.0.0.1:8001\"\nsync = \"127.0.0.1:9001\"\n";
//! let config = ClusterConfig::parse(text)?;
//! assert_eq!(config.nodes[0].id, "n1");
//! assert_eq!(config.replicas, 1); // N is capped by the number of nodes
//!
//! let bad = text.replace("127.0.0.1:8001", "localhost");
//! let error = ClusterConfig::parse(&bad).unwrap_err();
//! assert_eq!(error.line, 4);
//! # Ok::<(), sysblocks_kv::cluster::ConfigError>(())
//! ```

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

/// The most partitions a cluster may have.
pub const MAX_PARTITIONS: u32 = 4096;

/// A cluster's settings and nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// N: copies of each key (at most the number of nodes).
    pub replicas: usize,
    /// W: acknowledgements a write waits for.
    pub write_quorum: usize,
    /// R: replies a read waits for.
    pub read_quorum: usize,
    /// Partitions of the hash space (a power of two).
    pub partitions: u32,
    /// The nodes, in file order.
    pub nodes: Vec<NodeConfig>,
    /// Timeouts, intervals, the cache and the client limits.
    pub tuning: Tuning,
}

/// The settings of `[cluster]` beyond N, W, R and the partitions; the same
/// on every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// How long a coordinator waits for a replica's answer (ms).
    pub timeout_ms: u64,
    /// How often a node syncs each of its partitions with the other
    /// replicas (ms).
    pub sync_interval_ms: u64,
    /// How long the coordinator's read cache may serve an entry (ms); 0
    /// turns the cache off.
    pub cache_ttl_ms: u64,
    /// Entries the read cache holds.
    pub cache_entries: u64,
    /// Tombstones older than this are purged (s).
    pub tombstone_horizon_s: u64,
    /// Requests per second one client address may send.
    pub client_rps: u64,
    /// Connections one client address may hold open.
    pub client_connections: u64,
    /// Hints a node keeps for replicas that are down, for all of them
    /// together; past it, anti-entropy repairs them without hints.
    pub max_hints: u64,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            timeout_ms: 500,
            sync_interval_ms: 1000,
            cache_ttl_ms: 0,
            cache_entries: 10_000,
            tombstone_horizon_s: 86_400,
            client_rps: 100_000,
            client_connections: 1024,
            max_hints: 1_000_000,
        }
    }
}

/// One node of the cluster file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// Its unique id.
    pub id: String,
    /// The RESP data port.
    pub data: SocketAddr,
    /// The HTTP admin port.
    pub admin: SocketAddr,
    /// The port other nodes replicate and sync through.
    pub sync: SocketAddr,
    /// Its zone, when the cluster is zone-aware.
    pub zone: Option<String>,
    /// Its share of the ring (default 1).
    pub weight: u32,
}

/// A cluster file that cannot be used: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The line (from 1) the problem is on; 0 when it concerns the whole
    /// file (it could not be read, it has no node).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "cluster file: {}", self.message)
        } else {
            write!(f, "cluster file, line {}: {}", self.line, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    cluster: Option<Spanned<RawCluster>>,
    #[serde(default)]
    node: Vec<Spanned<RawNode>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    replicas: Option<Spanned<u64>>,
    write_quorum: Option<Spanned<u64>>,
    read_quorum: Option<Spanned<u64>>,
    partitions: Option<Spanned<u64>>,
    timeout_ms: Option<Spanned<u64>>,
    sync_interval_ms: Option<Spanned<u64>>,
    cache_ttl_ms: Option<Spanned<u64>>,
    cache_entries: Option<Spanned<u64>>,
    tombstone_horizon_s: Option<Spanned<u64>>,
    client_rps: Option<Spanned<u64>>,
    client_connections: Option<Spanned<u64>>,
    max_hints: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    id: Spanned<String>,
    data: Spanned<String>,
    admin: Spanned<String>,
    sync: Spanned<String>,
    zone: Option<Spanned<String>>,
    weight: Option<Spanned<u64>>,
}

impl ClusterConfig {
    /// Reads and checks the cluster file at `path`.
    ///
    /// # Errors
    /// The file cannot be read, or as [`parse`](Self::parse).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            line: 0,
            message: format!("cannot read {}: {e}", path.display()),
        })?;
        Self::parse(&text)
    }

    /// Parses and checks a cluster file.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the line of the first problem.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let at =
            |offset: usize, message: String| ConfigError { line: line_of(text, offset), message };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            at(offset, e.message().trim().to_string())
        })?;
        if raw.node.is_empty() {
            return Err(ConfigError { line: 0, message: "no [[node]] is listed".into() });
        }
        let mut nodes = Vec::with_capacity(raw.node.len());
        let mut ids = HashSet::new();
        let mut addresses = HashSet::new();
        for spanned in &raw.node {
            let node = spanned.get_ref();
            let id = node.id.get_ref().trim();
            if id.is_empty() || id.len() > 255 || id.chars().any(char::is_whitespace) {
                return Err(at(
                    node.id.span().start,
                    format!("invalid node id {:?}", node.id.get_ref()),
                ));
            }
            if !ids.insert(id.to_string()) {
                return Err(at(node.id.span().start, format!("duplicate node id {id:?}")));
            }
            let mut address = |field: &Spanned<String>,
                               what: &str|
             -> Result<SocketAddr, ConfigError> {
                let addr: SocketAddr = field.get_ref().parse().map_err(|_| {
                    at(
                        field.span().start,
                        format!(
                            "{what} address {:?} of node {id:?} is not IP:PORT",
                            field.get_ref()
                        ),
                    )
                })?;
                if !addresses.insert(addr) {
                    return Err(at(field.span().start, format!("address {addr} is used twice")));
                }
                Ok(addr)
            };
            let data = address(&node.data, "data")?;
            let admin = address(&node.admin, "admin")?;
            let sync = address(&node.sync, "sync")?;
            let weight = match &node.weight {
                None => 1,
                Some(w) => match u32::try_from(*w.get_ref()) {
                    Ok(w) if (1..=1000).contains(&w) => w,
                    _ => {
                        return Err(at(
                            w.span().start,
                            format!("weight {} is not between 1 and 1000", w.get_ref()),
                        ));
                    }
                },
            };
            let zone = node.zone.as_ref().map(|z| z.get_ref().trim().to_string());
            if zone.as_deref() == Some("") {
                return Err(at(spanned.span().start, format!("node {id:?} has an empty zone")));
            }
            nodes.push(NodeConfig { id: id.to_string(), data, admin, sync, zone, weight });
        }
        // Zone-aware placement needs every node's zone.
        if nodes.iter().any(|n| n.zone.is_some())
            && let Some(i) = nodes.iter().position(|n| n.zone.is_none())
        {
            return Err(at(
                raw.node[i].span().start,
                format!(
                    "node {:?} has no zone while others have one: give every node a zone, or none",
                    nodes[i].id
                ),
            ));
        }
        let cluster = raw.cluster.as_ref().map(Spanned::get_ref);
        let setting =
            |pick: fn(&RawCluster) -> &Option<Spanned<u64>>| cluster.and_then(|c| pick(c).as_ref());
        let replicas = match setting(|c| &c.replicas) {
            None => 3.min(nodes.len()),
            Some(n) => usize::try_from(*n.get_ref())
                .ok()
                .filter(|&n| (1..=nodes.len()).contains(&n))
                .ok_or_else(|| {
                    at(
                        n.span().start,
                        format!(
                            "replicas = {} must be between 1 and the {} nodes",
                            n.get_ref(),
                            nodes.len()
                        ),
                    )
                })?,
        };
        let quorum = |value: Option<&Spanned<u64>>, name: &str| -> Result<usize, ConfigError> {
            match value {
                None => Ok(replicas / 2 + 1),
                Some(q) => usize::try_from(*q.get_ref())
                    .ok()
                    .filter(|&q| (1..=replicas).contains(&q))
                    .ok_or_else(|| {
                        at(
                            q.span().start,
                            format!(
                                "{name} = {} must be between 1 and replicas ({replicas})",
                                q.get_ref()
                            ),
                        )
                    }),
            }
        };
        let write_quorum = quorum(setting(|c| &c.write_quorum), "write_quorum")?;
        let read_quorum = quorum(setting(|c| &c.read_quorum), "read_quorum")?;
        let partitions = match setting(|c| &c.partitions) {
            None => 64,
            Some(p) => u32::try_from(*p.get_ref())
                .ok()
                .filter(|&p| p.is_power_of_two() && p <= MAX_PARTITIONS)
                .ok_or_else(|| {
                    at(
                        p.span().start,
                        format!(
                            "partitions = {} must be a power of two up to {MAX_PARTITIONS}",
                            p.get_ref()
                        ),
                    )
                })?,
        };
        let defaults = Tuning::default();
        let tune = |value: Option<&Spanned<u64>>,
                    name: &str,
                    default: u64,
                    range: std::ops::RangeInclusive<u64>|
         -> Result<u64, ConfigError> {
            match value {
                None => Ok(default),
                Some(v) if range.contains(v.get_ref()) => Ok(*v.get_ref()),
                Some(v) => Err(at(
                    v.span().start,
                    format!(
                        "{name} = {} must be between {} and {}",
                        v.get_ref(),
                        range.start(),
                        range.end()
                    ),
                )),
            }
        };
        let tuning = Tuning {
            timeout_ms: tune(
                setting(|c| &c.timeout_ms),
                "timeout_ms",
                defaults.timeout_ms,
                1..=60_000,
            )?,
            sync_interval_ms: tune(
                setting(|c| &c.sync_interval_ms),
                "sync_interval_ms",
                defaults.sync_interval_ms,
                10..=3_600_000,
            )?,
            cache_ttl_ms: tune(setting(|c| &c.cache_ttl_ms), "cache_ttl_ms", 0, 0..=3_600_000)?,
            cache_entries: tune(
                setting(|c| &c.cache_entries),
                "cache_entries",
                defaults.cache_entries,
                1..=100_000_000,
            )?,
            tombstone_horizon_s: tune(
                setting(|c| &c.tombstone_horizon_s),
                "tombstone_horizon_s",
                defaults.tombstone_horizon_s,
                1..=10 * 365 * 86_400,
            )?,
            client_rps: tune(
                setting(|c| &c.client_rps),
                "client_rps",
                defaults.client_rps,
                1..=1_000_000_000,
            )?,
            client_connections: tune(
                setting(|c| &c.client_connections),
                "client_connections",
                defaults.client_connections,
                1..=1_000_000,
            )?,
            max_hints: tune(
                setting(|c| &c.max_hints),
                "max_hints",
                defaults.max_hints,
                0..=1_000_000_000,
            )?,
        };
        Ok(ClusterConfig { replicas, write_quorum, read_quorum, partitions, nodes, tuning })
    }

    /// The node with `id`.
    pub fn node(&self, id: &str) -> Option<&NodeConfig> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

/// The line (from 1) of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(i: u16) -> String {
        format!(
            "[[node]]\nid = \"n{i}\"\ndata = \"127.0.0.1:{}\"\nadmin = \"127.0.0.1:{}\"\nsync = \"127.0.0.1:{}\"\n",
            7000 + i,
            8000 + i,
            9000 + i
        )
    }

    fn five() -> String {
        (1..=5).map(node).collect()
    }

    #[test]
    fn a_good_file_parses_with_defaults() {
        let config = ClusterConfig::parse(&five()).unwrap();
        assert_eq!((config.replicas, config.write_quorum, config.read_quorum), (3, 2, 2));
        assert_eq!(config.partitions, 64);
        assert_eq!(config.nodes.len(), 5);
        assert_eq!(config.node("n3").unwrap().data, "127.0.0.1:7003".parse().unwrap());
        assert_eq!(config.node("n3").unwrap().weight, 1);
        let tuned = format!(
            "[cluster]\nreplicas = 5\nwrite_quorum = 1\nread_quorum = 5\npartitions = 256\n{}",
            five()
        );
        let config = ClusterConfig::parse(&tuned).unwrap();
        assert_eq!(
            (config.replicas, config.write_quorum, config.read_quorum, config.partitions),
            (5, 1, 5, 256)
        );
    }

    /// Each mistake is refused with the line it is on.
    #[test]
    fn bad_files_name_the_line() {
        let cases: Vec<(String, usize, &str)> = vec![
            (five().replacen("id = \"n2\"", "id = \"n1\"", 1), 7, "duplicate node id"),
            (five().replacen("127.0.0.1:8003", "127.0.0.1:7001", 1), 14, "used twice"),
            (five().replacen("127.0.0.1:9004", "nowhere:1", 1), 20, "not IP:PORT"),
            (five().replacen("sync = \"127.0.0.1:9002\"", "", 1), 6, "sync"),
            (
                five().replacen("[[node]]\nid = \"n5\"", "[[node]]\nid = \"n5\"\nwieght = 2", 1),
                23,
                "wieght",
            ),
            (format!("[cluster]\nreplicas = 6\n{}", five()), 2, "replicas"),
            (format!("[cluster]\nwrite_quorum = 4\n{}", five()), 2, "write_quorum"),
            (format!("[cluster]\npartitions = 100\n{}", five()), 2, "power of two"),
            (five().replacen("id = \"n2\"", "id = \"n2\"\nweight = 0", 1), 8, "weight"),
            (five().replacen("id = \"n1\"", "id = \"n1\"\nzone = \"a\"", 1), 7, "no zone"),
            (five().replacen("id = \"n3\"", "id = \"n 3\"", 1), 12, "invalid node id"),
            (format!("{}\nthis is not toml", five()), 27, ""),
        ];
        for (text, line, needle) in cases {
            let error = ClusterConfig::parse(&text).unwrap_err();
            assert_eq!(error.line, line, "{error} in:\n{text}");
            assert!(error.message.contains(needle), "{error:?} should mention {needle:?}");
            assert!(error.to_string().starts_with(&format!("cluster file, line {line}: ")));
        }
        let empty = ClusterConfig::parse("").unwrap_err();
        assert_eq!(
            (empty.line, empty.to_string().as_str()),
            (0, "cluster file: no [[node]] is listed")
        );
        let missing = ClusterConfig::load(Path::new("/nonexistent/cluster.toml")).unwrap_err();
        assert!(missing.message.contains("cannot read"));
    }
}
