//! [`Backend`]: the transitions of a queue, which the in-memory and the
//! Redis backends implement with the same semantics.

use std::future::Future;

use crate::error::SchedulerError;
use crate::task::{Claimed, Counts, NewTask, Submitted, TaskId, TaskInfo};

/// One queue's storage. Every method is one atomic transition; times are
/// milliseconds since the Unix epoch, given by the caller's clock.
///
/// The life of a task:
///
/// ```text
///  submit ──▶ waiting ──(parents succeeded)──▶ scheduled / ready
///                 │                                  │ claim (attempt += 1, new token, lease)
///                 └──(a parent died)──▶ cancelled    ▼
///            ready ◀──(lease expired: reap)──── running ──ack──▶ succeeded ──▶ children
///              ▲                                  │ fail
///              └──(due)── retrying ◀──(retry_at)──┤
///                                                 └──(no retry)──▶ dead ──replay──▶ ready
/// ```
pub trait Backend: Send + Sync + 'static {
    /// Adds tasks, in order (a parent before its children). A task whose
    /// idempotency key is live is not added ([`Submitted::Duplicate`]).
    ///
    /// # Errors
    /// [`SchedulerError::DuplicateId`], [`SchedulerError::UnknownParent`].
    fn submit(
        &self,
        tasks: Vec<NewTask>,
        now: u64,
    ) -> impl Future<Output = Result<Vec<Submitted>, SchedulerError>> + Send;

    /// Makes due tasks ready, then claims up to `max` of them, highest
    /// priority first (then oldest), each under a lease until `now +
    /// lease_ms` with a fresh fencing token. Also returns when the next
    /// delayed task is due, so that an idle worker knows how long to sleep.
    ///
    /// # Errors
    /// Backend failures.
    fn claim(
        &self,
        now: u64,
        lease_ms: u64,
        max: usize,
    ) -> impl Future<Output = Result<(Vec<Claimed>, Option<u64>), SchedulerError>> + Send;

    /// Extends a lease.
    ///
    /// # Errors
    /// [`SchedulerError::StaleLease`] when `token` is no longer current.
    fn renew(
        &self,
        id: &TaskId,
        token: u64,
        now: u64,
        lease_ms: u64,
    ) -> impl Future<Output = Result<(), SchedulerError>> + Send;

    /// Marks a running task succeeded and releases children whose parents
    /// have all succeeded. Succeeded tasks are kept for a retention period
    /// (a setting of each backend), then forgotten.
    ///
    /// # Errors
    /// [`SchedulerError::StaleLease`].
    fn ack(
        &self,
        id: &TaskId,
        token: u64,
        now: u64,
    ) -> impl Future<Output = Result<(), SchedulerError>> + Send;

    /// [`ack`](Self::ack) for many tasks in one call: each `(id, token)`
    /// pair gets its own answer, in order, as if acked one after the other
    /// (a stale or unknown one does not stop the rest). A worker acks the
    /// attempts that finished together this way: one lock, or one Redis
    /// round trip, instead of one per task.
    ///
    /// The default acks one task at a time.
    ///
    /// # Errors
    /// A backend failure fails the whole call: none, some or all of the
    /// acks may have taken effect, as with a lost reply to
    /// [`ack`](Self::ack) (acking again answers `StaleLease` for those that
    /// did).
    fn ack_many(
        &self,
        acks: &[(TaskId, u64)],
        now: u64,
    ) -> impl Future<Output = Result<Vec<Result<(), SchedulerError>>, SchedulerError>> + Send {
        async move {
            let mut out = Vec::with_capacity(acks.len());
            for (id, token) in acks {
                match self.ack(id, *token, now).await {
                    Err(SchedulerError::Backend(e)) => return Err(SchedulerError::Backend(e)),
                    answer => out.push(answer),
                }
            }
            Ok(out)
        }
    }

    /// A worker's turn in one call: [`ack_many`](Self::ack_many) of
    /// `acks`, then [`claim`](Self::claim) of up to `max` tasks. The
    /// default makes the two calls; the backends make one (one lock, one
    /// Redis script), so that a worker's loop costs one round trip.
    ///
    /// # Errors
    /// A backend failure fails the whole call, as for either of the two.
    fn ack_and_claim(
        &self,
        acks: &[(TaskId, u64)],
        now: u64,
        lease_ms: u64,
        max: usize,
    ) -> impl Future<Output = Result<Turn, SchedulerError>> + Send {
        async move {
            let acked = self.ack_many(acks, now).await?;
            let (claimed, next_due) = self.claim(now, lease_ms, max).await?;
            Ok(Turn { acked, claimed, next_due })
        }
    }

    /// Records a failed attempt: due again at `retry_at` (state retrying),
    /// or, with `None`, dead; a dead task's descendants are cancelled or
    /// failed per their policy.
    ///
    /// # Errors
    /// [`SchedulerError::StaleLease`].
    fn fail(
        &self,
        id: &TaskId,
        token: u64,
        now: u64,
        error: &str,
        retry_at: Option<u64>,
    ) -> impl Future<Output = Result<(), SchedulerError>> + Send;

    /// Gives a claimed task back without counting the attempt (a worker
    /// shutting down).
    ///
    /// # Errors
    /// [`SchedulerError::StaleLease`].
    fn release(
        &self,
        id: &TaskId,
        token: u64,
        now: u64,
    ) -> impl Future<Output = Result<(), SchedulerError>> + Send;

    /// Returns running tasks whose lease has expired to the ready state
    /// (their attempt counts; the next claim gets a new token). Returns how
    /// many.
    ///
    /// # Errors
    /// Backend failures.
    fn reap(
        &self,
        now: u64,
        limits: &AttemptLimits,
    ) -> impl Future<Output = Result<u64, SchedulerError>> + Send;

    /// Dead tasks, oldest first, at most `limit`.
    ///
    /// # Errors
    /// Backend failures.
    fn dead_letters(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<TaskInfo>, SchedulerError>> + Send;

    /// Makes a dead task ready again with its attempts reset.
    ///
    /// # Errors
    /// [`SchedulerError::NotFound`], [`SchedulerError::WrongState`].
    fn replay(
        &self,
        id: &TaskId,
        now: u64,
    ) -> impl Future<Output = Result<(), SchedulerError>> + Send;

    /// What is known about one task.
    ///
    /// # Errors
    /// Backend failures.
    fn info(
        &self,
        id: &TaskId,
    ) -> impl Future<Output = Result<Option<TaskInfo>, SchedulerError>> + Send;

    /// Tasks per state.
    ///
    /// # Errors
    /// Backend failures.
    fn counts(&self) -> impl Future<Output = Result<Counts, SchedulerError>> + Send;
}

