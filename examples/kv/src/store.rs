//! A node's storage: entries on disk in redb behind a write-ahead log, one
//! [`MerkleSummary`] per partition in memory, and a writer thread that
//! commits concurrent writes together (group commit: one fsync for every
//! write that arrived while the last one ran).
//!
//! ```text
//!  writes from any task ──▶ channel ──▶ writer thread, per batch:
//!                                         │ decide each winner (summary, batch)
//!                                         │ append the winners to the log, fsync  (wal.rs)
//!                                         │ put them in the memtable
//!                                         └▶ apply them to the summaries, answer
//!  memtable full ──▶ checkpoint thread: one redb transaction for all of it,
//!                    then delete the log segments it covered
//!  reads ──▶ memtable, then a redb read transaction (never wait for the writer)
//! ```
//!
//! A row's key is its partition (4 bytes, big-endian) and the first 16
//! bytes of `SHA-256(key)`, the position the Merkle summary knows it by, so
//! a sync session reads the entries it needs by position, and a partition
//! is one contiguous range (dropped in one range delete). The row holds
//! the version, a tombstone flag, the key and the value.
//!
//! A write is acknowledged only after its log record is on disk (fsync),
//! so a node killed with SIGKILL has every write it acknowledged when it
//! restarts: the log segments left over are replayed into redb, and the
//! summaries are then rebuilt from a scan of the rows. Dropping a partition
//! and purging tombstones are rare; they first wait for the checkpoint in
//! progress and then write the memtable and their deletions in one redb
//! transaction.
//!
//! Hints (writes held for a replica that was down) live in a second table,
//! keyed by the target node, partition and position, and are written with
//! the same durability.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use sysblocks_merkle::hash::key_position;
use sysblocks_merkle::wire::{TRUNC, WireEntry};
use sysblocks_merkle::{EntrySummary, MerkleSummary, Versioned, summarise};
use tokio::sync::oneshot;

use crate::wal::{Record, Wal};

const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("data");
const HINTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("hints");

/// The most jobs committed in one transaction.
const MAX_BATCH: usize = 1024;

/// Bytes of rows the memtable holds before a checkpoint writes them to
/// redb; writes wait once it holds four times this while a checkpoint runs.
const CHECKPOINT_BYTES: usize = 16 << 20;

/// The most hints a store keeps unless told otherwise: about 150 MB of
/// disk at 100-byte values.
pub const DEFAULT_HINT_LIMIT: u64 = 1_000_000;

/// The length of a row key: partition and position.
const ROW_KEY: usize = 4 + TRUNC;

/// Rows logged but not yet in redb: the active table takes new rows; the
/// frozen one is being checkpointed. Reads look in both, newest first.
#[derive(Debug, Default)]
struct Memtable {
    active: HashMap<Vec<u8>, Vec<u8>>,
    active_bytes: usize,
    frozen: Option<Arc<HashMap<Vec<u8>, Vec<u8>>>>,
}

impl Memtable {
    fn get(&self, row_key: &[u8]) -> Option<Vec<u8>> {
        self.active
            .get(row_key)
            .or_else(|| self.frozen.as_ref().and_then(|f| f.get(row_key)))
            .cloned()
    }
}

/// A storage failure: the disk, a corrupt row, or a writer that stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "storage: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// One entry to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The key's partition.
    pub partition: u32,
    /// The key.
    pub key: Vec<u8>,
    /// Its version and value (`None`: a tombstone).
    pub entry: Versioned<Vec<u8>>,
}

/// A write held for a replica that did not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    /// The node it is for.
    pub target: String,
    /// The write.
    pub write: Write,
}

/// What the writer thread is asked to do.
enum Job {
    Write(Vec<Write>, oneshot::Sender<Result<Vec<bool>, StoreError>>),
    Hint(Hint, oneshot::Sender<Result<bool, StoreError>>),
    /// Remove a delivered hint, if it is still the one delivered.
    ClearHints(Vec<Hint>, oneshot::Sender<Result<(), StoreError>>),
    /// Remove a partition's rows (this node no longer holds it).
    Drop(u32, oneshot::Sender<Result<usize, StoreError>>),
    /// Remove tombstones older than the version.
    Purge(u64, oneshot::Sender<Result<usize, StoreError>>),
}

/// A change to the summaries, applied in order once a batch committed.
enum SummaryOp {
    Apply(u32, EntrySummary),
    Remove(u32, [u8; TRUNC]),
    Reset(u32),
}

/// What [`Store::open`] found on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenStats {
    /// Rows read (entries and tombstones).
    pub rows: u64,
    /// Log records replayed into redb first (writes acknowledged after the
    /// last checkpoint before the node stopped).
    pub replayed: u64,
    /// Time spent rebuilding the summaries.
    pub rebuild: Duration,
}

