//! The history checker of the fault tests: what clients saw, checked
//! against what a replicated register with last-writer-wins must give.
//!
//! Clients record each operation through a [`Recorder`]: when it was
//! invoked, when it completed (if it did) and what it returned. Every write
//! writes a value unique to its key (the checker refuses a history where two
//! writes of one key carry the same value: a read of it could not be told
//! apart), and a delete is a write of nothing. [`check`] then verifies, for
//! every successful read of a key:
//!
//! * it returned a value some write of that key wrote (or nothing, for a
//!   key never written or deleted), and that write was invoked before the
//!   read completed (no reading the future);
//! * it is **no older than the last write acknowledged before the read
//!   began**: the write it returned did not complete before some write that
//!   was acknowledged before the read's invocation was even invoked. (A
//!   write whose reply was lost or failed may or may not have happened; it
//!   may be read, but it obliges nothing.)
//!
//! "No acknowledged write is lost" is the same rule applied to reads made
//! after the writes: a final read of every key, from every replica, must
//! return the last acknowledged write or one that may have overtaken it.
//!
//! This is the guarantee of R + W > N with last-writer-wins when clocks
//! order writes that follow each other in real time; it is weaker than
//! linearizability (two reads may disagree while writes are concurrent).
//!
//! ```
//! use sysblocks_kv::history::{Recorder, check};
//!
//! let recorder = Recorder::new();
//! let w = recorder.invoke_write(b"k", Some(b"v1"));
//! recorder.complete_write(w, true);
//! let r = recorder.invoke_read(b"k");
//! recorder.complete_read(r, Some(Some(b"v1".to_vec())));
//! assert!(check(&recorder.history()).is_ok());
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// What an operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A write of this value (`None`: a delete). `acknowledged` is whether
    /// the store said it succeeded; an unacknowledged write (an error, a
    /// timeout, no completion) may or may not have happened.
    Write {
        /// The value written, unique per key; `None` deletes.
        value: Option<Vec<u8>>,
        /// Whether the store acknowledged it.
        acknowledged: bool,
    },
    /// A read and its result: `Some(value)` (`Some(None)`: the key was
    /// absent), or `None` when the read failed (it says nothing).
    Read {
        /// What the read returned.
        result: Option<Option<Vec<u8>>>,
    },
}

/// One operation of a history. Times are nanoseconds on one clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// The key.
    pub key: Vec<u8>,
    /// What it did.
    pub kind: Kind,
    /// When it was invoked.
    pub invoked: u64,
    /// When it completed; `None` if it never did (its client died).
    pub completed: Option<u64>,
}

/// Why a history is not one the store may produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// Two writes of one key wrote the same value: reads of it are ambiguous.
    DuplicateValue {
        /// The key.
        key: Vec<u8>,
    },
    /// A read returned a value no write of the key wrote.
    UnknownValue {
        /// The index of the read in the history.
        read: usize,
    },
    /// A read returned the value of a write invoked after the read completed.
    FromTheFuture {
        /// The read.
        read: usize,
        /// The write whose value it returned.
        write: usize,
    },
    /// A read returned a value older than a write acknowledged before the
    /// read began (or nothing, when such a write existed): a lost or stale
    /// write.
    Stale {
        /// The read.
        read: usize,
        /// The acknowledged write it should have seen (or a later one).
        missed: usize,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::DuplicateValue { key } => {
                write!(
                    f,
                    "two writes of key {:?} wrote the same value",
                    String::from_utf8_lossy(key)
                )
            }
            Violation::UnknownValue { read } => {
                write!(f, "read #{read} returned a value never written")
            }
            Violation::FromTheFuture { read, write } => {
                write!(f, "read #{read} returned write #{write}, invoked after the read completed")
            }
            Violation::Stale { read, missed } => write!(
                f,
                "read #{read} is older than write #{missed}, acknowledged before the read began"
            ),
        }
    }
}

impl std::error::Error for Violation {}

/// What a passing history held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Acknowledged writes.
    pub acknowledged_writes: usize,
    /// Successful reads, each checked.
    pub reads: usize,
}

