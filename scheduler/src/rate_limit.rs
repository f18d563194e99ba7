//! [`RateLimit`]: how fast workers start tasks, with any keyed limiter of
//! the ratelimit crate (in process, or shared on Redis).

use std::time::Duration;

/// How fast workers may start tasks: a keyed limiter (any
/// [`KeyedLimiter`](sysblocks_ratelimit::KeyedLimiter): in process, or a
/// `RedisLimiter` that many worker processes share) and the key that names
/// this queue's budget. Each start takes one unit; a worker that was
/// granted more starts than it found tasks for gives the rest back.
///
/// ```no_run
/// # #[allow(dead_code)]
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use sysblocks_ratelimit::{Algorithm, Limit, RedisLimiter};
/// use sysblocks_scheduler::{RateLimit, WorkerConfig};
///
/// // At most 100 task starts per second across every worker process.
/// let client = redis::Client::open("redis://127.0.0.1:6379/")?;
/// let limit = Limit::new(Algorithm::SlidingWindowCounter, "100/s".parse()?);
/// let limiter = RedisLimiter::new(client.get_connection_manager().await?, limit, "jobs:")?;
/// let config = WorkerConfig {
///     rate_limit: Some(RateLimit::shared(limiter, "emails")),
///     ..WorkerConfig::default()
/// };
/// # drop(config);
/// # Ok(()) }
/// ```
#[cfg(feature = "rate-limit")]
#[derive(Debug, Clone)]
pub struct RateLimit {
    limiter: sysblocks_ratelimit::AnyKeyedLimiter<str>,
    key: String,
}

#[cfg(feature = "rate-limit")]
impl RateLimit {
    /// Starts limited by `limiter` under `key` (shared by everyone who uses
    /// the same limiter and key).
    pub fn shared(
        limiter: impl sysblocks_ratelimit::KeyedLimiter<str> + 'static,
        key: impl Into<String>,
    ) -> Self {
        RateLimit { limiter: sysblocks_ratelimit::AnyKeyedLimiter::new(limiter), key: key.into() }
    }

    /// Starts limited by one in-process limiter (a `TokenBucket`, a
    /// window, ...); clone the `RateLimit` to share it between workers.
    pub fn local(limiter: impl sysblocks_ratelimit::Limiter + 'static) -> Self {
        Self::shared(sysblocks_ratelimit::Unkeyed(limiter), "")
    }

    /// The limit per window.
    pub fn limit(&self) -> u64 {
        sysblocks_ratelimit::KeyedLimiter::limit(&self.limiter)
    }

    /// Takes up to `wanted` starts, one at a time: how many were granted,
    /// and, when the limit ran out first, how long until the next would be.
    pub(crate) async fn take(&self, wanted: usize) -> (usize, Option<Duration>) {
        use sysblocks_ratelimit::KeyedLimiter;
        let mut granted = 0;
        while granted < wanted {
            match self.limiter.check(self.key.as_str()).await {
                Ok(decision) if decision.allowed => granted += 1,
                Ok(decision) => return (granted, decision.retry_after),
                Err(error) => {
                    tracing::warn!(%error, "the rate limit failed; starting nothing more now");
                    return (granted, None);
                }
            }
        }
        (granted, None)
    }

    /// Gives back `unused` starts.
    pub(crate) async fn give_back(&self, unused: usize) {
        use sysblocks_ratelimit::KeyedLimiter;
        if unused > 0
            && let Err(error) = self.limiter.refund(self.key.as_str(), unused as u64).await
        {
            tracing::warn!(%error, "giving back unused starts failed");
        }
    }
}
