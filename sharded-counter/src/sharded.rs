//! [`RedisShardedCounter`]: one logical counter spread over N Redis keys.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::Rng;
use redis::{Cmd, FromRedisValue};

use crate::error::CounterError;
use sysblocks_core::RedisConnection;

/// The most shards a counter may have.
pub const MAX_SHARDS: u32 = 1024;

/// Adds `ARGV[1]` to `KEYS[1]` unless the one-time id `KEYS[2]` has been
/// seen; remembers the id for `ARGV[2]` seconds. A failed `INCRBY`
/// (overflow, a non-integer) leaves no mark, so the write can be retried.
/// Returns 1 when applied, 0 for a repeat.
const INCR_ONCE: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local r = redis.pcall('INCRBY', KEYS[1], ARGV[1])
if type(r) == 'table' and r.err then return r end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[2])
return 1
";

/// How long an [`exactly_once`](RedisShardedCounter::exactly_once)
/// increment's id is remembered: longer than the cluster client's retries
/// take.
const INCR_DEDUPE_TTL_SECS: u64 = 120;

/// The script call that adds `by` to `key` at most once for `id`. EVAL
/// with the body (a few hundred bytes), so a server that restarted needs
/// no script reload.
pub(crate) fn incr_once(key: &str, id: &str, by: i64, ttl_secs: u64) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(INCR_ONCE).arg(2).arg(key).arg(id).arg(by).arg(ttl_secs);
    cmd
}

/// Sets the live shard count to `ARGV[1]` and the read count to the larger
/// of the stored one and `ARGV[1]`, atomically; returns the new layout.
const RESHARD: &str = r"
local n = tonumber(ARGV[1])
local read = n
local stored = redis.call('GET', KEYS[1])
if stored then
  local _, r = string.match(stored, '^(%d+) (%d+)$')
  if r and tonumber(r) > read then read = tonumber(r) end
end
local layout = n .. ' ' .. read
redis.call('SET', KEYS[1], layout)
return layout
";

/// The key of shard `i` of counter `name`: `{name:i}`.
///
/// Each shard key is its own hash tag, so shards land in different cluster
/// slots (spread over the nodes), and keys that belong with a shard (the
/// dedupe keys of batched flushes, `{name:i}:f:<id>`) share its slot.
///
/// ```
/// assert_eq!(sysblocks_sharded_counter::shard_key("video:123:views", 7), "{video:123:views:7}");
/// ```
pub fn shard_key(name: &str, shard: u32) -> String {
    format!("{{{name}:{shard}}}")
}

/// The key holding a counter's shard layout: `{name}:layout`, a string
/// `"<live> <read>"`: new increments go to shards `0..live`, reads sum shards
/// `0..read` (`read` only ever grows, so no shard that was written is ever
/// skipped).
pub fn layout_key(name: &str) -> String {
    format!("{{{name}}}:layout")
}

/// The key the optional aggregator writes the total to: `{name}:total`.
pub fn total_key(name: &str) -> String {
    format!("{{{name}}}:total")
}

/// Which shard a hint (a user id, a request id) maps to: FNV-1a 64 of the
/// hint's bytes, modulo the live shard count. Stable across processes and
/// versions.
pub fn shard_for_hint(hint: &[u8], live: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in hint {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % u64::from(live.max(1))) as u32
}

pub(crate) fn check_name(name: &str) -> Result<(), CounterError> {
    if name.is_empty() {
        return Err(CounterError::EmptyName);
    }
    if name.contains('{') || name.contains('}') {
        return Err(CounterError::HashTagInName { name: name.to_string() });
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    live: u32,
    read: u32,
}

fn parse_layout(s: &str) -> Option<Layout> {
    let mut it = s.split_whitespace().map(str::parse::<u32>);
    match (it.next(), it.next()) {
        (Some(Ok(live)), Some(Ok(read))) if live >= 1 && read >= live => {
            Some(Layout { live, read })
        }
        _ => None,
    }
}

/// A counter in Redis split over N shard keys, for counters too hot for one
/// key (a viral video's views): each increment goes to one shard, so the
/// write load spreads over N keys and, on a Redis Cluster, over the nodes
/// that own them.
///
/// * [`incr`](Self::incr) adds to a random shard (or
///   [`incr_with_hint`](Self::incr_with_hint) to the shard of a hint): one
///   `INCRBY`.
/// * [`get`](Self::get) is exact: it reads every shard (one pipeline on a
///   standalone server; on a cluster one `GET` per shard, concurrently, each
///   to its node; never a cross-slot `MGET`) and adds them up. Every
///   increment acknowledged before `get` started is counted.
/// * [`get_cached`](Self::get_cached) reuses a total younger than `max_age`.
/// * [`get_approx`](Self::get_approx) reads a random sample of shards and
///   extrapolates; see its error bound.
/// * [`spawn_aggregator`](Self::spawn_aggregator) keeps a total key fresh for
///   readers that want one `GET`.
/// * [`reshard`](Self::reshard) changes the shard count while increments
///   continue, losing nothing.
///
/// The shard layout lives in Redis (`{name}:layout`), so every process that
/// opens the counter agrees on which shards to read.
///
/// ```no_run
/// # #![allow(dead_code)]
/// # async fn demo(con: redis::aio::ConnectionManager) -> Result<(), Box<dyn std::error::Error>> {
/// use sysblocks_sharded_counter::RedisShardedCounter;
///
/// let views = RedisShardedCounter::open(con, "video:123:views", 16).await?;
/// views.incr(1).await?;
/// assert!(views.get().await? >= 1);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RedisShardedCounter {
    conn: RedisConnection,
    name: String,
    layout: Mutex<Layout>,
    cached: Mutex<Option<(i64, Instant)>>,
    allow_decrements: bool,
    exactly_once: bool,
}

