//! Loom models of StripedCounter: no add is lost, and `take` hands out every
//! add exactly once, in every interleaving (including stripe growth).
//!
//! Run: `RUSTFLAGS="--cfg sysblocks_loom" LOOM_MAX_PREEMPTIONS=2 cargo test
//! --release -p sysblocks-sharded-counter --test loom`
//!
//! Each model keeps every atomic's store history short: loom 0.7 can trip an
//! internal assertion on long read-modify-write histories (loom issue #252),
//! which says nothing about the code under test.
#![cfg(sysblocks_loom)]

use loom::sync::Arc;
use loom::thread;
use sysblocks_sharded_counter::StripedCounter;

#[test]
fn concurrent_adds_are_all_counted() {
    loom::model(|| {
        let counter = Arc::new(StripedCounter::with_max_cells(2));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let c = counter.clone();
                thread::spawn(move || c.add(2))
            })
            .collect();
        counter.add(1);
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(counter.sum(), 5);
    });
}

#[test]
fn take_racing_adds_loses_and_duplicates_nothing() {
    loom::model(|| {
        let counter = Arc::new(StripedCounter::with_max_cells(2));
        let adder = {
            let c = counter.clone();
            thread::spawn(move || c.add(1))
        };
        counter.add(1);
        let taker = {
            let c = counter.clone();
            thread::spawn(move || c.take())
        };
        adder.join().unwrap();
        let taken = taker.join().unwrap();
        assert_eq!(taken + counter.take(), 2);
    });
}
