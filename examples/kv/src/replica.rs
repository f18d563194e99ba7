//! The replica side: the sync port's server (replica reads and writes from
//! coordinators, status for rebalancing) and Merkle sync sessions, one
//! partition at a time, over the same connections.
//!
//! A session runs the merkle crate's [`Reconciler`] over a `Partition`
//! view: fingerprints and entry summaries from the partition's in-memory
//! [`MerkleSummary`], entries read from
//! disk by position, and the entries it takes from the peer written back
//! through the store's group commit after each message, before the
//! reply. So only the differing entries are read, sent and written.

use std::sync::Arc;
use std::time::Duration;

use sysblocks_merkle::wire::{TRUNC, WireEntry, WireFp};
use sysblocks_merkle::{
    EntrySummary, MerkleError, MerkleSummary, Reconciler, SyncConfig, SyncStats, SyncStore,
    Versioned, read_frame, write_frame,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use crate::hlc::Hlc;
use crate::metrics::Repair;
use crate::node::Shared;
use crate::peer::{
    MAX_FRAME, PeerError, Reply, Request, decode_request, encode_reply, encode_request,
};
use crate::store::{Store, Write};

/// The sync sessions' tuning: messages up to a frame, so that the largest
/// entry fits.
pub fn sync_config() -> SyncConfig {
    SyncConfig { max_message: MAX_FRAME, ..SyncConfig::default() }
}

/// Accepts peer connections on the sync port until shutdown.
pub async fn serve_peers(shared: Arc<Shared>, listener: TcpListener) {
    let stopped = shared.stopped();
    tokio::pin!(stopped);
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "sync port accept failed");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let stopped = shared.stopped();
            tokio::select! {
                _ = stopped => {}
                result = serve_peer(&shared, stream) => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "peer connection closed");
                    }
                }
            }
        });
    }
}

/// One peer connection: requests answered in turn until it closes.
async fn serve_peer(shared: &Arc<Shared>, mut stream: TcpStream) -> Result<(), PeerError> {
    loop {
        let frame = match read_frame(&mut stream, MAX_FRAME).await {
            Ok(frame) => frame,
            // The peer closed the connection between requests.
            Err(MerkleError::Io { kind: std::io::ErrorKind::UnexpectedEof, .. }) => return Ok(()),
            Err(e) => {
                let _ = answer(&mut stream, &Reply::Error(e.to_string())).await;
                return Err(e.into());
            }
        };
        let (from, request) = match decode_request(&frame) {
            Ok(decoded) => decoded,
            Err(e) => {
                let _ = answer(&mut stream, &Reply::Error(e.to_string())).await;
                return Err(e);
            }
        };
        if !shared.membership().knows(&from) {
            let error = PeerError::UnknownNode(from);
            let _ = answer(&mut stream, &Reply::Error(error.to_string())).await;
            return Err(error);
        }
        if shared.faults.is_dropped(&from) {
            return Err(PeerError::Dropped);
        }
        if let Request::Sync { partition } = request {
            if let Err(reason) = check_partition(shared, &from, partition) {
                answer(&mut stream, &Reply::Error(reason)).await?;
                continue;
            }
            answer(&mut stream, &Reply::Accept).await?;
            let stats = run_session(shared, &mut stream, partition, false).await;
            count_session(shared, &stats);
            stats?;
            continue;
        }
        let reply = handle(shared, &from, request).await;
        answer(&mut stream, &reply).await?;
    }
}