/// Checks `history` (see the module docs for the rules).
///
/// # Errors
/// The first [`Violation`] found.
pub fn check(history: &[Op]) -> Result<Summary, Violation> {
    let mut summary = Summary::default();
    // Per key: its writes (indices into the history); per written value,
    // the write that wrote it (values are unique per key; deletes, which
    // all "write" absence, are kept apart).
    let mut writes: HashMap<&[u8], Vec<usize>> = HashMap::new();
    let mut deletes: HashMap<&[u8], Vec<usize>> = HashMap::new();
    let mut by_value: HashMap<(&[u8], &[u8]), usize> = HashMap::new();
    for (i, op) in history.iter().enumerate() {
        if let Kind::Write { value, acknowledged } = &op.kind {
            writes.entry(&op.key).or_default().push(i);
            match value {
                Some(v) => {
                    if by_value.insert((&op.key, v), i).is_some() {
                        return Err(Violation::DuplicateValue { key: op.key.clone() });
                    }
                }
                None => deletes.entry(&op.key).or_default().push(i),
            }
            if *acknowledged {
                summary.acknowledged_writes += 1;
            }
        }
    }
    for (r, op) in history.iter().enumerate() {
        let Kind::Read { result: Some(result) } = &op.kind else { continue };
        let Some(read_done) = op.completed else { continue };
        summary.reads += 1;
        let key_writes = writes.get(op.key.as_slice()).map_or(&[][..], Vec::as_slice);
        // The writes the read may have returned: the one that wrote its
        // value, or, for absence, any delete or the key's initial absence
        // (`None` here).
        let candidates: Vec<Option<usize>> = match result {
            Some(v) => match by_value.get(&(op.key.as_slice(), v.as_slice())) {
                Some(&w) => vec![Some(w)],
                None => return Err(Violation::UnknownValue { read: r }),
            },
            None => std::iter::once(None)
                .chain(deletes.get(op.key.as_slice()).into_iter().flatten().map(|&w| Some(w)))
                .collect(),
        };
        let mut verdict = Ok(());
        for candidate in candidates {
            verdict = judge(history, r, read_done, key_writes, candidate);
            if verdict.is_ok() {
                break;
            }
        }
        verdict?;
    }
    Ok(summary)
}

/// Whether read `r` (completed at `read_done`) may have returned the value
/// of write `source` (`None`: the key's initial absence), given the key's
/// writes.
fn judge(
    history: &[Op],
    r: usize,
    read_done: u64,
    key_writes: &[usize],
    source: Option<usize>,
) -> Result<(), Violation> {
    if let Some(w) = source
        && history[w].invoked > read_done
    {
        return Err(Violation::FromTheFuture { read: r, write: w });
    }
    // Every write acknowledged before the read began must not have been
    // invoked after the returned write completed.
    for &w in key_writes {
        let acked_before = matches!(history[w].kind, Kind::Write { acknowledged: true, .. })
            && history[w].completed.is_some_and(|done| done < history[r].invoked);
        if !acked_before || Some(w) == source {
            continue;
        }
        let stale = match source {
            // The initial absence precedes every write.
            None => true,
            Some(s) => history[s].completed.is_some_and(|done| done < history[w].invoked),
        };
        if stale {
            return Err(Violation::Stale { read: r, missed: w });
        }
    }
    Ok(())
}

/// Records a history from concurrent clients, on one monotonic clock.
#[derive(Debug)]
pub struct Recorder {
    origin: Instant,
    ops: Mutex<Vec<Op>>,
}

