//! The coordinator: any node, for any key. It finds the key's replicas,
//! asks them all in parallel, answers once a quorum replied, and leaves
//! the rest to background work: read repair for the replicas that answered
//! with something older, hints for the replicas that did not answer.
//!
//! ```text
//!  SET k v ─▶ version = HLC now ─▶ Write to every replica ──▶ W acks? ─▶ +OK
//!                                        │ (the rest, in the background)
//!                                        └─▶ no answer: keep a hint, deliver it later
//!  GET k ──▶ Read from every replica ──▶ R answers? ─▶ the newest (merkle's rule)
//!                                        └─▶ when all are in: write the newest
//!                                            to the stale ones (read repair)
//! ```
//!
//! Quorums are strict: only the key's own replicas count toward W and R (a
//! hint does not), so with R + W > N every read overlaps every
//! acknowledged write on at least one replica.

use std::net::IpAddr;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use sysblocks_merkle::Versioned;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::command::Request;
use crate::connection::{ConnectionLimits, Handler, Session, serve_until};
use crate::metrics::{Command, Repair};
use crate::node::Shared;
use crate::peer::{self, Reply as PeerReply};
use crate::quorum::{self, resolve_read};
use crate::resp::Reply;
use crate::store::{Hint, Write};

/// Why a request could not be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvError {
    /// Too few replicas answered.
    NoQuorum {
        /// "read" or "write".
        what: &'static str,
        /// Replies (acks) received from the list that fell short.
        got: usize,
        /// Replies needed from it.
        needed: usize,
        /// Replicas in it.
        of: usize,
    },
    /// R or W out of range.
    BadQuorum(String),
    /// This node's storage failed.
    Storage(String),
}

impl std::fmt::Display for KvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KvError::NoQuorum { what, got, needed, of } => write!(
                f,
                "NOQUORUM the {what} reached {got} of {of} replicas in time; it needs {needed}"
            ),
            KvError::BadQuorum(message) => write!(f, "ERR {message}"),
            KvError::Storage(message) => write!(f, "ERR storage: {message}"),
        }
    }
}

/// Accepts client connections on the data port until shutdown, within the
/// per-client connection limit.
pub async fn serve_clients(shared: Arc<Shared>, listener: TcpListener) {
    let stopped = shared.stopped();
    tokio::pin!(stopped);
    // The connections, so that shutdown waits for them to answer what they
    // read (and, when the node's grace runs out, cancels them with this task).
    let mut connections = tokio::task::JoinSet::new();
    loop {
        // Reap the connections that ended.
        while connections.try_join_next().is_some() {}
        let (stream, addr) = tokio::select! {
            _ = &mut stopped => {
                while connections.join_next().await.is_some() {}
                return;
            }
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let ip = addr.ip();
        let max = shared.membership().config().tuning.client_connections;
        let admitted = {
            let mut open = shared.connections.lock().unwrap_or_else(PoisonError::into_inner);
            let count = open.entry(ip).or_insert(0);
            if *count >= max {
                false
            } else {
                *count += 1;
                true
            }
        };
        let shared = shared.clone();
        connections.spawn(async move {
            let mut stream = stream;
            if !admitted {
                shared.metrics.limited();
                let mut out = Vec::new();
                Reply::error(format!("ERR too many connections from {ip} (at most {max})"))
                    .encode(&mut out);
                let _ = tokio::io::AsyncWriteExt::write_all(&mut stream, &out).await;
                return;
            }
            let handler = ClientHandler { shared: shared.clone(), ip };
            let stopped = shared.stopped();
            let _ = serve_until(stream, &handler, ConnectionLimits::default(), stopped).await;
            let mut open = shared.connections.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(count) = open.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    open.remove(&ip);
                }
            }
        });
    }
}

