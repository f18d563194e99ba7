//! [`MemoryBackend`]: one queue in this process, behind one lock.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::backend::{AttemptLimits, Backend};
use crate::error::SchedulerError;
use crate::task::{
    Claimed, Counts, NewTask, OnParentFailure, Submitted, TaskId, TaskInfo, TaskState,
};

#[derive(Debug)]
struct Record {
    name: String,
    payload: String,
    priority: u8,
    run_at: u64,
    state: TaskState,
    attempts: u32,
    token: u64,
    lease_until: u64,
    last_error: Option<String>,
    last_delay: u64,
    /// Arrival order, for FIFO among equal priorities.
    seq: u64,
    parents_left: usize,
    children: Vec<TaskId>,
    on_parent_failure: OnParentFailure,
}

#[derive(Debug, Default)]
struct Inner {
    tasks: HashMap<TaskId, Record>,
    /// Scheduled and retrying tasks by due time.
    delayed: BTreeSet<(u64, TaskId)>,
    /// Ready tasks: highest priority, then oldest, first.
    ready: BTreeSet<(Reverse<u8>, u64, TaskId)>,
    /// Running tasks by lease expiry.
    running: BTreeSet<(u64, TaskId)>,
    /// Dead tasks in the order they died.
    dead: BTreeSet<(u64, TaskId)>,
    idempotency: HashMap<String, (TaskId, u64)>,
    counts: HashMap<TaskState, u64>,
    next_seq: u64,
    next_token: u64,
    /// Succeeded tasks by completion time, forgotten after the retention.
    finished: std::collections::VecDeque<(u64, TaskId)>,
    retention_ms: u64,
}

impl Inner {
    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Moves a task to `state`, keeping the indexes and counts in step.
    fn set_state(&mut self, id: &TaskId, state: TaskState) {
        let seq = self.seq();
        let Some(record) = self.tasks.get_mut(id) else { return };
        match record.state {
            TaskState::Scheduled | TaskState::Retrying => {
                self.delayed.remove(&(record.run_at, id.clone()));
            }
            TaskState::Ready => {
                self.ready.remove(&(Reverse(record.priority), record.seq, id.clone()));
            }
            TaskState::Running => {
                self.running.remove(&(record.lease_until, id.clone()));
            }
            TaskState::Dead => {
                self.dead.remove(&(record.seq, id.clone()));
            }
            _ => {}
        }
        if let Some(n) = self.counts.get_mut(&record.state) {
            *n = n.saturating_sub(1);
        }
        record.state = state;
        *self.counts.entry(state).or_default() += 1;
        match state {
            TaskState::Scheduled | TaskState::Retrying => {
                self.delayed.insert((record.run_at, id.clone()));
            }
            TaskState::Ready => {
                record.seq = seq;
                self.ready.insert((Reverse(record.priority), record.seq, id.clone()));
            }
            TaskState::Running => {
                self.running.insert((record.lease_until, id.clone()));
            }
            TaskState::Dead => {
                record.seq = seq;
                self.dead.insert((record.seq, id.clone()));
            }
            _ => {}
        }
    }

    /// A task whose parents are done becomes due: ready, or scheduled for
    /// its own time.
    fn make_due(&mut self, id: &TaskId, now: u64) {
        let Some(record) = self.tasks.get(id) else { return };
        let state = if record.run_at > now { TaskState::Scheduled } else { TaskState::Ready };
        self.set_state(id, state);
    }

    /// A task died or was cancelled: each waiting descendant is cancelled
    /// or failed per its own policy, recursively.
    fn propagate_failure(&mut self, id: &TaskId) {
        let mut stack = vec![id.clone()];
        while let Some(parent) = stack.pop() {
            let children = self.tasks.get(&parent).map(|r| r.children.clone()).unwrap_or_default();
            for child in children {
                let Some(record) = self.tasks.get_mut(&child) else { continue };
                if record.state != TaskState::Waiting {
                    continue;
                }
                let state = match record.on_parent_failure {
                    OnParentFailure::Cancel => TaskState::Cancelled,
                    OnParentFailure::Fail => {
                        record.last_error = Some(format!("parent {parent} failed"));
                        TaskState::Dead
                    }
                };
                self.set_state(&child, state);
                stack.push(child);
            }
        }
    }

