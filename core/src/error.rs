//! [`BackendError`]: a storage backend's own error, kept whole.

use std::fmt;
use std::sync::Arc;

/// The error a backend (Redis, most often) failed with, kept whole so that
/// the crate error wrapping it can return it from `source()` and callers
/// can downcast it (`redis::RedisError`). Cheap to clone; two are equal
/// when their messages are, so that error enums holding one can still
/// derive `PartialEq`.
///
/// ```
/// use sysblocks_core::BackendError;
///
/// let io = std::io::Error::other("connection reset");
/// let error = BackendError::new(io);
/// assert_eq!(error.to_string(), "connection reset");
/// assert!(error.inner().downcast_ref::<std::io::Error>().is_some());
/// assert_eq!(BackendError::message("unexpected reply"), BackendError::message("unexpected reply"));
/// ```
#[derive(Clone)]
pub struct BackendError(Arc<dyn std::error::Error + Send + Sync + 'static>);

/// A backend failure described only by text (a reply of the wrong shape).
#[derive(Debug)]
struct Message(String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Message {}

impl BackendError {
    /// Wraps the backend's own error.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        BackendError(Arc::new(error))
    }

    /// A failure with no underlying error, only a description.
    pub fn message(text: impl Into<String>) -> Self {
        BackendError(Arc::new(Message(text.into())))
    }

    /// The backend's error, to downcast.
    pub fn inner(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl fmt::Debug for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl PartialEq for BackendError {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl Eq for BackendError {}