/// The handler of one client connection.
struct ClientHandler {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Handler for ClientHandler {
    async fn handle(&self, session: &Session, request: Request) -> Reply {
        let decision = self.shared.limiter.check(&self.ip);
        if let Ok(decision) = &decision
            && !decision.allowed
        {
            self.shared.metrics.limited();
            let wait = decision.retry_after.map_or(0, |d| d.as_millis());
            return Reply::error(format!(
                "ERR too many requests from {}; retry in {wait} ms",
                self.ip
            ));
        }
        let started = Instant::now();
        let (command, result) = match request {
            Request::Get { key, r } => {
                let r = r.or(session.r);
                (Command::Get, self.shared.get(key, r).await.map(Reply::Bulk))
            }
            Request::Set { key, value, w } => {
                let w = w.or(session.w);
                (Command::Set, self.shared.set(key, Some(value), w).await.map(|()| Reply::ok()))
            }
            Request::Del { keys } => (
                Command::Del,
                self.shared.count_live(keys, session, true).await.map(Reply::Integer),
            ),
            Request::Exists { keys } => (
                Command::Exists,
                self.shared.count_live(keys, session, false).await.map(Reply::Integer),
            ),
            // The connection loop answers the others itself.
            _ => return Reply::error("ERR unsupported command"),
        };
        self.shared.metrics.request(command, started.elapsed(), result.is_err());
        result.unwrap_or_else(Reply::error)
    }
}

/// What one replica answered.
type Answer<T> = (String, Result<T, String>);

/// A request's quorum, partition and replicas (see [`Shared::plan`]).
struct Plan {
    quorum: usize,
    partition: u32,
    /// The replica lists and every node in them; `None`: this node alone.
    fan_out: Option<(Vec<Vec<String>>, Vec<String>)>,
}

impl Shared {
    /// `GET`: the live value of `key`, from `r` replicas (the cluster's R
    /// by default), or from the read cache when it is on and R is not
    /// chosen per request.
    ///
    /// # Errors
    /// [`KvError::NoQuorum`] or [`KvError::BadQuorum`].
    pub async fn get(
        self: &Arc<Self>,
        key: Vec<u8>,
        r: Option<usize>,
    ) -> Result<Option<Vec<u8>>, KvError> {
        if let (Some(cache), None) = (&self.cache, r) {
            if let Some(value) = cache.get(&key) {
                self.metrics.cache(true);
                return Ok(value);
            }
            self.metrics.cache(false);
            let load = async {
                let entry = self.quorum_read(key.clone(), None).await?;
                Ok::<_, KvError>(entry.and_then(|e| e.value))
            };
            return cache
                .try_get_with_async(key.clone(), load)
                .await
                .map_err(|e| KvError::clone(&e));
        }
        Ok(self.quorum_read(key, r).await?.and_then(|e| e.value))
    }

    /// `SET` (a value) or a delete (`None`), acknowledged by `w` replicas.
    ///
    /// # Errors
    /// [`KvError::NoQuorum`] (the write may still have reached some
    /// replicas, and hints will carry it to the rest) or
    /// [`KvError::BadQuorum`].
    pub async fn set(
        self: &Arc<Self>,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
        w: Option<usize>,
    ) -> Result<(), KvError> {
        let entry = Versioned { version: self.hlc.now(), value };
        let result = self.quorum_write(key.clone(), entry, w).await;
        if let Some(cache) = &self.cache {
            // Also detaches a read of the key in flight, so that it cannot
            // store the value this write replaced.
            cache.remove(&key);
        }
        result
    }

    /// `DEL` (deleting) or `EXISTS`: how many of `keys` were live.
    async fn count_live(
        self: &Arc<Self>,
        keys: Vec<Vec<u8>>,
        session: &Session,
        delete: bool,
    ) -> Result<i64, KvError> {
        let mut live = 0;
        for key in keys {
            let entry = self.quorum_read(key.clone(), session.r).await?;
            let exists = entry.is_some_and(|e| e.value.is_some());
            if delete && exists {
                self.set(key, None, session.w).await?;
            }
            live += i64::from(exists);
        }
        Ok(live)
    }

    /// Where a request on `key` goes, under one read of the membership:
    /// R (or W) checked against N, the key's partition, and its replica
    /// lists, or `None` when the only replica is this node (N = 1: no
    /// fan-out, nothing copied).
    fn plan(&self, key: &[u8], asked: Option<usize>, write: bool) -> Result<Plan, KvError> {
        let membership = self.membership();
        let config = membership.config();
        let (default, name) =
            if write { (config.write_quorum, "W") } else { (config.read_quorum, "R") };
        let quorum = asked.unwrap_or(default);
        if quorum == 0 || quorum > config.replicas {
            return Err(KvError::BadQuorum(format!(
                "{name} must be between 1 and N ({}), not {quorum}",
                config.replicas
            )));
        }
        let partition = membership.current.placement.partition_of(key);
        let lists = membership.replica_sets(partition);
        if let [only] = lists.as_slice()
            && *only == [self.id.as_str()]
        {
            return Ok(Plan { quorum, partition, fan_out: None });
        }
        let sets: Vec<Vec<String>> = lists.into_iter().map(<[String]>::to_vec).collect();
        let mut all: Vec<String> = sets.iter().flatten().cloned().collect();
        all.sort();
        all.dedup();
        Ok(Plan { quorum, partition, fan_out: Some((sets, all)) })
    }

