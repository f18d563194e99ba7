//! Which nodes hold which partitions, now and during a membership change.
//!
//! A node serves one cluster file (its *current* placement). When it is
//! given a new one (a node added, a weight changed), the rebalance plan
//! ([`Placement::moves`]) names the partitions whose replica list changes,
//! and each of them goes through three steps:
//!
//! ```text
//!  moving ───────────────────▶ switched ─────────────────▶ done
//!  reads and writes need        reads and writes use        the old owners
//!  R (W) of the old list AND    the new list only           drop the partition
//!  R (W) of the new list
//!            ▲                        ▲                          ▲
//!   every node has the new   every gaining node has     every node has
//!   file (status epochs)     filled it by Merkle sync   switched it
//!                            from N-W+1 old replicas
//! ```
//!
//! Joint quorums while moving are what keep R + W > N true across the
//! change: a write acknowledged under either list is seen by a read under
//! either, whichever step each coordinator is at. A partition switches only
//! once every node is moving (so no coordinator still reads the old list
//! alone) and its new owners synced from enough old replicas (N - W + 1 of
//! them hold every write acknowledged before). Old owners drop it only
//! once every node has switched.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::cluster::ClusterConfig;
use crate::peer::Status;
use crate::placement::{PartitionMove, Placement};

/// A cluster file and its placement.
#[derive(Debug, Clone)]
pub struct View {
    /// The cluster file's settings and nodes.
    pub config: Arc<ClusterConfig>,
    /// Where partitions live under it.
    pub placement: Arc<Placement>,
    /// Its text, as read.
    pub text: Arc<str>,
    /// A hash of its parsed contents: equal files, equal epochs.
    pub epoch: u64,
}

impl View {
    /// The view of a cluster file's text.
    ///
    /// # Errors
    /// The file's error, with its line, or a placement error.
    pub fn parse(text: &str) -> Result<View, String> {
        let config = ClusterConfig::parse(text).map_err(|e| e.to_string())?;
        let placement = Placement::new(&config).map_err(|e| e.to_string())?;
        let epoch = sysblocks_consistent_hash::hash_key(format!("{config:?}").as_bytes());
        Ok(View {
            config: Arc::new(config),
            placement: Arc::new(placement),
            text: Arc::from(text),
            epoch,
        })
    }
}

/// A change to a new cluster file in progress.
#[derive(Debug, Clone)]
pub struct Move {
    /// The file moved to.
    pub next: View,
    /// The partitions whose replica list changes.
    pub moves: BTreeMap<u32, PartitionMove>,
    /// Partitions this node gains and has filled.
    pub filled: BTreeSet<u32>,
    /// Partitions this node serves from the new list.
    pub switched: BTreeSet<u32>,
    /// Partitions this node lost and has dropped.
    pub dropped: BTreeSet<u32>,
}

/// A node's membership: the file it serves and the change in progress.
#[derive(Debug, Clone)]
pub struct Membership {
    /// This node.
    pub me: String,
    /// The file served.
    pub current: View,
    /// The change in progress, if any.
    pub change: Option<Move>,
}

impl Membership {
    /// Serving `current`, with no change.
    pub fn new(me: String, current: View) -> Self {
        Membership { me, current, change: None }
    }

    /// Starts moving to `next`; returns the partitions that move.
    ///
    /// # Errors
    /// A change to another file is already in progress, or the new file's
    /// partition count differs (unsupported: keys would change partition).
    pub fn begin(&mut self, next: View) -> Result<usize, String> {
        if let Some(change) = &self.change {
            if change.next.epoch == next.epoch {
                return Ok(change.moves.len());
            }
            return Err("a membership change is in progress; wait until it ends".into());
        }
        if next.epoch == self.current.epoch {
            return Ok(0);
        }
        if next.config.partitions != self.current.config.partitions {
            return Err(format!(
                "the partition count cannot change (from {} to {})",
                self.current.config.partitions, next.config.partitions
            ));
        }
        let moves: BTreeMap<u32, PartitionMove> = self
            .current
            .placement
            .moves(&next.placement)
            .into_iter()
            .map(|m| (m.partition, m))
            .collect();
        let count = moves.len();
        self.change = Some(Move {
            next,
            moves,
            filled: BTreeSet::new(),
            switched: BTreeSet::new(),
            dropped: BTreeSet::new(),
        });
        Ok(count)
    }

    /// The settings in force: the new file's while moving.
    pub fn config(&self) -> &ClusterConfig {
        match &self.change {
            Some(change) => &change.next.config,
            None => &self.current.config,
        }
    }

