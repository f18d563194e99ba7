//! A retrying task scheduler with at-least-once execution: tasks run now,
//! later, on a cron schedule, or after their parents in a DAG; failed
//! attempts are retried with exponential backoff and jitter and end in a
//! dead-letter queue; leases with fencing tokens make sure that a worker
//! killed mid-task loses nothing. In memory, or on Redis / Redis Cluster
//! where many processes share one queue.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use sysblocks_scheduler::{
//!     MemoryBackend, Registry, Scheduler, Task, TaskError, TaskState, TokioClock, Worker,
//!     WorkerConfig,
//! };
//!
//! let backend = Arc::new(MemoryBackend::new());
//! let clock = Arc::new(TokioClock::starting_at(Duration::from_millis(1_700_000_000_000)));
//! let mut registry = Registry::new();
//! registry.register("greet", |_ctx, name: String| async move {
//!     if name.is_empty() { Err(TaskError::permanent("no name")) } else { Ok(()) }
//! });
//! let scheduler = Scheduler::new(backend.clone(), clock.clone()).with_registry(&registry);
//! let later = scheduler.submit(Task::new("greet", "Ada")?.after(Duration::from_secs(60))).await?;
//!
//! let worker = Worker::new(backend, registry, WorkerConfig::default())?.with_clock(clock);
//! let worker = Arc::new(worker);
//! let running = tokio::spawn({
//!     let worker = worker.clone();
//!     async move { worker.run(Duration::from_secs(1)).await }
//! });
//! // Resolves when the task is done (60 s later, on tokio's virtual time).
//! let done = scheduler.wait(later.id(), Duration::from_secs(120)).await?;
//! assert_eq!(done.state, TaskState::Succeeded);
//! worker.shutdown();
//! running.await??;
//! # Ok(())
//! # }
//! ```
//!
//! [`Scheduler::wait`] (and `wait_all`) resolves with a task's final state;
//! [`WorkerConfig`] sets a worker's concurrency and, with [`RateLimit`], how
//! fast it starts tasks (a limit that many worker processes can share on
//! Redis). The [`guide`] explains at-least-once delivery, leases and
//! fencing, backoff and jitter, and the dead-letter queue.
//!
//! # Crate features
//!
//! * `cron` (default): [`CronSchedule`] and [`CronJob`], periodic tasks in
//!   a time zone (brings in croner, chrono and chrono-tz).
//! * `rate-limit` (default): [`RateLimit`], a limit on how fast workers
//!   start tasks, in process or shared through Redis.
//! * `redis`: [`RedisBackend`], one queue in Redis (standalone or Cluster)
//!   shared by any number of processes, and the `scheduler-worker` binary
//!   used by the chaos test.
//!
#![cfg_attr(not(feature = "rate-limit"), doc = "[`RateLimit`]: crate#crate-features")]
#![cfg_attr(not(feature = "cron"), doc = "[`CronSchedule`]: crate#crate-features")]
#![cfg_attr(not(feature = "cron"), doc = "[`CronJob`]: crate#crate-features")]
#![cfg_attr(not(feature = "redis"), doc = "[`RedisBackend`]: crate#crate-features")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod backend;
mod clock;
#[cfg(feature = "cron")]
mod cron;
mod error;
pub mod guide;
mod memory;
#[cfg(feature = "rate-limit")]
mod rate_limit;
#[cfg(feature = "redis")]
mod redis_backend;
mod registry;
mod retry;
mod scheduler;
mod task;
mod worker;

pub use backend::{AttemptLimits, Backend, Turn};

/// The latest time, in ms since the epoch, that a task may be due at: both
/// backends store times exactly up to here (Redis scripts compute in Lua
/// doubles, exact to 2^53). A later submission is refused with
/// [`SchedulerError::TimeOutOfRange`]; a later retry or lease end is
/// clamped to it.
pub const MAX_TIME_MS: u64 = (1 << 53) - 1;
pub use clock::{Clock, ManualClock, TokioClock, WallClock};
#[cfg(feature = "cron")]
pub use cron::{CronJob, CronSchedule};
pub use error::{BackendError, SchedulerError};
pub use memory::MemoryBackend;
#[cfg(feature = "rate-limit")]
pub use rate_limit::RateLimit;
#[cfg(feature = "redis")]
pub use redis_backend::{RedisBackend, RedisConnection};
pub use registry::{Context, HandlerOptions, Registry, TaskError};
pub use retry::{Jitter, RetryPolicy};
pub use scheduler::{Dag, Scheduler};
pub use task::{
    Claimed, Counts, NewTask, OnParentFailure, Submitted, Task, TaskId, TaskInfo, TaskState, When,
};
pub use worker::{Worker, WorkerConfig, WorkerStats};

/// The README's examples, compiled and run with the doc tests, so that the
/// page a new user reads first cannot drift from the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
