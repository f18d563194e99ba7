//! The task model: what is submitted, what a worker claims, what can be
//! asked about a task.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::clock::millis;
use crate::error::SchedulerError;

const TEN_YEARS_MS: u64 = 10 * 365 * 24 * 3600 * 1000;

/// A task's id: unique within a queue. Generated (128 random bits, hex)
/// unless given.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(pub String);

impl TaskId {
    /// A fresh random id.
    pub fn random() -> Self {
        TaskId(format!("{:032x}", rand::random::<u128>()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for TaskId {
    fn from(id: &str) -> Self {
        TaskId(id.to_string())
    }
}

/// What happens to a task when one of its parents ends dead (or cancelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OnParentFailure {
    /// The child is cancelled: it never runs and is not a dead letter.
    #[default]
    Cancel,
    /// The child goes to the dead-letter queue with an error naming the
    /// parent, so that replaying it is a visible decision.
    Fail,
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// Waiting for its parents to succeed.
    Waiting,
    /// Due at a later time (first run).
    Scheduled,
    /// Due now, waiting for a worker.
    Ready,
    /// Claimed by a worker under a lease.
    Running,
    /// Failed an attempt; due again at a later time.
    Retrying,
    /// Done.
    Succeeded,
    /// Out of attempts, or failed permanently: in the dead-letter queue.
    Dead,
    /// A parent failed and the policy was to cancel.
    Cancelled,
}

impl TaskState {
    /// Whether the task is done for good: succeeded, dead or cancelled
    /// (a dead task runs again only if replayed).
    pub fn is_final(self) -> bool {
        matches!(self, TaskState::Succeeded | TaskState::Dead | TaskState::Cancelled)
    }

    /// The state's name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Waiting => "waiting",
            TaskState::Scheduled => "scheduled",
            TaskState::Ready => "ready",
            TaskState::Running => "running",
            TaskState::Retrying => "retrying",
            TaskState::Succeeded => "succeeded",
            TaskState::Dead => "dead",
            TaskState::Cancelled => "cancelled",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "waiting" => TaskState::Waiting,
            "scheduled" => TaskState::Scheduled,
            "ready" => TaskState::Ready,
            "running" => TaskState::Running,
            "retrying" => TaskState::Retrying,
            "succeeded" => TaskState::Succeeded,
            "dead" => TaskState::Dead,
            "cancelled" => TaskState::Cancelled,
            _ => return None,
        })
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a task first becomes due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// As soon as a worker is free.
    Now,
    /// After this long from submission.
    After(Duration),
    /// At this time (milliseconds since the Unix epoch).
    At(u64),
}

/// A task to submit: a handler name, a serde payload and options.
///
/// ```
/// use std::time::Duration;
/// use sysblocks_scheduler::Task;
///
/// let task = Task::new("send-email", &serde_json::json!({"to": "a@example.com"}))?
///     .after(Duration::from_secs(30))
///     .priority(5)
///     .idempotency_key("welcome:a@example.com", Duration::from_secs(3600));
/// assert_eq!(task.name(), "send-email");
/// # Ok::<(), sysblocks_scheduler::SchedulerError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub(crate) id: TaskId,
    pub(crate) name: String,
    pub(crate) payload: String,
    pub(crate) when: When,
    pub(crate) priority: u8,
    pub(crate) idempotency: Option<(String, Duration)>,
    pub(crate) parents: Vec<TaskId>,
    pub(crate) on_parent_failure: OnParentFailure,
}

impl Task {
    /// A task for the handler registered as `name`, with `payload`
    /// serialised to JSON.
    ///
    /// # Errors
    /// [`SchedulerError::BadPayload`] when the payload does not serialise.
    pub fn new<P: Serialize + ?Sized>(name: &str, payload: &P) -> Result<Self, SchedulerError> {
        let payload = serde_json::to_string(payload).map_err(|e| SchedulerError::BadPayload {
            name: name.to_string(),
            message: e.to_string(),
        })?;
        Ok(Task {
            id: TaskId::random(),
            name: name.to_string(),
            payload,
            when: When::Now,
            priority: 0,
            idempotency: None,
            parents: Vec::new(),
            on_parent_failure: OnParentFailure::default(),
        })
    }