    /// The replica lists a coordinator must reach a quorum of for
    /// `partition`: one list, or the old and the new while it moves.
    pub fn replica_sets(&self, partition: u32) -> Vec<&[String]> {
        let old = self.current.placement.replicas(partition);
        match &self.change {
            Some(change) if change.moves.contains_key(&partition) => {
                let new = change.next.placement.replicas(partition);
                if change.switched.contains(&partition) { vec![new] } else { vec![old, new] }
            }
            _ => vec![old],
        }
    }

    /// Whether `node` serves `partition` as a replica now (in a list a
    /// coordinator may ask), as far as this node knows.
    pub fn serves(&self, node: &str, partition: u32) -> bool {
        if node == self.me && self.change.as_ref().is_some_and(|c| c.dropped.contains(&partition)) {
            return false;
        }
        let in_old = self.current.placement.holds(node, partition);
        match &self.change {
            Some(change) => in_old || change.next.placement.holds(node, partition),
            None => in_old,
        }
    }

    /// Whether `node` is in the current file or the one moved to.
    pub fn knows(&self, node: &str) -> bool {
        self.current.config.node(node).is_some()
            || self.change.as_ref().is_some_and(|c| c.next.config.node(node).is_some())
    }

    /// Every node of both files, this one included, sorted.
    pub fn all_nodes(&self) -> Vec<String> {
        let mut nodes: BTreeSet<String> =
            self.current.config.nodes.iter().map(|n| n.id.clone()).collect();
        if let Some(change) = &self.change {
            nodes.extend(change.next.config.nodes.iter().map(|n| n.id.clone()));
        }
        nodes.into_iter().collect()
    }

    /// The sync address of `node`, from the newest file that has it.
    pub fn sync_address(&self, node: &str) -> Option<std::net::SocketAddr> {
        self.change
            .as_ref()
            .and_then(|c| c.next.config.node(node))
            .or_else(|| self.current.config.node(node))
            .map(|n| n.sync)
    }

    /// What this node tells the others of its progress.
    pub fn status(&self) -> Status {
        match &self.change {
            None => Status { epoch: self.current.epoch, ..Status::default() },
            Some(change) => Status {
                epoch: change.next.epoch,
                moving: true,
                filled: change.filled.iter().copied().collect(),
                switched: change.switched.iter().copied().collect(),
            },
        }
    }
}

/// Whether a node's status says it has filled `partition` of the change to
/// `epoch` (a node that finished the change has filled everything).
pub fn has_filled(status: &Status, epoch: u64, partition: u32) -> bool {
    status.epoch == epoch && (!status.moving || status.filled.contains(&partition))
}

/// Whether a node's status says it serves `partition` from the new list.
pub fn has_switched(status: &Status, epoch: u64, partition: u32) -> bool {
    status.epoch == epoch && (!status.moving || status.switched.contains(&partition))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(nodes: u16) -> String {
        (1..=nodes)
            .map(|i| {
                format!(
                    "[[node]]\nid = \"n{i}\"\ndata = \"127.0.0.1:{}\"\nadmin = \"127.0.0.1:{}\"\nsync = \"127.0.0.1:{}\"\n",
                    7000 + i,
                    8000 + i,
                    9000 + i
                )
            })
            .collect()
    }

    #[test]
    fn a_moving_partition_needs_both_lists_until_it_switches() {
        let mut m = Membership::new("n1".into(), View::parse(&file(5)).unwrap());
        assert_eq!(m.begin(View::parse(&file(5)).unwrap()).unwrap(), 0, "the same file");
        assert!(m.change.is_none());
        let moved = m.begin(View::parse(&file(6)).unwrap()).unwrap();
        assert!(moved > 0);
        assert!(m.begin(View::parse(&file(4)).unwrap()).is_err(), "one change at a time");
        let change = m.change.clone().unwrap();
        let (&p, mv) = change.moves.iter().next().unwrap();
        assert_eq!(mv.gained, ["n6"]);
        assert_eq!(m.replica_sets(p).len(), 2);
        assert!(m.serves("n6", p) && m.knows("n6"));
        let unmoved = (0..64).find(|q| !change.moves.contains_key(q)).unwrap();
        assert_eq!(m.replica_sets(unmoved).len(), 1);
        m.change.as_mut().unwrap().switched.insert(p);
        assert_eq!(m.replica_sets(p), [change.next.placement.replicas(p)]);
        let status = m.status();
        assert!(status.moving && has_switched(&status, change.next.epoch, p));
        assert!(!has_filled(&status, change.next.epoch, p));
        assert!(!has_switched(&status, m.current.epoch, p), "another epoch");
        assert_eq!(m.all_nodes().len(), 6);
    }

    #[test]
    fn the_partition_count_cannot_change() {
        let mut m = Membership::new("n1".into(), View::parse(&file(3)).unwrap());
        let other = format!("[cluster]\npartitions = 128\n{}", file(3));
        assert!(m.begin(View::parse(&other).unwrap()).unwrap_err().contains("partition count"));
    }
}