/// What [`Backend::ack_and_claim`] did.
#[derive(Debug)]
pub struct Turn {
    /// One answer per ack, in order (as [`Backend::ack_many`]).
    pub acked: Vec<Result<(), SchedulerError>>,
    /// The tasks claimed (as [`Backend::claim`]).
    pub claimed: Vec<Claimed>,
    /// When the next delayed task is due (as [`Backend::claim`]).
    pub next_due: Option<u64>,
}

/// How many attempts each task name gets, for the reaper: a task whose
/// lease expired on its last allowed attempt (its worker died or hung on
/// it, again and again: a poison task) goes to the dead letters with a
/// "lease expired" error instead of running forever. Built by a
/// [`Worker`](crate::Worker) from its registry's retry policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptLimits {
    by_name: std::collections::HashMap<String, u32>,
    default: u32,
}

impl AttemptLimits {
    /// `default` attempts for every task name not given by [`set`](Self::set)
    /// (at least 1).
    pub fn new(default: u32) -> Self {
        AttemptLimits { by_name: std::collections::HashMap::new(), default: default.max(1) }
    }

    /// `max` attempts (at least 1) for tasks named `name`.
    pub fn set(&mut self, name: &str, max: u32) -> &mut Self {
        self.by_name.insert(name.to_string(), max.max(1));
        self
    }

    /// The attempts a task named `name` gets.
    pub fn get(&self, name: &str) -> u32 {
        self.by_name.get(name).copied().unwrap_or(self.default)
    }

    /// Every name with its own limit, and the default.
    #[cfg(feature = "redis")]
    pub(crate) fn parts(&self) -> (&std::collections::HashMap<String, u32>, u32) {
        (&self.by_name, self.default)
    }
}

impl Default for AttemptLimits {
    /// The default [`RetryPolicy`](crate::RetryPolicy)'s attempts for every name.
    fn default() -> Self {
        AttemptLimits::new(crate::RetryPolicy::default().max_attempts())
    }
}

/// Checks a submission's times, the same way for every backend.
pub(crate) fn check_times(tasks: &[crate::task::NewTask]) -> Result<(), SchedulerError> {
    match tasks.iter().find(|t| t.run_at > crate::MAX_TIME_MS) {
        Some(t) => Err(SchedulerError::TimeOutOfRange { at_ms: t.run_at }),
        None => Ok(()),
    }
}

/// A time clamped to what the backends store exactly.
pub(crate) fn clamp_time(at: u64) -> u64 {
    at.min(crate::MAX_TIME_MS)
}
