//! Politeness as rate limiting: before each request, the host's (or its
//! address's) key must be admitted by a limiter of one request per delay,
//! a GCRA token bucket of capacity 1 from sysblocks-ratelimit.
//!
//! With one worker the limiter is in process (a [`Keyed`] set of token
//! buckets, bounded in keys); with several it is a [`RedisLimiter`] that
//! every worker asks, so "no host more than once per delay" holds across
//! all of them, on Redis's clock. Each distinct delay has its own limiter
//! (a limiter has one rate); delays are counted in whole milliseconds.
//!
//! On Redis the limiters of every delay share one key per address. That
//! is sound for a bucket of capacity 1: its whole state is the address's
//! next allowed time (GCRA's TAT), which a request admitted with delay `d`
//! sets to `now + d`; a worker that does not know a host's crawl-delay yet
//! (it just took the host over) still waits for the time that the worker
//! which knew it set.
//!
//! The frontier already spaces one worker's requests to a host by the
//! delay, counted from the end of the previous fetch. Across workers the
//! limiter alone is not enough: it spaces *decisions*, and a request
//! decided 20 ms after another may reach the server at the same moment
//! when the first one's worker was slow to send it, or its response slow
//! to come. So a distributed worker also takes the key's **turn**, a lease
//! in Redis (`turn:{key}`: the holder, expiring after the longest a fetch
//! may take plus the delay), before asking the limiter, and at the end of
//! the fetch leaves it to expire after the delay (or the Retry-After, or
//! the backoff). Whoever takes a key over, joining or after a crash, waits
//! for that: one request at a time per host, and its delay after each,
//! counted from the end of the previous request, across all workers.
//!
//! Both fail open, so that a Redis outage leaves the frontier's spacing in
//! charge rather than stopping the crawl.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use sysblocks_core::RedisConnection;
use sysblocks_ratelimit::{
    Algorithm, AnyKeyedLimiter, FailurePolicy, Keyed, KeyedLimiter, Limit, LimitError, Rate,
    RedisLimiter, TokenBucket,
};

/// Where what the workers of a crawl share lives: the politeness limits
/// and the robots.txt files fetched.
#[derive(Debug, Clone)]
pub enum Shared {
    /// In this process.
    Local,
    /// On Redis (or a Cluster), keys under this prefix (the crawl's).
    Redis(RedisConnection, String),
}

/// One limiter of one request per delay per key, for every delay in use,
/// and (on Redis) the keys' turns.
#[derive(Debug)]
pub struct Politeness {
    shared: Shared,
    limiters: Mutex<HashMap<u64, AnyKeyedLimiter<str>>>,
    /// This process's name as a turn's holder.
    me: String,
    take: redis::Script,
    end: redis::Script,
}

/// Takes a key's turn: free, or already this holder's (ARGV[1]), it is
/// set to expire in ARGV[2] ms and 0 is returned; else the ms left.
const TAKE_TURN: &str = r"
local holder = redis.call('GET', KEYS[1])
if not holder or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 0
end
return math.max(redis.call('PTTL', KEYS[1]), 1)
";

/// Ends this holder's turn: it expires in ARGV[2] ms (the wait before the
/// key's next request), unless another holder has it now.
const END_TURN: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// Keys kept by an in-process limiter (an idle key's bucket is full again
/// after one delay, so forgetting the oldest costs nothing).
const LOCAL_KEYS: usize = 100_000;

impl Politeness {
    /// Limits kept where `shared` says.
    pub fn new(shared: Shared) -> Politeness {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let me = format!("{}-{nanos:x}", std::process::id());
        let (take, end) = (redis::Script::new(TAKE_TURN), redis::Script::new(END_TURN));
        Politeness { shared, limiters: Mutex::default(), me, take, end }
    }

    /// Takes `key`'s turn for at most `hold` (distributed only; in process
    /// the frontier is the only one that hands out turns): `None` when it
    /// is this worker's now, or how long another worker keeps it. Fails
    /// open: a Redis error gives the turn.
    pub async fn take_turn(&self, key: &str, hold: Duration) -> Option<Duration> {
        let Shared::Redis(connection, prefix) = &self.shared else { return None };
        let ms = u64::try_from(hold.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut call = self.take.key(format!("{prefix}turn:{key}"));
        call.arg(&self.me).arg(ms);
        let mut connection = connection.clone();
        match call.invoke_async::<u64>(&mut connection).await {
            Ok(0) => None,
            Ok(left) => Some(Duration::from_millis(left)),
            Err(error) => {
                tracing::warn!(%error, "taking a turn failed; going ahead (fail open)");
                None
            }
        }
    }

    /// Ends this worker's turn of `key`: no other worker gets it before
    /// `wait` has passed.
    pub async fn end_turn(&self, key: &str, wait: Duration) {
        let Shared::Redis(connection, prefix) = &self.shared else { return };
        let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut call = self.end.key(format!("{prefix}turn:{key}"));
        call.arg(&self.me).arg(ms);
        let mut connection = connection.clone();
        if let Err(error) = call.invoke_async::<u64>(&mut connection).await {
            tracing::warn!(%error, "ending a turn failed: it expires by itself");
        }
    }

    /// Asks to send one request to `key`, whose delay is `delay`: `None`
    /// to go ahead, or how long to wait first.
    ///
    /// # Errors
    /// A limiter that cannot be built for this delay (under a microsecond).
    pub async fn check(&self, key: &str, delay: Duration) -> Result<Option<Duration>, LimitError> {
        if delay.is_zero() {
            return Ok(None);
        }
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX).max(1);
        let limiter = self.limiter(ms)?;
        let decision = limiter.check(key).await?;
        if decision.allowed {
            return Ok(None);
        }
        let wait = decision.retry_after.unwrap_or(delay);
        Ok(Some(wait.max(Duration::from_millis(1))))
    }

    fn limiter(&self, ms: u64) -> Result<AnyKeyedLimiter<str>, LimitError> {
        let mut limiters = self.limiters.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(limiter) = limiters.get(&ms) {
            return Ok(limiter.clone());
        }
        let rate = Rate::new(1, Duration::from_millis(ms))?;
        let limiter = match &self.shared {
            Shared::Local => {
                let keyed: Keyed<String, TokenBucket> =
                    Keyed::new(LOCAL_KEYS, move || TokenBucket::new(1, rate))?;
                AnyKeyedLimiter::new(keyed)
            }
            Shared::Redis(connection, prefix) => {
                let limit = Limit::new(Algorithm::TokenBucket, rate);
                let limiter =
                    RedisLimiter::new(connection.clone(), limit, &format!("{prefix}{ms}ms:"))?
                        .with_policy(FailurePolicy::Open);
                AnyKeyedLimiter::new(limiter)
            }
        };
        limiters.insert(ms, limiter.clone());
        Ok(limiter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_request_per_delay_per_key() {
        let p = Politeness::new(Shared::Local);
        let delay = Duration::from_secs(60);
        assert_eq!(p.check("127.0.0.2", delay).await.unwrap(), None);
        let wait = p.check("127.0.0.2", delay).await.unwrap().expect("denied");
        assert!(wait > Duration::from_secs(59) && wait <= delay, "{wait:?}");
        assert_eq!(p.check("127.0.0.3", delay).await.unwrap(), None, "another key");
        assert_eq!(
            p.check("127.0.0.2", Duration::from_millis(1)).await.unwrap(),
            None,
            "another delay"
        );
    }
}
