//! Tour section: hit ratios on Zipf keys and on the ARC traces, and the
//! concurrent cache's single flight.

use std::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sysblocks_lru_cache::{ConcurrentLruCache, LruCache};

use crate::charts::{Chart, Kind, Series};
use crate::report::{Section, percent};
use crate::traces;

/// `count` keys from a Zipf(1.0) distribution over `universe` keys.
fn zipf(count: usize, universe: u64, seed: u64) -> Vec<u64> {
    let total: f64 = (1..=universe).map(|r| 1.0 / r as f64).sum();
    let mut acc = 0.0;
    let cdf: Vec<f64> = (1..=universe)
        .map(|r| {
            acc += 1.0 / r as f64 / total;
            acc
        })
        .collect();
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let u: f64 = rng.random();
            cdf.partition_point(|&c| c < u) as u64
        })
        .collect()
}

/// Runs the section.
///
/// # Errors
/// Only on a bug (a zero cache size).
pub fn run(options: &super::TourOptions) -> Result<(), Box<dyn Error>> {
    let section = Section::start("lru-cache: hit ratios and single flight");
    let keys = zipf(1_000_000, 100_000, 7);
    section.note("1,000,000 Zipf(1.0) requests over 100,000 keys:");
    let mut curves: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut zipf_curve = Vec::new();
    for capacity in [1_000usize, 10_000, 50_000] {
        let mut cache = LruCache::builder().capacity(capacity).record_stats().build()?;
        for &k in &keys {
            if cache.get(&k).is_none() {
                cache.insert(k, k);
            }
        }
        let s = cache.stats();
        zipf_curve.push((capacity as f64, s.hits as f64 / (s.hits + s.misses).max(1) as f64));
        section.row(
            &format!("  LRU of {capacity}"),
            format!(
                "hit ratio {}, {} evictions",
                percent(s.hits as f64, (s.hits + s.misses) as f64),
                s.evictions
            ),
        );
    }

    section.note("ARC traces (Megiddo and Modha, FAST 2003):");
    for (name, sizes) in
        [("OLTP", &[1_000usize, 5_000, 10_000][..]), ("P12", &[1024, 8192, 65536][..])]
    {
        match traces::load(name) {
            Ok(accesses) => {
                let mut curve = Vec::new();
                for &capacity in sizes {
                    let hits = traces::lru_hits(&accesses, capacity);
                    curve.push((capacity as f64, hits as f64 / accesses.len().max(1) as f64));
                    section.row(
                        &format!("  {name}, LRU of {capacity} blocks"),
                        format!(
                            "hit ratio {} over {} accesses",
                            percent(hits as f64, accesses.len() as f64),
                            accesses.len()
                        ),
                    );
                }
                if options.drawing() {
                    // More sizes than the tour prints, for the curve.
                    for capacity in [250usize, 500, 2_500, 20_000, 50_000, 262_144] {
                        if !sizes.contains(&capacity) {
                            let hits = traces::lru_hits(&accesses, capacity);
                            curve.push((capacity as f64, hits as f64 / accesses.len() as f64));
                        }
                    }
                    curve.sort_by(|a, b| a.0.total_cmp(&b.0));
                    curves.push((format!("{name} trace"), curve));
                }
            }
            Err(e) => section.row(&format!("  {name}"), format!("skipped: {e}")),
        }
    }

    if options.drawing() {
        for capacity in [100usize, 300, 3_000, 30_000, 100_000] {
            let mut cache = LruCache::new(capacity)?;
            let hits = traces::count_hits(&keys, |k| {
                cache.get(&k).is_some() || {
                    cache.insert(k, ());
                    false
                }
            });
            zipf_curve.push((capacity as f64, hits as f64 / keys.len() as f64));
        }
        zipf_curve.sort_by(|a, b| a.0.total_cmp(&b.0));
        curves.push(("Zipf(1.0), 100,000 keys".to_owned(), zipf_curve));
        let mut chart = Chart::new(
            "lru-cache",
            "lru-cache-hit-ratio.svg",
            "Hit ratio of an exact LRU against its size",
            "cache size (entries, log scale)",
            "hit ratio",
        )
        .log(true, false);
        for (name, curve) in curves {
            chart = chart.with(Series::new(name, Kind::Line, curve));
        }
        options.chart(|| {
            chart
                .caption(
                    "Each workload has its own curve: Zipf keys gain steadily with every \
                     doubling; the OLTP trace reaches most of its hits with a few thousand \
                     blocks; P12, a workstation disk, needs hundreds of thousands.",
                )
                .cite(traces::CITATION)
        });
    }

    let cache = ConcurrentLruCache::<u64, u64>::new(10_000)?;
    let loads = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (cache, loads, keys) = (&cache, &loads, &keys);
            s.spawn(move || {
                for &k in keys.iter().skip(t as usize).step_by(4) {
                    cache.get_with(k, || {
                        loads.fetch_add(1, Ordering::Relaxed);
                        k * 2
                    });
                }
            });
        }
    });
    let s = cache.stats();
    section.note("ConcurrentLruCache of 10,000, 4 threads sharing the Zipf requests:");
    section.row("  loader runs", loads.load(Ordering::Relaxed));
    section.row("  hit ratio", percent(s.hits as f64, (s.hits + s.misses) as f64));
    section.row(
        "  entries held",
        format!("{} of 10000 ({} shards)", cache.len(), cache.shard_count()),
    );
    section.finish();
    Ok(())
}
