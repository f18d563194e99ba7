//! The [`Worker`] that claims tasks and runs them with their handlers, and
//! its [`WorkerConfig`] and [`WorkerStats`].

use std::collections::HashMap;
use std::fmt;
use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::backend::{Backend, Turn};
use crate::clock::{Clock, millis};
use crate::error::SchedulerError;
#[cfg(feature = "rate-limit")]
use crate::rate_limit::RateLimit;
use crate::registry::{CatchUnwind, Context, Registry, TaskError};
use crate::task::{Claimed, TaskId};

/// The leases of the attempts running as tasks of their own, by task id.
type AttemptMap = HashMap<tokio::task::Id, (TaskId, u64), foldhash::fast::RandomState>;

/// A first poll that takes longer than this sends the rest of its batch
/// of attempts to tasks of their own without polling them first.
const INLINE_POLL: Duration = Duration::from_micros(100);

/// A worker's settings.
#[derive(Clone)]
pub struct WorkerConfig {
    /// Attempts running at once (at least 1).
    pub concurrency: usize,
    /// How long a claim lasts without renewal; renewed every third of it.
    /// An attempt whose renewals keep failing is stopped (and not acked)
    /// once a tenth of the lease is all that is surely left of it.
    ///
    /// Lease ends are times on the workers' own clocks (the backends take
    /// `now` from the caller), so the clocks of the workers sharing a queue
    /// must agree to within that tenth of a lease: a worker whose clock runs
    /// ahead by more may reap a lease that its holder still believes in.
    pub lease: Duration,
    /// How soon an idle worker looks again after a claim that found
    /// nothing. Each empty claim doubles the pause, up to
    /// [`max_poll_interval`](Self::max_poll_interval); a claim that finds
    /// work resets it. A delayed task's due time, or a finished attempt,
    /// wakes the worker sooner.
    pub poll_interval: Duration,
    /// The longest pause of an idle worker: about how long a task submitted
    /// to an idle queue may wait to be noticed, and what an idle worker
    /// costs its backend (two claims a second at 500 ms).
    pub max_poll_interval: Duration,
    /// An optional limit on how fast this worker starts tasks: one
    /// in-process limiter ([`RateLimit::local`]), shared by the workers of
    /// one process, or a Redis-backed one shared by every process of the
    /// queue ([`RateLimit::shared`] with a `RedisLimiter`).
    #[cfg(feature = "rate-limit")]
    pub rate_limit: Option<RateLimit>,
}

impl fmt::Debug for WorkerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut f = f.debug_struct("WorkerConfig");
        f.field("concurrency", &self.concurrency)
            .field("lease", &self.lease)
            .field("poll_interval", &self.poll_interval)
            .field("max_poll_interval", &self.max_poll_interval);
        #[cfg(feature = "rate-limit")]
        f.field("rate_limit", &self.rate_limit.as_ref().map(RateLimit::limit));
        f.finish()
    }
}

impl Default for WorkerConfig {
    /// 16 at once, 30 s leases, idle polls from 5 ms backing off to 500 ms,
    /// no rate limit.
    fn default() -> Self {
        WorkerConfig {
            concurrency: 16,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_millis(5),
            max_poll_interval: Duration::from_millis(500),
            #[cfg(feature = "rate-limit")]
            rate_limit: None,
        }
    }
}

/// What a worker has done, as of when [`Worker::stats`] was called.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Attempts that succeeded.
    pub succeeded: u64,
    /// Attempts that failed (and were retried or dead-lettered).
    pub failed: u64,
    /// Attempts whose lease was lost before they finished.
    pub lost_leases: u64,
    /// Tasks given back at shutdown.
    pub released: u64,
    /// Claims made (including those that found nothing): with the idle
    /// backoff, an idle worker makes a few per second, not hundreds.
    pub claims: u64,
}

/// The counters behind [`WorkerStats`], shared with the attempts.
#[derive(Debug, Default)]
struct Counters {
    succeeded: AtomicU64,
    failed: AtomicU64,
    lost_leases: AtomicU64,
    released: AtomicU64,
    claims: AtomicU64,
}