/// Answers a replica request.
async fn handle(shared: &Arc<Shared>, from: &str, request: Request) -> Reply {
    match request {
        Request::Read { partition, key } => {
            if let Err(reason) = check_partition(shared, &shared.id, partition) {
                return Reply::Error(reason);
            }
            match shared.store.get(partition, &key) {
                Ok(entry) => Reply::Entry(entry),
                Err(e) => Reply::Error(e.to_string()),
            }
        }
        Request::Write { partition, key, entry } => {
            if let Err(reason) = check_partition(shared, &shared.id, partition) {
                return Reply::Error(reason);
            }
            if key.len() > shared_limits().max_key_bytes
                || entry.value.as_ref().is_some_and(|v| v.len() > shared_limits().max_value_bytes)
            {
                return Reply::Error("a key or value over the data port's limits".into());
            }
            if let Err(e) = Hlc::check_drift(entry.version) {
                return Reply::Error(e);
            }
            shared.hlc.observe(entry.version);
            match shared.store.write(vec![Write { partition, key, entry }]).await {
                Ok(wins) => Reply::Written(wins.first().copied().unwrap_or(false)),
                Err(e) => Reply::Error(e.to_string()),
            }
        }
        Request::Status => Reply::Status(shared.membership().status()),
        Request::Config => Reply::Config(shared.membership().current.text.to_string()),
        Request::Sync { .. } => Reply::Error(format!("{from}: a sync cannot start here")),
    }
}

fn shared_limits() -> crate::command::Limits {
    crate::command::Limits::default()
}

/// Whether `node` (this one, or the peer asking to sync) serves
/// `partition`, and this node does too.
fn check_partition(shared: &Shared, node: &str, partition: u32) -> Result<(), String> {
    let membership = shared.membership();
    if partition >= membership.current.config.partitions {
        return Err(format!("no partition {partition}"));
    }
    if !membership.serves(&shared.id, partition) {
        return Err(format!("{} is not a replica of partition {partition}", shared.id));
    }
    if !membership.serves(node, partition) {
        return Err(format!("{node} is not a replica of partition {partition}"));
    }
    Ok(())
}

async fn answer<S: AsyncWrite + Unpin>(stream: &mut S, reply: &Reply) -> Result<(), PeerError> {
    Ok(write_frame(stream, &encode_reply(reply)).await?)
}

fn count_session(shared: &Shared, stats: &Result<SessionStats, PeerError>) {
    match stats {
        Ok(s) => {
            shared.metrics.sync_session(s.sync.bytes_sent, false);
            shared.metrics.repaired(Repair::AntiEntropy, s.stored_keys, s.stored_bytes);
        }
        Err(_) => shared.metrics.sync_session(0, true),
    }
}

/// What one side of a session did.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionStats {
    /// The reconciler's counts.
    pub sync: SyncStats,
    /// Entries stored here (they won).
    pub stored_keys: u64,
    /// Their key and value bytes.
    pub stored_bytes: u64,
}

/// Syncs `partition` with `peer`, this node starting the session.
///
/// # Errors
/// The peer is unreachable or refused, or the session failed.
pub async fn sync_partition(
    shared: &Arc<Shared>,
    peer: &str,
    partition: u32,
) -> Result<SessionStats, PeerError> {
    let mut conn = shared.peers.connect(peer).await?;
    let request = encode_request(&shared.id, &Request::Sync { partition });
    let step = step_timeout(shared);
    let opened = tokio::time::timeout(step, async {
        write_frame(&mut conn.stream, &request).await?;
        let frame = read_frame(&mut conn.stream, MAX_FRAME).await?;
        crate::peer::decode_reply(&frame)
    })
    .await
    .map_err(|_| PeerError::Timeout)?;
    let result = match opened {
        Ok(Reply::Accept) => run_session(shared, &mut conn.stream, partition, true).await,
        Ok(Reply::Error(e)) => Err(PeerError::Remote(e)),
        Ok(other) => Err(PeerError::Malformed(format!("unexpected reply {other:?}"))),
        Err(e) => Err(e),
    };
    count_session(shared, &result);
    shared.record(peer, result.as_ref().err().map(ToString::to_string));
    if result.is_ok() {
        shared.peers.give_back(conn);
    }
    result
}

/// How long one step of a session may take: a generous multiple of the
/// call timeout, as a step may read and write many entries.
fn step_timeout(shared: &Shared) -> Duration {
    shared.peers.timeout() * 20
}

