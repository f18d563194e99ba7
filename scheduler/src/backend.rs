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
    fn reap(&self, now: u64) -> impl Future<Output = Result<u64, SchedulerError>> + Send;

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