impl RedisShardedCounter {
    /// Opens counter `name`, creating it with `shards` shards if it has no
    /// layout yet (an existing layout wins, so every process agrees).
    ///
    /// # Errors
    /// Bad names or shard counts, or Redis errors.
    pub async fn open(
        conn: impl Into<RedisConnection>,
        name: &str,
        shards: u32,
    ) -> Result<Self, CounterError> {
        check_name(name)?;
        check_shards(shards)?;
        let conn = conn.into();
        let key = layout_key(name);
        let _: Option<String> = conn
            .run(redis::cmd("SET").arg(&key).arg(format!("{shards} {shards}")).arg("NX"))
            .await?;
        let current: Option<String> = conn.run(redis::cmd("GET").arg(&key)).await?;
        let layout = current
            .as_deref()
            .and_then(parse_layout)
            .unwrap_or(Layout { live: shards, read: shards });
        Ok(RedisShardedCounter {
            conn,
            name: name.to_string(),
            layout: Mutex::new(layout),
            cached: Mutex::new(None),
            allow_decrements: false,
            exactly_once: false,
        })
    }

    /// Allows negative increments (a gauge rather than a count).
    pub fn allow_decrements(mut self) -> Self {
        self.allow_decrements = true;
        self
    }

    /// Makes every [`incr`](Self::incr) safe to resend: it carries a one-time
    /// id that Redis remembers for two minutes (one small key per increment
    /// for that long, in the shard's slot), so a command that the Redis
    /// Cluster client resends after an I/O error is applied once.
    ///
    /// Without it, an increment is one `INCRBY`. A standalone
    /// `ConnectionManager` never resends a command, so there an increment
    /// whose reply was lost happened at most once. The cluster client
    /// resends after I/O errors (`ClusterClientBuilder::retries`, several
    /// times by default), so there such an increment may count twice unless
    /// the client is built with `.retries(0)` or this is on. For hot
    /// counters prefer a [`BatchedCounter`](crate::BatchedCounter), whose
    /// flushes are exactly once at one id per flush.
    pub fn exactly_once(mut self) -> Self {
        self.exactly_once = true;
        self
    }

    /// The counter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Shards that receive new increments.
    pub fn shard_count(&self) -> u32 {
        self.layout().live
    }

    /// All shard keys a read covers, in order.
    pub fn shard_keys(&self) -> Vec<String> {
        (0..self.layout().read).map(|i| shard_key(&self.name, i)).collect()
    }

