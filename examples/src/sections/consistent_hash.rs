//! Tour section: a 10-node ring, an 11th node joining, and bounded loads.

use std::error::Error;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sysblocks_consistent_hash::{HashRing, hash_key, rebalance_plan};

use crate::charts::{Chart, Kind, Series};
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
pub fn run(options: &super::TourOptions) -> Result<(), Box<dyn Error>> {
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

    if options.drawing() {
        options.chart(|| vnode_chart(&keys));
        let ideal = moved as f64 / 10.0;
        options.chart(|| {
            Chart::new(
                "consistent-hash",
                "consistent-hash-join.svg",
                "Keys moved when an 11th node joins, per old node",
                "old node",
                "keys moved to node-10",
            )
            .with(Series::new("keys taken from the node", Kind::Bars, per_node(&moved_from)))
            .with(Series::new(
                format!("an even share, {ideal:.0}"),
                Kind::Reference,
                vec![(-0.5, ideal), (9.5, ideal)],
            ))
            .caption(
                "Only the keys that node-10 now owns move (about 1/11 of them) and nothing \
                 moves between old nodes; what each old node gives up depends on where \
                 node-10's 160 points fall, so the shares are uneven.",
            )
        });
        let bound = 1.25 * skewed.len() as f64 / 10.0;
        options.chart(|| {
            Chart::new(
                "consistent-hash",
                "consistent-hash-bounded.svg",
                "100,000 skewed keys: plain placement against bounded loads",
                "node",
                "keys",
            )
            .with(Series::new(
                format!(
                    "plain consistent hashing: peak/mean {:.2}",
                    plain.iter().max().copied().unwrap_or(0) as f64 * 10.0 / skewed.len() as f64
                ),
                Kind::Bars,
                per_node(&plain),
            ))
            .with(Series::new("bounded loads, c = 1.25", Kind::Bars, per_node(&bounded)))
            .with(Series::new(
                format!("the bound, 1.25 x the mean = {bound:.0}"),
                Kind::Reference,
                vec![(-0.5, bound), (9.5, bound)],
            ))
            .caption(
                "Keys that all hash into one tenth of the ring fall on the virtual nodes \
                 there, unevenly; with bounded loads a node at its bound passes the key on \
                 clockwise, and no node goes over 1.25 times the mean.",
            )
        });
    }
    section.finish();
    Ok(())
}

fn per_node(counts: &[u64]) -> Vec<(f64, f64)> {
    counts.iter().enumerate().map(|(i, c)| (i as f64, *c as f64)).collect()
}

/// Keys per node for 10 nodes at 1, 10, 100, 160 and 1,000 virtual nodes.
fn vnode_chart(keys: &[u64]) -> Chart {
    let mut chart = Chart::new(
        "consistent-hash",
        "consistent-hash-vnodes.svg",
        "Keys per node, 10 nodes, as virtual nodes grow",
        "node",
        "keys (of 1,000,000)",
    );
    for vnodes in [1u32, 10, 100, 160, 1000] {
        let Ok(ring) = HashRing::from_weighted(vnodes, (0..10).map(|i| (format!("node-{i}"), 1)))
        else {
            continue;
        };
        let names: Vec<String> = ring.nodes().cloned().collect();
        let mut counts = vec![0u64; names.len()];
        for &k in keys {
            if let Some(i) = ring.node_for_hash(k).and_then(|n| names.iter().position(|x| x == n)) {
                counts[i] += 1;
            }
        }
        let mean = keys.len() as f64 / counts.len().max(1) as f64;
        let peak = counts.iter().max().copied().unwrap_or(0) as f64;
        chart = chart.with(Series::new(
            format!("{vnodes} vnodes: peak/mean {:.2}", peak / mean),
            Kind::Bars,
            per_node(&counts),
        ));
    }
    let mean = keys.len() as f64 / 10.0;
    chart.with(Series::new("the mean", Kind::Reference, vec![(-0.5, mean), (9.5, mean)])).caption(
        "With one point per node some nodes own several times their share; at 100 \
             virtual nodes and more every node holds close to the mean (the peak/mean \
             ratio in the legend falls towards 1).",
    )
}
