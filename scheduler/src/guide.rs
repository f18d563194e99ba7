//! # Guide: running tasks reliably
//!
//! A task scheduler promises that work handed to it gets done, later, by
//! some process, even when processes die. This guide explains how this
//! crate keeps that promise and what it cannot promise.
//!
//! ## At least once, not exactly once
//!
//! A worker runs a handler and then tells the queue "done" (ack). If the
//! worker dies between the two, the queue cannot know whether the work
//! happened; the only safe choice is to run the task again. So delivery is
//! **at least once**: every task runs to success at least one time, and
//! some run twice. "Exactly once" is not something a queue can give on its
//! own; it is at-least-once delivery plus an idempotent handler: one whose
//! second run changes nothing (an upsert keyed by the task id, a payment
//! with an idempotency key, a write guarded by the fencing token below).
//!
//! The opposite design, ack *before* running, loses the task when the
//! worker dies mid-run (at most once). Some popular queues fetch with a
//! plain `BRPOP` and so lose in-flight jobs on a crash; this crate never
//! removes a task until its handler has returned.
//!
//! ## Leases and fencing tokens
//!
//! Claiming a task takes a **lease**: the task is the worker's until the
//! lease expires. A running worker renews the lease every third of a lease;
//! a dead one stops renewing, and a **reaper** (every worker runs one) returns
//! tasks with expired leases to the ready queue. That is how a worker killed
//! with `SIGKILL` loses nothing (the chaos test kills worker processes at
//! random and counts every completion).
//!
//! A lease can also expire under a live worker: a long GC pause, a network
//! partition. Then two workers may hold the same task. Each claim therefore
//! carries a **fencing token**, a number that grows with every claim of the
//! queue. Ack, fail and renew must present the current token; a worker whose
//! lease was taken over gets [`StaleLease`](crate::SchedulerError::StaleLease)
//! and its ack is refused, so the task's state cannot be overwritten by a
//! stale worker. Handlers can pass the token on ([`Context`](crate::Context)
//! holds it) to storage that refuses writes with an older token.
//!
//! A live worker whose renewals fail (Redis unreachable or frozen) cannot
//! know whether its lease still holds. It keeps trying while the lease is
//! surely its own, and once only a tenth of the lease is left it stops the
//! handler and does not ack: better to let the reaper hand the task on than
//! to run it twice at once. That tenth is also the bound on clock skew
//! between workers, whose own clocks time the leases.
//!
//! Choosing a lease: long enough that renewals get through (renewal runs
//! every third of the lease, so one slow call does not lose it), short
//! enough that a dead worker's tasks come back soon. The attempt is counted
//! at claim time, so a task that crashes its worker every time still runs
//! out of attempts and the reaper moves it to the dead letters instead of
//! crashing workers forever.
//!
//! ## Backoff and jitter
//!
//! A failed attempt is retried after a delay that grows exponentially,
//! `base × 2^(n−1)`, up to a cap, so a struggling dependency is not
//! hammered. Without randomness, every task that failed at the same moment
//! retries at the same moment, and the dependency sees synchronised waves.
//! [`Jitter`](crate::Jitter) spreads them:
//!
//! * **full** (the default): uniform in `[0, d]`: the least total work and
//!   the best spread in AWS's well-known simulation;
//! * **equal**: `d/2 + uniform[0, d/2]`: never retries very early;
//! * **decorrelated**: `uniform[base, 3 × previous]`, capped: each delay
//!   grows from the last one actually used;
//! * a **Sidekiq** preset: `n^4 + 15 + rand(10) × (n + 1)` seconds, 25
//!   retries over about three weeks.
//!
//! Two traps this crate avoids: computing `base^n` (the base becomes the
//! growth factor, and a base of 100 ms gives 10^-7 s waits), and counting
//! attempts from 0 in one place and 1 in another. Here attempt `n` counts
//! from 1 and the delay after it is `base × 2^(n−1)`.
//!
//! Not every error deserves a retry: a payload that does not parse will not
//! parse tomorrow. Handlers return [`TaskError::Permanent`](crate::TaskError)
//! for those, and the task goes straight to the dead letters.
//!
//! ## Dead letters
//!
//! A task that is out of attempts, or failed permanently, is **dead**. An
//! attempt whose lease expired (its worker was killed, hung, or lost
//! Redis) counts as an attempt too: a *poison* task that crashes every
//! worker that runs it is reaped into the dead letters on its last allowed
//! attempt, with a "lease expired" error, instead of crashing workers
//! forever. A dead task
//! stays in the dead-letter queue with its attempts and last error, where
//! an operator can list it, fix the cause, and [`replay`](crate::Scheduler::replay)
//! it (attempts reset). Dead letters are not deleted automatically: losing
//! them would lose the evidence. A dead task's dependents in a DAG are
//! cancelled or failed, per their [`OnParentFailure`](crate::OnParentFailure).
//!
//! ## Time: delays and cron
//!
//! Delayed tasks wait in a set ordered by due time; each claim first moves
//! the due ones to the ready queue (one sorted-set range in Redis), and an
//! idle worker sleeps until the next due time or its poll pause, which
//! doubles with every claim that finds nothing (5 ms up to 500 ms by
//! default): an idle worker costs Redis two scripts a second, not two
//! hundred, and a task submitted to an idle queue waits at most one pause. Cron
//! schedules are read in a named time zone; across a daylight-saving change
//! a fixed-time job runs once (at the end of a spring-forward gap, at the
//! first pass of a fall-back fold) and an interval job follows the wall
//! clock (see [`CronSchedule`]). Several processes may
//! run the same cron job: each tick's task has an id derived from the job
//! and the tick, so the tick is submitted once.
//!
//! ## Pacing: how fast tasks start
//!
//! A queue often feeds something with its own limit (an email provider's
//! 100 per second). [`WorkerConfig::concurrency`](crate::WorkerConfig)
//! bounds how many run at once in one worker; a [`RateLimit`]
//! bounds how many *start* per unit of time. It takes any keyed limiter of
//! the ratelimit crate: an in-process one (`RateLimit::local`) paces one
//! worker, a `RedisLimiter` (`RateLimit::shared`) paces every worker process
//! that uses the same key together, which is what a limit imposed from
//! outside needs. A worker asks for as many starts as it has free slots,
//! gives back the grants it found no task for, and sleeps until the
//! limiter's retry time when it is refused.
//!
//! ## Waiting for results
//!
//! [`Scheduler::wait`](crate::Scheduler::wait) resolves with a task's final
//! state (succeeded, dead, cancelled) and its payload, or a typed timeout;
//! it checks the task's state with a backoff that grows to a quarter of a
//! second, so a waiter costs Redis a few reads per second, not a tight loop.
//!
//! ## Redis: one queue, many processes
//!
//! Every transition (submit, claim, renew, ack, fail, reap, replay) is one
//! Lua script, atomic in Redis. All of a queue's keys share the hash tag
//! `{queue}`, so each queue lives on one Cluster slot: a Cluster spreads
//! *queues*, not one queue. Times come from the callers' clocks in
//! milliseconds; leases of seconds tolerate ordinary clock skew between
//! processes. Run Redis with AOF persistence if tasks must survive a Redis
//! restart; the workers' connections reconnect by themselves.
//!
//! ## Costs
//!
//! | operation | in memory | Redis |
//! |---|---|---|
//! | submit | O(log n) | one script, O(log n) |
//! | claim k tasks | O(k log n) | one script |
//! | ack k tasks (`ack_many`) | O(k log n) (+ children), one lock | one script |
//! | a worker's turn (`ack_and_claim`) | the two above, one lock | one script |
//! | fail / renew | O(log n) (+ children) | one script each |
//! | reap | O(expired × log n) | one script |
//!
//! A worker acks in batches: the attempts that finished since its last
//! turn go with its next claim in one `ack_and_claim` (alone in one
//! `ack_many` when it has no room to claim). On Redis that is one script
//! and one round trip per turn; what remains per task is the server's work,
//! about 9 to 11 us of script time per task on a 2-core VM (`INFO
//! commandstats`, printed by the throughput bench): a claim reads and
//! writes the task's hash and moves it between two sorted sets, an ack
//! reads it, writes its state and sets its expiry, and each of those
//! `redis.call`s costs about as much again in the script's glue as in the
//! command.
//!
//! A worker polls each attempt it claimed once, on its own loop: an
//! attempt whose handler finishes at that first poll (most do) never
//! becomes a task of its own, which saves a spawn per task, the largest
//! cost a short task has in memory. A handler that computes before its
//! first `.await` would hold the loop up, so once a first poll takes more
//! than 100 us, the rest of that batch is spawned without one and runs in
//! parallel.
//!
#![cfg_attr(feature = "rate-limit", doc = "[`RateLimit`]: crate::RateLimit")]
#![cfg_attr(feature = "cron", doc = "[`CronSchedule`]: crate::CronSchedule")]
#![cfg_attr(not(feature = "cron"), doc = "[`CronSchedule`]: crate#crate-features")]
#![cfg_attr(not(feature = "rate-limit"), doc = "[`RateLimit`]: crate#crate-features")]
//!
//! ## The picture
//!
//! Sampled retry waits per failed attempt under full jitter, with the
//! doubling bound they are drawn under (drawn by `tour --report`; see the
//! workspace README).
//!
#![doc = include_str!("../docs/scheduler-retries.svg")]
