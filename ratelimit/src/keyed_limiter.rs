//! [`KeyedLimiter`]: one interface for a limit per key, wherever its state
//! lives: in process ([`Keyed`], [`Unkeyed`]) or in Redis
//! ([`RedisLimiter`](crate::RedisLimiter), shared by many servers). The
//! HTTP layer and the scheduler's per-queue limit take any of them.

use std::borrow::Borrow;
use std::fmt;
use std::future::{Future, ready};
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::decision::Decision;
use crate::error::LimitError;
use crate::keyed::Keyed;
use crate::limiter::Limiter;

/// A rate limit per key. Its methods are async so that a backend over the
/// network (Redis) fits; in-process ones answer at once.
///
/// Implemented by [`Keyed`] (one in-process limiter per key), [`Unkeyed`]
/// (one limiter for every key), `RedisLimiter` (feature `redis`) and
/// [`AnyKeyedLimiter`] (any of them behind one type), and by `Arc`s of them.
///
/// ```
/// use sysblocks_ratelimit::{Algorithm, Keyed, KeyedLimiter, Limit};
///
/// // A function that takes any limit per key, in process or on Redis.
/// async fn admit(limiter: &impl KeyedLimiter<str>, user: &str) -> bool {
///     limiter.check(user).await.is_ok_and(|d| d.allowed)
/// }
///
/// let limit = Limit::new(Algorithm::FixedWindow, "2/s".parse()?);
/// let per_user: Keyed<String, _> = Keyed::new(1_000, move || limit.build())?;
/// # let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// # runtime.block_on(async {
/// assert!(admit(&per_user, "ann").await);
/// assert!(admit(&per_user, "ann").await);
/// assert!(!admit(&per_user, "ann").await);
/// # });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait KeyedLimiter<K: ?Sized>: Send + Sync {
    /// The limit that decisions report.
    fn limit(&self) -> u64;

    /// The policy window ([`Limiter::window`]).
    fn window(&self) -> Duration;

    /// Admits a request of `cost` for `key` if there is room for all of it.
    ///
    /// # Errors
    /// [`LimitError::ZeroCost`], [`LimitError::CostAboveCapacity`], and
    /// what the backend reports ([`LimitError::TooManyKeys`],
    /// [`LimitError::Backend`]).
    fn check_n(
        &self,
        key: &K,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, LimitError>> + Send;

    /// Gives back `cost` admitted earlier to `key`.
    ///
    /// # Errors
    /// What the backend reports ([`LimitError::Backend`]).
    fn refund(&self, key: &K, cost: u64) -> impl Future<Output = Result<(), LimitError>> + Send;

    /// One unit for `key`.
    ///
    /// # Errors
    /// As [`check_n`](Self::check_n).
    fn check(&self, key: &K) -> impl Future<Output = Result<Decision, LimitError>> + Send {
        self.check_n(key, 1)
    }
}

