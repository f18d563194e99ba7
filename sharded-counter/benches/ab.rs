//! The in-process row of BENCHMARKS.md for the counters, measured A/B:
//! `StripedCounter` and `fast_counter` alternate in one process, and the
//! ratio comes with its 90% interval (see `sysblocks-benchkit`).
//!
//! Run: `cargo bench -p sysblocks-sharded-counter --bench ab`.
//! `scripts/bench.sh` runs every crate's.

use std::hint::black_box;

use sysblocks_benchkit::{Ab, Target, on_threads, timed};
use sysblocks_sharded_counter::StripedCounter;

fn main() {
    let ab = Ab::from_env();
    if Ab::wants("counter/one_thread") {
        let ours = StripedCounter::new();
        let peer = fast_counter::ConcurrentCounter::new(
            std::thread::available_parallelism().map_or(4, |n| n.get()),
        );
        ab.time_ratio(
            "counter/one_thread",
            "StripedCounter vs fast-counter, one thread adding",
            Target::None,
            |n| timed(n, || ours.add(black_box(1))),
            |n| timed(n, || peer.add(black_box(1))),
        );
    }
    if Ab::wants("counter/two_threads") {
        let ours = StripedCounter::new();
        let peer = fast_counter::ConcurrentCounter::new(
            std::thread::available_parallelism().map_or(4, |n| n.get()),
        );
        ab.throughput_ratio(
            "counter/two_threads",
            "StripedCounter vs fast-counter, 2 threads adding to one counter",
            Target::AtLeast(1.0),
            |n| on_threads(2, n, || ours.add(black_box(1))),
            |n| on_threads(2, n, || peer.add(black_box(1))),
        );
    }
}