    /// The key's partition.
    pub fn partition_of(&self, key: &[u8]) -> u32 {
        self.membership().current.placement.partition_of(key)
    }

    /// Reads `key` from its replicas; the newest entry (tombstones
    /// included) once `r` of each replica list answered.
    ///
    /// # Errors
    /// [`KvError::NoQuorum`] or [`KvError::BadQuorum`].
    pub async fn quorum_read(
        self: &Arc<Self>,
        key: Vec<u8>,
        r: Option<usize>,
    ) -> Result<Option<Versioned<Vec<u8>>>, KvError> {
        let Plan { quorum: r, partition, fan_out } = self.plan(&key, r, false)?;
        self.metrics.quorum_read();
        let Some((sets, all)) = fan_out else {
            // One replica, this node (N = 1): nothing to repair.
            return self.store.get(partition, &key).map_err(|e| KvError::Storage(e.to_string()));
        };
        let (sender, mut answers) = mpsc::unbounded_channel();
        for node in &all {
            let (shared, node, key, sender) =
                (self.clone(), node.clone(), key.clone(), sender.clone());
            tokio::spawn(async move {
                let answer = shared.replica_read(&node, partition, key).await;
                let _ = sender.send((node, answer));
            });
        }
        drop(sender);
        let mut got: Vec<Answer<Option<Versioned<Vec<u8>>>>> = Vec::with_capacity(all.len());
        let outcome = gather(&mut answers, &mut got, &sets, r, all.len()).await;
        let replies: Vec<quorum::Reply> = got.iter().map(|(_, a)| as_reply(a)).collect();
        let newest = resolve_read(&key, &replies, 1).and_then(|read| read.newest);
        if let Some(entry) = &newest {
            self.hlc.observe(entry.version);
        }
        // The rest come in the background; then the stale are repaired.
        let shared = self.clone();
        tokio::spawn(async move {
            while let Some(answer) = answers.recv().await {
                got.push(answer);
            }
            shared.read_repair(partition, &key, &got).await;
        });
        outcome.map(|()| newest).map_err(|(got, needed, of)| KvError::NoQuorum {
            what: "read",
            got,
            needed,
            of,
        })
    }

    /// Writes `entry` to every replica of `key`; returns once `w` of each
    /// replica list acknowledged. Replicas that fail get a hint.
    ///
    /// # Errors
    /// [`KvError::NoQuorum`] or [`KvError::BadQuorum`].
    pub async fn quorum_write(
        self: &Arc<Self>,
        key: Vec<u8>,
        entry: Versioned<Vec<u8>>,
        w: Option<usize>,
    ) -> Result<(), KvError> {
        let Plan { quorum: w, partition, fan_out } = self.plan(&key, w, true)?;
        let Some((sets, all)) = fan_out else {
            let write = Write { partition, key, entry };
            return self
                .store
                .write(vec![write])
                .await
                .map(drop)
                .map_err(|e| KvError::Storage(e.to_string()));
        };
        let (sender, mut answers) = mpsc::unbounded_channel();
        for node in &all {
            let shared = self.clone();
            let write = Write { partition, key: key.clone(), entry: entry.clone() };
            let (node, sender) = (node.clone(), sender.clone());
            tokio::spawn(async move {
                let answer = shared.replica_write(&node, write).await;
                let _ = sender.send((node, answer));
            });
        }
        drop(sender);
        let mut got: Vec<Answer<bool>> = Vec::with_capacity(all.len());
        let outcome = gather(&mut answers, &mut got, &sets, w, all.len()).await;
        // Every replica that did not take the write gets a hint, whether
        // the quorum was met or not.
        let shared = self.clone();
        let write = Write { partition, key, entry };
        tokio::spawn(async move {
            while let Some(answer) = answers.recv().await {
                got.push(answer);
            }
            for (node, answer) in &got {
                if answer.is_err() {
                    shared.keep_hint(node, &write).await;
                }
            }
        });
        outcome.map_err(|(got, needed, of)| KvError::NoQuorum { what: "write", got, needed, of })
    }

