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

/// Hints delivered to one node per round.
const HINT_BATCH: usize = 256;

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
        let hints = match shared.store.hints_for(&node, HINT_BATCH) {
            Ok(hints) => hints,
            Err(e) => {
                tracing::warn!(error = %e, "hints could not be read");
                return;
            }
        };
        for hint in hints {
            let write = hint.write.clone();
            let bytes = (write.key.len() + write.entry.value.as_ref().map_or(0, Vec::len)) as u64;
            let request =
                Request::Write { partition: write.partition, key: write.key, entry: write.entry };
            match shared.call(&node, &request).await {
                Ok(Reply::Written(won)) => {
                    if won {
                        shared.metrics.repaired(Repair::HintedHandoff, 1, bytes);
                    }
                    let _ = shared.store.clear_hint(hint).await;
                }
                // It answered but will not take it (no longer a replica):
                // the replicas that are have the entry.
                Err(PeerError::Remote(_)) => {
                    let _ = shared.store.clear_hint(hint).await;
                }
                // Still unreachable: try again next round.
                _ => break,
            }
        }
    }
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