impl<K, Q, L> KeyedLimiter<Q> for Keyed<K, L>
where
    K: Eq + Hash + Borrow<Q> + Send + Sync,
    Q: Eq + Hash + ToOwned<Owned = K> + ?Sized,
    L: Limiter,
{
    fn limit(&self) -> u64 {
        Keyed::limit(self)
    }

    fn window(&self) -> Duration {
        Keyed::window(self)
    }

    fn check_n(
        &self,
        key: &Q,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, LimitError>> + Send {
        ready(Keyed::check_n(self, key, cost))
    }

    fn refund(&self, key: &Q, cost: u64) -> impl Future<Output = Result<(), LimitError>> + Send {
        Keyed::refund(self, key, cost);
        ready(Ok(()))
    }
}

/// One limiter for every key: a global limit through the keyed interface
/// (say, one token bucket for a whole queue).
///
/// ```
/// use sysblocks_ratelimit::{KeyedLimiter, Rate, TokenBucket, Unkeyed};
///
/// let global = Unkeyed(TokenBucket::new(1, Rate::per_second(1)?)?);
/// # let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// # runtime.block_on(async {
/// assert!(global.check("ann").await.unwrap().allowed);
/// assert!(!global.check("bob").await.unwrap().allowed, "one bucket for everyone");
/// # });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Unkeyed<L>(pub L);

impl<K: ?Sized, L: Limiter> KeyedLimiter<K> for Unkeyed<L> {
    fn limit(&self) -> u64 {
        self.0.limit()
    }

    fn window(&self) -> Duration {
        self.0.window()
    }

    fn check_n(
        &self,
        _key: &K,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, LimitError>> + Send {
        ready(self.0.check_n(cost))
    }

    fn refund(&self, _key: &K, cost: u64) -> impl Future<Output = Result<(), LimitError>> + Send {
        self.0.refund(cost);
        ready(Ok(()))
    }
}

impl<K: ?Sized + Sync, T: KeyedLimiter<K> + ?Sized> KeyedLimiter<K> for Arc<T> {
    fn limit(&self) -> u64 {
        (**self).limit()
    }

    fn window(&self) -> Duration {
        (**self).window()
    }

    fn check_n(
        &self,
        key: &K,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, LimitError>> + Send {
        (**self).check_n(key, cost)
    }

    fn refund(&self, key: &K, cost: u64) -> impl Future<Output = Result<(), LimitError>> + Send {
        (**self).refund(key, cost)
    }
}

/// A boxed future, as [`AnyKeyedLimiter`] returns.
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The object-safe twin of [`KeyedLimiter`], behind [`AnyKeyedLimiter`].
trait Erased<K: ?Sized>: Send + Sync {
    fn limit(&self) -> u64;
    fn window(&self) -> Duration;
    fn check_n<'a>(&'a self, key: &'a K, cost: u64) -> BoxFuture<'a, Result<Decision, LimitError>>;
    fn refund<'a>(&'a self, key: &'a K, cost: u64) -> BoxFuture<'a, Result<(), LimitError>>;
}

impl<K: ?Sized + Sync, T: KeyedLimiter<K>> Erased<K> for T {
    fn limit(&self) -> u64 {
        KeyedLimiter::limit(self)
    }

    fn window(&self) -> Duration {
        KeyedLimiter::window(self)
    }

    fn check_n<'a>(&'a self, key: &'a K, cost: u64) -> BoxFuture<'a, Result<Decision, LimitError>> {
        Box::pin(KeyedLimiter::check_n(self, key, cost))
    }

    fn refund<'a>(&'a self, key: &'a K, cost: u64) -> BoxFuture<'a, Result<(), LimitError>> {
        Box::pin(KeyedLimiter::refund(self, key, cost))
    }
}

/// Any [`KeyedLimiter`] behind one type (one allocation per decision), for
/// settings that hold "some limit": an in-process one in tests and with
/// one process, a Redis one in production. Clones share the limiter.
///
/// ```
/// use sysblocks_ratelimit::{AnyKeyedLimiter, Keyed, KeyedLimiter, Rate, TokenBucket, Unkeyed};
///
/// let per_key: Keyed<String, _> = Keyed::new(100, || TokenBucket::new(5, Rate::per_second(5)?))?;
/// let limits: Vec<AnyKeyedLimiter<str>> = vec![
///     AnyKeyedLimiter::new(per_key),
///     AnyKeyedLimiter::new(Unkeyed(TokenBucket::new(100, Rate::per_second(100)?)?)),
/// ];
/// assert_eq!(limits.iter().map(|l| l.limit()).collect::<Vec<_>>(), [5, 100]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AnyKeyedLimiter<K: ?Sized + 'static> {
    inner: Arc<dyn Erased<K>>,
}

impl<K: ?Sized + Sync + 'static> AnyKeyedLimiter<K> {
    /// Wraps `limiter`.
    pub fn new(limiter: impl KeyedLimiter<K> + 'static) -> Self {
        AnyKeyedLimiter { inner: Arc::new(limiter) }
    }
}

impl<K: ?Sized + 'static> Clone for AnyKeyedLimiter<K> {
    fn clone(&self) -> Self {
        AnyKeyedLimiter { inner: self.inner.clone() }
    }
}

impl<K: ?Sized + 'static> fmt::Debug for AnyKeyedLimiter<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyKeyedLimiter")
            .field("limit", &self.inner.limit())
            .field("window", &self.inner.window())
            .finish()
    }
}

impl<K: ?Sized + Sync + 'static> KeyedLimiter<K> for AnyKeyedLimiter<K> {
    fn limit(&self) -> u64 {
        self.inner.limit()
    }

    fn window(&self) -> Duration {
        self.inner.window()
    }

    async fn check_n(&self, key: &K, cost: u64) -> Result<Decision, LimitError> {
        self.inner.check_n(key, cost).await
    }

    async fn refund(&self, key: &K, cost: u64) -> Result<(), LimitError> {
        self.inner.refund(key, cost).await
    }
}