/// A node's storage; cheap to clone (one writer thread behind all clones,
/// which ends when the last clone is dropped).
#[derive(Clone)]
pub struct Store {
    hint_limit: Arc<std::sync::atomic::AtomicU64>,
    /// Partitions dropped and not reopened: writes to them are refused,
    /// so that nothing in flight (a sync session, a late hint) refills a
    /// partition after its rows were removed.
    closed: Arc<Mutex<std::collections::HashSet<u32>>>,
    db: Arc<Database>,
    summaries: Arc<Vec<Mutex<MerkleSummary>>>,
    memtable: Arc<RwLock<Memtable>>,
    writer: Arc<Writer>,
}

/// The writer thread's queue and handle: dropping the last one closes the
/// queue and waits for the thread, so the database is closed when the last
/// `Store` clone is gone (and can be opened again at once).
struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("partitions", &self.summaries.len()).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the database at `path` for `partitions`
    /// partitions, with a page cache of `cache_bytes`, and rebuilds the
    /// summaries from its rows.
    ///
    /// # Errors
    /// The database cannot be opened, a row is corrupt, or a row belongs to
    /// a partition beyond `partitions` (the cluster's partition count
    /// changed, which this store does not support).
    pub fn open(
        path: &Path,
        partitions: u32,
        cache_bytes: usize,
    ) -> Result<(Store, OpenStats), StoreError> {
        let started = Instant::now();
        let db = Database::builder().set_cache_size(cache_bytes).create(path).map_err(err)?;
        let txn = db.begin_write().map_err(err)?;
        txn.open_table(DATA).map_err(err)?;
        txn.open_table(HINTS).map_err(err)?;
        txn.commit().map_err(err)?;
        // What the log holds beyond the last checkpoint goes into redb
        // first, in the order it was written (each record a winner then).
        let dir = path.parent().unwrap_or(Path::new("."));
        let (wal, replayed, last) = Wal::open(dir, ROW_KEY).map_err(err)?;
        if !replayed.is_empty() {
            let txn = db.begin_write().map_err(err)?;
            {
                let mut data = txn.open_table(DATA).map_err(err)?;
                for (key, row) in &replayed {
                    data.insert(key.as_slice(), row.as_slice()).map_err(err)?;
                }
            }
            txn.commit().map_err(err)?;
        }
        wal.delete_through(last).map_err(err)?;
        // Rows come in key order, partition by partition: each partition's
        // summary is built in bulk once its rows are read.
        let mut summaries: Vec<MerkleSummary> = Vec::with_capacity(partitions as usize);
        let mut pending: Vec<EntrySummary> = Vec::new();
        let mut rows = 0;
        {
            let read = db.begin_read().map_err(err)?;
            let table = read.open_table(DATA).map_err(err)?;
            for row in table.iter().map_err(err)? {
                let (k, v) = row.map_err(err)?;
                let (partition, _) = decode_row_key(k.value())?;
                if partition >= partitions {
                    return Err(StoreError(format!(
                        "a row of partition {partition}, but the cluster has {partitions} \
                         partitions; changing the partition count needs a new data directory"
                    )));
                }
                while summaries.len() < partition as usize {
                    summaries.push(MerkleSummary::from_entries(pending.drain(..)));
                }
                // Borrowed, not copied: a rebuild of a million rows should
                // not leave a million freed buffers behind in the heap.
                let (key, version, value) = decode_row(v.value())?;
                pending.push(summarise(key, version, value).map_err(err)?);
                rows += 1;
            }
        }
        while summaries.len() < partitions as usize {
            summaries.push(MerkleSummary::from_entries(pending.drain(..)));
        }
        let db = Arc::new(db);
        let summaries = Arc::new(summaries.into_iter().map(Mutex::new).collect::<Vec<_>>());
        let memtable = Arc::new(RwLock::new(Memtable::default()));
        let closed = Arc::new(Mutex::new(std::collections::HashSet::new()));
        let hint_limit = Arc::new(std::sync::atomic::AtomicU64::new(DEFAULT_HINT_LIMIT));
        let (jobs, receiver) = mpsc::channel();
        let state = WriterState {
            hint_limit: hint_limit.clone(),
            closed: closed.clone(),
            db: db.clone(),
            summaries: summaries.clone(),
            memtable: memtable.clone(),
            wal,
        };
        let thread = std::thread::Builder::new()
            .name("kv-writer".into())
            .spawn(move || run_writer(state, &receiver))
            .map_err(err)?;
        let writer = Arc::new(Writer { jobs: Some(jobs), thread: Some(thread) });
        let stats = OpenStats { rows, replayed: replayed.len() as u64, rebuild: started.elapsed() };
        Ok((Store { hint_limit, closed, db, summaries, memtable, writer }, stats))
    }

    /// The number of partitions.
    pub fn partitions(&self) -> u32 {
        self.summaries.len() as u32
    }

    /// A partition's summary, locked (hold it briefly, never across an
    /// await). `None` for a partition out of range.
    pub fn summary(&self, partition: u32) -> Option<MutexGuard<'_, MerkleSummary>> {
        let lock = self.summaries.get(partition as usize)?;
        Some(lock.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The entry of `key` in `partition`, tombstone included.
    ///
    /// # Errors
    /// The disk read failed or the row is corrupt.
    pub fn get(
        &self,
        partition: u32,
        key: &[u8],
    ) -> Result<Option<Versioned<Vec<u8>>>, StoreError> {
        let row_key = row_key(partition, &position(key));
        let row = match self.logged(&row_key) {
            Some(row) => row,
            None => {
                let read = self.db.begin_read().map_err(err)?;
                let table = read.open_table(DATA).map_err(err)?;
                let Some(row) = table.get(row_key.as_slice()).map_err(err)? else {
                    return Ok(None);
                };
                row.value().to_vec()
            }
        };
        let (stored_key, entry) = decode_entry(&row)?;
        // Two keys sharing 16 bytes of SHA-256 would meet here; the other
        // one is not this key's entry.
        Ok((stored_key == key).then_some(entry))
    }

    /// The entries of `partition` at these positions, as a sync session
    /// sends them; positions not held are left out.
    ///
    /// # Errors
    /// The disk read failed or a row is corrupt.
    pub fn read_positions(
        &self,
        partition: u32,
        positions: &[[u8; TRUNC]],
    ) -> Result<Vec<WireEntry>, StoreError> {
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        let read = self.db.begin_read().map_err(err)?;
        let table = read.open_table(DATA).map_err(err)?;
        let mut out = Vec::with_capacity(positions.len());
        for p in positions {
            let key = row_key(partition, p);
            let row = match self.logged(&key) {
                Some(row) => row,
                None => match table.get(key.as_slice()).map_err(err)? {
                    Some(row) => row.value().to_vec(),
                    None => continue,
                },
            };
            let (key, entry) = decode_entry(&row)?;
            out.push((key, entry.version, entry.value));
        }
        Ok(out)
    }

    /// The row of `row_key` in the memtable, if it is there.
    fn logged(&self, row_key: &[u8]) -> Option<Vec<u8>> {
        self.memtable.read().unwrap_or_else(PoisonError::into_inner).get(row_key)
    }

    /// Stores entries that win over what is held (by the merkle crate's
    /// rule: version, then entry hash), all in one group commit; returns
    /// for each whether it won. Returns once the writes are durable.
    ///
    /// # Errors
    /// A partition out of range, a key or value of 4 GiB or more, or the
    /// commit failed (nothing of the
    /// batch is then stored).
    pub async fn write(&self, writes: Vec<Write>) -> Result<Vec<bool>, StoreError> {
        for w in &writes {
            if w.partition >= self.partitions() {
                return Err(StoreError(format!("no partition {}", w.partition)));
            }
            check_lengths(w)?;
        }
        self.ask(|reply| Job::Write(writes, reply)).await
    }

    /// Keeps a write for `hint.target`, durably; `false` when the store
    /// already holds [`hint_limit`](Self::set_hint_limit) hints (a node
    /// that stays down must not fill the disk: anti-entropy repairs it
    /// without them when it returns).
    ///
    /// # Errors
    /// The commit failed.
    pub async fn add_hint(&self, hint: Hint) -> Result<bool, StoreError> {
        check_lengths(&hint.write)?;
        self.ask(|reply| Job::Hint(hint, reply)).await
    }

    /// Sets the most hints the store keeps, for every target together
    /// (default [`DEFAULT_HINT_LIMIT`]).
    pub fn set_hint_limit(&self, limit: u64) {
        self.hint_limit.store(limit, std::sync::atomic::Ordering::Relaxed);
    }

    /// Forgets a hint once delivered (unless a newer one for the same key
    /// replaced it meanwhile).
    ///
    /// # Errors
    /// The commit failed.
    pub async fn clear_hint(&self, hint: Hint) -> Result<(), StoreError> {
        self.clear_hints(vec![hint]).await
    }

    /// [`clear_hint`](Self::clear_hint) for many, in one commit.
    ///
    /// # Errors
    /// The commit failed.
    pub async fn clear_hints(&self, hints: Vec<Hint>) -> Result<(), StoreError> {
        self.ask(|reply| Job::ClearHints(hints, reply)).await
    }

    /// Hints held for `target`, at most `limit`.
    ///
    /// # Errors
    /// The disk read failed or a row is corrupt.
    pub fn hints_for(&self, target: &str, limit: usize) -> Result<Vec<Hint>, StoreError> {
        let read = self.db.begin_read().map_err(err)?;
        let table = read.open_table(HINTS).map_err(err)?;
        let prefix = hint_prefix(target);
        let mut end = prefix.clone();
        end.push(0xff);
        let mut out = Vec::new();
        for row in table.range(prefix.as_slice()..end.as_slice()).map_err(err)? {
            if out.len() >= limit {
                break;
            }
            let (k, v) = row.map_err(err)?;
            let (partition, _) = decode_row_key(&k.value()[prefix.len()..])?;
            let (key, entry) = decode_entry(v.value())?;
            out.push(Hint { target: target.to_owned(), write: Write { partition, key, entry } });
        }
        Ok(out)
    }

    /// Hints held, for every target.
    ///
    /// # Errors
    /// The disk read failed.
    pub fn hint_count(&self) -> Result<u64, StoreError> {
        use redb::ReadableTableMetadata;
        let read = self.db.begin_read().map_err(err)?;
        read.open_table(HINTS).map_err(err)?.len().map_err(err)
    }

    /// Removes every row of a partition this node no longer holds; returns
    /// how many. Writes to it are refused from then on (they do not win)
    /// until [`reopen_partition`](Self::reopen_partition).
    ///
    /// # Errors
    /// The commit failed.
    pub async fn drop_partition(&self, partition: u32) -> Result<usize, StoreError> {
        self.ask(|reply| Job::Drop(partition, reply)).await
    }

    /// Takes writes to a dropped partition again (this node gains it
    /// back).
    pub fn reopen_partition(&self, partition: u32) {
        self.closed.lock().unwrap_or_else(PoisonError::into_inner).remove(&partition);
    }

    /// Removes tombstones whose version is below `horizon`; returns how
    /// many. Replicas must sync within the horizon (see the merkle crate's
    /// rule), or a purged delete can come back.
    ///
    /// # Errors
    /// The commit failed.
    pub async fn purge_tombstones(&self, horizon: u64) -> Result<usize, StoreError> {
        self.ask(|reply| Job::Purge(horizon, reply)).await
    }

    async fn ask<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Job,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError("the writer has stopped".into());
        let jobs = self.writer.jobs.as_ref().ok_or_else(stopped)?;
        jobs.send(job(reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// What the writer thread owns.
struct WriterState {
    hint_limit: Arc<std::sync::atomic::AtomicU64>,
    closed: Arc<Mutex<std::collections::HashSet<u32>>>,
    db: Arc<Database>,
    summaries: Arc<Vec<Mutex<MerkleSummary>>>,
    memtable: Arc<RwLock<Memtable>>,
    wal: Wal,
}

/// A frozen memtable for the checkpoint thread, with the log directory and
/// the last segment whose records it holds.
type Frozen = (Arc<HashMap<Vec<u8>, Vec<u8>>>, PathBuf, u64);

/// The checkpoint thread: writes frozen memtables into redb, one
/// transaction each, then forgets them and deletes the log segments they
/// came from. Answers `done` after each.
fn run_checkpoints(
    db: &Database,
    memtable: &RwLock<Memtable>,
    frozen: &mpsc::Receiver<Frozen>,
    done: &mpsc::Sender<Result<(), StoreError>>,
) {
    while let Ok((rows, dir, closed)) = frozen.recv() {
        let result = (|| {
            let txn = db.begin_write().map_err(err)?;
            {
                let mut data = txn.open_table(DATA).map_err(err)?;
                for (key, row) in rows.iter() {
                    data.insert(key.as_slice(), row.as_slice()).map_err(err)?;
                }
            }
            txn.commit().map_err(err)?;
            memtable.write().unwrap_or_else(PoisonError::into_inner).frozen = None;
            crate::wal::delete_through(&dir, closed).map_err(err)
        })();
        if let Err(e) = &result {
            tracing::error!(error = %e, "a checkpoint failed; the log keeps its rows");
        }
        if done.send(result).is_err() {
            return;
        }
    }
}

/// The writer thread: one log append (or, for drops and purges, one redb
/// transaction) per batch of queued jobs.
fn run_writer(mut state: WriterState, jobs: &mpsc::Receiver<Job>) {
    let (to_checkpoint, frozen) = mpsc::channel();
    let (done_tx, done) = mpsc::channel();
    let checkpoints = {
        let (db, memtable) = (state.db.clone(), state.memtable.clone());
        std::thread::Builder::new()
            .name("kv-checkpoint".into())
            .spawn(move || run_checkpoints(&db, &memtable, &frozen, &done_tx))
    };
    let checkpoints = match checkpoints {
        Ok(thread) => thread,
        Err(e) => {
            tracing::error!(error = %e, "no checkpoint thread; the writer stops");
            return;
        }
    };
    let mut checkpointing = false;
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let direct = batch.iter().any(|j| matches!(j, Job::Drop(..) | Job::Purge(..)));
        if direct && checkpointing {
            // Deletions go straight to redb: the frozen rows must be there
            // first, or a later checkpoint would bring deleted rows back.
            let _ = done.recv();
            checkpointing = false;
        }
        let mut ops = Vec::new();
        let mut logged = Vec::new();
        let result = if direct {
            // A copy: reads keep finding the rows in the memtable until
            // they are in redb.
            let active =
                state.memtable.read().unwrap_or_else(PoisonError::into_inner).active.clone();
            let result = commit(&state, &batch, &mut ops, &mut logged, Some(&active));
            if result.is_ok() {
                let mut memtable = state.memtable.write().unwrap_or_else(PoisonError::into_inner);
                memtable.active.clear();
                memtable.active_bytes = 0;
                drop(memtable);
                // Everything logged is in redb now.
                if let Ok(closed) = state.wal.rotate() {
                    let _ = state.wal.delete_through(closed);
                }
            }
            result
        } else {
            commit(&state, &batch, &mut ops, &mut logged, None).and_then(|answers| {
                if !logged.is_empty() {
                    let records: Vec<(&[u8], &[u8])> =
                        logged.iter().map(|(k, r)| (k.as_slice(), r.as_slice())).collect();
                    state.wal.append(&records).map_err(err)?;
                    let mut memtable =
                        state.memtable.write().unwrap_or_else(PoisonError::into_inner);
                    for (key, row) in logged.drain(..) {
                        memtable.active_bytes += key.len() + row.len();
                        memtable.active.insert(key, row);
                    }
                }
                Ok(answers)
            })
        };
        match result {
            Ok(answers) => {
                for op in ops {
                    apply_op(&state.summaries, op);
                }
                for (job, answer) in batch.into_iter().zip(answers) {
                    answer_job(job, Ok(answer));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "a commit failed; its writes are not stored");
                for job in batch {
                    answer_job(job, Err(e.clone()));
                }
            }
        }
        // A full memtable is frozen and handed to the checkpoint thread;
        // while one runs, new rows wait only if the next grows too large.
        if checkpointing {
            let bytes = state.memtable.read().unwrap_or_else(PoisonError::into_inner).active_bytes;
            let finished =
                if bytes >= 4 * CHECKPOINT_BYTES { done.recv().ok() } else { done.try_recv().ok() };
            checkpointing = finished.is_none();
        }
        let full = state.memtable.read().unwrap_or_else(PoisonError::into_inner).active_bytes
            >= CHECKPOINT_BYTES;
        if full && !checkpointing {
            match state.wal.rotate() {
                Ok(closed) => {
                    let rows = {
                        let mut memtable =
                            state.memtable.write().unwrap_or_else(PoisonError::into_inner);
                        let rows = Arc::new(std::mem::take(&mut memtable.active));
                        memtable.active_bytes = 0;
                        memtable.frozen = Some(rows.clone());
                        rows
                    };
                    // The checkpoint deletes the segments it covers.
                    let dir = state.wal.dir().to_path_buf();
                    checkpointing = to_checkpoint.send((rows, dir, closed)).is_ok();
                }
                Err(e) => tracing::error!(error = %e, "the log could not rotate"),
            }
        }
    }
    drop(to_checkpoint);
    let _ = checkpoints.join();
}

/// One job's answer: the wins of a write job, or a count.
enum Answer {
    Wins(Vec<bool>),
    Count(usize),
    Kept(bool),
    Done,
}

fn answer_job(job: Job, answer: Result<Answer, StoreError>) {
    // A caller that gave up waiting dropped its receiver: nothing to do.
    match job {
        Job::Write(_, reply) => {
            let _ = reply.send(answer.map(|a| match a {
                Answer::Wins(w) => w,
                _ => Vec::new(),
            }));
        }
        Job::Hint(_, reply) => {
            let _ = reply.send(answer.map(|a| matches!(a, Answer::Kept(true))));
        }
        Job::ClearHints(_, reply) => {
            let _ = reply.send(answer.map(|_| ()));
        }
        Job::Drop(_, reply) | Job::Purge(_, reply) => {
            let _ = reply.send(answer.map(|a| match a {
                Answer::Count(n) => n,
                _ => 0,
            }));
        }
    }
}

fn apply_op(summaries: &[Mutex<MerkleSummary>], op: SummaryOp) {
    let lock = |p: u32| summaries[p as usize].lock().unwrap_or_else(PoisonError::into_inner);
    match op {
        SummaryOp::Apply(p, entry) => {
            lock(p).apply_summary(entry);
        }
        SummaryOp::Remove(p, position) => {
            lock(p).remove_at(&position);
        }
        SummaryOp::Reset(p) => *lock(p) = MerkleSummary::new(),
    }
}

/// Runs a batch; on success returns each job's answer and fills `ops` with
/// the summary changes to make, in order. Winning rows go to `logged` (for
/// the log) or, with `direct` (the memtable to write first), straight into
/// redb. A redb transaction is opened only when something needs one.
fn commit(
    state: &WriterState,
    batch: &[Job],
    ops: &mut Vec<SummaryOp>,
    logged: &mut Vec<Record>,
    direct: Option<&HashMap<Vec<u8>, Vec<u8>>>,
) -> Result<Vec<Answer>, StoreError> {
    let summaries = &state.summaries;
    let mut closed = state.closed.lock().unwrap_or_else(PoisonError::into_inner);
    let needs_txn = direct.is_some() || batch.iter().any(|j| !matches!(j, Job::Write(..)));
    let txn = if needs_txn { Some(state.db.begin_write().map_err(err)?) } else { None };
    let no_txn = || StoreError("internal: a job that needs a transaction without one".into());
    let mut answers = Vec::with_capacity(batch.len());
    {
        let mut data = txn.as_ref().map(|t| t.open_table(DATA)).transpose().map_err(err)?;
        let mut hints = txn.as_ref().map(|t| t.open_table(HINTS)).transpose().map_err(err)?;
        if let (Some(rows), Some(data)) = (direct, data.as_mut()) {
            for (key, row) in rows {
                data.insert(key.as_slice(), row.as_slice()).map_err(err)?;
            }
        }
        // The winner so far in this batch of each (partition, position):
        // its version and entry hash; ahead of the summary, which changes
        // only once the batch is durable.
        let mut staged: HashMap<(u32, [u8; TRUNC]), (u64, [u8; TRUNC])> = HashMap::new();
        // Partitions dropped in this batch: the summary no longer counts.
        let mut dropped: Vec<u32> = Vec::new();
        for job in batch {
            match job {
                Job::Write(writes, _) => {
                    let mut wins = Vec::with_capacity(writes.len());
                    for w in writes {
                        // Lengths were checked before the job was queued.
                        let summary = summarise(&w.key, w.entry.version, w.entry.value.as_deref())
                            .map_err(err)?;
                        let (position, hash) = (summary.position, summary.hash);
                        let current = match staged.get(&(w.partition, position)) {
                            Some(&held) => Some(held),
                            None if dropped.contains(&w.partition) => None,
                            None => summaries[w.partition as usize]
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .get_at(&position)
                                .map(|s| (s.version, s.hash)),
                        };
                        let won = !closed.contains(&w.partition)
                            && current.is_none_or(|held| (w.entry.version, hash) > held);
                        if won {
                            let row = encode_entry(&w.key, &w.entry);
                            let key = row_key(w.partition, &position);
                            match (direct, data.as_mut()) {
                                (Some(_), Some(data)) => {
                                    data.insert(key.as_slice(), row.as_slice()).map_err(err)?;
                                }
                                _ => logged.push((key, row)),
                            }
                            staged.insert((w.partition, position), (w.entry.version, hash));
                            ops.push(SummaryOp::Apply(w.partition, summary));
                        }
                        wins.push(won);
                    }
                    answers.push(Answer::Wins(wins));
                }
                Job::Hint(hint, _) => {
                    let hints = hints.as_mut().ok_or_else(no_txn)?;
                    let key = hint_key(hint);
                    // Keep the newer of two hints for one key.
                    let (newer, full) = match hints.get(key.as_slice()).map_err(err)? {
                        Some(old) => {
                            let (_, held) = decode_entry(old.value())?;
                            (hint.write.entry.beats(&hint.write.key, &held), false)
                        }
                        None => {
                            use redb::ReadableTableMetadata;
                            let limit = state.hint_limit.load(std::sync::atomic::Ordering::Relaxed);
                            (true, hints.len().map_err(err)? >= limit)
                        }
                    };
                    if newer && !full {
                        let row = encode_entry(&hint.write.key, &hint.write.entry);
                        hints.insert(key.as_slice(), row.as_slice()).map_err(err)?;
                    }
                    answers.push(Answer::Kept(!full));
                }
                Job::ClearHints(delivered, _) => {
                    let hints = hints.as_mut().ok_or_else(no_txn)?;
                    for hint in delivered {
                        let key = hint_key(hint);
                        let same = match hints.get(key.as_slice()).map_err(err)? {
                            Some(old) => decode_entry(old.value())?.1 == hint.write.entry,
                            None => false,
                        };
                        if same {
                            hints.remove(key.as_slice()).map_err(err)?;
                        }
                    }
                    answers.push(Answer::Done);
                }
                Job::Drop(partition, _) => {
                    let data = data.as_mut().ok_or_else(no_txn)?;
                    let low = row_key(*partition, &[0; TRUNC]);
                    let high = row_key(*partition, &[0xff; TRUNC]);
                    let mut removed = 0usize;
                    data.retain_in(low.as_slice()..=high.as_slice(), |_, _| {
                        removed += 1;
                        false
                    })
                    .map_err(err)?;
                    staged.retain(|(p, _), _| p != partition);
                    dropped.push(*partition);
                    closed.insert(*partition);
                    ops.push(SummaryOp::Reset(*partition));
                    answers.push(Answer::Count(removed));
                }
                Job::Purge(horizon, _) => {
                    let data = data.as_mut().ok_or_else(no_txn)?;
                    let mut removed = 0;
                    for (p, summary) in summaries.iter().enumerate() {
                        let p = p as u32;
                        let doomed = summary
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .tombstones_before(*horizon);
                        for position in doomed {
                            if staged.contains_key(&(p, position)) {
                                continue; // rewritten in this batch
                            }
                            data.remove(row_key(p, &position).as_slice()).map_err(err)?;
                            ops.push(SummaryOp::Remove(p, position));
                            removed += 1;
                        }
                    }
                    answers.push(Answer::Count(removed));
                }
            }
        }
    }
    if let Some(txn) = txn {
        txn.commit().map_err(err)?;
    }
    Ok(answers)
}

fn check_lengths(w: &Write) -> Result<(), StoreError> {
    let too_long = |b: &[u8]| b.len() >= u32::MAX as usize;
    if too_long(&w.key) || w.entry.value.as_deref().is_some_and(too_long) {
        return Err(StoreError("a key or value too long to store".into()));
    }
    Ok(())
}

/// The first 16 bytes of a key's position.
pub fn position(key: &[u8]) -> [u8; TRUNC] {
    let mut out = [0; TRUNC];
    out.copy_from_slice(&key_position(key)[..TRUNC]);
    out
}

fn row_key(partition: u32, position: &[u8; TRUNC]) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + TRUNC);
    key.extend_from_slice(&partition.to_be_bytes());
    key.extend_from_slice(position);
    key
}

