//! Moving partitions to a new cluster file, step by step (the rules are in
//! [`membership`](crate::membership)): fill what this node gains, switch
//! what every gaining node filled, drop what this node lost once everyone
//! switched, and serve the new file once every partition is done
//! everywhere.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::membership::{Membership, has_filled, has_switched};
use crate::node::Shared;
use crate::peer::{Reply, Request, Status};

/// How often a change in progress is driven.
const STEP: Duration = Duration::from_millis(200);

/// Drives membership changes until shutdown.
pub async fn run(shared: Arc<Shared>) {
    let stopped = shared.stopped();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            _ = tokio::time::sleep(STEP) => {}
        }
        if shared.membership().change.is_none() {
            continue;
        }
        tokio::select! {
            _ = &mut stopped => return,
            result = step(&shared) => if let Err(e) = result {
                tracing::warn!(error = %e, "rebalance step failed");
            },
        }
    }
}

/// Every node's status (this one's included); `None` if one did not answer.
async fn statuses(shared: &Arc<Shared>, nodes: &[String]) -> Option<HashMap<String, Status>> {
    let mut all = HashMap::new();
    for node in nodes {
        let status = if *node == shared.id {
            shared.membership().status()
        } else {
            match shared.call(node, &Request::Status).await {
                Ok(Reply::Status(status)) => status,
                _ => return None,
            }
        };
        all.insert(node.clone(), status);
    }
    Some(all)
}

/// One step of the change in progress.
async fn step(shared: &Arc<Shared>) -> Result<(), String> {
    let (nodes, epoch, moves, old_placement, w_old) = {
        let membership = shared.membership();
        let Some(change) = &membership.change else { return Ok(()) };
        (
            membership.all_nodes(),
            change.next.epoch,
            change.moves.clone(),
            membership.current.placement.clone(),
            membership.current.config.write_quorum,
        )
    };
    let Some(all) = statuses(shared, &nodes).await else {
        return Ok(()); // a node is down or not yet on the new file: wait
    };
    if all.values().any(|s| s.epoch != epoch) {
        return Ok(());
    }
    // 1. Fill what this node gains, from N - W + 1 old replicas.
    for (partition, mv) in &moves {
        let (gaining, filled) = {
            let membership = shared.membership();
            let change = membership.change.as_ref().ok_or("the change ended")?;
            (mv.gained.contains(&shared.id), change.filled.contains(partition))
        };
        if !gaining || filled {
            continue;
        }
        shared.store.reopen_partition(*partition);
        let old = old_placement.replicas(*partition);
        let needed = old.len().saturating_sub(w_old) + 1;
        let mut synced = 0;
        for peer in old.iter().filter(|n| **n != shared.id) {
            if crate::replica::sync_partition(shared, peer, *partition).await.is_ok() {
                synced += 1;
            }
        }
        if synced >= needed.min(old.len()) {
            with_change(shared, |m| {
                if let Some(change) = &mut m.change {
                    change.filled.insert(*partition);
                }
            });
            tracing::info!(partition, "filled");
        }
    }
    // Fresh statuses after filling, so that this node's progress counts.
    let Some(all) = statuses(shared, &nodes).await else { return Ok(()) };
    // 2. Switch what every gaining node filled.
    for (partition, mv) in &moves {
        let ready =
            mv.gained.iter().all(|g| all.get(g).is_some_and(|s| has_filled(s, epoch, *partition)));
        if ready {
            with_change(shared, |m| {
                if let Some(change) = &mut m.change {
                    change.switched.insert(*partition);
                }
            });
        }
    }
    // 3. Drop what this node lost, once every node switched it.
    let Some(all) = statuses(shared, &nodes).await else { return Ok(()) };
    for (partition, mv) in &moves {
        let dropped = {
            let membership = shared.membership();
            membership.change.as_ref().is_some_and(|c| c.dropped.contains(partition))
        };
        if !mv.lost.contains(&shared.id) || dropped {
            continue;
        }
        if all.values().all(|s| has_switched(s, epoch, *partition)) {
            // Stop serving it first, so that no request reads a half-dropped
            // partition; then remove its rows.
            with_change(shared, |m| {
                if let Some(change) = &mut m.change {
                    change.dropped.insert(*partition);
                }
            });
            let rows = shared.store.drop_partition(*partition).await.map_err(|e| e.to_string())?;
            tracing::info!(partition, rows, "dropped");
        }
    }
    // 4. Done when every node switched every partition and this node
    // dropped all it lost.
    let Some(all) = statuses(shared, &nodes).await else { return Ok(()) };
    let everywhere = moves.keys().all(|p| all.values().all(|s| has_switched(s, epoch, *p)));
    let mine_dropped = {
        let membership = shared.membership();
        let change = membership.change.as_ref().ok_or("the change ended")?;
        moves
            .iter()
            .filter(|(_, mv)| mv.lost.contains(&shared.id))
            .all(|(p, _)| change.dropped.contains(p))
    };
    if everywhere && mine_dropped {
        let text = {
            let mut membership = shared.membership_mut();
            let Some(change) = membership.change.take() else { return Ok(()) };
            membership.current = change.next;
            membership.current.text.clone()
        };
        let path = shared.options.data_dir.join("cluster.toml");
        std::fs::write(&path, text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        shared.peers.set_addresses(crate::node::addresses(&shared.membership()));
        tracing::info!(partitions = moves.len(), "membership change complete");
    }
    Ok(())
}

fn with_change(shared: &Shared, f: impl FnOnce(&mut Membership)) {
    f(&mut shared.membership_mut());
}