    fn layout(&self) -> Layout {
        *self.layout.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn connection(&self) -> &RedisConnection {
        &self.conn
    }

    fn check_increment(&self, by: i64) -> Result<(), CounterError> {
        if by < 0 && !self.allow_decrements {
            return Err(CounterError::NegativeIncrement { by });
        }
        Ok(())
    }

    /// Adds `by` to a random shard; returns once Redis acknowledged it.
    ///
    /// # Errors
    /// [`CounterError::NegativeIncrement`], [`CounterError::Overflow`] (the
    /// shard would leave the `i64` range; nothing applied), or a Redis error:
    /// the increment may then not have happened. On a standalone server it
    /// never happened twice; on a Cluster see
    /// [`exactly_once`](Self::exactly_once).
    pub async fn incr(&self, by: i64) -> Result<(), CounterError> {
        self.check_increment(by)?;
        let live = self.layout().live;
        let shard = rand::rng().random_range(0..live);
        self.incr_shard(shard, by).await
    }

    /// Adds `by` to the shard of `hint` (see [`shard_for_hint`]), so that one
    /// user's increments stay on one shard.
    ///
    /// # Errors
    /// As [`incr`](Self::incr).
    pub async fn incr_with_hint(&self, hint: &[u8], by: i64) -> Result<(), CounterError> {
        self.check_increment(by)?;
        self.incr_shard(shard_for_hint(hint, self.layout().live), by).await
    }

    async fn incr_shard(&self, shard: u32, by: i64) -> Result<(), CounterError> {
        let key = shard_key(&self.name, shard);
        let cmd = if self.exactly_once {
            // A one-time id makes a resend by the cluster client a no-op.
            let id = format!("{key}:i:{:016x}", rand::rng().random::<u64>());
            incr_once(&key, &id, by, INCR_DEDUPE_TTL_SECS)
        } else {
            redis::cmd("INCRBY").arg(&key).arg(by).clone()
        };
        self.conn.run::<i64>(&cmd).await.map_err(|e| CounterError::from_increment(e, &key))?;
        Ok(())
    }

    /// Refreshes the layout from Redis (another process may have resharded).
    async fn refresh_layout(&self) -> Result<Layout, CounterError> {
        let current: Option<String> =
            self.conn.run(redis::cmd("GET").arg(layout_key(&self.name))).await?;
        Ok(self.merge_layout(current.as_deref()))
    }

    /// Folds a layout read from Redis into the local one: the live count
    /// follows Redis, the read count only grows.
    fn merge_layout(&self, stored: Option<&str>) -> Layout {
        let mut layout = self.layout.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(fresh) = stored.and_then(parse_layout) {
            layout.live = fresh.live;
            layout.read = layout.read.max(fresh.read);
        }
        *layout
    }

    /// The exact total: reads every shard.
    ///
    /// # Errors
    /// A Redis error on any shard (no partial sums are returned).
    pub async fn get(&self) -> Result<i64, CounterError> {
        // One batch: the layout and every shard known so far. Only if
        // another process has grown the layout meanwhile do the new shards
        // take a second read.
        let known = self.layout();
        let mut cmds = vec![redis::cmd("GET").arg(layout_key(&self.name)).clone()];
        cmds.extend(
            (0..known.read).map(|i| redis::cmd("GET").arg(shard_key(&self.name, i)).clone()),
        );
        let mut replies = self.conn.run_each::<redis::Value>(&cmds).await.into_iter();
        let stored = match replies.next() {
            Some(reply) => {
                Option::<String>::from_redis_value(reply?).map_err(redis::RedisError::from)?
            }
            None => None,
        };
        let mut total: i64 = 0;
        for reply in replies {
            let value = Option::<i64>::from_redis_value(reply?).map_err(redis::RedisError::from)?;
            total = total.wrapping_add(value.unwrap_or(0));
        }
        let layout = self.merge_layout(stored.as_deref());
        if layout.read > known.read {
            total = total.wrapping_add(self.sum_shards(known.read..layout.read).await?);
        }
        *self.cached.lock().unwrap_or_else(PoisonError::into_inner) = Some((total, Instant::now()));
        Ok(total)
    }

    async fn sum_shards(&self, shards: impl Iterator<Item = u32>) -> Result<i64, CounterError> {
        let cmds: Vec<Cmd> =
            shards.map(|i| redis::cmd("GET").arg(shard_key(&self.name, i)).clone()).collect();
        let mut total: i64 = 0;
        for value in self.conn.run_each::<Option<i64>>(&cmds).await {
            total = total.wrapping_add(value?.unwrap_or(0));
        }
        Ok(total)
    }

    /// The total from the last read if it is at most `max_age` old, else a
    /// fresh exact [`get`](Self::get): lazy aggregation for dashboards.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub async fn get_cached(&self, max_age: Duration) -> Result<i64, CounterError> {
        let cached = *self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((total, at)) = cached
            && at.elapsed() <= max_age
        {
            return Ok(total);
        }
        self.get().await
    }

