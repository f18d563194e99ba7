//! # Guide: counting hot things
//!
//! ## Hot keys
//!
//! A like counter, a view counter, a rate of requests: one number that many
//! writers bump at once. Stored as one thing, it becomes the bottleneck.
//!
//! * **In one process**, one `AtomicU64` is a single cache line that every
//!   core must own exclusively to add to it. With two cores adding, the line
//!   bounces between them and each add waits for the transfer; adding cores
//!   makes it slower, not faster.
//! * **In Redis**, one key is served by one thread on one node. On this
//!   workspace's 2-core machine `redis-benchmark` gives about 40,000 `INCR`/s
//!   unpipelined and about 600,000/s with 16-deep pipelining; on a Redis
//!   Cluster the key lives in one slot on one node, so adding nodes adds
//!   nothing for that counter.
//!
//! The cure is the same at both levels: **split the counter** into shards
//! that writers update independently, and add the shards up to read.
//!
//! ## Striped counters (in process)
//!
//! [`StripedCounter`](crate::StripedCounter) keeps cells on separate cache
//! lines (128-byte aligned: x86 prefetches lines in pairs), and gives each
//! thread a cell of its own. Java's `LongAdder` (and most striped counters)
//! hash threads onto a shared stripe, so two threads may meet on a cell and
//! every add must be an atomic read-modify-write: a `lock`-prefixed
//! instruction, which on x86 waits for the store buffer to drain even when
//! no other core wants the line. Here a cell has one writer, so an add is a
//! plain load and store (one `add` to memory once compiled): on one thread
//! 0.3 to 0.8 of the time of a locked add, and with two threads on two
//! cores two to four times the throughput of a striped counter that uses
//! locked adds (the spread is between machines: see BENCHMARKS.md).
//!
//! **Which cell is a thread's?** Each thread that adds takes a small index,
//! the smallest one no live thread holds, and keeps it for life; a
//! thread-local destructor gives it back when the thread exits. Index `i`
//! picks cell `i` in every counter, so indexes stay as small as the number
//! of threads counting at once, and no two live threads write one cell. A
//! new thread that takes over an index adds on top of what the old one left
//! in its cells: the index goes through a lock, so the new owner sees every
//! add of the old. Cells come into use lazily, as threads add, up to a bound
//! (`2 × cores` by default); threads past it (more threads counting than
//! that) share the cells through a second word of each that takes atomic
//! adds, the striped counter of old.
//!
//! **Reading.** `sum` adds the cells up: O(cells), not a snapshot, which is
//! fine for counters. `take` cannot swap an owner's word to zero (the
//! owner's load and store would write back the old value), so each cell
//! also records how much of it takes have handed out; a take reads the
//! word, hands out the difference and records the new mark, under a lock
//! that keeps takes one at a time. Every add is taken exactly once, which is
//! what a write-behind flusher needs.
//!
//! **Costs.** An add is O(1): a thread-local read, a bounds check, a test
//! that the cell is in use, and the add. A thread's first add ever takes the
//! index pool's lock once; its first add to each counter marks the cell in
//! use (a few atomic steps). A counter holds `2 × cores` cells of 128 bytes
//! from the start (1 KiB on 4 cores), so that cells never move. The price
//! of owned cells is the bound: a process with more threads counting at
//! once than there are cells falls back, for the extra threads, to shared
//! atomic adds, and threads whose index picks the same shared word contend
//! there as in any striped counter.
//!
//! ## Sharded counters (in Redis)
//!
//! [`RedisShardedCounter`] stores one logical
//! counter as N keys, `{name:0}` .. `{name:N-1}`. Each increment goes to one
//! shard, at random (spreads load evenly) or by a hint such as a user id
//! (keeps one user's increments together, useful for per-shard
//! deduplication).
//!
//! **Cluster slots.** Redis Cluster assigns a key to one of 16,384 slots by
//! CRC16 of the key, or of the part between the first `{` and `}` (the hash
//! tag) if there is one. A shared hash tag would put every shard in one slot,
//! on one node: sharding for nothing. Here each shard key is its *own* tag,
//! so shards scatter over slots and nodes, and keys that must live with a
//! shard (the dedupe keys of batched flushes) reuse that shard's tag. Names
//! containing braces are refused for this reason.
//!
//! **How many shards?** Enough that no shard is hot: the write rate divided
//! by what one key takes comfortably (tens of thousands per second), and on a
//! cluster at least a few per node so load spreads. But every exact read
//! touches every shard, so reads cost O(N). Sixteen to sixty-four is typical;
//! [`reshard`] changes it while writes
//! continue (shrinking stops writing to the highest shards but keeps reading
//! them, so no count is moved or lost).
//!
//! ## Read strategies
//!
//! | read | cost | freshness | error |
//! |---|---|---|---|
//! | `get` | one GET per shard (pipelined per node) | now | exact |
//! | `get_cached(max_age)` | free within `max_age` | up to `max_age` old | exact as of then |
//! | `get_approx(s)` | `s` GETs | now | unbiased; relative std. error about `sqrt((N-s)/(s·total/N))` |
//! | aggregator + total key | one GET | up to one interval old | exact as of then |
//!
//! Exact reads never use `MGET`: on a cluster the shards are in different
//! slots, and a multi-key command across slots is refused. Instead one `GET`
//! per shard goes out concurrently; the cluster connection routes each to
//! its node and pipelines them there. On a standalone server they go as one
//! pipeline.
//!
//! ## Write-behind batching
//!
//! Most of the time you do not need each increment in Redis the moment it
//! happens. [`BatchedCounter`] adds to a local striped
//! counter (nanoseconds, no I/O) and a background task flushes the
//! accumulated delta every interval or threshold: one Redis write carries
//! thousands of increments.
//!
//! The hard part is failure. A flush whose reply is lost may or may not have
//! been applied; retrying it blindly double-counts, dropping it loses counts.
//! Each flush therefore carries an id, and a small Lua script applies the
//! delta only if the id is new (the id checked, then `INCRBY`, then the id
//! remembered, atomically in the shard's slot; an `INCRBY` that Redis
//! refuses leaves no id). Failed flushes keep their delta *and* id and
//! retry, so a delta lands exactly once, within the 24 hours Redis remembers
//! an id. The same script guards each `incr` of a counter built with
//! `exactly_once`, for a Cluster client that resends a command after an I/O
//! error (a plain `INCRBY` resent would count twice). What remains is the **loss window**: increments
//! made since the last successful flush die with the process. Graceful
//! shutdown flushes them; a crash loses at most one interval's worth (longer
//! during a Redis outage, when deltas wait in memory).
//!
//! **Counters by name.** Page views per path, calls per API key: the set of
//! counters is not known up front.
//! [`KeyedBatchedCounter`] takes
//! `add("/pricing", 1)` and keeps one local delta per name, flushed to the
//! sharded counter `prefix + name` (created on first flush) with the same
//! exactly-once ids. Memory is what bounds such a map: a client that sends
//! a new path every request would grow it forever. So only names with
//! unflushed adds are held (a name is forgotten once its delta lands), at
//! most `max_keys` of them; an add to one more is refused with a typed
//! error, and wakes the flusher to make room, rather than growing memory or
//! dropping the add silently.
//!
//! ## Trade-offs at a glance
//!
//! * One key: exact and simple, but capped at one node's single thread.
//! * Sharded: write throughput grows with shards and nodes; exact reads cost
//!   O(shards).
//! * Batched: millions of increments per second from one process, at the
//!   price of a bounded loss window on crash and reads that lag by up to one
//!   flush interval.
//!
#![cfg_attr(feature = "redis", doc = "[`RedisShardedCounter`]: crate::RedisShardedCounter")]
#![cfg_attr(not(feature = "redis"), doc = "[`RedisShardedCounter`]: crate#crate-features")]
#![cfg_attr(feature = "redis", doc = "[`reshard`]: crate::RedisShardedCounter::reshard")]
#![cfg_attr(not(feature = "redis"), doc = "[`reshard`]: crate#crate-features")]
#![cfg_attr(feature = "redis", doc = "[`BatchedCounter`]: crate::BatchedCounter")]
#![cfg_attr(not(feature = "redis"), doc = "[`BatchedCounter`]: crate#crate-features")]
#![cfg_attr(feature = "redis", doc = "[`KeyedBatchedCounter`]: crate::KeyedBatchedCounter")]
#![cfg_attr(not(feature = "redis"), doc = "[`KeyedBatchedCounter`]: crate#crate-features")]
//!
//! ## The picture
//!
//! Increments per second on one hot counter as threads grow, one atomic
//! against a `StripedCounter` (drawn by `tour --report` on a two-core
//! machine; see the workspace README).
//!
#![doc = include_str!("../docs/sharded-counter-threads.svg")]