    /// Uses this id instead of a random one.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<TaskId>) -> Self {
        self.id = id.into();
        self
    }

    /// Due this long after submission.
    #[must_use]
    pub fn after(mut self, delay: Duration) -> Self {
        self.when = When::After(delay);
        self
    }

    /// Due at `at_ms` (milliseconds since the Unix epoch).
    #[must_use]
    pub fn at(mut self, at_ms: u64) -> Self {
        self.when = When::At(at_ms);
        self
    }

    /// Higher runs first among due tasks (default 0).
    #[must_use]
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }

    /// A second submission with the same key within `window` is not added:
    /// it returns the first task's id ([`Submitted::Duplicate`]).
    #[must_use]
    pub fn idempotency_key(mut self, key: &str, window: Duration) -> Self {
        self.idempotency = Some((key.to_string(), window));
        self
    }

    /// Runs only after `parent` has succeeded.
    #[must_use]
    pub fn after_parent(mut self, parent: &TaskId) -> Self {
        self.parents.push(parent.clone());
        self
    }

    /// What to do if a parent dies (default: cancel this task).
    #[must_use]
    pub fn on_parent_failure(mut self, policy: OnParentFailure) -> Self {
        self.on_parent_failure = policy;
        self
    }

    /// The task's id.
    pub fn id(&self) -> &TaskId {
        &self.id
    }

    /// The handler name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The JSON payload.
    pub fn payload(&self) -> &str {
        &self.payload
    }

    /// The task as a backend stores it, due relative to `now_ms`.
    pub(crate) fn into_new(self, now_ms: u64) -> NewTask {
        let run_at = match self.when {
            When::Now => now_ms,
            When::After(delay) => now_ms.saturating_add(millis(delay)),
            When::At(at) => at,
        };
        NewTask {
            id: self.id,
            name: self.name,
            payload: self.payload,
            priority: self.priority,
            run_at,
            parents: self.parents,
            on_parent_failure: self.on_parent_failure,
            // Windows are capped at ten years, which keeps them exact in Lua.
            idempotency: self
                .idempotency
                .map(|(key, window)| (key, millis(window).min(TEN_YEARS_MS))),
        }
    }
}

/// A task as handed to a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTask {
    /// Its id.
    pub id: TaskId,
    /// The handler name.
    pub name: String,
    /// The JSON payload.
    pub payload: String,
    /// Higher first.
    pub priority: u8,
    /// When it is first due (ms since the epoch).
    pub run_at: u64,
    /// Tasks that must succeed first.
    pub parents: Vec<TaskId>,
    /// What a parent's failure does to it.
    pub on_parent_failure: OnParentFailure,
    /// Idempotency key and window in ms.
    pub idempotency: Option<(String, u64)>,
}

/// The result of a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// Added under this id.
    New(TaskId),
    /// A task with the same idempotency key was submitted within its
    /// window: nothing was added; this is the first task's id.
    Duplicate(TaskId),
}

impl Submitted {
    /// The id of the task that will run.
    pub fn id(&self) -> &TaskId {
        match self {
            Submitted::New(id) | Submitted::Duplicate(id) => id,
        }
    }
}

/// A task claimed by a worker, under a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The task.
    pub id: TaskId,
    /// The handler name.
    pub name: String,
    /// The JSON payload.
    pub payload: String,
    /// This attempt's number, from 1.
    pub attempt: u32,
    /// The fencing token: ack, fail and renew must present it.
    pub token: u64,
    /// The delay before this attempt (0 for the first), for decorrelated
    /// jitter.
    pub last_delay_ms: u64,
}

/// What is known about a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    /// The task.
    pub id: TaskId,
    /// The handler name.
    pub name: String,
    /// Where it is.
    pub state: TaskState,
    /// Attempts started so far.
    pub attempts: u32,
    /// The last attempt's error, if it failed.
    pub last_error: Option<String>,
    /// When it is (or was) due, ms since the epoch.
    pub run_at: u64,
    /// Its JSON payload, so that a dead letter says what the job was.
    pub payload: String,
}

impl Counts {
    /// Counts read state by state from `count`.
    pub fn from_fn(mut count: impl FnMut(TaskState) -> u64) -> Self {
        Counts {
            waiting: count(TaskState::Waiting),
            scheduled: count(TaskState::Scheduled),
            ready: count(TaskState::Ready),
            running: count(TaskState::Running),
            retrying: count(TaskState::Retrying),
            succeeded: count(TaskState::Succeeded),
            dead: count(TaskState::Dead),
            cancelled: count(TaskState::Cancelled),
        }
    }
}

/// How many tasks of a queue are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Waiting for parents.
    pub waiting: u64,
    /// Due later (first run).
    pub scheduled: u64,
    /// Due now.
    pub ready: u64,
    /// Under a lease.
    pub running: u64,
    /// Due again after a failure.
    pub retrying: u64,
    /// Done.
    pub succeeded: u64,
    /// In the dead-letter queue.
    pub dead: u64,
    /// Cancelled by a parent's failure.
    pub cancelled: u64,
}
