//! The write-ahead log in front of the B-tree: what makes a write durable
//! cheaply.
//!
//! A B-tree keyed by hash positions puts every write on a random page: a
//! commit of 50 writes copies and fsyncs some 50 pages of 4 KiB. Appending
//! the same 50 rows to a log and fsyncing it writes about 7 KiB, in order.
//! So the writer appends each batch of winning rows here and syncs it
//! before acknowledging; the rows also go to an in-memory table that reads
//! consult first; and a checkpoint writes that table into the B-tree in one
//! large transaction (a page then takes many writes at once) and deletes
//! the log segments it covered. At start, segments left over are replayed
//! into the B-tree.
//!
//! A segment is a file `wal-NNNNNNNN.log` of records: a 4-byte length, an
//! 8-byte FNV-1a checksum of the body, and the body (a 20-byte row key and
//! the row). Replay stops at the first record that is cut short or fails
//! its checksum: the tail a crash left half-written, never acknowledged.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// A row key (partition and position) and its row.
pub type Record = (Vec<u8>, Vec<u8>);

/// The log: the segment being appended to.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    number: u64,
    file: File,
}

fn checksum(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("wal-{number:08}.log"))
}

/// The segments in `dir`, oldest first.
fn segments(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut numbers = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name.strip_prefix("wal-").and_then(|n| n.strip_suffix(".log"))
            && let Ok(n) = n.parse()
        {
            numbers.push(n);
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// The whole records of one segment's bytes (a torn tail is left out).
fn parse(bytes: &[u8], key_len: usize) -> Vec<Record> {
    let mut records = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 12 {
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let mut sum = [0u8; 8];
        sum.copy_from_slice(&rest[4..12]);
        let Some(body) = rest.get(12..12 + len) else { break };
        if checksum(body) != u64::from_le_bytes(sum) || body.len() < key_len {
            break;
        }
        records.push((body[..key_len].to_vec(), body[key_len..].to_vec()));
        rest = &rest[12 + len..];
    }
    records
}

/// Deletes the segments in `dir` up to and including `number`.
///
/// # Errors
/// A segment cannot be deleted.
pub fn delete_through(dir: &Path, number: u64) -> std::io::Result<()> {
    for n in segments(dir)?.into_iter().filter(|&n| n <= number) {
        std::fs::remove_file(segment_path(dir, n))?;
    }
    Ok(())
}

impl Wal {
    /// Opens the log in `dir`: the records of the segments left over
    /// (oldest first; row keys of `key_len` bytes), and a new segment
    /// after them. The caller stores the records, then calls
    /// [`delete_through`](Self::delete_through) with the returned number.
    ///
    /// # Errors
    /// The directory or a segment cannot be read, or the new segment
    /// cannot be created.
    pub fn open(dir: &Path, key_len: usize) -> std::io::Result<(Wal, Vec<Record>, u64)> {
        let existing = segments(dir)?;
        let mut records = Vec::new();
        for &n in &existing {
            let mut bytes = Vec::new();
            File::open(segment_path(dir, n))?.read_to_end(&mut bytes)?;
            records.extend(parse(&bytes, key_len));
        }
        let last = existing.last().copied().unwrap_or(0);
        let wal = Wal::create(dir, last + 1)?;
        Ok((wal, records, last))
    }

    fn create(dir: &Path, number: u64) -> std::io::Result<Wal> {
        let file = OpenOptions::new().create(true).append(true).open(segment_path(dir, number))?;
        // The segment's name must survive a power loss too.
        File::open(dir)?.sync_all()?;
        Ok(Wal { dir: dir.to_path_buf(), number, file })
    }

    /// Appends records and syncs them to disk; once it returns they
    /// survive a crash.
    ///
    /// # Errors
    /// The write or the sync failed.
    pub fn append(&mut self, records: &[(&[u8], &[u8])]) -> std::io::Result<()> {
        let size: usize = records.iter().map(|(k, r)| 12 + k.len() + r.len()).sum();
        let mut buffer = Vec::with_capacity(size);
        let mut body = Vec::new();
        for (key, row) in records {
            body.clear();
            body.extend_from_slice(key);
            body.extend_from_slice(row);
            buffer.extend_from_slice(&(body.len() as u32).to_le_bytes());
            buffer.extend_from_slice(&checksum(&body).to_le_bytes());
            buffer.extend_from_slice(&body);
        }
        self.file.write_all(&buffer)?;
        self.file.sync_data()
    }

    /// Starts a new segment; returns the number of the one closed (every
    /// record appended so far is in it or before it).
    ///
    /// # Errors
    /// The new segment cannot be created.
    pub fn rotate(&mut self) -> std::io::Result<u64> {
        let closed = self.number;
        *self = Wal::create(&self.dir, closed + 1)?;
        Ok(closed)
    }

    /// Deletes the segments up to and including `number` (their records
    /// are in the B-tree now).
    ///
    /// # Errors
    /// A segment cannot be deleted.
    pub fn delete_through(&self, number: u64) -> std::io::Result<()> {
        delete_through(&self.dir, number)
    }

    /// The directory of the segments.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_reopen_and_a_torn_tail_is_dropped() {
        let dir = std::env::temp_dir().join(format!("sysblocks-kv-wal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        {
            let (mut wal, old, last) = Wal::open(&dir, 2).unwrap();
            assert!(old.is_empty() && last == 0);
            wal.append(&[(b"k1", b"row-1"), (b"k2", b"row-2")]).unwrap();
            let closed = wal.rotate().unwrap();
            assert_eq!(closed, 1);
            wal.append(&[(b"k3", b"row-3")]).unwrap();
        }
        // A crash in the middle of an append: half a record at the end.
        let mut tail = OpenOptions::new().append(true).open(segment_path(&dir, 2)).unwrap();
        tail.write_all(&[40, 0, 0, 0, 1, 2, 3]).unwrap();
        drop(tail);
        let (wal, records, last) = Wal::open(&dir, 2).unwrap();
        assert_eq!(last, 2);
        let keys: Vec<&[u8]> = records.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(keys, [&b"k1"[..], b"k2", b"k3"]);
        assert_eq!(records[2].1, b"row-3");
        wal.delete_through(last).unwrap();
        assert_eq!(segments(&dir).unwrap(), [3]);
        // A flipped byte fails the checksum: the record and what follows go.
        let mut bytes = Vec::new();
        for (k, r) in [(&b"aa"[..], &b"x"[..]), (b"bb", b"y")] {
            let body = [k, r].concat();
            bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&checksum(&body).to_le_bytes());
            bytes.extend_from_slice(&body);
        }
        assert_eq!(parse(&bytes, 2).len(), 2);
        bytes[13] ^= 1;
        assert!(parse(&bytes, 2).is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }
}
