//! Where keys live: a fixed number of partitions of the hash space (Riak
//! style), each placed on `sysblocks-consistent-hash`'s weighted ring on N
//! distinct nodes (one per zone first, when the cluster has zones).
//!
//! A key's partition is the top bits of its placement hash, so it never
//! changes; what membership changes is which nodes hold a partition, and
//! [`Placement::moves`] lists exactly the partitions whose replica set
//! changes, with who gains and who loses each.
//!
//! ```
//! use sysblocks_kv::cluster::ClusterConfig;
//! use sysblocks_kv::placement::Placement;
//!
//! let node = |i: u16| format!(
//!     "[[node]]\nid = \"n{i}\"\ndata = \"127.0.0.1:{}\"\nadmin = \"127.0.0.1:{}\"\nsync = \"127.0.0.1:{}\"\n",
//!     7000 + i, 8000 + i, 9000 + i);
//! let five: String = (1..=5).map(node).collect();
//! let placement = Placement::new(&ClusterConfig::parse(&five)?)?;
//! let p = placement.partition_of(b"user:42");
//! assert_eq!(placement.replicas(p).len(), 3); // N = 3 distinct nodes
//!
//! let six: String = (1..=6).map(node).collect();
//! let grown = Placement::new(&ClusterConfig::parse(&six)?)?;
//! let moves = placement.moves(&grown);
//! assert!(!moves.is_empty() && moves.len() < 64); // only some partitions move
//! assert!(moves.iter().all(|m| m.gained == ["n6"])); // ... all of them to n6
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use sysblocks_consistent_hash::{HashRing, RingError, hash_key};

use crate::cluster::ClusterConfig;

/// Keys' partitions and each partition's replicas.
#[derive(Debug, Clone)]
pub struct Placement {
    partitions: u32,
    replicas: usize,
    zoned: bool,
    ring: HashRing<String>,
    /// Each partition's preference list, computed once.
    lists: Vec<Vec<String>>,
}

/// A partition whose replica set changes between two placements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMove {
    /// The partition.
    pub partition: u32,
    /// Nodes that hold it in the new placement and not in the old: they
    /// fill it (by Merkle sync from the old replicas) before serving it.
    pub gained: Vec<String>,
    /// Nodes that hold it in the old placement and not in the new: they
    /// drop it once the gaining nodes have caught up.
    pub lost: Vec<String>,
}

impl Placement {
    /// The placement of `config`'s nodes, weights and zones.
    ///
    /// # Errors
    /// A ring error (too many points for the weights given).
    pub fn new(config: &ClusterConfig) -> Result<Self, RingError> {
        let mut ring = HashRing::new();
        let zoned = config.nodes.iter().any(|n| n.zone.is_some());
        for node in &config.nodes {
            match &node.zone {
                Some(zone) => ring.add_in_zone(node.id.clone(), node.weight, zone.clone())?,
                None => ring.add_weighted(node.id.clone(), node.weight)?,
            }
        }
        let mut placement = Placement {
            partitions: config.partitions,
            replicas: config.replicas,
            zoned,
            ring,
            lists: Vec::new(),
        };
        placement.lists = (0..config.partitions).map(|p| placement.compute(p)).collect();
        Ok(placement)
    }

    fn compute(&self, partition: u32) -> Vec<String> {
        let key = partition_key(partition);
        if self.zoned {
            self.ring.replicas_across_zones(&key, self.replicas).into_iter().cloned().collect()
        } else {
            self.ring.replicas(&key, self.replicas).cloned().collect()
        }
    }

    /// The number of partitions.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// The partition of `key`: the top bits of its placement hash.
    pub fn partition_of(&self, key: &[u8]) -> u32 {
        let bits = self.partitions.trailing_zeros();
        if bits == 0 {
            return 0;
        }
        (hash_key(key) >> (64 - bits)) as u32
    }

    /// The partition's preference list: N distinct nodes, the first its
    /// primary (an empty list for a partition out of range).
    pub fn replicas(&self, partition: u32) -> &[String] {
        self.lists.get(partition as usize).map_or(&[], Vec::as_slice)
    }

    /// Whether `node` holds `partition`.
    pub fn holds(&self, node: &str, partition: u32) -> bool {
        self.replicas(partition).iter().any(|n| n == node)
    }

    /// The partitions `node` holds.
    pub fn partitions_of<'a>(&'a self, node: &'a str) -> impl Iterator<Item = u32> + 'a {
        (0..self.partitions).filter(move |&p| self.holds(node, p))
    }

