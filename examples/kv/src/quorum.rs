//! What a coordinator makes of its replicas' replies: a read's answer and
//! the replicas to repair, a write's verdict. Pure functions, so that the
//! rules are tested apart from the network.
//!
//! "Newer" is the merkle crate's rule, [`Versioned::beats`]: the larger
//! version (a hybrid-logical-clock timestamp), a tie broken by the larger
//! entry hash. Every replica and every coordinator resolves two versions
//! of a key the same way with it, so read repair and anti-entropy never
//! disagree about which one to keep.
//!
//! ```
//! use sysblocks_kv::quorum::{Reply, resolve_read};
//! use sysblocks_merkle::Versioned;
//!
//! let old = Versioned { version: 1, value: Some(b"old".to_vec()) };
//! let new = Versioned { version: 2, value: Some(b"new".to_vec()) };
//! let replies = [Reply::Found(new.clone()), Reply::Found(old), Reply::Missing, Reply::Failed];
//! let read = resolve_read(b"k", &replies, 2).expect("2 of 3 answered");
//! assert_eq!(read.newest, Some(new));
//! assert_eq!(read.stale, [1, 2]); // replica 1 holds an older version, 2 none
//! ```

use sysblocks_merkle::Versioned;

/// One replica's answer to a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// It holds this entry (a tombstone included).
    Found(Versioned<Vec<u8>>),
    /// It holds nothing for the key.
    Missing,
    /// It did not answer in time, or failed.
    Failed,
}

/// A read's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// The newest entry any replica answered with (`None`: no replica holds
    /// the key). A tombstone means the key was deleted.
    pub newest: Option<Versioned<Vec<u8>>>,
    /// The replicas (indices into the replies) that answered with something
    /// older than `newest`, or nothing: read repair writes `newest` to them.
    pub stale: Vec<usize>,
}

/// The read's result once at least `r` replicas answered (`None`: fewer
/// did, and the coordinator must report that it could not reach a quorum).
pub fn resolve_read(key: &[u8], replies: &[Reply], r: usize) -> Option<ReadResult> {
    let answered = replies.iter().filter(|reply| !matches!(reply, Reply::Failed)).count();
    if answered < r.max(1) {
        return None;
    }
    let mut newest: Option<&Versioned<Vec<u8>>> = None;
    for reply in replies {
        if let Reply::Found(entry) = reply
            && newest.is_none_or(|best| entry.beats(key, best))
        {
            newest = Some(entry);
        }
    }
    let stale = match newest {
        None => Vec::new(),
        Some(best) => replies
            .iter()
            .enumerate()
            .filter(|(_, reply)| match reply {
                Reply::Found(entry) => entry != best,
                Reply::Missing => true,
                Reply::Failed => false,
            })
            .map(|(i, _)| i)
            .collect(),
    };
    Some(ReadResult { newest: newest.cloned(), stale })
}

/// Whether a write acknowledged by `acks` replicas has its quorum `w`.
pub fn write_succeeded(acks: usize, w: usize) -> bool {
    acks >= w.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(version: u64, value: &str) -> Reply {
        Reply::Found(Versioned { version, value: Some(value.as_bytes().to_vec()) })
    }

    #[test]
    fn the_newest_entry_wins_and_every_other_answer_is_repaired() {
        let replies = [found(3, "c"), found(5, "e"), Reply::Missing];
        let read = resolve_read(b"k", &replies, 2).unwrap();
        assert_eq!(read.newest.unwrap().version, 5);
        assert_eq!(read.stale, [0, 2]);
        // A tombstone that is newer wins over a value: the key is deleted.
        let deleted = [found(3, "c"), Reply::Found(Versioned { version: 4, value: None })];
        let read = resolve_read(b"k", &deleted, 2).unwrap();
        assert_eq!(read.newest.unwrap().value, None);
        assert_eq!(read.stale, [0]);
    }

    #[test]
    fn ties_resolve_the_same_way_in_any_order() {
        let a = found(7, "a");
        let b = found(7, "b");
        let one = resolve_read(b"k", &[a.clone(), b.clone()], 2).unwrap().newest;
        let two = resolve_read(b"k", &[b, a], 2).unwrap().newest;
        assert_eq!(one, two, "equal versions: the larger entry hash wins everywhere");
    }

    #[test]
    fn without_a_quorum_there_is_no_answer() {
        assert!(resolve_read(b"k", &[found(1, "a"), Reply::Failed, Reply::Failed], 2).is_none());
        let none = resolve_read(b"k", &[Reply::Missing, Reply::Missing, Reply::Failed], 2).unwrap();
        assert_eq!(none, ReadResult { newest: None, stale: Vec::new() });
        assert!(write_succeeded(2, 2) && !write_succeeded(1, 2) && !write_succeeded(0, 0));
    }
}