    /// An estimate from `sample` randomly chosen live shards: their sum times
    /// `shards / sample`.
    ///
    /// With random shard choice each shard holds about `total / N`; the
    /// estimate is unbiased, and its relative standard error is about
    /// `sqrt((N - s) / (s × total / N))` for `s` sampled of `N` shards (a
    /// finite-population correction of the Poisson noise in each shard): with
    /// N = 64, s = 16 and a total of one million, about 0.7%. Increments sent
    /// by hint, or a shard that was resharded away, skew it; use
    /// [`get`](Self::get) when it must be exact.
    ///
    /// # Errors
    /// [`CounterError::BadSample`] unless `1 <= sample <= shards`.
    pub async fn get_approx(&self, sample: u32) -> Result<i64, CounterError> {
        let layout = self.layout();
        if sample == 0 || sample > layout.live {
            return Err(CounterError::BadSample { sample, shards: layout.live });
        }
        let chosen =
            rand::seq::index::sample(&mut rand::rng(), layout.live as usize, sample as usize);
        let partial = self.sum_shards(chosen.into_iter().map(|i| i as u32)).await?;
        Ok((partial as f64 * f64::from(layout.live) / f64::from(sample)).round() as i64)
    }

    /// Changes the number of shards that receive increments, while other
    /// tasks and processes keep incrementing. Growing adds shards; shrinking
    /// stops writing to the highest ones but keeps reading them, so no count
    /// is ever lost or moved.
    ///
    /// The layout changes in one script on the layout key: the live count
    /// becomes `shards` and the read count the larger of the stored one and
    /// `shards`, so concurrent reshards in any direction, from any process,
    /// never shrink what reads cover. The script is safe to retry.
    ///
    /// # Errors
    /// Bad shard counts, or Redis errors.
    pub async fn reshard(&self, shards: u32) -> Result<(), CounterError> {
        check_shards(shards)?;
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(RESHARD).arg(1).arg(layout_key(&self.name)).arg(shards);
        let stored: String = self.conn.run(&cmd).await?;
        self.merge_layout(Some(&stored));
        Ok(())
    }

    /// Deletes every shard's count and the total key: the counter restarts
    /// at 0. The layout stays (its read count never shrinks), so a writer
    /// that still holds an older, larger layout writes to shards that reads
    /// cover.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn delete(&self) -> Result<(), CounterError> {
        let layout = self.refresh_layout().await?;
        let mut cmds: Vec<Cmd> = (0..layout.read)
            .map(|i| redis::cmd("DEL").arg(shard_key(&self.name, i)).clone())
            .collect();
        cmds.push(redis::cmd("DEL").arg(total_key(&self.name)).clone());
        for r in self.conn.run_each::<i64>(&cmds).await {
            r?;
        }
        *self.cached.lock().unwrap_or_else(PoisonError::into_inner) = None;
        Ok(())
    }

    /// The total written by the aggregator (one `GET`), if it has run.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn get_total_key(&self) -> Result<Option<i64>, CounterError> {
        Ok(self.conn.run(redis::cmd("GET").arg(total_key(&self.name))).await?)
    }

    /// Starts a background task that writes the exact total to
    /// `{name}:total` every `interval`, for readers that want one `GET`
    /// (stale by at most `interval` plus one read). Stops when the handle is
    /// dropped or stopped. Needs a tokio runtime. A zero interval is taken
    /// as a millisecond.
    pub fn spawn_aggregator(self: &Arc<Self>, interval: Duration) -> AggregatorHandle {
        let counter = Arc::clone(self);
        let (written_tx, written) = tokio::sync::watch::channel(None);
        let task = tokio::spawn(async move {
            let mut tick = crate::batched::ticker(interval);
            loop {
                tick.tick().await;
                let written = async {
                    let total = counter.get().await?;
                    let _: () = counter
                        .conn
                        .run(redis::cmd("SET").arg(total_key(&counter.name)).arg(total))
                        .await?;
                    Ok::<_, CounterError>(total)
                };
                match written.await {
                    Ok(total) => {
                        written_tx.send_replace(Some(total));
                    }
                    Err(e) => {
                        tracing::warn!(counter = %counter.name, error = %e, "aggregation failed; will retry");
                    }
                }
            }
        });
        AggregatorHandle { task, written }
    }
}

pub(crate) fn check_shards(shards: u32) -> Result<(), CounterError> {
    if shards == 0 {
        return Err(CounterError::ZeroShards);
    }
    if shards > MAX_SHARDS {
        return Err(CounterError::TooManyShards { requested: shards, max: MAX_SHARDS });
    }
    Ok(())
}

/// Stops the aggregator task when dropped.
#[derive(Debug)]
pub struct AggregatorHandle {
    task: tokio::task::JoinHandle<()>,
    written: tokio::sync::watch::Receiver<Option<i64>>,
}

impl AggregatorHandle {
    /// The last total the aggregator wrote (`None` before the first), as a
    /// watch channel: `written().wait_for(..)` waits for a round.
    pub fn written(&self) -> tokio::sync::watch::Receiver<Option<i64>> {
        self.written.clone()
    }

    /// Stops the aggregator.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for AggregatorHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
