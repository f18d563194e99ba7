//! The background repairs: anti-entropy on an interval, hint delivery,
//! and the tombstone purge. Each loop ends with the node's shutdown signal.
//!
//! | failure | what repairs it |
//! |---|---|
//! | a replica missed a write while it was down or cut off | the coordinator's hint, delivered when it answers again; anti-entropy if the coordinator died too |
//! | a replica holds an older version than its peers | read repair on the next read; anti-entropy otherwise |
//! | a node lost its disk, or joined empty | anti-entropy (per partition, only differing keys) |

use std::sync::Arc;
use std::time::Duration;

use crate::hlc::Hlc;
use crate::metrics::Repair;
use crate::node::Shared;
use crate::peer::{PeerError, Reply, Request};
use crate::store::Hint;

/// Hints read (and forgotten, once delivered) at a time.
const HINT_BATCH: usize = 256;
/// Hints sent to one node at once.
const HINTS_IN_FLIGHT: usize = 16;

/// Runs `step` every `period` until shutdown.
async fn every<F, Fut>(shared: &Arc<Shared>, period: impl Fn() -> Duration, mut step: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let stopped = shared.stopped();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            _ = tokio::time::sleep(period()) => {}
        }
        tokio::select! {
            _ = &mut stopped => return,
            _ = step() => {}
        }
    }
}

/// Each interval, syncs every partition this node holds with each other
/// replica whose id sorts after this node's (so each pair syncs once per
/// interval; a session repairs both sides).
pub async fn anti_entropy(shared: Arc<Shared>) {
    let period = {
        let shared = shared.clone();
        move || Duration::from_millis(shared.membership().config().tuning.sync_interval_ms)
    };
    every(&shared.clone(), period, || {
        let shared = shared.clone();
        async move { sync_round(&shared).await }
    })
    .await;
}

/// One anti-entropy round over every partition.
pub async fn sync_round(shared: &Arc<Shared>) {
    let partitions = shared.store.partitions();
    // Each node starts its round at its own partition, so that two nodes
    // rarely sync the same partition with a third at the same moment (the
    // third would be sent the same missing entries twice).
    let start = (sysblocks_consistent_hash::hash_key(shared.id.as_bytes())
        % u64::from(partitions.max(1))) as u32;
    for partition in (0..partitions).map(|i| (start + i) % partitions) {
        let peers: Vec<String> = {
            let membership = shared.membership();
            if !membership.serves(&shared.id, partition) {
                continue;
            }
            let mut peers: Vec<String> = membership
                .replica_sets(partition)
                .into_iter()
                .flatten()
                .filter(|n| **n > shared.id)
                .cloned()
                .collect();
            peers.sort();
            peers.dedup();
            peers
        };
        for peer in peers {
            if shared.is_stopping() {
                return;
            }
            // Hints first: a peer that missed writes gets them from the
            // hints, each exactly once; anti-entropy would find the same
            // entries by listing whole ranges (and a second peer would send
            // them again). It checks the peer once the hints are delivered.
            if shared.store.hints_for(&peer, 1).is_ok_and(|h| !h.is_empty()) {
                continue;
            }
            if let Err(e) = crate::replica::sync_partition(shared, &peer, partition).await {
                tracing::debug!(%peer, partition, error = %e, "sync failed");
            }
        }
    }
}

/// Delivers held hints to their nodes, a batch per node per round.
pub async fn deliver_hints(shared: Arc<Shared>) {
    every(
        &shared.clone(),
        || Duration::from_millis(250),
        || {
            let shared = shared.clone();
            async move { deliver_round(&shared).await }
        },
    )
    .await;
}

async fn deliver_round(shared: &Arc<Shared>) {
    let nodes = shared.membership().all_nodes();
    for node in nodes.into_iter().filter(|n| *n != shared.id) {
        // Batch after batch while the node takes them: a node back from a
        // crash gets its missed writes at once, before anti-entropy has to
        // find them.
        while deliver_batch(shared, &node).await {
            if shared.is_stopping() {
                return;
            }
        }
    }
}

/// Delivers up to a batch of `node`'s hints, in parallel; whether all of
/// them went (and there may be more).
async fn deliver_batch(shared: &Arc<Shared>, node: &str) -> bool {
    let hints = match shared.store.hints_for(node, HINT_BATCH) {
        Ok(hints) if hints.is_empty() => return false,
        Ok(hints) => hints,
        Err(e) => {
            tracing::warn!(error = %e, "hints could not be read");
            return false;
        }
    };
    let (mut delivered, mut all) = (Vec::new(), true);
    // A few at a time: a node just back should not get a flood of
    // connections from every peer at once.
    for chunk in hints.chunks(HINTS_IN_FLIGHT) {
        let (sent, ok) = deliver_chunk(shared, node, chunk).await;
        delivered.extend(sent);
        all &= ok;
        if !ok {
            break;
        }
    }
    // One commit forgets the whole batch.
    !delivered.is_empty() && shared.store.clear_hints(delivered).await.is_ok() && all
}

/// Delivers hints in parallel: those that went, and whether all did.
async fn deliver_chunk(shared: &Arc<Shared>, node: &str, hints: &[Hint]) -> (Vec<Hint>, bool) {
    let mut sends = tokio::task::JoinSet::new();
    for hint in hints.iter().cloned() {
        let (shared, node) = (shared.clone(), node.to_owned());
        sends.spawn(async move {
            let write = hint.write.clone();
            let bytes = (write.key.len() + write.entry.value.as_ref().map_or(0, Vec::len)) as u64;
            let request =
                Request::Write { partition: write.partition, key: write.key, entry: write.entry };
            match shared.call(&node, &request).await {
                Ok(Reply::Written(won)) => {
                    if won {
                        shared.metrics.repaired(Repair::HintedHandoff, 1, bytes);
                    }
                    Some(hint)
                }
                // It answered but will not take it (no longer a replica):
                // the replicas that are have the entry.
                Err(PeerError::Remote(_)) => Some(hint),
                // Still unreachable: try again next round.
                _ => None,
            }
        });
    }
    let (mut delivered, mut all) = (Vec::new(), true);
    while let Some(sent) = sends.join_next().await {
        match sent.ok().flatten() {
            Some(hint) => delivered.push(hint),
            None => all = false,
        }
    }
    (delivered, all)
}

/// Purges tombstones older than the horizon, every tenth of it (at least
/// once a second, at most once a minute).
pub async fn purge_tombstones(shared: Arc<Shared>) {
    let horizon_s = shared.membership().config().tuning.tombstone_horizon_s;
    let period = Duration::from_secs((horizon_s / 10).clamp(1, 60));
    every(
        &shared.clone(),
        move || period,
        || {
            let shared = shared.clone();
            async move {
                let now_ms = Hlc::millis(shared.hlc.now());
                let horizon = Hlc::version(now_ms.saturating_sub(horizon_s * 1000), 0);
                match shared.store.purge_tombstones(horizon).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(tombstones = n, "purged"),
                    Err(e) => tracing::warn!(error = %e, "tombstone purge failed"),
                }
            }
        },
    )
    .await;
}
