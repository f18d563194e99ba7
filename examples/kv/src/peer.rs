//! The protocol between nodes (the sync port): replica reads and writes,
//! sync sessions, and status, as length-prefixed binary frames; and the
//! client side, a small connection pool per peer with a timeout on every
//! call and a fault switch that drops a peer's traffic.
//!
//! Every request names the node that sends it; a node answers only nodes
//! of its cluster file. A request frame is the sender's id (one length
//! byte, then the id), a tag byte and the request's fields; numbers are
//! big-endian, byte strings carry a 4-byte length. A frame longer than
//! [`MAX_FRAME`] is refused before it is read.
//!
//! | tag | request | reply |
//! |---|---|---|
//! | 1 | `Read partition key` | `Entry` (none, or version and value or tombstone) |
//! | 2 | `Write partition key version value-or-tombstone` | `Written won` |
//! | 3 | `Sync partition` | `Accept`, then a merkle sync session on the same connection |
//! | 4 | `Status` | `Status epoch moving filled switched` |
//! | 5 | `Config` | `Config text` (the cluster file it serves, for a joining node) |
//!
//! Any request may be answered with `Error message`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sysblocks_merkle::{Versioned, read_frame, write_frame};
use tokio::net::TcpStream;

/// The largest frame either side accepts: a value at the data port's
/// limit (512 KiB) plus its key and headers, with room to spare.
pub const MAX_FRAME: usize = 1 << 20;

/// Idle connections kept per peer.
const POOL: usize = 16;

/// A request from one node to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// This replica's entry of `key`.
    Read {
        /// The key's partition.
        partition: u32,
        /// The key.
        key: Vec<u8>,
    },
    /// Store an entry if it wins.
    Write {
        /// The key's partition.
        partition: u32,
        /// The key.
        key: Vec<u8>,
        /// The entry.
        entry: Versioned<Vec<u8>>,
    },
    /// Start a sync session of one partition.
    Sync {
        /// The partition.
        partition: u32,
    },
    /// The node's membership state.
    Status,
    /// The cluster file the node serves.
    Config,
}

/// A node's progress through a membership change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// The epoch of the cluster file it serves, or moves to (a hash of
    /// its contents).
    pub epoch: u64,
    /// Whether it is moving partitions to that cluster file.
    pub moving: bool,
    /// Partitions it gained and has filled from the old replicas.
    pub filled: Vec<u32>,
    /// Moving partitions it now serves from the new replica list.
    pub switched: Vec<u32>,
}

/// A reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The replica's entry (`None`: it holds nothing for the key).
    Entry(Option<Versioned<Vec<u8>>>),
    /// Whether the write won.
    Written(bool),
    /// The sync session may start.
    Accept,
    /// The membership state.
    Status(Status),
    /// The cluster file served.
    Config(String),
    /// The request failed.
    Error(String),
}

/// Why a call to a peer failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerError {
    /// No answer within the timeout.
    Timeout,
    /// The connection failed.
    Io(String),
    /// The peer's traffic is dropped (the fault layer).
    Dropped,
    /// A frame that is not this protocol.
    Malformed(String),
    /// No such node in the cluster file.
    UnknownNode(String),
    /// The peer answered with an error.
    Remote(String),
}

impl std::fmt::Display for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerError::Timeout => write!(f, "the peer did not answer in time"),
            PeerError::Io(e) => write!(f, "connection to the peer failed: {e}"),
            PeerError::Dropped => write!(f, "traffic to the peer is dropped (fault injection)"),
            PeerError::Malformed(e) => write!(f, "malformed peer frame: {e}"),
            PeerError::UnknownNode(n) => write!(f, "no node {n:?} in the cluster file"),
            PeerError::Remote(e) => write!(f, "the peer answered: {e}"),
        }
    }
}

impl std::error::Error for PeerError {}

impl From<sysblocks_merkle::MerkleError> for PeerError {
    fn from(e: sysblocks_merkle::MerkleError) -> Self {
        match e {
            sysblocks_merkle::MerkleError::Io { message, .. } => PeerError::Io(message),
            other => PeerError::Malformed(other.to_string()),
        }
    }
}

