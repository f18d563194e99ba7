//! The distributed mode: the URLs of a crawl live in Redis as tasks of
//! sysblocks-scheduler, and each worker fetches the hosts that the
//! consistent-hash ring gives it.
//!
//! ```text
//!  politeness key (host, or the address hosts share)
//!     │ jump_hash(hash_key(key), partitions)        (fixed: never moves)
//!     ▼
//!  partition p ── one scheduler queue `crawl-{run}-p{p}` on Redis
//!     │ HashRing of the live workers: node_for("partition-p")
//!     ▼
//!  the owning worker claims p's tasks into its frontier, fetches them in
//!  its hosts' turns, submits the links it finds to their partitions,
//!  then acks; a 429/503 or a failed fetch is `fail`ed with a retry time
//! ```
//!
//! * **Dedupe.** A URL's task carries the URL as its idempotency key, so a
//!   URL found by several workers is queued once; each worker's Bloom
//!   filter (its frontier's) saves the round trip for URLs it has sent
//!   before.
//! * **Membership.** Each worker writes a heartbeat (a sorted set of
//!   worker ids by last beat); the live workers are those seen within
//!   `dead_after`, and every worker builds the same ring from them. A
//!   worker that joins takes only its partitions, one that leaves gives
//!   only its own: consistent hashing's promise, on partitions.
//! * **Recovery.** A claimed task is leased; the worker renews its leases
//!   while the URLs wait in its frontier. A killed worker's leases run
//!   out, the reaper (every worker runs it) puts the tasks back, and the
//!   partition's new owner claims them. A URL whose fetch had been sent
//!   when its worker died is fetched again: the one repeat at-least-once
//!   allows, and the only one.
//! * **Partitions given up** (another worker owns them now) are released
//!   at once, so the new owner need not wait for the leases to run out.
//! * **The end.** The crawl is over when no partition has a task waiting,
//!   ready, running or retrying: links are submitted before their page's
//!   task is acked, so no work can appear after that.
//!
//! The crawler does not use the scheduler's `Worker`: the order in which
//! URLs are fetched is the frontier's (by host turn), which a queue's
//! priority order cannot express, so it drives the backend's transitions
//! (claim, renew, ack, fail, release, reap) itself.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sysblocks_consistent_hash::{HashRing, hash_key, jump_hash};
use sysblocks_core::RedisConnection;
use sysblocks_scheduler::{
    AttemptLimits, Backend, RedisBackend, Scheduler, SchedulerError, Task, TaskId, WallClock,
};

use crate::frontier::{Entry, Frontier, Pushed};

/// The task name of a fetch.
pub const FETCH_TASK: &str = "fetch";

/// How the workers of one crawl share it.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The crawl's name: its Redis keys start with `crawl-{run}`.
    pub run: String,
    /// This worker's id (unique among the crawl's workers).
    pub worker: String,
    /// Partitions of the politeness keys (fixed for a crawl).
    pub partitions: u32,
    /// How long a claimed URL stays this worker's without a renewal.
    pub lease: Duration,
    /// How often a worker says it is alive.
    pub heartbeat: Duration,
    /// A worker not heard from for this long is taken for dead.
    pub dead_after: Duration,
    /// URLs claimed into the frontier at most (what a dead worker's
    /// successor must wait a lease for).
    pub max_held: usize,
    /// Fetch attempts of a URL at most (failed fetches, 429 and 503).
    pub max_attempts: u32,
}

impl Default for ClusterConfig {
    /// 16 partitions, 30 s leases, a heartbeat every 500 ms, dead after
    /// 3 s, 2,000 URLs held, 6 attempts.
    fn default() -> Self {
        ClusterConfig {
            run: "crawl".to_owned(),
            worker: "w1".to_owned(),
            partitions: 16,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_millis(500),
            dead_after: Duration::from_secs(3),
            max_held: 2_000,
            max_attempts: 6,
        }
    }
}

/// A fetch task's payload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FetchTask {
    /// The normalised URL.
    pub url: String,
    /// Its politeness key.
    pub key: String,
    /// Links from a seed.
    pub depth: u32,
    /// Redirects followed to reach it.
    pub hops: u32,
    /// Front queue.
    pub priority: u32,
}