/// Claims tasks from a backend and runs them with their handlers, up to a
/// concurrency limit, renewing each lease while the handler runs. A reaper
/// in the same loop returns expired leases (of any worker) to the queue.
///
/// * A handler that returns an error, panics, or exceeds its timeout is a
///   failed attempt: retried per its [`RetryPolicy`](crate::RetryPolicy) or dead-lettered.
/// * An unknown task name, or a payload that does not deserialize, is a
///   permanent failure (dead-lettered with the reason).
/// * **At least once**: a task is acknowledged after its handler returns,
///   so a worker that dies after the work but before the ack leaves the
///   task to run again when its lease expires. Handlers must be idempotent
///   (the fencing token in the [`Context`] helps).
#[derive(Debug)]
pub struct Worker<B: Backend> {
    backend: Arc<B>,
    registry: Arc<Registry>,
    clock: Arc<dyn Clock>,
    config: WorkerConfig,
    stats: Arc<Counters>,
    stop: watch::Sender<bool>,
    /// Each handler's attempts, for the reaper.
    attempt_limits: crate::backend::AttemptLimits,
}

impl<B: Backend> Worker<B> {
    /// A worker on `backend` with `registry`'s handlers, on the system
    /// clock ([`with_clock`](Self::with_clock) sets another).
    ///
    /// # Errors
    /// [`SchedulerError::ZeroConcurrency`], a lease under 2 ms or a zero
    /// poll interval ([`SchedulerError::InvalidPolicy`]).
    pub fn new(
        backend: Arc<B>,
        registry: Registry,
        config: WorkerConfig,
    ) -> Result<Self, SchedulerError> {
        if config.concurrency == 0 {
            return Err(SchedulerError::ZeroConcurrency);
        }
        if config.lease < Duration::from_millis(2) {
            return Err(SchedulerError::InvalidPolicy {
                message: "the lease must be at least 2 ms".into(),
            });
        }
        let mut attempt_limits = crate::backend::AttemptLimits::default();
        for (name, entry) in &registry.handlers {
            attempt_limits.set(name, entry.options.retry.max_attempts());
        }
        Ok(Worker {
            attempt_limits,
            backend,
            registry: Arc::new(registry),
            clock: Arc::new(crate::clock::WallClock),
            config,
            stats: Arc::new(Counters::default()),
            stop: watch::channel(false).0,
        })
    }

    /// The same worker on another clock (tokio's paused clock in tests, a
    /// `TokioClock`); every worker of a queue should read the same time.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// What this worker has done so far.
    pub fn stats(&self) -> WorkerStats {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WorkerStats {
            succeeded: read(&self.stats.succeeded),
            failed: read(&self.stats.failed),
            lost_leases: read(&self.stats.lost_leases),
            released: read(&self.stats.released),
            claims: read(&self.stats.claims),
        }
    }

    /// Asks [`run`](Self::run) to stop claiming; in-flight attempts get
    /// `deadline` to finish, then are cancelled and their tasks released
    /// back to the queue.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }

