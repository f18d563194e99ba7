//! # Guide: rate limiting algorithms, and which to use
//!
//! A rate limiter answers one question per request: may this pass now? The
//! algorithms differ in what "at most N per T" means at the edges, what
//! they remember, and how bursts are treated.
//!
//! ## Token bucket, as GCRA
//!
//! A bucket holds up to `capacity` tokens and refills one token every
//! `T = period / rate`; a request takes `cost` tokens or is refused. Bursts
//! up to the capacity pass at once; the long-run rate is the refill rate.
//!
//! Storing "tokens" and "last refill time" takes two numbers and a lock.
//! GCRA (the generic cell rate algorithm, from ATM networks) stores one: the
//! *theoretical arrival time* `TAT`, the moment the bucket would be full
//! again if nothing else arrived. With `tau = T × (capacity − 1)`:
//!
//! ```text
//!   admit cost c at time now  iff  now >= TAT + T·(c − 1) − tau
//!   then                           TAT := max(TAT, now) + T·c
//!
//!   time ─────────────────────────────────────────────▶
//!           now            TAT − tau        TAT
//!            │   refused ◀──────┤ admitted  │
//! ```
//!
//! One number fits one `AtomicU64`, so [`TokenBucket`](crate::TokenBucket)
//! is a compare-and-swap loop with no lock, and a denial writes nothing.
//! Under contention (threads sharing one limiter) the cost is the word's
//! cache line moving between cores; a check that loses the swap pauses a
//! few spins before it retries, which lets the winner make its next checks
//! on a line it still holds (2 threads: under half of governor's time per
//! check, whose loop retries at once; see BENCHMARKS.md).
//! Everything is integer nanoseconds, the arithmetic `governor` uses, so
//! the two agree on every decision (tested over a million random arrivals).
//! Every decision also says how many tokens remain, when the bucket is full
//! again (`TAT − now`), and for a refusal how long to wait.
//!
//! ## Fixed window
//!
//! Count requests per window `[k·W, (k+1)·W)`; refuse past the limit. One
//! counter and one window index: the cheapest, and trivially shared in
//! Redis with `INCR` + `EXPIRE`. The flaw is the boundary: `limit` requests
//! at the end of one window and `limit` at the start of the next pass
//! together, `2 × limit` within one `W`.
//!
//! ## Sliding window log
//!
//! Remember when each admitted request happened and admit a new one iff the
//! costs within the last `W` plus its own fit. Exact: no boundary burst, and
//! the time to wait after a refusal is exact too (the moment enough old
//! entries leave the window). Memory is one entry per admitted request in
//! the window, at most `limit`: fine for small limits, costly for
//! "10,000 per hour".
//!
//! ## Sliding window counter
//!
//! Keep only the counts of the current and previous fixed windows and
//! estimate the last `W` by weighting the previous count by how much of it
//! still overlaps: `previous × (1 − elapsed/W) + current`. With 100 per
//! minute, 80 last minute, 30 so far and half the minute gone, the estimate
//! is 70 and 30 more may pass. Constant memory and much smaller boundary
//! error than a fixed window; it assumes the previous window's requests
//! were spread evenly, so it can admit up to twice the limit in the worst
//! case (never more than the limit within one fixed window). The time to
//! wait after a refusal is exact too: the estimate falls as the previous
//! window's weight shrinks, and solving `previous × (W − e) / W + current +
//! cost <= limit` for the elapsed time `e` gives the first moment it fits
//! (or, when `current` alone leaves no room, a moment in the next window).
//!
//! ## Leaky bucket
//!
//! Picture a queue that drains one request every `T`: a request joins the
//! queue if there is room for it and leaves in its turn. As a *meter*
//! (admit or refuse) this is the same rule as GCRA, with the time the queue
//! is empty again playing the TAT: "the queue holds at most `capacity`"
//! is "`now >= TAT + T·(cost − 1) − tau`". The difference is what happens
//! to an admitted request: a token bucket lets it through at once, bursts
//! and all; a leaky bucket, used as a *shaper*, holds it until its slot,
//! so requests leave evenly spaced. [`LeakyBucket`](crate::LeakyBucket)
//! reports the wait ([`Decision::wait`](crate::Decision::wait)), and its
//! async `acquire` sleeps it; a caller that gives up early gives its slot
//! back, and the next request takes that slot instead of a later one.
//!
//! ## Which one
//!
//!
//! | need | use |
//! |---|---|
//! | smooth rate with bursts up to a size, cheapest per check | token bucket (GCRA) |
//! | exactly N per any window, small N | sliding window log |
//! | close to N per any window, large N, constant memory | sliding window counter |
//! | simplest shared counter, boundary bursts acceptable | fixed window |
//! | smooth the output (calls to a fragile downstream), queue a little | leaky bucket |
//!
//! | algorithm | state | check |
//! |---|---|---|
//! | token bucket | one `u64` | O(1), lock-free |
//! | fixed window | window index and count | O(1) |
//! | sliding log | up to `limit` timestamps | O(expired) amortized |
//! | sliding counter | window index and two counts | O(1) |
//! | leaky bucket | one `u64` (plus slots given back) | O(1) (O(log n) with slots given back) |
//!
//! ## Many keys in one process
//!
//! A limit per client (IP, API key) means one limiter per key, and the keys
//! come from the client. [`Keyed`](crate::Keyed) caps the number of keys.
//! Which keys may go? A limiter whose state equals a fresh one's (a full
//! bucket, an empty window) can be dropped and re-created later without
//! changing a single decision, so those are swept out, and an idle key
//! needs no timer: it is idle exactly when its limiter says so. When the
//! table is full of *busy* keys, a new key is refused rather than evicting
//! a busy one (which would hand that client a fresh allowance).
//!
//! ## Sharing a limit between servers: Redis
//!
//! Ten servers each allowing 100 per second allow 1000. To share one limit
//! the state must live in one place, and each decision must read and write
//! it atomically: [`RedisLimiter`] runs each algorithm
//! as a Lua script, which Redis executes without interleaving. Points that
//! matter:
//!
//! * **One clock.** The script reads Redis's `TIME`, so servers whose
//!   clocks disagree still agree on the limit. Lua numbers are doubles,
//!   exact up to 2^53: times are integer microseconds, and limits whose
//!   arithmetic would exceed that are refused when the limiter is built.
//! * **One decision function.** A script only reads and writes the
//!   algorithm's state (atomically, applying the admission rule so that the
//!   write is right) and returns the state it decided on: the TAT for the
//!   buckets, the window and count for the fixed window, both counts for the
//!   sliding counter, the cost in the window (and on a denial the oldest
//!   entries up to the one whose expiry makes room) for the log. The client then makes the decision with the same pure
//!   step as in process ([`gcra_step`](crate::gcra_step),
//!   [`fixed_window_step`](crate::fixed_window_step), ...), on
//!   microseconds. So remaining, reset and retry are written once, in Rust;
//!   each algorithm's file (`window/fixed.rs`) sits beside its script
//!   (`window/fixed.lua`). Tests drive every algorithm in process and on
//!   Redis (and a Redis Cluster) with the same times, and with batched
//!   requests on Redis's own clock, and require equal decisions.
//! * **Throughput.** Calling Lua costs Redis more than the reads and
//!   writes inside. Decisions that arrive while earlier ones are in flight
//!   go together in one call (group commit): an idle limiter sends each
//!   decision alone, a busy one amortises the call. Two batches are in
//!   flight at most, and the batching task yields before it takes one, so
//!   that callers just woken by a reply queue their next requests first
//!   (one batch of 30, not one of 5 and one of 25). Setting a TTL is the
//!   other cost, so a bucket's key expires at a deadline that depends only
//!   on which quantum its TAT is in, and most writes keep the TTL.
//! * **Every argument and reply value costs.** Redis parses each argument
//!   and copies it into the script's tables; the client parses each reply
//!   value at a cost of its own (more than the decision itself). So a
//!   batch's modes go as one letter each and a shared cost once, the bucket
//!   script reads all its keys with one `MGET`, the bucket, fixed window
//!   and sliding counter scripts write each changed key once, after the
//!   batch's last decision (a hot key with many requests in one batch
//!   costs one read and one write, not one of each per request; a write
//!   Redis refuses fails every decision that needed it),
//!   and the reply is one string
//!   of packed 8-byte integers plus the texts of any failed decisions. A
//!   caller's wait is bounded by a deadline carried in its queued request:
//!   the batch's call is bounded by its earliest one, one timer per batch.
//! * **Idle keys vanish.** Every key expires once its state is back to a
//!   fresh one's (or a little later), so memory follows active clients.
//! * **Cluster.** All keys of one limiter key share a hash tag, and batches
//!   are grouped by slot, so every script touches one slot.
//! * **Failure.** When Redis is down, fail open (admit: availability) or
//!   fail closed (deny: protection), and log it; the connection reconnects
//!   by itself. A key known to be denied until a time is answered locally
//!   until then, which also spares Redis the retries of a client that is
//!   over its limit.
//!
//! ## Telling the client: HTTP
//!
//! A 429 alone leaves a client guessing. The IETF httpapi draft "RateLimit
//! header fields for HTTP" gives every response a `RateLimit-Policy` field
//! (`"default";q=100;w=60`: 100 per 60 s) and a `RateLimit` field
//! (`"default";r=42;t=17`: 42 left, full again in 17 s); a 429 adds
//! `Retry-After`. [`RateLimitLayer`] (feature
//! `tower`) writes them, and its clones share one limiter (a limiter per
//! clone would multiply the limit by the number of clones).
//!
//! What the layer limits by is a key taken from the request. Keying by the
//! client's IP address needs care: the TCP peer is the client only when
//! nothing stands in between; behind a load balancer, the peer is the
//! balancer, and the client is in `X-Forwarded-For` (or `X-Real-IP`,
//! `Forwarded`). Those headers are written by whoever sent the request, so
//! [`ClientIp`] believes them only on requests from
//! proxies you name, and walks the list from the nearest hop outwards,
//! stopping at the first address that is not one of yours: a client that
//! forges the header only adds entries beyond that point. A request with no
//! key at all passes by default; a gateway usually refuses it
//! (`deny_missing_key`) or puts all such requests under one shared key
//! (`share_missing_key`). The refusal itself (429, or 400 for a missing key,
//! 503 when the store fails) is an RFC 9457 `application/problem+json` body
//! unless `with_refusal` builds another.
//!
//! ## Pitfalls
//!
//! * **A cost above the capacity** can never pass; treating it as a denial
//!   makes clients retry forever. Here it is an error.
//! * **Floating-point time** drifts and rounds differently on each side of a
//!   distributed limiter; integer nanoseconds do not.
//! * **Client clocks** disagree across servers: a shared limiter should take
//!   its time from the shared store (the Redis backend uses `TIME`).
//! * **Unbounded keys**: per-client limiters keyed by anything the client
//!   controls must cap the number of keys, or an attacker grows memory
//!   without bound.
//! * **Saturating arithmetic** is a silent over-admission: once
//!   `tau = T × (capacity − 1)` saturates at `u64::MAX`, the admission test
//!   always passes. Buckets whose refill takes more than 2^63 ns (about 292
//!   years) are refused (`BurstTooLong`), and the GCRA sums are checked: a
//!   sum past the end of the clock denies.
//! * **Time going backwards**: a thread can read the clock, lose the CPU, and
//!   reach the lock after others filled the next window. If the limiter then
//!   treated the older window as fresh, it would admit twice its limit. Here
//!   time never goes back inside a limiter's state: a stale `now` counts in
//!   the newer window, and changing the window length moves the counts to the
//!   window that holds now.
//! * **A slow store** is an outage too: a hung Redis node or a reconnecting
//!   connection would hold requests for seconds (with the redis crate's
//!   defaults, a request sent while Redis is down waits about nine seconds
//!   for the reconnection attempts). Every Redis decision is bounded
//!   ([`RedisLimiter::with_timeout`],
//!   250 ms by default) and then takes the failure policy, and every command
//!   the [`RedisConnection`] sends is bounded too
//!   (one second by default); one failing decision (a key of the wrong
//!   type) fails alone, not its whole batch.
//!
#![cfg_attr(feature = "redis", doc = "[`RedisLimiter`]: crate::RedisLimiter")]
#![cfg_attr(not(feature = "redis"), doc = "[`RedisLimiter`]: crate#crate-features")]
#![cfg_attr(feature = "tower", doc = "[`RateLimitLayer`]: crate::RateLimitLayer")]
#![cfg_attr(not(feature = "tower"), doc = "[`RateLimitLayer`]: crate#crate-features")]
#![cfg_attr(feature = "tower", doc = "[`ClientIp`]: crate::ClientIp")]
#![cfg_attr(not(feature = "tower"), doc = "[`ClientIp`]: crate#crate-features")]
#![cfg_attr(
    feature = "redis",
    doc = "[`RedisLimiter::with_timeout`]: crate::RedisLimiter::with_timeout"
)]
#![cfg_attr(not(feature = "redis"), doc = "[`RedisLimiter::with_timeout`]: crate#crate-features")]
#![cfg_attr(feature = "redis", doc = "[`RedisConnection`]: crate::RedisConnection")]
#![cfg_attr(not(feature = "redis"), doc = "[`RedisConnection`]: crate#crate-features")]
//!
//! ## The picture
//!
//! The five limiters at 10 per second against one bursty trace whose
//! bursts straddle a window boundary (drawn by `tour --report`; see the
//! workspace README): the fixed window admits 20 in 200 ms, the sliding
//! log never more than 10 in a second.
//!
#![doc = include_str!("../docs/ratelimit-boundary.svg")]