    /// The partitions whose replica set differs in `next`, with who gains
    /// and who loses each (a change of partition count moves every one).
    pub fn moves(&self, next: &Placement) -> Vec<PartitionMove> {
        let count = self.partitions.max(next.partitions);
        (0..count)
            .filter_map(|p| {
                let (old, new) = (self.replicas(p), next.replicas(p));
                let gained: Vec<String> =
                    new.iter().filter(|n| !old.contains(n)).cloned().collect();
                let lost: Vec<String> = old.iter().filter(|n| !new.contains(n)).cloned().collect();
                (!gained.is_empty() || !lost.is_empty()).then_some(PartitionMove {
                    partition: p,
                    gained,
                    lost,
                })
            })
            .collect()
    }
}

/// The ring key a partition is placed by.
fn partition_key(partition: u32) -> Vec<u8> {
    format!("partition:{partition}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(nodes: &[(&str, Option<&str>, u32)]) -> ClusterConfig {
        let mut text = String::new();
        for (i, (id, zone, weight)) in nodes.iter().enumerate() {
            text.push_str(&format!(
                "[[node]]\nid = \"{id}\"\ndata = \"127.0.0.1:{}\"\nadmin = \"127.0.0.1:{}\"\nsync = \"127.0.0.1:{}\"\nweight = {weight}\n",
                7000 + i,
                8000 + i,
                9000 + i
            ));
            if let Some(zone) = zone {
                text.push_str(&format!("zone = \"{zone}\"\n"));
            }
        }
        ClusterConfig::parse(&text).unwrap()
    }

    #[test]
    fn every_partition_has_n_distinct_nodes_and_keys_spread() {
        let c = config(&[
            ("a", None, 1),
            ("b", None, 1),
            ("c", None, 1),
            ("d", None, 1),
            ("e", None, 1),
        ]);
        let placement = Placement::new(&c).unwrap();
        let mut per_node = std::collections::HashMap::new();
        for p in 0..placement.partitions() {
            let list = placement.replicas(p);
            assert_eq!(list.len(), 3);
            let distinct: std::collections::HashSet<_> = list.iter().collect();
            assert_eq!(distinct.len(), 3, "partition {p}: {list:?}");
            for n in list {
                *per_node.entry(n.clone()).or_insert(0) += 1;
            }
        }
        // 64 partitions x 3 copies over 5 nodes: about 38 each.
        assert!(per_node.values().all(|&k| (20..=60).contains(&k)), "{per_node:?}");
        let mut per_partition = vec![0u32; 64];
        for i in 0..64_000u32 {
            per_partition[placement.partition_of(format!("key:{i}").as_bytes()) as usize] += 1;
        }
        assert!(per_partition.iter().all(|&k| (700..=1300).contains(&k)), "{per_partition:?}");
        assert_eq!(placement.replicas(64), &[] as &[String]);
        assert_eq!(placement.partitions_of("a").count(), per_node["a"]);
    }

    #[test]
    fn zones_get_one_replica_each_first() {
        let c = config(&[
            ("a1", Some("a"), 1),
            ("a2", Some("a"), 1),
            ("b1", Some("b"), 1),
            ("b2", Some("b"), 1),
            ("c1", Some("c"), 1),
        ]);
        let placement = Placement::new(&c).unwrap();
        for p in 0..placement.partitions() {
            let zones: std::collections::HashSet<char> =
                placement.replicas(p).iter().map(|n| n.chars().next().unwrap()).collect();
            assert_eq!(zones.len(), 3, "partition {p}: {:?}", placement.replicas(p));
        }
    }

    #[test]
    fn adding_a_node_moves_only_partitions_it_joins() {
        let before = Placement::new(&config(&[
            ("a", None, 1),
            ("b", None, 1),
            ("c", None, 1),
            ("d", None, 1),
        ]))
        .unwrap();
        let after = Placement::new(&config(&[
            ("a", None, 1),
            ("b", None, 1),
            ("c", None, 1),
            ("d", None, 1),
            ("e", None, 1),
        ]))
        .unwrap();
        let moves = before.moves(&after);
        for m in &moves {
            assert_eq!(m.gained, ["e"], "{m:?}");
            assert_eq!(m.lost.len(), 1, "{m:?}");
        }
        let unmoved = (0..64).filter(|p| !moves.iter().any(|m| m.partition == *p));
        for p in unmoved {
            assert_eq!(before.replicas(p), after.replicas(p));
        }
        // About 3/5 of the partitions take the new node in their list.
        assert!((15..=55).contains(&moves.len()), "{} moves", moves.len());
        assert!(before.moves(&before).is_empty());
    }
}