// ----- encoding ---------------------------------------------------------------

/// Appends a request frame's payload.
pub fn encode_request(from: &str, request: &Request) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    let id = &from.as_bytes()[..from.len().min(255)];
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    match request {
        Request::Read { partition, key } => {
            out.push(1);
            out.extend_from_slice(&partition.to_be_bytes());
            put_bytes(&mut out, key);
        }
        Request::Write { partition, key, entry } => {
            out.push(2);
            out.extend_from_slice(&partition.to_be_bytes());
            put_bytes(&mut out, key);
            put_entry(&mut out, entry);
        }
        Request::Sync { partition } => {
            out.push(3);
            out.extend_from_slice(&partition.to_be_bytes());
        }
        Request::Status => out.push(4),
        Request::Config => out.push(5),
    }
    out
}

/// Reads a request frame: the sender and the request.
///
/// # Errors
/// [`PeerError::Malformed`] for anything that is not a whole request.
pub fn decode_request(frame: &[u8]) -> Result<(String, Request), PeerError> {
    let mut r = Reader(frame);
    let id_len = r.u8()? as usize;
    let from = String::from_utf8(r.take(id_len)?.to_vec())
        .map_err(|_| PeerError::Malformed("a node id that is not UTF-8".into()))?;
    let request = match r.u8()? {
        1 => Request::Read { partition: r.u32()?, key: r.bytes()? },
        2 => Request::Write { partition: r.u32()?, key: r.bytes()?, entry: r.entry()? },
        3 => Request::Sync { partition: r.u32()? },
        4 => Request::Status,
        5 => Request::Config,
        tag => return Err(PeerError::Malformed(format!("unknown request tag {tag}"))),
    };
    r.end()?;
    Ok((from, request))
}

/// A reply frame's payload.
pub fn encode_reply(reply: &Reply) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    match reply {
        Reply::Entry(None) => out.push(1),
        Reply::Entry(Some(entry)) => {
            out.push(2);
            put_entry(&mut out, entry);
        }
        Reply::Written(won) => {
            out.push(3);
            out.push(u8::from(*won));
        }
        Reply::Accept => out.push(4),
        Reply::Status(status) => {
            out.push(5);
            out.extend_from_slice(&status.epoch.to_be_bytes());
            out.push(u8::from(status.moving));
            for list in [&status.filled, &status.switched] {
                out.extend_from_slice(&(list.len() as u32).to_be_bytes());
                for p in list {
                    out.extend_from_slice(&p.to_be_bytes());
                }
            }
        }
        Reply::Error(message) => {
            out.push(6);
            put_bytes(&mut out, message.as_bytes());
        }
        Reply::Config(text) => {
            out.push(7);
            put_bytes(&mut out, text.as_bytes());
        }
    }
    out
}