    /// The running record for `id` if `token` is its current lease.
    fn leased(&mut self, id: &TaskId, token: u64) -> Result<&mut Record, SchedulerError> {
        match self.tasks.get_mut(id) {
            Some(r) if r.state == TaskState::Running && r.token == token => Ok(r),
            Some(_) => Err(SchedulerError::StaleLease { id: id.to_string() }),
            None => Err(SchedulerError::NotFound { id: id.to_string() }),
        }
    }

    /// Marks a running task succeeded and makes due the children whose
    /// last parent it was.
    fn ack(&mut self, id: &TaskId, token: u64, now: u64) -> Result<(), SchedulerError> {
        let record = self.leased(id, token)?;
        record.last_error = None;
        let children = std::mem::take(&mut record.children);
        self.set_state(id, TaskState::Succeeded);
        self.finished.push_back((now, id.clone()));
        for child in &children {
            let Some(record) = self.tasks.get_mut(child) else { continue };
            if record.state != TaskState::Waiting {
                continue;
            }
            record.parents_left = record.parents_left.saturating_sub(1);
            if record.parents_left == 0 {
                self.make_due(child, now);
            }
        }
        if let Some(record) = self.tasks.get_mut(id) {
            record.children = children;
        }
        Ok(())
    }

    /// Forgets succeeded tasks older than the retention (their count stays:
    /// `succeeded` counts every success).
    fn purge(&mut self, now: u64) {
        while let Some(&(done, _)) = self.finished.front()
            && done.saturating_add(self.retention_ms) <= now
        {
            let Some((_, id)) = self.finished.pop_front() else { break };
            if self.tasks.get(&id).is_some_and(|r| r.state == TaskState::Succeeded) {
                self.tasks.remove(&id);
            }
        }
    }

    fn info(&self, id: &TaskId) -> Option<TaskInfo> {
        self.tasks.get(id).map(|r| TaskInfo {
            id: id.clone(),
            name: r.name.clone(),
            state: r.state,
            attempts: r.attempts,
            last_error: r.last_error.clone(),
            run_at: r.run_at,
            payload: r.payload.clone(),
        })
    }
}

/// A queue in this process's memory: the same semantics as the Redis
/// backend, for tests, single-process services and teaching. Each
/// transition takes one lock; claims are O(log n) per task. Succeeded
/// tasks are forgotten after a retention period (a day by default); dead
/// ones are kept until replayed.
#[derive(Debug)]
pub struct MemoryBackend {
    inner: Mutex<Inner>,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        let retention_ms = 24 * 3600 * 1000;
        MemoryBackend { inner: Mutex::new(Inner { retention_ms, ..Inner::default() }) }
    }
}

