//! # Guide: consistent hashing, and which kind to use when
//!
//! ## The problem
//!
//! You have keys (user ids, cache entries, shards) and a changing set of
//! nodes. `hash(key) % n` spreads keys evenly, but when `n` changes almost
//! every key moves: going from 10 to 11 nodes moves 10/11 of them, which for a
//! cache means a cold start and for a database a mass migration.
//! *Consistent* hashing keeps movement to the minimum: adding an (n+1)th node
//! moves about 1/(n+1) of the keys, all of them onto the new node, and
//! removing a node moves only the keys it held.
//!
//! ## The ring
//!
//! Picture the 2^64 possible hash values as a circle. Every node is hashed to
//! many points on it (its *virtual nodes*); a key is hashed too, and belongs
//! to the first node point at or after it, clockwise:
//!
//! ```text
//!             0 / 2^64
//!          .-----*-----.        * points:  A1  B1  A2  C1  B2  C2
//!       C2*             *A1     key k hashes between A1 and B1,
//!        |      k·-------|-->   so it walks clockwise to B1: owner B
//!       B2*             *B1
//!          '--*-----*--'
//!            C1     A2
//! ```
//!
//! A new node D drops its own points on the circle; each one takes over the
//! arc just before it from whichever node owned it, and nothing else changes.
//! That is why every moved key moves *to* D. Removing D hands each of its
//! arcs to the next point clockwise, and only D's keys move.
//!
//! ### Why virtual nodes
//!
//! With one point per node, the arcs are wildly uneven (the largest of n
//! random arcs is about `ln n` times the average). A node with V points owns
//! the sum of V arcs, and sums of V independent arcs concentrate: the
//! relative standard deviation of a node's share is about `1/sqrt(V)`.
//! Measured with this crate's placement, 1,000,000 keys on `node-0` ..
//! `node-9`:
//!
//! | vnodes per node | peak / mean load |
//! |---|---|
//! | 160 (default, as ketama) | 1.14 |
//!
//! and across 1 to 40 nodes at 160 vnodes the peak/mean stays between 1.07
//! and 1.28 (it grows slowly with n, as the maximum of more samples).
//!
//! The same `1/sqrt(V)` governs everything statistical here:
//!
//! * the share of keys a newly added node takes is `1/(n+1)` give or take
//!   `1/sqrt(V)` relative, about ±8% at one standard deviation for V = 160;
//!   the tests require ±20% at V = 640, which is five standard deviations;
//! * a node of weight `w` has `w × V` points, so its share is within about
//!   `1/sqrt(w × V)` of `w / total_weight`. For shares within 5% at three
//!   standard deviations use V ≥ 3,600; the default 160 gives about ±8%.
//!
//! More vnodes cost memory (12 bytes a point) and build time, not lookup
//! time: lookups go through a prefix index and stay O(1).
//!
//! ## The placement spec
//!
//! A ring is only useful if every process computes the same one. So this
//! crate never uses `std`'s `Hash` trait (which may hash differently in
//! another Rust release and appends its own bytes to strings) and never
//! uses floats in placement. The exact bytes are in [`crate::hash`]: SipHash-1-3
//! under a fixed key, over `len(id) || id || vnode index`, and over the key's
//! raw bytes. Weights are integers, and a node of weight `w` has exactly
//! `w × V` vnodes, so raising a weight adds points and keeps the old ones. The
//! spec has a version, [`PLACEMENT_VERSION`](crate::PLACEMENT_VERSION);
//! golden vectors in the tests pin it, and a serialized ring written under
//! another version is refused rather than silently placing keys elsewhere.
//!
//! ## Lookup: a flat array and a prefix index
//!
//! The points are kept as one sorted `Vec<u64>` with a parallel `Vec<u32>` of
//! owners (a node index), which is cache-friendly and cheap to search.
//! On top sits a prefix index of `2^b` entries, `b ≈ log2(points)`: entry
//! `x` is the position of the first point whose top `b` bits are ≥ `x`. A
//! lookup takes the key hash's top bits, reads two adjacent entries and
//! searches the one or two points between them. That is O(1) expected and
//! touches three cache lines, where a binary search over 160,000 points takes
//! 17 dependent, mostly cache-missing steps.
//!
//! | operation | cost |
//! |---|---|
//! | `node_for` | O(1) expected, no allocation |
//! | `replicas(key, r)` | O(r) expected, no allocation |
//! | `add` / `remove` | O(P) (merge or filter; no re-sort) |
//! | `set_weight`, `from_weighted` | O(P log P) |
//! | `rebalance_plan` | O(P log P) |
//! | `node_for_bounded` | O(k) for the k nodes it skips |
//!
//! ## Replicas on distinct nodes
//!
//! Replication wants r *different* machines. Walking r points clockwise is
//! wrong, since neighbouring points often belong to the same node. The
//! [`replicas`](crate::HashRing::replicas) iterator walks on, skipping nodes it
//! has already produced, until it has r distinct ones: Dynamo's preference
//! list. It remembers the first 16 in an inline array and, past that, checks
//! the part of the ring it already walked, so it never allocates.
//! [`replicas_across_zones`](crate::HashRing::replicas_across_zones) first takes
//! one node per zone (rack, availability zone), so that losing a zone loses at
//! most one replica, then fills up with distinct nodes.
//!
//! ## Rebalance plans
//!
//! Before changing a ring, you want to know what moves. A
//! [`RebalancePlan`](crate::RebalancePlan) lists the arcs whose owner changes,
//! with the old and the new owner: a migration job streams exactly those
//! ranges. It is computed by merging both rings' points: between two
//! consecutive points of either ring, ownership is constant in both.
//!
//! ## Bounded loads
//!
//! Hashing balances *keys*, not *load*: a popular key, or an unlucky arc,
//! overloads one node. Consistent hashing with bounded loads (Mirrokni,
//! Thorup and Zadimoghaddam, 2018; used by HAProxy as `hash-balance-factor`
//! and by Vimeo's video cache) gives every node a capacity of
//! `ceil(c × average)` and sends a key to the first node clockwise that still
//! has room. With `c = 1.25` no node carries more than 25% above average,
//! and the paper shows that the movement when a node joins or leaves stays
//! bounded, growing like `1/(c-1)^2` as `c` approaches 1. The caller owns
//! the loads; see [`node_for_bounded`](crate::HashRing::node_for_bounded).
//!
//! ## Which algorithm when
//!
//! * **Ring with vnodes** (this crate's [`HashRing`](crate::HashRing)): any node
//!   can join or leave, weights, replica lists, zones, rebalance plans. The
//!   default choice for caches, sharded stores and load balancers.
//! * **Jump hash** ([`jump_hash`](crate::jump_hash)): perfect balance, no memory,
//!   40 to 90 ns here for 10 to 1000 buckets (the ring's indexed lookup is
//!   16 to 21 ns: see BENCHMARKS.md), but buckets are numbered and only the last one can be removed. Use
//!   it for storage shards that only ever grow (each "node" is a replicated
//!   bucket), not for a fleet where any machine may die.
//! * **Rendezvous / HRW** ([`Rendezvous`](crate::Rendezvous)): no structure to
//!   build, perfect removal of any node, replica lists for free (top-k
//!   scores), exact weights; but O(n) per lookup. Good up to a few dozen
//!   nodes, or when the node set changes constantly.
//! * **Bounded loads**: when the load per key is uneven and you can track it.
//! * Others, not here: *multi-probe* consistent hashing (one point per node,
//!   k probes per lookup: peak/mean 1.05 with 21 probes, but lookups cost k
//!   hashes) and *Maglev* (a lookup table with near-perfect balance and
//!   O(1) lookups, at the cost of somewhat more movement on change).
//!
//! ## Pitfalls
//!
//! * Hashing through `Hash`/`DefaultHasher`: placement silently changes with a
//!   compiler upgrade. Hash explicit bytes.
//! * Floats in placement: weights computed as `weight × 160.0` round
//!   differently on different platforms or versions; use integers.
//! * Replica lists that repeat a physical node (walking points, not nodes):
//!   two "replicas" on one machine are one replica.
//! * Ignoring variance: 160 vnodes still leave a ~14% peak over the mean with
//!   10 nodes. Size capacity for the peak, or use bounded loads.
//!
//! ## The picture
//!
//! Keys per node for 10 nodes and 1,000,000 keys as the virtual nodes per
//! node grow from 1 to 1,000 (drawn by `tour --report`; see the workspace
//! README): with one point per node the shares are far from even; from 100
//! points on every node holds close to the mean.
//!
#![doc = include_str!("../docs/consistent-hash-vnodes.svg")]