/// An operation in flight, to complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending(usize);

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// An empty history, its clock starting now.
    pub fn new() -> Self {
        Recorder { origin: Instant::now(), ops: Mutex::new(Vec::new()) }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn push(&self, key: &[u8], kind: Kind) -> Pending {
        let mut ops = self.ops.lock().unwrap_or_else(PoisonError::into_inner);
        // The invocation time is read under the lock, so that the order of
        // the history is the order of the invocations.
        let invoked = self.now();
        ops.push(Op { key: key.to_vec(), kind, invoked, completed: None });
        Pending(ops.len() - 1)
    }

    /// A write of `value` (`None`: a delete) is about to be sent.
    pub fn invoke_write(&self, key: &[u8], value: Option<&[u8]>) -> Pending {
        self.push(key, Kind::Write { value: value.map(<[u8]>::to_vec), acknowledged: false })
    }

    /// The write came back: acknowledged, or not (an error or a timeout).
    pub fn complete_write(&self, op: Pending, acknowledged: bool) {
        let done = self.now();
        let mut ops = self.ops.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = ops.get_mut(op.0) {
            entry.completed = Some(done);
            if let Kind::Write { acknowledged: a, .. } = &mut entry.kind {
                *a = acknowledged;
            }
        }
    }

    /// A read is about to be sent.
    pub fn invoke_read(&self, key: &[u8]) -> Pending {
        self.push(key, Kind::Read { result: None })
    }

    /// The read came back with `result` (`Some(None)`: absent), or failed
    /// (`None`).
    pub fn complete_read(&self, op: Pending, result: Option<Option<Vec<u8>>>) {
        let done = self.now();
        let mut ops = self.ops.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = ops.get_mut(op.0) {
            entry.completed = Some(done);
            entry.kind = Kind::Read { result };
        }
    }

    /// The history so far.
    pub fn history(&self) -> Vec<Op> {
        self.ops.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(
        key: &str,
        value: Option<&str>,
        invoked: u64,
        completed: Option<u64>,
        ack: bool,
    ) -> Op {
        Op {
            key: key.as_bytes().to_vec(),
            kind: Kind::Write { value: value.map(|v| v.as_bytes().to_vec()), acknowledged: ack },
            invoked,
            completed,
        }
    }

    fn read(key: &str, result: Option<&str>, invoked: u64, completed: u64) -> Op {
        Op {
            key: key.as_bytes().to_vec(),
            kind: Kind::Read { result: Some(result.map(|v| v.as_bytes().to_vec())) },
            invoked,
            completed: Some(completed),
        }
    }

    #[test]
    fn sequential_and_concurrent_histories_pass() {
        let history = [
            write("k", Some("a"), 0, Some(10), true),
            read("k", Some("a"), 20, 30),
            // Two concurrent writes: a later read may return either.
            write("k", Some("b"), 40, Some(60), true),
            write("k", Some("c"), 45, Some(55), true),
            read("k", Some("b"), 70, 80),
            read("k", Some("c"), 70, 80),
            // A read concurrent with a write may return the old value.
            write("k", Some("d"), 90, Some(120), true),
            read("k", Some("c"), 95, 100),
            read("k", Some("d"), 100, 110),
            // An unacknowledged write may be read, or not.
            write("k", Some("e"), 130, None, false),
            read("k", Some("e"), 140, 150),
            read("other", None, 0, 5),
            // A delete, read as absence.
            write("k", None, 200, Some(210), true),
            read("k", None, 220, 230),
        ];
        let summary = check(&history).unwrap();
        assert_eq!(summary, Summary { acknowledged_writes: 5, reads: 8 });
    }

    #[test]
    fn a_stale_read_is_rejected() {
        let history = [
            write("k", Some("a"), 0, Some(10), true),
            write("k", Some("b"), 20, Some(30), true),
            read("k", Some("a"), 40, 50),
        ];
        assert_eq!(check(&history), Err(Violation::Stale { read: 2, missed: 1 }));
    }

    #[test]
    fn a_lost_write_is_rejected() {
        // The final read finds the key absent although a write was acknowledged.
        let history = [write("k", Some("a"), 0, Some(10), true), read("k", None, 100, 110)];
        assert_eq!(check(&history), Err(Violation::Stale { read: 1, missed: 0 }));
    }

    #[test]
    fn invented_and_future_values_are_rejected() {
        let invented = [write("k", Some("a"), 0, Some(10), true), read("k", Some("z"), 20, 30)];
        assert_eq!(check(&invented), Err(Violation::UnknownValue { read: 1 }));
        let future = [read("k", Some("a"), 0, 10), write("k", Some("a"), 20, Some(30), true)];
        assert_eq!(check(&future), Err(Violation::FromTheFuture { read: 0, write: 1 }));
        let wrong_key = [write("k", Some("a"), 0, Some(10), true), read("j", Some("a"), 20, 30)];
        assert_eq!(check(&wrong_key), Err(Violation::UnknownValue { read: 1 }));
    }

    #[test]
    fn duplicate_values_are_refused_and_failed_reads_ignored() {
        let dup =
            [write("k", Some("a"), 0, Some(1), true), write("k", Some("a"), 2, Some(3), true)];
        assert!(matches!(check(&dup), Err(Violation::DuplicateValue { .. })));
        // Deletes all write absence: several of one key are fine, and a
        // read of absence may come from any of them.
        let deletes = [
            write("k", Some("a"), 0, Some(10), true),
            write("k", None, 20, Some(30), true),
            write("k", Some("b"), 40, Some(50), true),
            write("k", None, 60, Some(70), true),
            read("k", None, 80, 90),
        ];
        assert!(check(&deletes).is_ok());
        // But not when a write was acknowledged after the last delete.
        let stale_absence = [
            write("k", None, 0, Some(10), true),
            write("k", Some("a"), 20, Some(30), true),
            read("k", None, 40, 50),
        ];
        assert_eq!(check(&stale_absence), Err(Violation::Stale { read: 2, missed: 1 }));
        let failed = Op {
            key: b"k".to_vec(),
            kind: Kind::Read { result: None },
            invoked: 20,
            completed: Some(30),
        };
        let history = [write("k", Some("a"), 0, Some(10), true), failed];
        assert_eq!(check(&history).unwrap().reads, 0);
        assert_eq!(
            Violation::Stale { read: 2, missed: 1 }.to_string(),
            "read #2 is older than write #1, acknowledged before the read began"
        );
    }

    #[test]
    fn the_recorder_keeps_real_time_order() {
        let recorder = Recorder::new();
        let w = recorder.invoke_write(b"k", Some(b"1"));
        recorder.complete_write(w, true);
        let r = recorder.invoke_read(b"k");
        recorder.complete_read(r, Some(None));
        let history = recorder.history();
        assert!(history[0].completed.unwrap() <= history[1].invoked);
        // The read missed an acknowledged write: the checker catches it.
        assert_eq!(check(&history), Err(Violation::Stale { read: 1, missed: 0 }));
    }
}