/// Runs one side of a session on `stream` (framing as the merkle crate's
/// `sync_stream`: an empty frame says "nothing more"; a side that said
/// nothing and hears nothing ends).
async fn run_session<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Arc<Shared>,
    stream: &mut S,
    partition: u32,
    initiate: bool,
) -> Result<SessionStats, PeerError> {
    let mut side = Reconciler::new(sync_config())?;
    let mut stats = SessionStats::default();
    let step = step_timeout(shared);
    let mut said_nothing = false;
    if initiate {
        let first = {
            let view = Partition::new(shared, partition)?;
            side.initiate(&view)?
        };
        write_frame(stream, &first).await?;
    }
    loop {
        let message = tokio::time::timeout(step, read_frame(stream, MAX_FRAME))
            .await
            .map_err(|_| PeerError::Timeout)??;
        let reply = if message.is_empty() {
            if said_nothing {
                break;
            }
            match side.next_message()? {
                Some(m) => Some(m),
                None => {
                    write_frame(stream, &[]).await?;
                    break;
                }
            }
        } else {
            let (reply, taken) = {
                let mut view = Partition::new(shared, partition)?;
                let reply = side.receive(&mut view, &message)?;
                (reply, view.taken)
            };
            if !taken.is_empty() {
                let sizes: Vec<u64> = taken
                    .iter()
                    .map(|w| (w.key.len() + w.entry.value.as_ref().map_or(0, Vec::len)) as u64)
                    .collect();
                let wins =
                    shared.store.write(taken).await.map_err(|e| PeerError::Io(e.to_string()))?;
                for (won, size) in wins.iter().zip(sizes) {
                    if *won {
                        stats.stored_keys += 1;
                        stats.stored_bytes += size;
                    }
                }
            }
            reply
        };
        match reply {
            Some(m) => {
                write_frame(stream, &m).await?;
                said_nothing = false;
            }
            None => {
                write_frame(stream, &[]).await?;
                said_nothing = true;
            }
        }
    }
    stats.sync = side.stats();
    Ok(stats)
}

/// A partition as a sync session sees it: the summary (locked for one
/// message), the disk, and the entries taken from the peer so far.
struct Partition<'a> {
    summary: std::sync::MutexGuard<'a, MerkleSummary>,
    store: &'a Store,
    shared: &'a Shared,
    partition: u32,
    taken: Vec<Write>,
}

impl<'a> Partition<'a> {
    fn new(shared: &'a Shared, partition: u32) -> Result<Self, PeerError> {
        let summary = shared
            .store
            .summary(partition)
            .ok_or_else(|| PeerError::Remote(format!("no partition {partition}")))?;
        Ok(Partition { summary, store: &shared.store, shared, partition, taken: Vec::new() })
    }
}

impl SyncStore for Partition<'_> {
    fn node_fingerprint(&self, level: usize, node: u64) -> WireFp {
        self.summary.node_fp(level, node)
    }

    fn entries_under(&self, level: usize, node: u64) -> Vec<EntrySummary> {
        self.summary.entries_under(level, node)
    }

    fn read_entries(&self, positions: &[[u8; TRUNC]]) -> Result<Vec<WireEntry>, MerkleError> {
        self.store
            .read_positions(self.partition, positions)
            .map_err(|e| MerkleError::Store { message: e.to_string() })
    }

    fn store_entry(
        &mut self,
        key: Vec<u8>,
        version: u64,
        value: Option<Vec<u8>>,
    ) -> Result<bool, MerkleError> {
        let limits = shared_limits();
        if key.len() > limits.max_key_bytes
            || value.as_ref().is_some_and(|v| v.len() > limits.max_value_bytes)
        {
            return Err(MerkleError::TooLong {
                what: "entry",
                len: key.len() + value.map_or(0, |v| v.len()),
            });
        }
        Hlc::check_drift(version).map_err(|message| MerkleError::Store { message })?;
        if !self.summary.wins(&key, version, value.as_deref()) {
            return Ok(false);
        }
        self.shared.hlc.observe(version);
        let entry = Versioned { version, value };
        self.taken.push(Write { partition: self.partition, key, entry });
        Ok(true)
    }
}