fn decode_row_key(bytes: &[u8]) -> Result<(u32, [u8; TRUNC]), StoreError> {
    if bytes.len() != 4 + TRUNC {
        return Err(StoreError(format!("a row key of {} bytes", bytes.len())));
    }
    let mut partition = [0; 4];
    partition.copy_from_slice(&bytes[..4]);
    let mut position = [0; TRUNC];
    position.copy_from_slice(&bytes[4..]);
    Ok((u32::from_be_bytes(partition), position))
}

fn hint_prefix(target: &str) -> Vec<u8> {
    // Node ids are at most 255 bytes (the cluster file's rule), so one
    // length byte keeps one target's hints apart from another's.
    let id = target.as_bytes();
    let mut prefix = Vec::with_capacity(1 + id.len());
    prefix.push(id.len().min(255) as u8);
    prefix.extend_from_slice(&id[..id.len().min(255)]);
    prefix
}

fn hint_key(hint: &Hint) -> Vec<u8> {
    let mut key = hint_prefix(&hint.target);
    key.extend_from_slice(&row_key(hint.write.partition, &position(&hint.write.key)));
    key
}

/// A row: version (8 bytes), tombstone flag (1), key length (4), key,
/// value.
fn encode_entry(key: &[u8], entry: &Versioned<Vec<u8>>) -> Vec<u8> {
    let value = entry.value.as_deref().unwrap_or(&[]);
    let mut row = Vec::with_capacity(13 + key.len() + value.len());
    row.extend_from_slice(&entry.version.to_be_bytes());
    row.push(u8::from(entry.value.is_none()));
    row.extend_from_slice(&(key.len() as u32).to_be_bytes());
    row.extend_from_slice(key);
    row.extend_from_slice(value);
    row
}

