//! A node's storage: entries on disk in redb, one [`MerkleSummary`] per
//! partition in memory, and a writer thread that commits concurrent
//! writes together (group commit: one fsync for every write that arrived
//! while the last one ran).
//!
//! ```text
//!  writes from any task ──▶ channel ──▶ writer thread: one transaction per batch
//!                                         │ decide each winner (summary, batch)
//!                                         │ insert rows, commit (fsync)
//!                                         └▶ apply winners to the summaries, answer
//!  reads ──▶ redb read transaction (never waits for the writer)
//! ```
//!
//! A row's key is its partition (4 bytes, big-endian) and the first 16
//! bytes of `SHA-256(key)`, the position the Merkle summary knows it by, so
//! a sync session reads the entries it needs by position, and a partition
//! is one contiguous range (dropped in one range delete). The row holds
//! the version, a tombstone flag, the key and the value.
//!
//! A write is acknowledged only after its transaction committed with
//! redb's default durability (fsync), so a node killed with SIGKILL has
//! every write it acknowledged when it restarts; the summaries are then
//! rebuilt from a scan of the rows.
//!
//! Hints (writes held for a replica that was down) live in a second table,
//! keyed by the target node, partition and position, and are written with
//! the same durability.

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use sysblocks_merkle::hash::{entry_hash, key_position};
use sysblocks_merkle::wire::{TRUNC, WireEntry};
use sysblocks_merkle::{MerkleSummary, Versioned};
use tokio::sync::oneshot;

const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("data");
const HINTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("hints");

/// The most jobs committed in one transaction.
const MAX_BATCH: usize = 1024;

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
    Hint(Hint, oneshot::Sender<Result<(), StoreError>>),
    /// Remove a delivered hint, if it is still the one delivered.
    ClearHint(Hint, oneshot::Sender<Result<(), StoreError>>),
    /// Remove a partition's rows (this node no longer holds it).
    Drop(u32, oneshot::Sender<Result<usize, StoreError>>),
    /// Remove tombstones older than the version.
    Purge(u64, oneshot::Sender<Result<usize, StoreError>>),
}

/// A change to the summaries, applied in order once a batch committed.
enum SummaryOp {
    Apply(u32, Vec<u8>, Versioned<Vec<u8>>),
    Remove(u32, [u8; TRUNC]),
    Reset(u32),
}

/// What [`Store::open`] found on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenStats {
    /// Rows read (entries and tombstones).
    pub rows: u64,
    /// Time spent rebuilding the summaries.
    pub rebuild: Duration,
}

