//! `sysblocks-kv`: a Dynamo-style replicated key-value store built from the
//! sysblocks building blocks: placement on the consistent-hash ring,
//! replicas repaired by Merkle anti-entropy, a read cache in front, limits
//! per client. The package's README is the guide (the design as a picture,
//! the consistency model, the failures and their repairs, the numbers).
//!
//! A library with thin binaries, so that the tests drive the code the
//! binaries run: `kv-node` is one node ([`node::Node::start`]), `kv-cluster`
//! the demo ([`demo::run`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use sysblocks_kv::client::Client;
//! use sysblocks_kv::node::{Node, NodeOptions};
//!
//! let node = Node::start(NodeOptions {
//!     id: "n1".into(),
//!     cluster_file: "cluster.toml".into(),
//!     data_dir: "n1".into(),
//!     join: false,
//!     cache_bytes: 64 << 20,
//! })
//! .await?;
//! let mut client = Client::connect(node.data).await?;
//! client.set(b"user:1", b"ada").await?;
//! assert_eq!(client.get(b"user:1").await?, Some(b"ada".to_vec()));
//! node.shutdown(std::time::Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```
//!
//! The modules, in the order a request meets them:
//!
//! * [`resp`], [`command`], [`connection`]: the data port's protocol (the
//!   RESP2 subset that `redis-cli`, `redis-benchmark` and the redis crate
//!   speak), its requests and limits, one client connection.
//! * [`coordinator`]: any node, for any key: the fan-out to the key's
//!   replicas, quorums, hints, read repair, the read cache, client limits.
//! * [`peer`], [`replica`]: the protocol between nodes, and the replica
//!   side of it, Merkle sync sessions included.
//! * [`store`], [`wal`]: redb behind a write-ahead log with group commit,
//!   and one [`MerkleSummary`](sysblocks_merkle::MerkleSummary) per
//!   partition.
//! * [`placement`], [`membership`], [`rebalance`]: partitions on the ring,
//!   and moving them when the cluster file changes.
//! * [`repair`]: anti-entropy, hint delivery, the tombstone purge.
//! * [`quorum`], [`hlc`]: the rules for "newer" and versions.
//! * [`admin`], [`metrics`]: the HTTP admin port and its counters.
//! * [`node`], [`cluster`], [`client`], [`demo`]: the process, its cluster
//!   file, a client, the demo.
//! * [`history`]: the checker the fault tests run.

pub mod admin;
pub mod client;
pub mod cluster;
pub mod command;
pub mod connection;
pub mod coordinator;
pub mod demo;
pub mod history;
pub mod hlc;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod peer;
pub mod placement;
pub mod quorum;
pub mod rebalance;
pub mod repair;
pub mod replica;
pub mod resp;
pub mod store;
pub mod wal;