/// A claimed URL.
#[derive(Debug, Clone)]
struct Held {
    partition: usize,
    id: TaskId,
    token: u64,
    renewed_ms: u64,
}

/// How a URL's task ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// Fetched (or skipped for good): acknowledged.
    Done,
    /// Try again at this time (ms since the epoch).
    RetryAt(u64),
    /// Failed for good, with why (a dead letter).
    GiveUp(String),
}

/// What happened to the worker's claims, for its event log.
#[derive(Debug, Default)]
pub struct Lost {
    /// URLs whose lease was lost (reaped: another worker may fetch them).
    pub urls: Vec<String>,
}

/// The distributed queue of one worker.
#[derive(Debug)]
pub struct Cluster {
    config: ClusterConfig,
    connection: RedisConnection,
    backends: Vec<Arc<RedisBackend>>,
    schedulers: Vec<Scheduler<RedisBackend>>,
    owned: Vec<bool>,
    live: Vec<String>,
    held: HashMap<Box<str>, Held>,
    /// Held URLs being fetched now: kept (and acked when done) even if
    /// their partition is given up meanwhile, so that the new owner does
    /// not fetch them again.
    in_flight: HashSet<Box<str>>,
    /// Whether some held URLs may belong to partitions given up.
    release_due: bool,
    /// Links waiting to be submitted, per partition.
    outbox: Vec<Vec<Task>>,
    /// Finished tasks whose ack or fail has not reached Redis yet.
    unacked: Vec<(Box<str>, Held, Finish)>,
    last_beat: u64,
    last_reap: u64,
    last_renew: u64,
}

