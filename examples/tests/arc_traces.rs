//! The ARC traces as a correctness check: an exact LRU's hit ratio on a fixed
//! trace is fixed. Ours must equal the `lru` crate's hit count exactly and
//! reproduce the LRU column the ARC paper publishes for OLTP (Megiddo and
//! Modha, "ARC: A Self-Tuning, Low Overhead Replacement Cache," USENIX FAST
//! 03, pp. 115-130, 2003).

use std::num::NonZeroUsize;

use sysblocks_examples::traces;

fn peer_hits(accesses: &[u64], capacity: usize) -> u64 {
    let mut cache = lru::LruCache::new(NonZeroUsize::new(capacity).unwrap());
    // The same replay as `traces::lru_hits`, through the `lru` crate.
    traces::count_hits(accesses, |block| {
        cache.get(&block).is_some() || cache.put(block, ()).is_some()
    })
}

#[test]
fn oltp_lru_hit_ratios_match_the_paper_and_the_lru_crate() {
    let accesses = traces::load("OLTP").expect("the ARC traces ship in shared/traces/arc");
    assert_eq!(accesses.len(), 914_145, "the paper's Table III count");
    // (cache size, LRU hit ratio in percent as published)
    for (capacity, published) in [(1_000usize, 32.83), (5_000, 53.65), (10_000, 60.70)] {
        let ours = traces::lru_hits(&accesses, capacity);
        assert_eq!(ours, peer_hits(&accesses, capacity), "capacity {capacity}");
        let percent = 100.0 * ours as f64 / accesses.len() as f64;
        assert!((percent - published).abs() < 0.005, "capacity {capacity}: {percent:.3}%");
    }
}