/// A node's storage; cheap to clone (one writer thread behind all clones,
/// which ends when the last clone is dropped).
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    summaries: Arc<Vec<Mutex<MerkleSummary>>>,
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
        let mut summaries: Vec<MerkleSummary> =
            (0..partitions).map(|_| MerkleSummary::new()).collect();
        let mut rows = 0;
        {
            let read = db.begin_read().map_err(err)?;
            let table = read.open_table(DATA).map_err(err)?;
            for row in table.iter().map_err(err)? {
                let (k, v) = row.map_err(err)?;
                let (partition, _) = decode_row_key(k.value())?;
                let (key, entry) = decode_entry(v.value())?;
                let summary = summaries.get_mut(partition as usize).ok_or_else(|| {
                    StoreError(format!(
                        "a row of partition {partition}, but the cluster has {partitions} \
                         partitions; changing the partition count needs a new data directory"
                    ))
                })?;
                summary.apply(&key, entry.version, entry.value.as_deref()).map_err(err)?;
                rows += 1;
            }
        }
        let db = Arc::new(db);
        let summaries = Arc::new(summaries.into_iter().map(Mutex::new).collect::<Vec<_>>());
        let (jobs, receiver) = mpsc::channel();
        let (writer_db, writer_summaries) = (db.clone(), summaries.clone());
        let thread = std::thread::Builder::new()
            .name("kv-writer".into())
            .spawn(move || run_writer(&writer_db, &writer_summaries, &receiver))
            .map_err(err)?;
        let writer = Arc::new(Writer { jobs: Some(jobs), thread: Some(thread) });
        let stats = OpenStats { rows, rebuild: started.elapsed() };
        Ok((Store { db, summaries, writer }, stats))
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
        let read = self.db.begin_read().map_err(err)?;
        let table = read.open_table(DATA).map_err(err)?;
        let row_key = row_key(partition, &position(key));
        let Some(row) = table.get(row_key.as_slice()).map_err(err)? else {
            return Ok(None);
        };
        let (stored_key, entry) = decode_entry(row.value())?;
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
            if let Some(row) = table.get(row_key(partition, p).as_slice()).map_err(err)? {
                let (key, entry) = decode_entry(row.value())?;
                out.push((key, entry.version, entry.value));
            }
        }
        Ok(out)
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

    /// Keeps a write for `hint.target`, durably.
    ///
    /// # Errors
    /// The commit failed.
    pub async fn add_hint(&self, hint: Hint) -> Result<(), StoreError> {
        check_lengths(&hint.write)?;
        self.ask(|reply| Job::Hint(hint, reply)).await
    }

    /// Forgets a hint once delivered (unless a newer one for the same key
    /// replaced it meanwhile).
    ///
    /// # Errors
    /// The commit failed.
    pub async fn clear_hint(&self, hint: Hint) -> Result<(), StoreError> {
        self.ask(|reply| Job::ClearHint(hint, reply)).await
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
    /// how many.
    ///
    /// # Errors
    /// The commit failed.
    pub async fn drop_partition(&self, partition: u32) -> Result<usize, StoreError> {
        self.ask(|reply| Job::Drop(partition, reply)).await
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

/// The writer thread: one transaction per batch of queued jobs.
fn run_writer(db: &Database, summaries: &[Mutex<MerkleSummary>], jobs: &mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut ops = Vec::new();
        match commit(db, summaries, &batch, &mut ops) {
            Ok(answers) => {
                for op in ops {
                    apply_op(summaries, op);
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
    }
}

/// One job's answer: the wins of a write job, or a count.
enum Answer {
    Wins(Vec<bool>),
    Count(usize),
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
        Job::Hint(_, reply) | Job::ClearHint(_, reply) => {
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
        SummaryOp::Apply(p, key, entry) => {
            // Lengths were checked before the row was written.
            let _ = lock(p).apply(&key, entry.version, entry.value.as_deref());
        }
        SummaryOp::Remove(p, position) => {
            lock(p).remove_at(&position);
        }
        SummaryOp::Reset(p) => *lock(p) = MerkleSummary::new(),
    }
}

/// Runs a batch in one write transaction; on success returns each job's
/// answer and fills `ops` with the summary changes to make, in order.
fn commit(
    db: &Database,
    summaries: &[Mutex<MerkleSummary>],
    batch: &[Job],
    ops: &mut Vec<SummaryOp>,
) -> Result<Vec<Answer>, StoreError> {
    let txn = db.begin_write().map_err(err)?;
    let mut answers = Vec::with_capacity(batch.len());
    {
        let mut data = txn.open_table(DATA).map_err(err)?;
        let mut hints = txn.open_table(HINTS).map_err(err)?;
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
                        let position = position(&w.key);
                        let hash = short_hash(&w.key, &w.entry);
                        let current = match staged.get(&(w.partition, position)) {
                            Some(&held) => Some(held),
                            None if dropped.contains(&w.partition) => None,
                            None => summaries[w.partition as usize]
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .get_at(&position)
                                .map(|s| (s.version, s.hash)),
                        };
                        let won = current.is_none_or(|held| (w.entry.version, hash) > held);
                        if won {
                            let row = encode_entry(&w.key, &w.entry);
                            data.insert(row_key(w.partition, &position).as_slice(), row.as_slice())
                                .map_err(err)?;
                            staged.insert((w.partition, position), (w.entry.version, hash));
                            ops.push(SummaryOp::Apply(w.partition, w.key.clone(), w.entry.clone()));
                        }
                        wins.push(won);
                    }
                    answers.push(Answer::Wins(wins));
                }
                Job::Hint(hint, _) => {
                    let key = hint_key(hint);
                    // Keep the newer of two hints for one key.
                    let newer = match hints.get(key.as_slice()).map_err(err)? {
                        Some(old) => {
                            let (_, held) = decode_entry(old.value())?;
                            hint.write.entry.beats(&hint.write.key, &held)
                        }
                        None => true,
                    };
                    if newer {
                        let row = encode_entry(&hint.write.key, &hint.write.entry);
                        hints.insert(key.as_slice(), row.as_slice()).map_err(err)?;
                    }
                    answers.push(Answer::Done);
                }
                Job::ClearHint(hint, _) => {
                    let key = hint_key(hint);
                    let same = match hints.get(key.as_slice()).map_err(err)? {
                        Some(old) => decode_entry(old.value())?.1 == hint.write.entry,
                        None => false,
                    };
                    if same {
                        hints.remove(key.as_slice()).map_err(err)?;
                    }
                    answers.push(Answer::Done);
                }
                Job::Drop(partition, _) => {
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
                    ops.push(SummaryOp::Reset(*partition));
                    answers.push(Answer::Count(removed));
                }
                Job::Purge(horizon, _) => {
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
    txn.commit().map_err(err)?;
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

fn short_hash(key: &[u8], entry: &Versioned<Vec<u8>>) -> [u8; TRUNC] {
    let mut out = [0; TRUNC];
    out.copy_from_slice(&entry_hash(key, entry.version, entry.value.as_deref())[..TRUNC]);
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
    let value = (!tombstone).then(|| value.to_vec());
    Ok((key.to_vec(), Versioned { version: u64::from_be_bytes(version), value }))
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
        store.add_hint(hint("n3", 1)).await.unwrap();
        assert_eq!(store.hint_count().unwrap(), 2);
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