fn decode_entry(row: &[u8]) -> Result<(Vec<u8>, Versioned<Vec<u8>>), StoreError> {
    let (key, version, value) = decode_row(row)?;
    Ok((key.to_vec(), Versioned { version, value: value.map(<[u8]>::to_vec) }))
}

/// A row's key, version and value (`None`: a tombstone), borrowed.
type RowParts<'a> = (&'a [u8], u64, Option<&'a [u8]>);

/// A row's parts, borrowed from it.
fn decode_row(row: &[u8]) -> Result<RowParts<'_>, StoreError> {
    let corrupt = || StoreError(format!("a corrupt row of {} bytes", row.len()));
    if row.len() < 13 {
        return Err(corrupt());
    }
    let mut version = [0; 8];
    version.copy_from_slice(&row[..8]);
    let tombstone = match row[8] {
        0 => false,
        1 => true,
        _ => return Err(corrupt()),
    };
    let mut len = [0; 4];
    len.copy_from_slice(&row[9..13]);
    let key_len = u32::from_be_bytes(len) as usize;
    let rest = &row[13..];
    if rest.len() < key_len || (tombstone && rest.len() != key_len) {
        return Err(corrupt());
    }
    let (key, value) = rest.split_at(key_len);
    Ok((key, u64::from_be_bytes(version), (!tombstone).then_some(value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(partition: u32, key: &str, version: u64, value: Option<&str>) -> Write {
        Write {
            partition,
            key: key.as_bytes().to_vec(),
            entry: Versioned { version, value: value.map(|v| v.as_bytes().to_vec()) },
        }
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("sysblocks-kv-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn rows_round_trip_and_corrupt_rows_are_errors() {
        let entry = Versioned { version: 7, value: Some(b"value".to_vec()) };
        assert_eq!(decode_entry(&encode_entry(b"key", &entry)).unwrap(), (b"key".to_vec(), entry));
        let tomb = Versioned { version: 9, value: None };
        assert_eq!(decode_entry(&encode_entry(b"k", &tomb)).unwrap(), (b"k".to_vec(), tomb));
        for bad in [&[][..], &[0; 12], &[0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0]] {
            assert!(decode_entry(bad).is_err());
        }
        assert!(decode_row_key(&[0; 5]).is_err());
    }

    #[tokio::test]
    async fn newer_writes_win_and_survive_a_reopen() {
        let dir = temp_dir("reopen");
        let path = dir.join("data.redb");
        {
            let (store, stats) = Store::open(&path, 4, 1 << 20).unwrap();
            assert_eq!(stats.rows, 0);
            let wins = store
                .write(vec![
                    write(1, "a", 2, Some("new")),
                    write(1, "a", 1, Some("old")), // older, in the same batch: loses
                    write(2, "b", 1, Some("b")),
                    write(3, "c", 1, None),
                ])
                .await
                .unwrap();
            assert_eq!(wins, [true, false, true, true]);
            assert_eq!(store.write(vec![write(1, "a", 2, Some("new"))]).await.unwrap(), [false]);
            assert!(store.write(vec![write(9, "x", 1, None)]).await.is_err());
            assert_eq!(store.get(1, b"a").unwrap().unwrap().value.unwrap(), b"new");
            assert_eq!(store.get(3, b"c").unwrap().unwrap().value, None);
            assert_eq!(store.summary(1).unwrap().len(), 1);
            assert_eq!(store.summary(3).unwrap().entry_count(), 1);
        }
        let (store, stats) = Store::open(&path, 4, 1 << 20).unwrap();
        assert_eq!(stats.rows, 3);
        assert_eq!(store.get(1, b"a").unwrap().unwrap().version, 2);
        let positions = [position(b"a"), position(b"zzz")];
        assert_eq!(store.read_positions(1, &positions).unwrap().len(), 1);
        assert!(store.summary(1).unwrap().get(b"a").is_some());
        assert_eq!(store.purge_tombstones(2).await.unwrap(), 1);
        assert_eq!(store.get(3, b"c").unwrap(), None);
        assert_eq!(store.drop_partition(1).await.unwrap(), 1);
        assert_eq!(store.get(1, b"a").unwrap(), None);
        assert!(store.summary(1).unwrap().is_empty());
        // A write arriving late (a sync session, a hint) does not refill it.
        assert_eq!(store.write(vec![write(1, "late", 9, Some("x"))]).await.unwrap(), [false]);
        store.reopen_partition(1);
        assert_eq!(store.write(vec![write(1, "late", 9, Some("x"))]).await.unwrap(), [true]);
        drop(store);
        assert!(Store::open(&path, 2, 1 << 20).is_err(), "a row beyond the partition count");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn hints_are_kept_per_target_and_cleared_once_delivered() {
        let dir = temp_dir("hints");
        let (store, _) = Store::open(&dir.join("data.redb"), 4, 1 << 20).unwrap();
        let hint = |target: &str, v: u64| Hint {
            target: target.into(),
            write: write(0, "k", v, Some("v")),
        };
        store.add_hint(hint("n2", 1)).await.unwrap();
        store.add_hint(hint("n2", 3)).await.unwrap();
        store.add_hint(hint("n2", 2)).await.unwrap(); // older: the newer stays
        assert!(store.add_hint(hint("n3", 1)).await.unwrap());
        assert_eq!(store.hint_count().unwrap(), 2);
        // At the limit, a hint for a new key is not kept (a newer one for a
        // key held still replaces it).
        store.set_hint_limit(2);
        assert!(!store.add_hint(hint("n4", 1)).await.unwrap());
        assert_eq!(store.hint_count().unwrap(), 2);
        store.set_hint_limit(DEFAULT_HINT_LIMIT);
        let held = store.hints_for("n2", 10).unwrap();
        assert_eq!(held, [hint("n2", 3)]);
        store.clear_hint(hint("n2", 1)).await.unwrap(); // not the one held
        assert_eq!(store.hints_for("n2", 10).unwrap().len(), 1);
        store.clear_hint(hint("n2", 3)).await.unwrap();
        assert!(store.hints_for("n2", 10).unwrap().is_empty());
        assert_eq!(store.hints_for("n3", 10).unwrap().len(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }
}
