//! The frontier's memory: 1,000,000 URLs pushed (10,000 hosts), bytes
//! allocated per URL (queues plus dedupe), and the Bloom filter's measured
//! false-positive rate on 1,000,000 URLs never pushed.
//!
//! ```text
//! cargo bench -p sysblocks-crawler --bench frontier_memory
//! ```

use peak_alloc::PeakAlloc;
use sysblocks_crawler::frontier::{Frontier, FrontierConfig, Pushed};
use sysblocks_crawler::normalize::normalize;

/// Counts the bytes live on the heap.
#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

fn live() -> isize {
    HEAP.current_usage() as isize
}

fn main() {
    let n = 1_000_000usize;
    let hosts = 10_000usize;
    let config =
        FrontierConfig { expected_urls: n, false_positive_rate: 1e-4, ..FrontierConfig::default() };
    let before = live();
    let mut frontier = Frontier::new(config.clone()).expect("a valid configuration");
    let empty = live();
    let mut refused = 0usize;
    for i in 0..n {
        let url =
            format!("http://host{}.example.com/section/{}/page-{i}.html", i % hosts, i / hosts);
        let url = normalize(&url, &config.limits).expect("a URL");
        if frontier.push_url(url, 1, i % 4) != Pushed::Queued {
            refused += 1;
        }
    }
    let full = live();
    let per_url = (full - before) as f64 / (n - refused) as f64;
    println!(
        "memory: {} URLs queued ({refused} refused as seen: Bloom false positives) over {hosts} hosts: \
         {:.1} MB, {per_url:.0} bytes per URL (the empty frontier, mostly its Bloom filter: {:.1} MB)",
        frontier.len(),
        (full - before) as f64 / 1e6,
        (empty - before) as f64 / 1e6,
    );
    let mut false_positives = 0usize;
    for i in 0..n {
        let url = format!("http://other{}.example.org/never/{i}", i % hosts);
        if frontier.has_seen(&url) {
            false_positives += 1;
        }
    }
    println!(
        "memory: Bloom filter false positives on {n} URLs never pushed: {false_positives} ({:.2e}; configured {:.0e})",
        false_positives as f64 / n as f64,
        config.false_positive_rate
    );
}
