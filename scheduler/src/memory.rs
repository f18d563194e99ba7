//! [`MemoryBackend`]: one queue in this process, behind one lock.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::backend::{AttemptLimits, Backend, Turn};
use crate::error::SchedulerError;
use crate::task::{
    Claimed, Counts, NewTask, OnParentFailure, Submitted, TaskId, TaskInfo, TaskState,
};

/// Where a task's record sits in [`Inner::records`]. The indexes hold
/// slots, not ids, so that moving a task between them copies a number
/// rather than cloning its id.
type Slot = usize;

#[derive(Debug)]
struct Record {
    id: TaskId,
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

/// Ids are the caller's (they may be chosen by anyone): a seeded hash.
type IdMap<V> = HashMap<TaskId, V, foldhash::quality::RandomState>;

#[derive(Debug, Default)]
struct Inner {
    /// Each task's slot.
    slots: IdMap<Slot>,
    /// The records; a forgotten task's slot is `None` until reused.
    records: Vec<Option<Record>>,
    free: Vec<Slot>,
    /// Scheduled and retrying tasks by due time.
    delayed: BTreeSet<(u64, Slot)>,
    /// Ready tasks: highest priority, then oldest, first.
    ready: BTreeSet<(Reverse<u8>, u64, Slot)>,
    /// Running tasks by lease expiry.
    running: BTreeSet<(u64, Slot)>,
    /// Dead tasks in the order they died.
    dead: BTreeSet<(u64, Slot)>,
    idempotency: HashMap<String, (TaskId, u64)>,
    /// Tasks per state, indexed by [`state_index`].
    counts: [u64; 8],
    next_seq: u64,
    next_token: u64,
    /// Succeeded tasks by completion time, forgotten after the retention.
    finished: VecDeque<(u64, Slot)>,
    retention_ms: u64,
}

/// A state's place in [`Inner::counts`].
fn state_index(state: TaskState) -> usize {
    match state {
        TaskState::Waiting => 0,
        TaskState::Scheduled => 1,
        TaskState::Ready => 2,
        TaskState::Running => 3,
        TaskState::Retrying => 4,
        TaskState::Succeeded => 5,
        TaskState::Dead => 6,
        TaskState::Cancelled => 7,
    }
}

impl Inner {
    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn slot(&self, id: &TaskId) -> Option<Slot> {
        self.slots.get(id).copied()
    }

    fn record(&self, slot: Slot) -> Option<&Record> {
        self.records.get(slot).and_then(Option::as_ref)
    }

    fn record_mut(&mut self, slot: Slot) -> Option<&mut Record> {
        self.records.get_mut(slot).and_then(Option::as_mut)
    }

    fn get(&self, id: &TaskId) -> Option<&Record> {
        self.slot(id).and_then(|s| self.record(s))
    }

    fn get_mut(&mut self, id: &TaskId) -> Option<&mut Record> {
        self.slot(id).and_then(|s| self.record_mut(s))
    }

    /// Stores a new task's record (in the waiting state) and counts it.
    fn add(&mut self, record: Record) -> Slot {
        self.counts[state_index(record.state)] += 1;
        let id = record.id.clone();
        let slot = match self.free.pop() {
            Some(slot) => {
                self.records[slot] = Some(record);
                slot
            }
            None => {
                self.records.push(Some(record));
                self.records.len() - 1
            }
        };
        self.slots.insert(id, slot);
        slot
    }

    /// The slots of `set`'s entries due by `now`, in the order Redis's
    /// sorted sets give them: by time, then by id.
    fn due(&self, set: &BTreeSet<(u64, Slot)>, now: u64) -> Vec<Slot> {
        let mut due: Vec<(u64, Slot)> =
            set.iter().take_while(|&&(at, _)| at <= now).copied().collect();
        due.sort_by(|a, b| {
            let id = |s: Slot| self.record(s).map(|r| &r.id);
            (a.0, id(a.1)).cmp(&(b.0, id(b.1)))
        });
        due.into_iter().map(|(_, slot)| slot).collect()
    }

    /// Moves a task to `state`, keeping the indexes and counts in step.
    fn set_state(&mut self, slot: Slot, state: TaskState) {
        let seq = self.seq();
        let Some(record) = self.records.get_mut(slot).and_then(Option::as_mut) else { return };
        match record.state {
            TaskState::Scheduled | TaskState::Retrying => {
                self.delayed.remove(&(record.run_at, slot));
            }
            TaskState::Ready => {
                self.ready.remove(&(Reverse(record.priority), record.seq, slot));
            }
            TaskState::Running => {
                self.running.remove(&(record.lease_until, slot));
            }
            TaskState::Dead => {
                self.dead.remove(&(record.seq, slot));
            }
            _ => {}
        }
        let from = &mut self.counts[state_index(record.state)];
        *from = from.saturating_sub(1);
        record.state = state;
        self.counts[state_index(state)] += 1;
        match state {
            TaskState::Scheduled | TaskState::Retrying => {
                self.delayed.insert((record.run_at, slot));
            }
            TaskState::Ready => {
                record.seq = seq;
                self.ready.insert((Reverse(record.priority), record.seq, slot));
            }
            TaskState::Running => {
                self.running.insert((record.lease_until, slot));
            }
            TaskState::Dead => {
                record.seq = seq;
                self.dead.insert((record.seq, slot));
            }
            _ => {}
        }
    }

