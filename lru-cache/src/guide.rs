//! # Guide: how an LRU cache works, and when to use something else
//!
//! ## The idea
//!
//! A cache keeps a bounded number of entries and must choose what to throw
//! away when a new one arrives. *Least recently used* evicts the entry that
//! has gone longest without being touched, betting that the recent past
//! predicts the near future. It is the classic policy because it is simple,
//! exact, O(1) per operation, and good on workloads with temporal locality.
//!
//! ## Map plus list
//!
//! Two structures work together:
//!
//! ```text
//!   hash table: key -> slot          recency list (doubly linked)
//!   +--------+------+                head (MRU)                tail (LRU)
//!   | "b"    |  2   |----------.      |                          |
//!   | "a"    |  0   |------.    '--> [2 "b"] <-> [0 "a"] <-> [1 "c"]
//!   | "c"    |  1   |--.    '-----------------------^           ^
//!   +--------+------+   '---------------------------------------'
//! ```
//!
//! * `get(k)`: find the slot through the table, unlink it and relink it at the
//!   head. O(1).
//! * `insert(k, v)`: if `k` is present, replace and move to the head; otherwise,
//!   when full, unlink the tail and remove it from the table, then link the
//!   new slot at the head. O(1).
//!
//! ## Why index links instead of pointers
//!
//! The textbook list uses pointers, and in Rust that means raw pointers and
//! `unsafe`: the `lru` crate does exactly this and has had three soundness
//! advisories, the latest in 2026 involving a key or value whose `Drop`
//! panics. Here every entry has a *slot* number and nothing points anywhere:
//!
//! * the hash table (hashbrown's `HashTable`) holds the entries themselves,
//!   `(key, value, slot)`: a lookup compares keys and reads the value in the
//!   table's own memory, one cache line for both;
//! * `links[slot]` holds `prev`/`next` slot numbers, 8 bytes per entry in one
//!   dense array; slot 0 is a sentinel, so the list is circular and moving an
//!   entry to the front is the same six writes wherever it was (no branch
//!   for the ends of the list), except that the head itself is left alone:
//!   in a shared cache every line a hit writes must move to the other core
//!   before its next hit on that shard, and a shard's hottest key is often
//!   its head;
//! * `places[slot]` holds where the entry is: its table bucket, so that an
//!   eviction takes the tail's entry straight out of its bucket with no
//!   probe, and its hash, from which the table rehashes without running a
//!   user's `Hash` (which could panic while entries move). A bucket index
//!   changes only when the table rehashes; an insert makes sure beforehand
//!   that it will not (growing the table first if it has no room left),
//!   and after a rehash every place is read again. The places have an array
//!   of their own, 16 bytes a slot, because every miss of a full cache
//!   reads one for a cold slot: for 10,000 entries that array is 160 KB and
//!   stays in a core's L2 cache, where hash, weight and expiry side by side
//!   took 400 KB and the read went to memory;
//! * `weights[slot]` and `expires[slot]` are kept only when in use (a
//!   weighted cache; a cache where some entry has had a time to live), and
//!   are empty otherwise.
//!
//! The links array's length is a power of two, so indexing it with
//! `slot & (len - 1)` changes no valid slot and lets the compiler prove every
//! index in range: the hot path has no bounds checks, without `unsafe`.
//! Keys are stored once and need not be `Clone`. Slots are `u32`, which caps
//! a cache at about four billion entries. The benchmarks show this layout
//! ahead of the pointer-based `lru` on hits and on a Zipf mix.
//!
//! Panic safety follows from one rule: every structural change (unlink, table
//! removal, slab release, counters) is complete *before* anything is dropped
//! or handed to user code. A `Drop` that panics can only unwind out of a
//! cache that is already consistent.
//!
//! ## Weights
//!
//! Counting entries is a poor bound when values vary in size. With a weigher
//! the bound is the total weight: an insert evicts from the tail until the new
//! entry fits, and an entry heavier than the whole bound is refused (it would
//! otherwise flush the entire cache and still not fit). The bound is checked
//! before every insertion, so it holds at all times, not only eventually.
//!
//! ## Time to live
//!
//! An entry may carry an expiry instant (a cache-wide time to live, or one per
//! entry). Reads check it, so an expired entry is never returned (a read
//! that finds one counts a miss and leaves it for the next write). To reclaim
//! memory without waiting for a read, expiry instants also sit in a min-heap
//! that every write drains up to "now": O(log n) per expired entry, and stale
//! heap items (of replaced entries) are skipped and compacted. Time comes
//! from a [`Clock`](crate::Clock), so tests advance a
//! [`ManualClock`](crate::ManualClock) instead of sleeping.
//!
//! ## The concurrent cache
//!
//! One lock around one LRU serialises every thread, because even a `get`
//! writes (it moves the entry to the head). [`ConcurrentLruCache`](crate::ConcurrentLruCache)
//! splits keys over shards by hash, each an exact LRU behind its own mutex:
//! threads on different shards never wait for each other. Recency becomes
//! exact per shard and approximate overall, which on real workloads changes
//! the hit ratio very little.
//!
//! **How many shards.** Two threads wait for each other only when they want
//! the same shard at once, and a skewed workload sends its hot keys to a few
//! shards; so the default is generous, `64 × cores`. On two cores and a
//! Zipf workload, 128 shards reached 1.02 to 1.06 of quick_cache's
//! throughput where 32 reached 0.82 to 0.93 and 8 about 0.77
//! (`lru/concurrent_vs_quick_cache` in BENCHMARKS.md): with more shards,
//! more of the hot keys are each the head of their own shard, and a hit on
//! a shard's head writes nothing.
//! A shard too small would be a poor LRU, so the default is halved until
//! every shard holds at least 64 entries. A cache bounded by weight keeps
//! `4 × cores` shards: a shard's share of the weight is the heaviest entry
//! it can hold. A key is hashed once: the hash
//! picks the shard (bits the shard's table does not use, scaled by a
//! multiply rather than a division) and then serves the shard's table,
//! which hashes with a clone of the same hasher.
//!
//! **Single flight.** When many callers miss on the same key at once (a
//! "thundering herd" after an expiry), only the first runs the loader. The
//! others find a *flight* registered under the key and wait on it (a condvar
//! for threads, a waker for async tasks). The loader's value is cached and
//! handed to every waiter; its error is handed to every waiter but never
//! cached; if the loader panics or its future is dropped, a guard marks the
//! flight abandoned and wakes the waiters, and the next one becomes the
//! loader. Loom models check these paths in every interleaving. The names
//! are moka's: `get_with` (an infallible loader), `try_get_with` (a
//! fallible one, whose error every waiter shares), and `get_with_async` /
//! `try_get_with_async` for loaders that are futures. Waiters that joined
//! a load count as `coalesced` in the stats, not as misses: 32 callers
//! served by one load are one miss and 31 coalesced waits.
//!
//! The concurrent cache's builder has what the single-threaded one has (a
//! weight bound, split over the shards; a time to live; a clock; an
//! eviction listener), and lookups take any borrowed form of the key.
//!
//! **Writes win over loads.** A loader read its value before a write that
//! lands while it runs, so its result is older than that write. An insert,
//! remove or clear during a load detaches the load's flight: the loader's
//! callers still get its value, but it is not stored over the newer write
//! (Caffeine and moka do the same).
//!
//! ## Complexity
//!
//! | operation | time | notes |
//! |---|---|---|
//! | `get`, `peek`, `insert`, `remove`, `pop_lru` | O(1) expected | plus O(log n) per expired entry reclaimed |
//! | `resize` | O(evicted) | |
//! | `iter` | O(n) | most to least recent |
//! | memory | per entry: key, value and slot in the table; two `u32` links; hash, weight, expiry | |
//!
//! ## Hit ratios on real workloads
//!
//! An exact LRU's hit ratio on a fixed trace is fixed, so these numbers are
//! also a correctness check (the OLTP ones equal the LRU column of the ARC
//! paper). Block traces from Nimrod Megiddo and Dharmendra S. Modha, "ARC: A
//! Self-Tuning, Low Overhead Replacement Cache," USENIX FAST 03, San
//! Francisco, CA, pp. 115-130, 2003; the tour prints them.
//!
//! | workload | cache size | LRU hit ratio |
//! |---|---|---|
//! | OLTP (914,145 accesses) | 1,000 | 32.83% |
//! | OLTP | 5,000 | 53.65% |
//! | OLTP | 10,000 | 60.70% |
//! | P12 (13,208,930 accesses) | 1,024 | 4.08% |
//! | P12 | 8,192 | 6.22% |
//! | P12 | 65,536 | 14.43% |
//! | Zipf(1.0), 100,000 keys, 1,000,000 requests | 1,000 | 50.61% |
//! | Zipf(1.0) | 10,000 | 73.59% |
//! | Zipf(1.0) | 50,000 | 89.46% |
//!
//! P12 is a workstation disk trace with long scans: a small LRU is flushed
//! by them and barely hits, which is exactly where ARC and scan-resistant
//! policies gain most.
//!
//! ## When LRU loses, and what wins
//!
//! LRU has two weaknesses: a *scan* (a one-off pass over many keys) flushes
//! the whole cache, and it ignores *frequency*, so a key used a thousand times
//! yesterday is evicted before one used once a minute ago.
//!
//! * **LFU** keeps access counts: great for stable popularity, slow to adapt
//!   when popularity shifts, and counts must be aged.
//! * **ARC** (Megiddo and Modha, 2003) balances a recency list and a frequency
//!   list adaptively; the OLTP and P12 traces used in this workspace come from
//!   its paper.
//! * **TinyLFU / W-TinyLFU** (Caffeine, moka) admits a new entry only if a
//!   compact frequency sketch says it is more popular than the victim: scan
//!   resistant, near-optimal hit ratios on skewed workloads, at the cost of a
//!   sketch and more complex bookkeeping.
//! * **S3-FIFO** (2023) uses three FIFO queues (small, main, ghost): most
//!   one-hit wonders leave through the small queue quickly; it matches or beats
//!   TinyLFU on many traces with lock-free-friendly FIFO operations.
//! * **CLOCK** approximates LRU with a reference bit per entry and no list
//!   moves on hits, which makes concurrent reads cheap.
//!
//! Use an exact LRU when recency is what matters, when you need predictable,
//! explainable eviction (tests, teaching, reference models), or when entries
//! have real costs that a weight bound must cap strictly. Measure with your
//! own trace: the tour prints LRU hit ratios on Zipf keys and on the ARC
//! traces, and BENCHMARKS.md compares speed with `lru`, `quick_cache` and
//! `moka`.
//!
//! ## The picture
//!
//! The hit ratio of an exact LRU against its size on the two ARC traces and
//! on Zipf(1.0) keys (drawn by `tour --report`; see the workspace README).
//! Trace data: Nimrod Megiddo and Dharmendra S. Modha, "ARC: A Self-Tuning,
//! Low Overhead Replacement Cache," USENIX FAST 03, San Francisco, CA,
//! pp. 115-130, 2003.
//!
#![doc = include_str!("../docs/lru-cache-hit-ratio.svg")]
