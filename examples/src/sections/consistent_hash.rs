//! Tour section: a 10-node ring, an 11th node joining, and bounded loads.

use std::error::Error;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sysblocks_consistent_hash::{HashRing, hash_key, rebalance_plan};

use crate::report::{Section, percent};

const KEYS: usize = 1_000_000;

fn load_summary(counts: &[u64]) -> String {
    let min = counts.iter().min().copied().unwrap_or(0);
    let max = counts.iter().max().copied().unwrap_or(0);
    let mean = counts.iter().sum::<u64>() as f64 / counts.len().max(1) as f64;
    format!("min {min}, mean {mean:.0}, max {max} (peak/mean {:.3})", max as f64 / mean)
}

/// Runs the section.
///
/// # Errors
/// Only if building the ring fails, which would be a bug in the tour.
pub fn run(_options: &super::TourOptions) -> Result<(), Box<dyn Error>> {
    let section = Section::start("consistent-hash: a ring of 10 nodes, then 11");
    let mut rng = SmallRng::seed_from_u64(42);
    let keys: Vec<u64> = (0..KEYS).map(|_| hash_key(&rng.random::<u64>().to_le_bytes())).collect();

    let ring = HashRing::from_weighted(160, (0..10).map(|i| (format!("node-{i}"), 1)))?;
    let index_of = |ring: &HashRing<String>, node: &String| {
        ring.nodes().position(|n| n == node).unwrap_or(usize::MAX)
    };
    let mut counts = vec![0u64; 10];
    for &k in &keys {
        if let Some(owner) = ring.node_for_hash(k) {
            counts[index_of(&ring, owner)] += 1;
        }
    }
    section.row("keys", KEYS);
    section.row("ring", format!("10 nodes x 160 vnodes = {} points", ring.point_count()));
    section.row("keys per node", load_summary(&counts));

    let mut bigger = ring.clone();
    bigger.add("node-10".to_string())?;
    let mut moved_from = vec![0u64; 10];
    let mut moved_elsewhere = 0u64;
    for &k in &keys {
        let (old, new) = (ring.node_for_hash(k), bigger.node_for_hash(k));
        if old != new {
            match (old, new) {
                (Some(o), Some(n)) if n == "node-10" => moved_from[index_of(&ring, o)] += 1,
                _ => moved_elsewhere += 1,
            }
        }
    }
    let moved: u64 = moved_from.iter().sum::<u64>() + moved_elsewhere;
    section.row(
        "node-10 joins: keys moved",
        format!(
            "{moved} = {} (ideal 1/11 = {})",
            percent(moved as f64, KEYS as f64),
            percent(1.0, 11.0)
        ),
    );
    section.row("  moved onto node-10", moved - moved_elsewhere);
    section.row("  moved between old nodes", moved_elsewhere);
    section.row("  taken from each old node", format!("{moved_from:?}"));
    let plan = rebalance_plan(&ring, &bigger);
    section.row(
        "rebalance plan",
        format!(
            "{} ranges, {} of the hash space",
            plan.moves.len(),
            percent(plan.fraction_moved(), 1.0)
        ),
    );

    // Bounded loads on a skewed key set: every key falls in one tenth of the
    // ring, so plain hashing piles them onto a few nodes.
    let skewed: Vec<u64> = keys.iter().take(100_000).map(|k| k / 10).collect();
    let mut plain = vec![0u64; 10];
    let mut bounded = vec![0u64; 10];
    for &k in &skewed {
        if let Some(owner) = ring.node_for_hash(k) {
            plain[index_of(&ring, owner)] += 1;
        }
        let i = ring.bounded_index(k, &bounded, 1.25)?;
        bounded[i] += 1;
    }
    section.note("100,000 keys skewed onto a tenth of the ring:");
    section.row("  plain consistent hashing", load_summary(&plain));
    section.row("  bounded loads, c = 1.25", load_summary(&bounded));
    section.finish();
    Ok(())
}