/// Reads a reply frame.
///
/// # Errors
/// [`PeerError::Malformed`] for anything that is not a whole reply.
pub fn decode_reply(frame: &[u8]) -> Result<Reply, PeerError> {
    let mut r = Reader(frame);
    let reply = match r.u8()? {
        1 => Reply::Entry(None),
        2 => Reply::Entry(Some(r.entry()?)),
        3 => Reply::Written(r.u8()? != 0),
        4 => Reply::Accept,
        5 => {
            let epoch = r.u64()?;
            let moving = r.u8()? != 0;
            let mut lists = [Vec::new(), Vec::new()];
            for list in &mut lists {
                let n = r.u32()? as usize;
                if n > r.0.len() / 4 {
                    return Err(PeerError::Malformed("a list longer than its frame".into()));
                }
                for _ in 0..n {
                    list.push(r.u32()?);
                }
            }
            let [filled, switched] = lists;
            Reply::Status(Status { epoch, moving, filled, switched })
        }
        6 => Reply::Error(String::from_utf8_lossy(&r.bytes()?).into_owned()),
        7 => Reply::Config(
            String::from_utf8(r.bytes()?)
                .map_err(|_| PeerError::Malformed("a cluster file that is not UTF-8".into()))?,
        ),
        tag => return Err(PeerError::Malformed(format!("unknown reply tag {tag}"))),
    };
    r.end()?;
    Ok(reply)
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn put_entry(out: &mut Vec<u8>, entry: &Versioned<Vec<u8>>) {
    out.extend_from_slice(&entry.version.to_be_bytes());
    match &entry.value {
        None => out.push(0),
        Some(value) => {
            out.push(1);
            put_bytes(out, value);
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PeerError> {
        if self.0.len() < n {
            return Err(PeerError::Malformed("a frame cut short".into()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, PeerError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, PeerError> {
        let mut b = [0; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, PeerError> {
        let mut b = [0; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }

    fn bytes(&mut self) -> Result<Vec<u8>, PeerError> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }

    fn entry(&mut self) -> Result<Versioned<Vec<u8>>, PeerError> {
        let version = self.u64()?;
        let value = match self.u8()? {
            0 => None,
            1 => Some(self.bytes()?),
            kind => return Err(PeerError::Malformed(format!("unknown entry kind {kind}"))),
        };
        Ok(Versioned { version, value })
    }

    fn end(&self) -> Result<(), PeerError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(PeerError::Malformed(format!("{} bytes after the end", self.0.len())))
        }
    }
}

// ----- faults -----------------------------------------------------------------

/// The fault layer: peers whose traffic this node drops, both ways (calls
/// to them fail at once; their connections are closed unanswered).
#[derive(Debug, Default)]
pub struct Faults {
    dropped: Mutex<HashSet<String>>,
}

impl Faults {
    /// Drops traffic to and from these peers (replacing the set).
    pub fn drop_peers(&self, peers: impl IntoIterator<Item = String>) {
        *self.dropped.lock().unwrap_or_else(PoisonError::into_inner) = peers.into_iter().collect();
    }

    /// Whether `peer`'s traffic is dropped.
    pub fn is_dropped(&self, peer: &str) -> bool {
        self.dropped.lock().unwrap_or_else(PoisonError::into_inner).contains(peer)
    }

    /// The peers whose traffic is dropped, sorted.
    pub fn dropped(&self) -> Vec<String> {
        let mut peers: Vec<String> =
            self.dropped.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect();
        peers.sort();
        peers
    }
}

// ----- the client ---------------------------------------------------------------

/// Connections to the other nodes.
#[derive(Debug)]
pub struct Peers {
    me: String,
    addresses: Mutex<HashMap<String, SocketAddr>>,
    idle: Mutex<HashMap<String, Vec<TcpStream>>>,
    faults: Arc<Faults>,
    timeout: Duration,
}

/// A connection taken from the pool, for a sync session.
#[derive(Debug)]
pub struct Connection {
    /// The peer.
    pub peer: String,
    /// The stream.
    pub stream: TcpStream,
}

impl Peers {
    /// Connections from node `me` to the nodes at `addresses` (their sync
    /// ports), each call bounded by `timeout`.
    pub fn new(
        me: String,
        addresses: HashMap<String, SocketAddr>,
        faults: Arc<Faults>,
        timeout: Duration,
    ) -> Self {
        Peers {
            me,
            addresses: Mutex::new(addresses),
            idle: Mutex::new(HashMap::new()),
            faults,
            timeout,
        }
    }

    /// The timeout of one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Replaces the peers' addresses (a new cluster file).
    pub fn set_addresses(&self, addresses: HashMap<String, SocketAddr>) {
        *self.addresses.lock().unwrap_or_else(PoisonError::into_inner) = addresses;
    }

    /// Sends `request` to `peer` and waits for the reply, within the
    /// timeout.
    ///
    /// # Errors
    /// Any [`PeerError`]; [`PeerError::Remote`] when the peer answered
    /// with an error.
    pub async fn call(&self, peer: &str, request: &Request) -> Result<Reply, PeerError> {
        let frame = encode_request(&self.me, request);
        let (mut conn, pooled) = self.connect_pooled(peer).await?;
        let mut reply = self.exchange(&mut conn, &frame).await;
        if pooled && matches!(reply, Err(PeerError::Io(_) | PeerError::Malformed(_))) {
            // An idle connection that broke while it waited (the peer
            // restarted): the others in the pool are as stale. Every
            // request here is idempotent (a write carries its version), so
            // it is sent again on a new connection.
            self.forget(peer);
            conn = self.connect(peer).await?;
            reply = self.exchange(&mut conn, &frame).await;
        }
        let reply = reply?;
        self.give_back(conn);
        match reply {
            Reply::Error(message) => Err(PeerError::Remote(message)),
            reply => Ok(reply),
        }
    }

    /// One request and its reply on `conn`, within the timeout.
    async fn exchange(&self, conn: &mut Connection, frame: &[u8]) -> Result<Reply, PeerError> {
        let exchange = async {
            write_frame(&mut conn.stream, frame).await?;
            let reply = read_frame(&mut conn.stream, MAX_FRAME).await?;
            decode_reply(&reply)
        };
        tokio::time::timeout(self.timeout, exchange).await.map_err(|_| PeerError::Timeout)?
    }

    /// A connection to `peer`: an idle one, or a new one.
    ///
    /// # Errors
    /// [`PeerError::Dropped`], [`PeerError::UnknownNode`], or the connect
    /// failed or timed out.
    pub async fn connect(&self, peer: &str) -> Result<Connection, PeerError> {
        Ok(self.connect_pooled(peer).await?.0)
    }

    /// [`connect`](Self::connect), and whether the connection came from
    /// the pool.
    async fn connect_pooled(&self, peer: &str) -> Result<(Connection, bool), PeerError> {
        if self.faults.is_dropped(peer) {
            return Err(PeerError::Dropped);
        }
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(peer)
            .and_then(Vec::pop);
        if let Some(stream) = idle {
            return Ok((Connection { peer: peer.to_owned(), stream }, true));
        }
        let address = self
            .addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(peer)
            .copied()
            .ok_or_else(|| PeerError::UnknownNode(peer.to_owned()))?;
        let stream = tokio::time::timeout(self.timeout, TcpStream::connect(address))
            .await
            .map_err(|_| PeerError::Timeout)?
            .map_err(|e| PeerError::Io(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        Ok((Connection { peer: peer.to_owned(), stream }, false))
    }

    /// Returns a connection whose last exchange completed to the pool.
    pub fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let pool = idle.entry(conn.peer).or_default();
        if pool.len() < POOL {
            pool.push(conn.stream);
        }
    }

    /// Closes the idle connections to `peer` (after a fault, so that the
    /// next call reconnects).
    pub fn forget(&self, peer: &str) {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).remove(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let entry = Versioned { version: 42, value: Some(b"v".to_vec()) };
        let requests = [
            Request::Read { partition: 3, key: b"k".to_vec() },
            Request::Write { partition: 9, key: b"k".to_vec(), entry: entry.clone() },
            Request::Write {
                partition: 9,
                key: vec![],
                entry: Versioned { version: 1, value: None },
            },
            Request::Sync { partition: 63 },
            Request::Status,
            Request::Config,
        ];
        for request in requests {
            let frame = encode_request("n1", &request);
            assert_eq!(decode_request(&frame).unwrap(), ("n1".to_string(), request));
        }
        let replies = [
            Reply::Entry(None),
            Reply::Entry(Some(entry)),
            Reply::Written(true),
            Reply::Accept,
            Reply::Status(Status { epoch: 7, moving: true, filled: vec![1, 2], switched: vec![3] }),
            Reply::Config("[[node]]".into()),
            Reply::Error("no".into()),
        ];
        for reply in replies {
            assert_eq!(decode_reply(&encode_reply(&reply)).unwrap(), reply);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let frame = encode_request("n1", &Request::Read { partition: 3, key: b"key".to_vec() });
        for cut in 0..frame.len() {
            assert!(decode_request(&frame[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = frame.clone();
        long.push(0);
        assert!(decode_request(&long).is_err());
        assert!(decode_request(&[2, b'n', b'1', 99]).is_err());
        assert!(decode_reply(&[5, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode_reply(&[]).is_err());
        assert!(decode_request(&[1, 0xff, 4]).is_err(), "an id that is not UTF-8");
    }
}
