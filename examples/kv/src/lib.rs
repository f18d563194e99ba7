//! `sysblocks-kv`: a Dynamo-style replicated key-value store built from the
//! sysblocks building blocks: placement on the consistent-hash ring,
//! replicas repaired by Merkle anti-entropy, a read cache in front, and
//! limits per client.
//!
//! The service is being built in steps. What is here so far:
//!
//! * [`resp`]: the subset of the Redis protocol (RESP2) the data port
//!   speaks, so that `redis-cli`, `redis-benchmark` and the redis crate work
//!   against a node unchanged; a parser that refuses oversized and
//!   malformed input with a clear error before allocating for it.
//! * [`command`]: the data port's commands (GET, SET, DEL, EXISTS, PING,
//!   and `R`/`W` per request or per connection), with limits on keys and
//!   values and errors worded as Redis words them.
//! * [`connection`]: one client connection of the data port (pipelined
//!   commands answered in order, a protocol error answered and then the
//!   connection closed, nothing half-run when a client leaves mid-command),
//!   over any [`Handler`](connection::Handler).
//! * [`cluster`]: the cluster file (TOML: nodes, addresses, zones,
//!   weights, N, W, R, partitions), refused with the line of the first
//!   mistake.
//! * [`placement`]: a fixed number of partitions of the hash space, each
//!   placed on the weighted ring on N distinct nodes (one per zone first),
//!   and which partitions move when membership changes.
//! * [`quorum`]: what a coordinator makes of its replicas' replies (the
//!   newest entry by the merkle crate's one rule for "newer", the replicas
//!   to repair, whether a quorum answered).
//! * [`hlc`]: versions from a hybrid logical clock, so that last-writer-wins
//!   resolves the same way on every replica and never goes back in time.
//! * [`history`]: the checker the fault tests use: clients record every
//!   operation's invocation, completion and result, and the checker proves
//!   that no acknowledged write was lost and that no read returned a value
//!   older than the last write acknowledged before the read began.

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