    /// A task whose parents are done becomes due: ready, or scheduled for
    /// its own time.
    fn make_due(&mut self, slot: Slot, now: u64) {
        let Some(record) = self.record(slot) else { return };
        let state = if record.run_at > now { TaskState::Scheduled } else { TaskState::Ready };
        self.set_state(slot, state);
    }

    /// A task died or was cancelled: each waiting descendant is cancelled
    /// or failed per its own policy, recursively.
    fn propagate_failure(&mut self, slot: Slot) {
        let mut stack = vec![slot];
        while let Some(parent) = stack.pop() {
            let Some(record) = self.record(parent) else { continue };
            let (parent_id, children) = (record.id.clone(), record.children.clone());
            for child in children {
                let Some(slot) = self.slot(&child) else { continue };
                let Some(record) = self.record_mut(slot) else { continue };
                if record.state != TaskState::Waiting {
                    continue;
                }
                let state = match record.on_parent_failure {
                    OnParentFailure::Cancel => TaskState::Cancelled,
                    OnParentFailure::Fail => {
                        record.last_error = Some(format!("parent {parent_id} failed"));
                        TaskState::Dead
                    }
                };
                self.set_state(slot, state);
                stack.push(slot);
            }
        }
    }

    /// The slot and running record of `id` if `token` is its current lease.
    fn leased(&mut self, id: &TaskId, token: u64) -> Result<(Slot, &mut Record), SchedulerError> {
        let Some(slot) = self.slot(id) else {
            return Err(SchedulerError::NotFound { id: id.to_string() });
        };
        match self.record_mut(slot) {
            Some(r) if r.state == TaskState::Running && r.token == token => Ok((slot, r)),
            Some(_) => Err(SchedulerError::StaleLease { id: id.to_string() }),
            None => Err(SchedulerError::NotFound { id: id.to_string() }),
        }
    }

    /// Marks a running task succeeded and makes due the children whose
    /// last parent it was.
    fn ack(&mut self, id: &TaskId, token: u64, now: u64) -> Result<(), SchedulerError> {
        let (slot, record) = self.leased(id, token)?;
        record.last_error = None;
        let children = std::mem::take(&mut record.children);
        self.set_state(slot, TaskState::Succeeded);
        self.finished.push_back((now, slot));
        for child in &children {
            let Some(child) = self.slot(child) else { continue };
            let Some(record) = self.record_mut(child) else { continue };
            if record.state != TaskState::Waiting {
                continue;
            }
            record.parents_left = record.parents_left.saturating_sub(1);
            if record.parents_left == 0 {
                self.make_due(child, now);
            }
        }
        if let Some(record) = self.record_mut(slot) {
            record.children = children;
        }
        Ok(())
    }

    /// Makes due tasks ready, then claims up to `max` of them (see
    /// [`Backend::claim`]).
    fn claim(&mut self, now: u64, lease_ms: u64, max: usize) -> (Vec<Claimed>, Option<u64>) {
        self.purge(now);
        for slot in self.due(&self.delayed, now) {
            self.set_state(slot, TaskState::Ready);
        }
        let mut claimed = Vec::new();
        let lease_until = now.saturating_add(crate::backend::clamp_time(lease_ms));
        while claimed.len() < max {
            let Some(&(_, _, slot)) = self.ready.first() else { break };
            self.next_token += 1;
            let token = self.next_token;
            if let Some(record) = self.record_mut(slot) {
                record.attempts += 1;
                record.token = token;
                record.lease_until = lease_until;
            }
            self.set_state(slot, TaskState::Running);
            if let Some(record) = self.record(slot) {
                claimed.push(Claimed {
                    id: record.id.clone(),
                    name: record.name.clone(),
                    payload: record.payload.clone(),
                    attempt: record.attempts,
                    token,
                    last_delay_ms: record.last_delay,
                });
            }
        }
        let next_due = self.delayed.first().map(|&(due, _)| due);
        (claimed, next_due)
    }

    /// Forgets succeeded tasks older than the retention (their count stays:
    /// `succeeded` counts every success). A task succeeds once, so each
    /// slot is in `finished` at most once, and is freed only here.
    fn purge(&mut self, now: u64) {
        while let Some(&(done, _)) = self.finished.front()
            && done.saturating_add(self.retention_ms) <= now
        {
            let Some((_, slot)) = self.finished.pop_front() else { break };
            if self.record(slot).is_some_and(|r| r.state == TaskState::Succeeded)
                && let Some(record) = self.records[slot].take()
            {
                self.slots.remove(&record.id);
                self.free.push(slot);
            }
        }
    }

