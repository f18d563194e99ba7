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
//! case (never more than the limit within one fixed window).
//!
//! ## Which one
//!
//! | need | use |
//! |---|---|
//! | smooth rate with bursts up to a size, cheapest per check | token bucket (GCRA) |
//! | exactly N per any window, small N | sliding window log |
//! | close to N per any window, large N, constant memory | sliding window counter |
//! | simplest shared counter, boundary bursts acceptable | fixed window |
//!
//! | algorithm | state | check |
//! |---|---|---|
//! | token bucket | one `u64` | O(1), lock-free |
//! | fixed window | window index and count | O(1) |
//! | sliding log | up to `limit` timestamps | O(expired) amortized |
//! | sliding counter | window index and two counts | O(1) |
//!
//! ## Pitfalls
//!
//! * **A cost above the capacity** can never pass; treating it as a denial
//!   makes clients retry forever. Here it is an error.
//! * **Floating-point time** drifts and rounds differently on each side of a
//!   distributed limiter; integer nanoseconds do not.
//! * **Client clocks** disagree across servers: a shared limiter should take
//!   its time from the shared store (the Redis backend will use `TIME`).
//! * **Unbounded keys**: per-client limiters keyed by anything the client
//!   controls must cap the number of keys, or an attacker grows memory
//!   without bound.