    /// Runs until [`shutdown`](Self::shutdown), then drains within
    /// `drain_deadline`.
    ///
    /// # Errors
    /// None today: backend failures are logged and retried.
    pub async fn run(&self, drain_deadline: Duration) -> Result<(), SchedulerError> {
        let mut stop = self.stop.subscribe();
        let lease_ms = millis(self.config.lease);
        // An attempt ends saying whether its task is to be acked: the loop
        // acks the attempts that finished together in one call (with its
        // next claim when it makes one).
        let mut in_flight: JoinSet<bool> = JoinSet::new();
        let mut attempts: AttemptMap = AttemptMap::default();
        let mut to_ack: Vec<(TaskId, u64)> = Vec::new();
        // One signal stops every attempt's handler (a drain that timed out).
        let (cancel, cancelled) = watch::channel(false);
        let mut next_reap = 0u64;
        // The idle pause: doubles after each claim that found nothing.
        let min_pause = self.config.poll_interval.max(Duration::from_millis(1));
        let max_pause = self.config.max_poll_interval.max(min_pause);
        let mut idle = min_pause;
        loop {
            if *stop.borrow() {
                break;
            }
            let now = self.clock.now_ms();
            if now >= next_reap {
                if let Err(e) = self.backend.reap(now, &self.attempt_limits).await {
                    tracing::warn!(error = %e, "reaping expired leases failed");
                }
                next_reap = now + lease_ms / 2;
            }
            // Collect every finished attempt first, so that acks and claims
            // come in batches rather than one task per round trip.
            while let Some(done) = in_flight.try_join_next_with_id() {
                finished(done, &mut attempts, &mut to_ack);
            }
            let free = self.config.concurrency.saturating_sub(in_flight.len());
            let mut next_due = None;
            let mut claimed_any = false;
            let mut rate_wait = None;
            if free > 0 {
                let (allowed, wait) = self.rate_allowance(free).await;
                rate_wait = wait.filter(|_| allowed == 0);
                if allowed > 0 {
                    self.stats.claims.fetch_add(1, Ordering::Relaxed);
                    let turn = self.backend.ack_and_claim(&to_ack, now, lease_ms, allowed).await;
                    self.acked(&mut to_ack, turn.as_ref().map(|t| &t.acked[..]));
                    match turn {
                        Ok(Turn { claimed, next_due: due, .. }) => {
                            next_due = due;
                            claimed_any = !claimed.is_empty();
                            idle = if claimed_any {
                                min_pause
                            } else {
                                idle.saturating_mul(2).min(max_pause)
                            };
                            self.give_back(allowed - claimed.len()).await;
                            // Each attempt is polled once here: one that
                            // finishes at once (most handlers are short)
                            // costs no task of its own. The rest are
                            // spawned, and so are all after a first poll
                            // that ran long (a handler that computes before
                            // its first await must not hold up the loop).
                            let mut inline = true;
                            for task in claimed {
                                let (id, token) = (task.id.clone(), task.token);
                                // The lease runs from the `now` of the claim.
                                let mut attempt =
                                    Box::pin(self.attempt(task, now, cancelled.clone()));
                                if inline {
                                    let started = Instant::now();
                                    let first =
                                        poll_fn(|cx| Poll::Ready(attempt.as_mut().poll(cx)));
                                    let first = first.await;
                                    inline = started.elapsed() < INLINE_POLL;
                                    if let Poll::Ready(ack) = first {
                                        if ack {
                                            to_ack.push((id, token));
                                        }
                                        continue;
                                    }
                                }
                                let handle = in_flight.spawn(attempt);
                                attempts.insert(handle.id(), (id, token));
                            }
                        }
                        Err(e) => {
                            self.give_back(allowed).await;
                            tracing::warn!(error = %e, "claiming tasks failed");
                        }
                    }
                }
            }
            // No claim this turn (no room, or the rate limit): ack alone.
            self.ack_finished(&mut to_ack).await;
            if claimed_any && in_flight.len() < self.config.concurrency {
                continue; // there may be more ready at once
            }
            let sleep = match (rate_wait, next_due) {
                // Nothing may start before the limit has room again (a
                // second at most, so that a raised limit is noticed).
                (Some(wait), _) => wait.clamp(Duration::from_millis(1), Duration::from_secs(1)),
                (None, Some(due)) => Duration::from_millis(due.saturating_sub(now)).min(idle),
                (None, None) => idle,
            };
            tokio::select! {
                Some(done) = in_flight.join_next_with_id() => {
                    finished(done, &mut attempts, &mut to_ack);
                }
                () = tokio::time::sleep(sleep) => {}
                _ = stop.changed() => {}
            }
        }
        // Drain: let attempts finish within the deadline, then cancel the
        // rest and give their tasks back.
        self.ack_finished(&mut to_ack).await;
        let drained = tokio::time::timeout(drain_deadline, async {
            while let Some(done) = in_flight.join_next_with_id().await {
                finished(done, &mut attempts, &mut to_ack);
            }
        })
        .await;
        if drained.is_err() {
            // Stop the handlers first, so that none still runs once its
            // task is back in the queue for another worker.
            let _ = cancel.send(true);
            in_flight.abort_all();
            // An attempt that succeeded before the abort took effect is
            // acked; every other one is released below (a release of one
            // that recorded its failure is refused as stale).
            while let Some(done) = in_flight.join_next_with_id().await {
                if let Ok((id, true)) = done {
                    to_ack.extend(attempts.remove(&id));
                }
            }
        }
        self.ack_finished(&mut to_ack).await;
        if drained.is_err() {
            for (_, (id, token)) in attempts.drain() {
                if self.backend.release(&id, token, self.clock.now_ms()).await.is_ok() {
                    self.stats.released.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }

    /// How many tasks the rate limit lets this worker start now (taken
    /// from the limit; unused ones are given back), and when the limit has
    /// room again if it has none now.
    async fn rate_allowance(&self, free: usize) -> (usize, Option<Duration>) {
        #[cfg(feature = "rate-limit")]
        if let Some(limit) = &self.config.rate_limit {
            return limit.take(free).await;
        }
        (free, None)
    }

    /// Acks the attempts that succeeded since the last call, in one backend
    /// call (none when there are none).
    async fn ack_finished(&self, to_ack: &mut Vec<(TaskId, u64)>) {
        if to_ack.is_empty() {
            return;
        }
        let answers = self.backend.ack_many(to_ack, self.clock.now_ms()).await;
        self.acked(to_ack, answers.as_deref());
    }

    /// Logs what went wrong with acking `to_ack`, then empties it. A failed
    /// call leaves those tasks to run again once their leases expire (at
    /// least once), as after a worker that died before its ack.
    fn acked(
        &self,
        to_ack: &mut Vec<(TaskId, u64)>,
        answers: Result<&[Result<(), SchedulerError>], &SchedulerError>,
    ) {
        match answers {
            Ok(answers) => {
                for ((id, _), answer) in to_ack.iter().zip(answers) {
                    if let Err(e) = answer {
                        tracing::warn!(task = %id, error = %e, "acking an attempt failed");
                    }
                }
            }
            Err(e) if !to_ack.is_empty() => {
                tracing::warn!(tasks = to_ack.len(), error = %e, "acking attempts failed");
            }
            Err(_) => {}
        }
        to_ack.clear();
    }

    /// Gives back starts granted by the rate limit but not used.
    async fn give_back(&self, unused: usize) {
        #[cfg(feature = "rate-limit")]
        if let Some(limit) = &self.config.rate_limit {
            limit.give_back(unused).await;
        }
        #[cfg(not(feature = "rate-limit"))]
        let _ = unused;
    }

    /// One attempt: run the handler under its timeout, renewing the lease,
    /// then record a failure, or end with `true`: the task is to be acked
    /// (the worker's loop acks finished attempts together).
    fn attempt(
        &self,
        task: Claimed,
        claimed_at: u64,
        cancelled: watch::Receiver<bool>,
    ) -> impl Future<Output = bool> + Send + 'static {
        let backend = self.backend.clone();
        let registry = self.registry.clone();
        let clock = self.clock.clone();
        let stats = self.stats.clone();
        let lease_ms = millis(self.config.lease);
        async move {
            let entry = registry.handlers.get(&task.name).cloned();
            let options = entry.as_ref().map(|e| e.options).unwrap_or_default();
            let (lost_tx, lost_rx) = watch::channel(false);
            let ctx = Context {
                id: task.id.clone(),
                attempt: task.attempt,
                token: task.token,
                shutdown: cancelled,
                lost: lost_rx,
            };
            let outcome: Result<(), TaskError> = match entry {
                None => Err(TaskError::permanent(format!(
                    "no handler is registered for {:?}",
                    task.name
                ))),
                Some(entry) => {
                    let run = CatchUnwind((entry.handler)(ctx, &task.payload));
                    let renew = renew_loop(
                        backend.clone(),
                        clock.clone(),
                        (task.id.clone(), task.token),
                        claimed_at.saturating_add(lease_ms),
                        lease_ms,
                        lost_tx,
                    );
                    let result = tokio::select! {
                        // The handler first: one that finishes at its first
                        // poll never starts the renewal timer.
                        biased;
                        r = tokio::time::timeout(options.timeout, run) => r,
                        () = renew => {
                            // The lease is gone: another worker may have the
                            // task. Dropping the handler's future stops it.
                            stats.lost_leases.fetch_add(1, Ordering::Relaxed);
                            return false;
                        }
                    };
                    match result {
                        Ok(Ok(outcome)) => outcome,
                        Ok(Err(panic)) => {
                            Err(TaskError::retry(format!("handler panicked: {panic}")))
                        }
                        Err(_) => {
                            Err(TaskError::retry(format!("timed out after {:?}", options.timeout)))
                        }
                    }
                }
            };
            let now = clock.now_ms();
            let result = match &outcome {
                Ok(()) => {
                    stats.succeeded.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                Err(error) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    let retry_at = match error {
                        TaskError::Retry(_) if options.retry.should_retry(task.attempt) => {
                            let delay = options
                                .retry
                                .delay(task.attempt, Duration::from_millis(task.last_delay_ms));
                            Some(now.saturating_add(millis(delay)))
                        }
                        _ => None,
                    };
                    backend.fail(&task.id, task.token, now, error.message(), retry_at).await
                }
            };
            if let Err(e) = result {
                tracing::warn!(task = %task.id, error = %e, "finishing an attempt failed");
            }
            false
        }
    }
}

/// Renews the lease every third of a lease; returns (and says so on `lost`)
/// once the lease is lost, or may have been.
///
/// `expires` is when the lease runs out as far as this worker knows: the
/// claim's or the last successful renewal's time plus the lease. A renewal
/// that fails with a backend error is retried, but only while the lease is
/// surely still ours: once `expires` minus a safety margin (a tenth of the
/// lease, for clock skew between workers) has passed, another worker may
/// reap the task, so this attempt must stop and not ack. A renewal call
/// that hangs (a paused Redis) is cut off at that same moment. Renewing at
/// a third rather than a half leaves room for one slow call.
async fn renew_loop<B: Backend>(
    backend: Arc<B>,
    clock: Arc<dyn Clock>,
    (id, token): (TaskId, u64),
    mut expires: u64,
    lease_ms: u64,
    lost: watch::Sender<bool>,
) {
    let margin = lease_ms / 10;
    let every = Duration::from_millis((lease_ms / 3).max(1));
    loop {
        let now = clock.now_ms();
        let safe_until = expires.saturating_sub(margin);
        if now >= safe_until {
            tracing::warn!(task = %id, "lease may have expired (renewals failed); stopping the attempt");
            let _ = lost.send(true);
            return;
        }
        tokio::time::sleep(every.min(Duration::from_millis(safe_until - now))).await;
        let now = clock.now_ms();
        let left = Duration::from_millis(expires.saturating_sub(margin).saturating_sub(now));
        match tokio::time::timeout(left, backend.renew(&id, token, now, lease_ms)).await {
            Ok(Ok(())) => expires = now.saturating_add(lease_ms),
            Ok(Err(SchedulerError::StaleLease { .. } | SchedulerError::NotFound { .. })) => {
                let _ = lost.send(true);
                return;
            }
            // A backend hiccup: try again while the lease is surely ours.
            Ok(Err(e)) => tracing::warn!(task = %id, error = %e, "renewing a lease failed"),
            Err(_) => tracing::warn!(task = %id, "renewing a lease timed out"),
        }
    }
}

/// Forgets a finished attempt, whether it returned or was aborted
/// (attempts catch their handlers' panics, so abort is the only error),
/// and queues its lease for the next ack if it succeeded.
fn finished(
    done: Result<(tokio::task::Id, bool), tokio::task::JoinError>,
    attempts: &mut AttemptMap,
    to_ack: &mut Vec<(TaskId, u64)>,
) {
    let (id, succeeded) = done.unwrap_or_else(|e| (e.id(), false));
    if let Some(lease) = attempts.remove(&id)
        && succeeded
    {
        to_ack.push(lease);
    }
}