/// Milliseconds since the epoch on this machine's clock (the clock the
/// workers of a crawl share; leases are on it).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Cluster {
    /// Joins the crawl `config.run` on `connection`.
    ///
    /// # Errors
    /// A bad run name, no partition, or Redis failing the first heartbeat.
    pub async fn join(
        connection: RedisConnection,
        config: ClusterConfig,
    ) -> Result<Cluster, SchedulerError> {
        if config.partitions == 0 || config.worker.is_empty() || config.lease.is_zero() {
            return Err(SchedulerError::InvalidQueue {
                name: format!(
                    "crawl {:?}: partitions ({}), the worker id and the lease must not be zero or empty",
                    config.run, config.partitions
                ),
            });
        }
        let mut backends = Vec::new();
        let mut schedulers = Vec::new();
        for p in 0..config.partitions {
            let backend = Arc::new(RedisBackend::new(
                connection.clone(),
                &format!("crawl-{}-p{p}", config.run),
            )?);
            schedulers.push(Scheduler::new(Arc::clone(&backend), Arc::new(WallClock)));
            backends.push(backend);
        }
        let partitions = config.partitions as usize;
        let mut cluster = Cluster {
            owned: vec![false; partitions],
            outbox: (0..partitions).map(|_| Vec::new()).collect(),
            config,
            connection,
            backends,
            schedulers,
            live: Vec::new(),
            held: HashMap::new(),
            in_flight: HashSet::new(),
            release_due: false,
            unacked: Vec::new(),
            last_beat: 0,
            last_reap: 0,
            last_renew: now_ms(),
        };
        cluster.heartbeat(now_ms()).await?;
        Ok(cluster)
    }

    /// The partition of a politeness key.
    pub fn partition_of(&self, key: &str) -> usize {
        jump_hash(hash_key(key.as_bytes()), self.config.partitions) as usize
    }

    /// The partitions this worker owns now.
    pub fn owned(&self) -> Vec<usize> {
        (0..self.owned.len()).filter(|p| self.owned[*p]).collect()
    }

    /// The workers seen alive at the last heartbeat.
    pub fn live(&self) -> &[String] {
        &self.live
    }

    /// URLs claimed and not finished.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Whether this worker still holds `url`'s lease (a URL whose lease
    /// was lost or given up is skipped when its turn comes).
    pub fn holds(&self, url: &str) -> bool {
        self.held.contains_key(url)
    }

    fn members_key(&self) -> String {
        format!("crawl-{}:workers", self.config.run)
    }

    /// Says this worker is alive and reads who else is; recomputes the
    /// partitions owned, releasing those given up.
    async fn heartbeat(&mut self, now: u64) -> Result<(), SchedulerError> {
        let key = self.members_key();
        let beat = redis::cmd("ZADD").arg(&key).arg(now).arg(&self.config.worker).clone();
        self.connection.run::<()>(&beat).await.map_err(backend)?;
        let since = now.saturating_sub(millis(self.config.dead_after));
        let live = redis::cmd("ZRANGEBYSCORE").arg(&key).arg(since).arg("+inf").clone();
        let mut live: Vec<String> = self.connection.run(&live).await.map_err(backend)?;
        live.sort();
        if !live.contains(&self.config.worker) {
            live.push(self.config.worker.clone());
            live.sort();
        }
        self.last_beat = now;
        if live != self.live {
            let owners = owners(&live, self.config.partitions);
            for (p, owner) in owners.iter().enumerate() {
                self.owned[p] = *owner == self.config.worker;
            }
            tracing::info!(worker = %self.config.worker, live = ?live, owned = ?self.owned(), "membership changed");
            self.live = live;
            self.release_due = true;
        }
        Ok(())
    }

    /// Gives back the URLs of partitions this worker no longer owns, but
    /// those being fetched.
    async fn release_unowned(&mut self, now: u64) {
        self.release_due = false;
        let given: Vec<Box<str>> = self
            .held
            .iter()
            .filter(|(url, h)| !self.owned[h.partition] && !self.in_flight.contains(*url))
            .map(|(url, _)| url.clone())
            .collect();
        for url in given {
            if let Some(held) = self.held.remove(&url) {
                let _ = self.backends[held.partition].release(&held.id, held.token, now).await;
            }
        }
    }

    /// Queues a link found by this worker for the partition of its key.
    ///
    /// # Errors
    /// A payload that does not serialise.
    pub fn submit(&mut self, entry: &Entry) -> Result<(), SchedulerError> {
        let partition = self.partition_of(&entry.key);
        let payload = FetchTask {
            url: entry.url.to_string(),
            key: entry.key.to_string(),
            depth: entry.depth,
            hops: entry.hops,
            priority: u32::try_from(entry.priority).unwrap_or(u32::MAX),
        };
        let task = Task::new(FETCH_TASK, &payload)?
            .priority(u8::MAX.saturating_sub(u8::try_from(entry.priority).unwrap_or(u8::MAX)))
            .idempotency_key(&entry.url, Duration::from_secs(30 * 24 * 3600));
        self.outbox[partition].push(task);
        Ok(())
    }

    /// A held URL's fetch starts.
    pub fn started(&mut self, url: &str) {
        self.in_flight.insert(url.into());
    }

    /// A held URL's fetch came back without finishing it (the URL waits
    /// in the frontier again): if its partition was given up meanwhile, it
    /// is released at the next [`sync`](Self::sync).
    pub fn stopped(&mut self, url: &str) {
        self.in_flight.remove(url);
        if self.held.get(url).is_some_and(|h| !self.owned[h.partition]) {
            self.release_due = true;
        }
    }

    /// Records how a URL's task ended; sent to Redis at the next
    /// [`sync`](Self::sync).
    pub fn finish(&mut self, url: &str, finish: Finish) {
        self.in_flight.remove(url);
        if let Some(held) = self.held.remove(url) {
            self.unacked.push((url.into(), held, finish));
        }
    }

    /// One round of talking to Redis: submit links (before acking the
    /// pages they came from), ack and fail finished tasks, heartbeat, renew
    /// leases, reap, and claim tasks of owned partitions into `frontier`.
    /// Errors (Redis down) are logged and left for the next round; nothing
    /// is dropped.
    pub async fn sync(&mut self, frontier: &mut Frontier, lost: &mut Lost) {
        let now = now_ms();
        if !self.flush(lost).await {
            return;
        }
        if self.release_due {
            self.release_unowned(now).await;
        }
        if now >= self.last_beat + millis(self.config.heartbeat)
            && let Err(error) = self.heartbeat(now).await
        {
            tracing::warn!(%error, "heartbeat failed");
        }
        if now >= self.last_renew + millis(self.config.lease) / 3 {
            self.renew(now, lost).await;
        }
        if now >= self.last_reap + 1000 {
            self.last_reap = now;
            let limits = AttemptLimits::new(self.config.max_attempts);
            for backend in &self.backends {
                if let Err(error) = backend.reap(now, &limits).await {
                    tracing::warn!(%error, "reap failed");
                    break;
                }
            }
        }
        if let Err(error) = self.claim(now, frontier).await {
            tracing::warn!(%error, "claim failed");
        }
    }

    /// Sends the links found and the tasks finished (links first: a page
    /// is acked only once its links are queued). Returns whether the links
    /// went out.
    pub async fn flush(&mut self, lost: &mut Lost) -> bool {
        if let Err(error) = self.send_outbox().await {
            tracing::warn!(%error, "submitting links failed; kept for the next round");
            return false;
        }
        self.send_finished(now_ms(), lost).await;
        true
    }

    async fn send_outbox(&mut self) -> Result<(), SchedulerError> {
        for p in 0..self.outbox.len() {
            if self.outbox[p].is_empty() {
                continue;
            }
            let tasks = self.outbox[p].clone();
            match self.schedulers[p].submit_all(tasks).await {
                Ok(_) => self.outbox[p].clear(),
                Err(SchedulerError::DuplicateId { .. }) => {
                    // An earlier send of this batch was added though its
                    // reply was lost (Redis went away). Sent again under new
                    // ids, the URLs already queued are recognised by their
                    // idempotency keys and only the others are added.
                    let fresh = std::mem::take(&mut self.outbox[p]);
                    self.outbox[p] =
                        fresh.into_iter().map(|t| t.with_id(TaskId::random())).collect();
                    return Err(SchedulerError::DuplicateId { id: "(a resent batch)".into() });
                }
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    async fn send_finished(&mut self, now: u64, lost: &mut Lost) {
        let mut keep = Vec::new();
        for (url, held, finish) in std::mem::take(&mut self.unacked) {
            let backend = &self.backends[held.partition];
            let result = match &finish {
                Finish::Done => backend.ack(&held.id, held.token, now).await,
                Finish::RetryAt(at) => {
                    backend.fail(&held.id, held.token, now, "retry", Some(*at)).await
                }
                Finish::GiveUp(why) => backend.fail(&held.id, held.token, now, why, None).await,
            };
            match result {
                Ok(()) => {}
                Err(SchedulerError::StaleLease { .. }) => lost.urls.push(url.to_string()),
                Err(error) => {
                    tracing::warn!(%error, "ack failed; kept for the next round");
                    keep.push((url, held, finish));
                }
            }
        }
        self.unacked = keep;
    }

    async fn renew(&mut self, now: u64, lost: &mut Lost) {
        self.last_renew = now;
        let lease = millis(self.config.lease);
        let due: Vec<Box<str>> = self
            .held
            .iter()
            .filter(|(_, h)| now >= h.renewed_ms + lease / 3)
            .map(|(url, _)| url.clone())
            .collect();
        for chunk in due.chunks(64) {
            let calls = chunk.iter().filter_map(|url| {
                let held = self.held.get(url)?;
                let backend = Arc::clone(&self.backends[held.partition]);
                let (id, token) = (held.id.clone(), held.token);
                Some(async move { (url.clone(), backend.renew(&id, token, now, lease).await) })
            });
            for (url, result) in futures_util::future::join_all(calls).await {
                match result {
                    Ok(()) => {
                        if let Some(held) = self.held.get_mut(&url) {
                            held.renewed_ms = now;
                        }
                    }
                    Err(SchedulerError::StaleLease { .. }) => {
                        self.held.remove(&url);
                        lost.urls.push(url.to_string());
                    }
                    Err(error) => {
                        tracing::warn!(%error, "renew failed");
                        return;
                    }
                }
            }
        }
    }

    async fn claim(&mut self, now: u64, frontier: &mut Frontier) -> Result<(), SchedulerError> {
        let owned = self.owned();
        if owned.is_empty() {
            return Ok(());
        }
        let room = self.config.max_held.saturating_sub(self.held.len());
        if room < self.config.max_held / 4 {
            return Ok(());
        }
        let per = room.div_ceil(owned.len()).max(1);
        let lease = millis(self.config.lease);
        for p in owned {
            let (claimed, _) = self.backends[p].claim(now, lease, per).await?;
            for task in claimed {
                let Ok(payload) = serde_json::from_str::<FetchTask>(&task.payload) else {
                    let why = "the payload is not a fetch task";
                    let _ = self.backends[p].fail(&task.id, task.token, now, why, None).await;
                    continue;
                };
                let url: Box<str> = payload.url.into();
                let held = Held { partition: p, id: task.id, token: task.token, renewed_ms: now };
                if let Some(old) = self.held.insert(url.clone(), held) {
                    // Ours before (its lease ran out and came back to us):
                    // it is in the frontier already.
                    drop(old);
                    continue;
                }
                let entry = Entry {
                    url: url.clone(),
                    key: payload.key.into(),
                    depth: payload.depth,
                    hops: payload.hops,
                    priority: payload.priority as usize,
                    attempts: task.attempt.saturating_sub(1),
                };
                if frontier.enqueue_claimed(entry) == Pushed::HostFull {
                    tracing::info!(%url, "host full: not fetched");
                    self.finish(&url, Finish::Done);
                }
            }
        }
        Ok(())
    }

    /// Whether the whole crawl is over: no partition has a task waiting,
    /// ready, running or retrying, and this worker has nothing unsent.
    ///
    /// # Errors
    /// Redis failing.
    pub async fn crawl_is_over(&self) -> Result<bool, SchedulerError> {
        if !self.held.is_empty()
            || !self.unacked.is_empty()
            || self.outbox.iter().any(|o| !o.is_empty())
        {
            return Ok(false);
        }
        for backend in &self.backends {
            let c = backend.counts().await?;
            if c.waiting + c.scheduled + c.ready + c.running + c.retrying > 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Leaves the crawl: releases what is held, removes the heartbeat.
    pub async fn leave(&mut self) {
        let now = now_ms();
        for (_, held) in std::mem::take(&mut self.held) {
            let _ = self.backends[held.partition].release(&held.id, held.token, now).await;
        }
        let bye = redis::cmd("ZREM").arg(self.members_key()).arg(&self.config.worker).clone();
        let _ = self.connection.run::<()>(&bye).await;
    }
}

/// The owner of each of `partitions` partitions among the `live` workers:
/// partition `p` belongs to the ring node of the bytes `partition-{p}`
/// (160 virtual nodes per worker), so that a worker joining takes only
/// partitions, and one leaving gives only its own.
pub fn owners(live: &[String], partitions: u32) -> Vec<String> {
    let mut ring: HashRing<String> = HashRing::new();
    for worker in live {
        let _ = ring.add(worker.clone());
    }
    (0..partitions)
        .map(|p| ring.node_for(format!("partition-{p}").as_bytes()).cloned().unwrap_or_default())
        .collect()
}

fn backend(error: redis::RedisError) -> SchedulerError {
    SchedulerError::Backend(sysblocks_scheduler::BackendError::new(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workers(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("w{i}")).collect()
    }

    #[test]
    fn a_worker_joining_or_leaving_moves_only_its_partitions() {
        for n in 1..8 {
            let before = owners(&workers(n), 64);
            let after = owners(&workers(n + 1), 64);
            let joined = format!("w{}", n + 1);
            let mut moved = 0;
            for (b, a) in before.iter().zip(&after) {
                if b != a {
                    assert_eq!(a, &joined, "a partition moved between two old workers");
                    moved += 1;
                }
            }
            assert!(moved > 0, "the new worker owns something");
            // Leaving is the same change read the other way round.
            let gone: Vec<String> = workers(n + 1).into_iter().filter(|w| *w != "w1").collect();
            for (b, a) in after.iter().zip(&owners(&gone, 64)) {
                assert!(b == a || b == "w1", "only w1's partitions move when it leaves");
            }
        }
        assert!(owners(&[], 4).iter().all(String::is_empty));
    }
}
