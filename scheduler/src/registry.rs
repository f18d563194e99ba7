//! Handlers: the [`Registry`] of typed handlers by task name, their
//! [`HandlerOptions`], the [`Context`] an attempt runs with, and the
//! [`TaskError`] it can fail with.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::error::SchedulerError;
use crate::retry::RetryPolicy;
use crate::task::TaskId;

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskError {
    /// Worth another attempt (per the retry policy).
    Retry(String),
    /// Will never succeed (bad input, ...): straight to the dead letters.
    Permanent(String),
}

impl TaskError {
    /// A retryable failure.
    pub fn retry(message: impl fmt::Display) -> Self {
        TaskError::Retry(message.to_string())
    }

    /// A permanent failure.
    pub fn permanent(message: impl fmt::Display) -> Self {
        TaskError::Permanent(message.to_string())
    }

    pub(crate) fn message(&self) -> &str {
        match self {
            TaskError::Retry(m) | TaskError::Permanent(m) => m,
        }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Retry(m) => write!(f, "{m}"),
            TaskError::Permanent(m) => write!(f, "{m} (permanent)"),
        }
    }
}

/// What a handler knows about the attempt it runs.
#[derive(Debug, Clone)]
pub struct Context {
    /// The task.
    pub id: TaskId,
    /// The attempt, from 1.
    pub attempt: u32,
    /// The lease's fencing token: pass it along to anything that must
    /// refuse a stale writer (a database write keyed by it, say).
    pub token: u64,
    /// Set when the worker shuts down.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Set when the lease is lost.
    pub(crate) lost: watch::Receiver<bool>,
}

impl Context {
    /// Resolves when the attempt should stop: the lease was lost (another
    /// worker may be running the task) or the worker is shutting down.
    pub async fn cancelled(&self) {
        let (mut shutdown, mut lost) = (self.shutdown.clone(), self.lost.clone());
        tokio::select! {
            _ = shutdown.wait_for(|&c| c) => {}
            _ = lost.wait_for(|&c| c) => {}
        }
    }

    /// Whether [`cancelled`](Self::cancelled) has fired.
    pub fn is_cancelled(&self) -> bool {
        *self.shutdown.borrow() || *self.lost.borrow()
    }
}

/// Runs a handler's future, turning a panic into an error, so that a
/// panicking handler is a failed attempt without a task spawn per attempt.
pub(crate) struct CatchUnwind(pub(crate) BoxFuture);

impl Future for CatchUnwind {
    type Output = Result<Result<(), TaskError>, String>;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let future = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| future.poll(cx))) {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(outcome)) => std::task::Poll::Ready(Ok(outcome)),
            Err(payload) => std::task::Poll::Ready(Err(panic_message(payload.as_ref()))),
        }
    }
}

pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = Result<(), TaskError>> + Send>>;
type ErasedHandler = Arc<dyn Fn(Context, &str) -> BoxFuture + Send + Sync>;
/// Checks that a payload deserializes into the handler's type.
type PayloadCheck = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// A handler's settings.
#[derive(Debug, Clone, Copy)]
pub struct HandlerOptions {
    /// The longest one attempt may take; a slower attempt fails (retryably).
    pub timeout: Duration,
    /// How failed attempts are retried.
    pub retry: RetryPolicy,
}

impl Default for HandlerOptions {
    /// 5 minutes per attempt, the default [`RetryPolicy`].
    fn default() -> Self {
        HandlerOptions { timeout: Duration::from_secs(300), retry: RetryPolicy::default() }
    }
}

#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) handler: ErasedHandler,
    pub(crate) options: HandlerOptions,
    check: PayloadCheck,
}

/// Handlers by task name.
///
/// ```
/// use sysblocks_scheduler::{Registry, TaskError};
///
/// #[derive(serde::Deserialize)]
/// struct Email { to: String }
///
/// let mut registry = Registry::new();
/// registry.register("send-email", |_ctx, email: Email| async move {
///     if email.to.contains('@') { Ok(()) } else { Err(TaskError::permanent("no @")) }
/// });
/// assert!(registry.validate("send-email", r#"{"to": "a@b"}"#).is_ok());
/// assert!(registry.validate("send-email", r#"{"from": 1}"#).is_err());
/// assert!(registry.validate("send-fax", "{}").is_err());
/// ```
#[derive(Clone, Default)]
pub struct Registry {
    /// By task name; looked up once per attempt, so with a fast hasher.
    pub(crate) handlers: HashMap<String, Entry, foldhash::quality::RandomState>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry").field("names", &self.handlers.keys()).finish()
    }
}

impl Registry {
    /// No handlers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` for `name` with the default options.
    pub fn register<P, F, Fut>(&mut self, name: &str, handler: F) -> &mut Self
    where
        P: DeserializeOwned + Send + 'static,
        F: Fn(Context, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), TaskError>> + Send + 'static,
    {
        self.register_with(name, HandlerOptions::default(), handler)
    }

    /// Registers `handler` for `name` with `options`.
    pub fn register_with<P, F, Fut>(
        &mut self,
        name: &str,
        options: HandlerOptions,
        handler: F,
    ) -> &mut Self
    where
        P: DeserializeOwned + Send + 'static,
        F: Fn(Context, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), TaskError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let erased: ErasedHandler = Arc::new(move |ctx: Context, payload: &str| {
            let parsed = serde_json::from_str::<P>(payload);
            let handler = handler.clone();
            Box::pin(async move {
                match parsed {
                    Ok(payload) => handler(ctx, payload).await,
                    Err(e) => {
                        Err(TaskError::permanent(format!("payload does not deserialize: {e}")))
                    }
                }
            }) as BoxFuture
        });
        let check = Arc::new(|payload: &str| {
            serde_json::from_str::<P>(payload).map(drop).map_err(|e| e.to_string())
        });
        self.handlers.insert(name.to_string(), Entry { handler: erased, options, check });
        self
    }

    /// Checks that `name` has a handler and `payload` fits its type.
    ///
    /// # Errors
    /// [`SchedulerError::UnknownTask`], [`SchedulerError::BadPayload`].
    pub fn validate(&self, name: &str, payload: &str) -> Result<(), SchedulerError> {
        let entry = self
            .handlers
            .get(name)
            .ok_or_else(|| SchedulerError::UnknownTask { name: name.to_string() })?;
        (entry.check)(payload)
            .map_err(|message| SchedulerError::BadPayload { name: name.to_string(), message })
    }

    /// The options of `name`'s handler.
    pub fn options(&self, name: &str) -> Option<HandlerOptions> {
        self.handlers.get(name).map(|e| e.options)
    }
}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic".into())
}
