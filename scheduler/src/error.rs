//! The error type of this crate.

use std::fmt;

pub use sysblocks_core::BackendError;

/// What went wrong with a request to the scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchedulerError {
    /// A task was not done (succeeded, dead or cancelled) within the time a
    /// caller waited for it.
    WaitTimedOut {
        /// The task.
        id: String,
    },
    /// A Redis queue name that is empty or holds `{` or `}`.
    InvalidQueue {
        /// The name given.
        name: String,
    },
    /// A due time beyond what the backends store exactly (2^53 ms since the
    /// epoch, about 285,000 years).
    TimeOutOfRange {
        /// The time given, in ms since the epoch.
        at_ms: u64,
    },
    /// No handler is registered under this task name.
    UnknownTask {
        /// The name given.
        name: String,
    },
    /// The payload does not fit the handler's payload type.
    BadPayload {
        /// The task name.
        name: String,
        /// What serde said.
        message: String,
    },
    /// A cron expression that does not parse, or an unknown time zone.
    InvalidCron {
        /// The expression or zone given.
        expression: String,
        /// Why.
        message: String,
    },
    /// A worker with a concurrency of 0 would never run anything.
    ZeroConcurrency,
    /// A retry policy that cannot work (zero attempts, a zero base delay
    /// with a non-zero cap, ...).
    InvalidPolicy {
        /// Why.
        message: String,
    },
    /// The dependencies of a DAG form a cycle through this task.
    Cycle {
        /// A task on the cycle.
        task: String,
    },
    /// A task names a parent that does not exist.
    UnknownParent {
        /// The parent's id.
        parent: String,
    },
    /// A task id that is already in use.
    DuplicateId {
        /// The id.
        id: String,
    },
    /// No task has this id.
    NotFound {
        /// The id.
        id: String,
    },
    /// The lease's fencing token is no longer current: the lease expired
    /// and the task was handed to another worker (or finished). The
    /// transition was refused.
    StaleLease {
        /// The task.
        id: String,
    },
    /// The task is not in a state that allows the request (replaying a
    /// task that is not dead, ...).
    WrongState {
        /// The task.
        id: String,
        /// Its state.
        state: String,
    },
    /// The backend (Redis) failed; its own error is the `source()`.
    Backend(BackendError),
}

impl fmt::Display for SchedulerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchedulerError::WaitTimedOut { id } => {
                write!(f, "task {id} was not done within the time waited")
            }
            SchedulerError::InvalidQueue { name } => write!(
                f,
                "queue name {name:?} must be non-empty and free of '{{' and '}}' (it is the hash tag)"
            ),
            SchedulerError::TimeOutOfRange { at_ms } => write!(
                f,
                "due time {at_ms} ms is beyond the largest the backends store exactly ({} ms)",
                crate::MAX_TIME_MS
            ),
            SchedulerError::UnknownTask { name } => {
                write!(f, "no handler is registered for task name {name:?}")
            }
            SchedulerError::BadPayload { name, message } => {
                write!(f, "the payload of task {name:?} does not deserialize: {message}")
            }
            SchedulerError::InvalidCron { expression, message } => {
                write!(f, "invalid cron schedule {expression:?}: {message}")
            }
            SchedulerError::ZeroConcurrency => write!(f, "worker concurrency must be at least 1"),
            SchedulerError::InvalidPolicy { message } => {
                write!(f, "invalid retry policy: {message}")
            }
            SchedulerError::Cycle { task } => write!(f, "dependency cycle through task {task:?}"),
            SchedulerError::UnknownParent { parent } => {
                write!(f, "parent task {parent:?} does not exist")
            }
            SchedulerError::DuplicateId { id } => write!(f, "task id {id:?} is already in use"),
            SchedulerError::NotFound { id } => write!(f, "no task with id {id:?}"),
            SchedulerError::StaleLease { id } => write!(
                f,
                "the lease on task {id:?} is no longer held (expired and handed on, or finished)"
            ),
            SchedulerError::WrongState { id, state } => {
                write!(f, "task {id:?} is {state}, which does not allow this")
            }
            SchedulerError::Backend(error) => write!(f, "scheduler backend failed: {error}"),
        }
    }
}

impl std::error::Error for SchedulerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SchedulerError::Backend(error) => Some(error.inner()),
            _ => None,
        }
    }
}