    /// One replica's entry of `key`: read locally, or asked of a peer.
    async fn replica_read(
        &self,
        node: &str,
        partition: u32,
        key: Vec<u8>,
    ) -> Result<Option<Versioned<Vec<u8>>>, String> {
        if node == self.id {
            return self.store.get(partition, &key).map_err(|e| e.to_string());
        }
        match self.call(node, &peer::Request::Read { partition, key }).await {
            Ok(PeerReply::Entry(entry)) => Ok(entry),
            Ok(other) => Err(format!("unexpected reply {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Stores a write on one replica; whether it won there.
    pub(crate) async fn replica_write(&self, node: &str, write: Write) -> Result<bool, String> {
        if node == self.id {
            let wins = self.store.write(vec![write]).await.map_err(|e| e.to_string())?;
            return Ok(wins.first().copied().unwrap_or(false));
        }
        let request =
            peer::Request::Write { partition: write.partition, key: write.key, entry: write.entry };
        match self.call(node, &request).await {
            Ok(PeerReply::Written(won)) => Ok(won),
            Ok(other) => Err(format!("unexpected reply {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Keeps a write for a replica that did not take it, durably.
    async fn keep_hint(&self, node: &str, write: &Write) {
        if node == self.id {
            // Our own store failed: nothing to hand off to; anti-entropy
            // brings the entry back from the replicas that have it.
            return;
        }
        let hint = Hint { target: node.to_owned(), write: write.clone() };
        match self.store.add_hint(hint).await {
            Ok(true) => self.metrics.hint_written(),
            Ok(false) => self.metrics.hint_dropped(),
            Err(e) => tracing::warn!(error = %e, %node, "a hint could not be kept"),
        }
    }

    /// Writes the newest entry back to the replicas that answered with an
    /// older one or none.
    async fn read_repair(
        &self,
        partition: u32,
        key: &[u8],
        got: &[Answer<Option<Versioned<Vec<u8>>>>],
    ) {
        let replies: Vec<quorum::Reply> = got.iter().map(|(_, a)| as_reply(a)).collect();
        let Some(read) = resolve_read(key, &replies, 1) else { return };
        let Some(newest) = read.newest else { return };
        for i in read.stale {
            let node = &got[i].0;
            let write = Write { partition, key: key.to_vec(), entry: newest.clone() };
            if let Ok(true) = self.replica_write(node, write).await {
                let bytes = key.len() + newest.value.as_ref().map_or(0, Vec::len);
                self.metrics.repaired(Repair::ReadRepair, 1, bytes as u64);
            }
        }
    }
}

fn as_reply(answer: &Result<Option<Versioned<Vec<u8>>>, String>) -> quorum::Reply {
    match answer {
        Ok(Some(entry)) => quorum::Reply::Found(entry.clone()),
        Ok(None) => quorum::Reply::Missing,
        Err(_) => quorum::Reply::Failed,
    }
}

/// Collects answers until every replica list has `need` successes (capped
/// by its size), or until no more can come. On failure returns the
/// successes, the need and the size of the first list that fell short.
async fn gather<T>(
    answers: &mut mpsc::UnboundedReceiver<Answer<T>>,
    got: &mut Vec<Answer<T>>,
    sets: &[Vec<String>],
    need: usize,
    total: usize,
) -> Result<(), (usize, usize, usize)> {
    let short = |got: &Vec<Answer<T>>| {
        sets.iter().find_map(|set| {
            let ok = got.iter().filter(|(n, a)| a.is_ok() && set.contains(n)).count();
            let needed = need.min(set.len());
            (ok < needed).then_some((ok, needed, set.len()))
        })
    };
    loop {
        match short(got) {
            None => return Ok(()),
            Some(shortfall) if got.len() >= total => return Err(shortfall),
            Some(shortfall) => match answers.recv().await {
                Some(answer) => got.push(answer),
                None => return Err(shortfall),
            },
        }
    }
}