    fn info(&self, id: &TaskId) -> Option<TaskInfo> {
        self.get(id).map(|r| TaskInfo {
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
            if inner.slots.contains_key(&task.id) || batch_ids.contains(&task.id) {
                return Err(SchedulerError::DuplicateId { id: task.id.to_string() });
            }
            // A parent exists or comes earlier in the batch (a task is not
            // its own parent: it would wait for itself forever).
            for parent in &task.parents {
                if !inner.slots.contains_key(parent) && !batch_ids.contains(parent) {
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
                let Some(p) = inner.get_mut(parent) else { continue };
                p.children.push(task.id.clone());
                match p.state {
                    TaskState::Succeeded => {}
                    TaskState::Dead | TaskState::Cancelled => parent_failed = true,
                    _ => parents_left += 1,
                }
            }
            let id = task.id.clone();
            let slot = inner.add(Record {
                id: task.id,
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
            });
            if parent_failed {
                let failed = parents.iter().find(|p| {
                    inner
                        .get(p)
                        .is_some_and(|r| matches!(r.state, TaskState::Dead | TaskState::Cancelled))
                });
                let state = match task.on_parent_failure {
                    OnParentFailure::Cancel => TaskState::Cancelled,
                    OnParentFailure::Fail => TaskState::Dead,
                };
                if let (Some(parent), Some(record)) = (failed.cloned(), inner.record_mut(slot))
                    && state == TaskState::Dead
                {
                    record.last_error = Some(format!("parent {parent} failed"));
                }
                inner.set_state(slot, state);
            } else if parents_left == 0 {
                inner.make_due(slot, now);
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
        Ok(self.lock().claim(now, lease_ms, max))
    }

    async fn ack_and_claim(
        &self,
        acks: &[(TaskId, u64)],
        now: u64,
        lease_ms: u64,
        max: usize,
    ) -> Result<Turn, SchedulerError> {
        let mut inner = self.lock();
        let acked = acks.iter().map(|(id, token)| inner.ack(id, *token, now)).collect();
        let (claimed, next_due) = inner.claim(now, lease_ms, max);
        Ok(Turn { acked, claimed, next_due })
    }

    async fn renew(
        &self,
        id: &TaskId,
        token: u64,
        now: u64,
        lease_ms: u64,
    ) -> Result<(), SchedulerError> {
        let mut inner = self.lock();
        let (slot, record) = inner.leased(id, token)?;
        let old = record.lease_until;
        record.lease_until = now.saturating_add(crate::backend::clamp_time(lease_ms));
        let new = record.lease_until;
        inner.running.remove(&(old, slot));
        inner.running.insert((new, slot));
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
        let (slot, record) = inner.leased(id, token)?;
        record.last_error = Some(error.to_string());
        match retry_at.map(crate::backend::clamp_time) {
            Some(at) => {
                record.last_delay = at.saturating_sub(now);
                record.run_at = at;
                inner.set_state(slot, TaskState::Retrying);
            }
            None => {
                inner.set_state(slot, TaskState::Dead);
                inner.propagate_failure(slot);
            }
        }
        Ok(())
    }

    async fn release(&self, id: &TaskId, token: u64, _now: u64) -> Result<(), SchedulerError> {
        let mut inner = self.lock();
        let (slot, record) = inner.leased(id, token)?;
        record.attempts = record.attempts.saturating_sub(1);
        inner.set_state(slot, TaskState::Ready);
        Ok(())
    }

    async fn reap(&self, now: u64, limits: &AttemptLimits) -> Result<u64, SchedulerError> {
        let mut inner = self.lock();
        let mut reaped = 0;
        for slot in inner.due(&inner.running, now) {
            let mut dead = false;
            if let Some(record) = inner.record_mut(slot) {
                // The claim counted this attempt: on the last allowed one,
                // a lost lease ends the task (a poison task dies here).
                dead = record.attempts >= limits.get(&record.name);
                record.last_error = Some(lease_expired(record.attempts, dead));
            }
            if dead {
                inner.set_state(slot, TaskState::Dead);
                inner.propagate_failure(slot);
            } else {
                inner.set_state(slot, TaskState::Ready);
            }
            reaped += 1;
        }
        Ok(reaped)
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<TaskInfo>, SchedulerError> {
        let inner = self.lock();
        Ok(inner
            .dead
            .iter()
            .take(limit)
            .filter_map(|&(_, slot)| inner.record(slot).and_then(|r| inner.info(&r.id)))
            .collect())
    }

    async fn replay(&self, id: &TaskId, now: u64) -> Result<(), SchedulerError> {
        let mut inner = self.lock();
        let Some(slot) = inner.slot(id) else {
            return Err(SchedulerError::NotFound { id: id.to_string() });
        };
        let Some(record) = inner.record_mut(slot) else {
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
        inner.set_state(slot, TaskState::Ready);
        Ok(())
    }

    async fn info(&self, id: &TaskId) -> Result<Option<TaskInfo>, SchedulerError> {
        Ok(self.lock().info(id))
    }

    async fn counts(&self) -> Result<Counts, SchedulerError> {
        let inner = self.lock();
        Ok(Counts::from_fn(|s| inner.counts[state_index(s)]))
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