impl MemoryBackend {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Succeeded tasks are forgotten after `retention` (default a day, as
    /// on Redis); the `succeeded` count keeps counting them.
    #[must_use]
    pub fn with_retention(self, retention: std::time::Duration) -> Self {
        self.lock().retention_ms = crate::clock::millis(retention).max(1);
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Transitions do not panic half-way; a poisoned lock is consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Backend for MemoryBackend {
    async fn submit(
        &self,
        tasks: Vec<NewTask>,
        now: u64,
    ) -> Result<Vec<Submitted>, SchedulerError> {
        crate::backend::check_times(&tasks)?;
        let mut inner = self.lock();
        // Validate the whole batch first, so that a bad task adds nothing.
        let mut batch_ids = std::collections::HashSet::new();
        for task in &tasks {
            if inner.tasks.contains_key(&task.id) || batch_ids.contains(&task.id) {
                return Err(SchedulerError::DuplicateId { id: task.id.to_string() });
            }
            // A parent exists or comes earlier in the batch (a task is not
            // its own parent: it would wait for itself forever).
            for parent in &task.parents {
                if !inner.tasks.contains_key(parent) && !batch_ids.contains(parent) {
                    return Err(SchedulerError::UnknownParent { parent: parent.to_string() });
                }
            }
            batch_ids.insert(task.id.clone());
        }
        let mut results = Vec::with_capacity(tasks.len());
        // A task of the batch that was not added (its idempotency key is
        // live) stands for the task that was: its children wait for that one.
        let mut aliases: HashMap<TaskId, TaskId> = HashMap::new();
        for task in tasks {
            if let Some((key, window)) = &task.idempotency {
                if let Some((existing, expires)) = inner.idempotency.get(key)
                    && *expires > now
                {
                    aliases.insert(task.id.clone(), existing.clone());
                    results.push(Submitted::Duplicate(existing.clone()));
                    continue;
                }
                let expires = now.saturating_add(crate::backend::clamp_time(*window));
                inner.idempotency.insert(key.clone(), (task.id.clone(), expires));
            }
            let seq = inner.seq();
            let parents: Vec<TaskId> =
                task.parents.iter().map(|p| aliases.get(p).unwrap_or(p).clone()).collect();
            let mut parents_left = 0;
            let mut parent_failed = false;
            // A parent that is gone was forgotten after succeeding (only
            // succeeded tasks are forgotten): nothing to wait for.
            for parent in &parents {
                let Some(p) = inner.tasks.get_mut(parent) else { continue };
                p.children.push(task.id.clone());
                match p.state {
                    TaskState::Succeeded => {}
                    TaskState::Dead | TaskState::Cancelled => parent_failed = true,
                    _ => parents_left += 1,
                }
            }
            let id = task.id.clone();
            inner.tasks.insert(
                id.clone(),
                Record {
                    name: task.name,
                    payload: task.payload,
                    priority: task.priority,
                    run_at: task.run_at,
                    state: TaskState::Waiting,
                    attempts: 0,
                    token: 0,
                    lease_until: 0,
                    last_error: None,
                    last_delay: 0,
                    seq,
                    parents_left,
                    children: Vec::new(),
                    on_parent_failure: task.on_parent_failure,
                },
            );
            *inner.counts.entry(TaskState::Waiting).or_default() += 1;
            if parent_failed {
                let failed = parents.iter().find(|p| {
                    inner
                        .tasks
                        .get(*p)
                        .is_some_and(|r| matches!(r.state, TaskState::Dead | TaskState::Cancelled))
                });
                let state = match task.on_parent_failure {
                    OnParentFailure::Cancel => TaskState::Cancelled,
                    OnParentFailure::Fail => TaskState::Dead,
                };
                if let (Some(parent), Some(record)) = (failed.cloned(), inner.tasks.get_mut(&id))
                    && state == TaskState::Dead
                {
                    record.last_error = Some(format!("parent {parent} failed"));
                }
                inner.set_state(&id, state);
            } else if parents_left == 0 {
                inner.make_due(&id, now);
            }
            results.push(Submitted::New(id));
        }
        Ok(results)
    }

    async fn claim(
        &self,
        now: u64,
        lease_ms: u64,
        max: usize,
    ) -> Result<(Vec<Claimed>, Option<u64>), SchedulerError> {
        let mut inner = self.lock();
        inner.purge(now);
        while let Some((due, id)) = inner.delayed.first().cloned()
            && due <= now
        {
            inner.set_state(&id, TaskState::Ready);
        }
        let mut claimed = Vec::new();
        while claimed.len() < max {
            let Some((_, _, id)) = inner.ready.first().cloned() else { break };
            inner.next_token += 1;
            let token = inner.next_token;
            if let Some(record) = inner.tasks.get_mut(&id) {
                record.attempts += 1;
                record.token = token;
                record.lease_until = now.saturating_add(crate::backend::clamp_time(lease_ms));
            }
            inner.set_state(&id, TaskState::Running);
            if let Some(record) = inner.tasks.get(&id) {
                claimed.push(Claimed {
                    id: id.clone(),
                    name: record.name.clone(),
                    payload: record.payload.clone(),
                    attempt: record.attempts,
                    token,
                    last_delay_ms: record.last_delay,
                });
            }
        }
        let next_due = inner.delayed.first().map(|&(due, _)| due);
        Ok((claimed, next_due))
    }

    async fn renew(
        &self,
        id: &TaskId,
        token: u64,
        now: u64,
        lease_ms: u64,
    ) -> Result<(), SchedulerError> {
        let mut inner = self.lock();
        let record = inner.leased(id, token)?;
        let old = record.lease_until;
        record.lease_until = now.saturating_add(crate::backend::clamp_time(lease_ms));
        let new = record.lease_until;
        inner.running.remove(&(old, id.clone()));
        inner.running.insert((new, id.clone()));
        Ok(())
    }

    async fn ack(&self, id: &TaskId, token: u64, now: u64) -> Result<(), SchedulerError> {
        self.lock().ack(id, token, now)
    }

    async fn ack_many(
        &self,
        acks: &[(TaskId, u64)],
        now: u64,
    ) -> Result<Vec<Result<(), SchedulerError>>, SchedulerError> {
        let mut inner = self.lock();
        Ok(acks.iter().map(|(id, token)| inner.ack(id, *token, now)).collect())
    }

    async fn fail(
        &self,
        id: &TaskId,
        token: u64,
        now: u64,
        error: &str,
        retry_at: Option<u64>,
    ) -> Result<(), SchedulerError> {
        let mut inner = self.lock();
        let record = inner.leased(id, token)?;
        record.last_error = Some(error.to_string());
        match retry_at.map(crate::backend::clamp_time) {
            Some(at) => {
                record.last_delay = at.saturating_sub(now);
                record.run_at = at;
                inner.set_state(id, TaskState::Retrying);
            }
            None => {
                inner.set_state(id, TaskState::Dead);
                inner.propagate_failure(id);
            }
        }
        Ok(())
    }

    async fn release(&self, id: &TaskId, token: u64, _now: u64) -> Result<(), SchedulerError> {
        let mut inner = self.lock();
        let record = inner.leased(id, token)?;
        record.attempts = record.attempts.saturating_sub(1);
        inner.set_state(id, TaskState::Ready);
        Ok(())
    }

    async fn reap(&self, now: u64, limits: &AttemptLimits) -> Result<u64, SchedulerError> {
        let mut inner = self.lock();
        let mut reaped = 0;
        while let Some((until, id)) = inner.running.first().cloned()
            && until <= now
        {
            let mut dead = false;
            if let Some(record) = inner.tasks.get_mut(&id) {
                // The claim counted this attempt: on the last allowed one,
                // a lost lease ends the task (a poison task dies here).
                dead = record.attempts >= limits.get(&record.name);
                record.last_error = Some(lease_expired(record.attempts, dead));
            }
            if dead {
                inner.set_state(&id, TaskState::Dead);
                inner.propagate_failure(&id);
            } else {
                inner.set_state(&id, TaskState::Ready);
            }
            reaped += 1;
        }
        Ok(reaped)
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<TaskInfo>, SchedulerError> {
        let inner = self.lock();
        Ok(inner.dead.iter().take(limit).filter_map(|(_, id)| inner.info(id)).collect())
    }

    async fn replay(&self, id: &TaskId, now: u64) -> Result<(), SchedulerError> {
        let mut inner = self.lock();
        let Some(record) = inner.tasks.get_mut(id) else {
            return Err(SchedulerError::NotFound { id: id.to_string() });
        };
        if record.state != TaskState::Dead {
            return Err(SchedulerError::WrongState {
                id: id.to_string(),
                state: record.state.to_string(),
            });
        }
        record.attempts = 0;
        record.last_delay = 0;
        record.run_at = now;
        inner.set_state(id, TaskState::Ready);
        Ok(())
    }

    async fn info(&self, id: &TaskId) -> Result<Option<TaskInfo>, SchedulerError> {
        Ok(self.lock().info(id))
    }

    async fn counts(&self) -> Result<Counts, SchedulerError> {
        let inner = self.lock();
        Ok(Counts::from_fn(|s| inner.counts.get(&s).copied().unwrap_or(0)))
    }
}

/// The error a reaped attempt leaves on its task (the Redis script writes
/// the same words).
pub(crate) fn lease_expired(attempts: u32, dead: bool) -> String {
    if dead {
        format!("lease expired: the worker stopped renewing (attempt {attempts}, the last)")
    } else {
        "lease expired: the worker stopped renewing".to_string()
    }
}
