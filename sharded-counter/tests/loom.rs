//! Loom models of StripedCounter: no add is lost, and `take` hands out every
//! add exactly once, in every interleaving: on cells of their own, on a
//! shared cell (threads past the last cell), and across a thread's exit and
//! the next thread taking over its index and its cells.
//!
//! Run: `RUSTFLAGS="--cfg sysblocks_loom" LOOM_MAX_PREEMPTIONS=2 cargo test
//! --release -p sysblocks-sharded-counter --test loom`
//!
//! A thread gives its cell index back when it exits, in a thread-local's
//! destructor; loom runs those where it can take no lock, so a model that
//! wants an index handed over calls `give_back_this_threads_index` where the
//! thread would exit.
//!
//! Each model keeps every atomic's store history short: loom 0.7 can trip an
//! internal assertion on long read-modify-write histories (loom issue #252),
//! which says nothing about the code under test.
#![cfg(sysblocks_loom)]

use loom::sync::Arc;
use loom::thread;
use sysblocks_sharded_counter::{StripedCounter, give_back_this_threads_index};

#[test]
fn concurrent_adds_are_all_counted() {
    loom::model(|| {
        let counter = Arc::new(StripedCounter::with_max_cells(2));
        // Three threads on two cells: the third shares a cell.
        let handles: Vec<_> = (1..=3)
            .map(|n| {
                let c = counter.clone();
                thread::spawn(move || c.add(n))
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(counter.sum(), 6);
    });
}

#[test]
fn take_racing_adds_loses_and_duplicates_nothing() {
    loom::model(|| {
        let counter = Arc::new(StripedCounter::with_max_cells(2));
        let adder = {
            let c = counter.clone();
            thread::spawn(move || {
                c.add(1);
                c.add(1);
            })
        };
        let taker = {
            let c = counter.clone();
            thread::spawn(move || c.take())
        };
        adder.join().unwrap();
        let taken = taker.join().unwrap();
        assert_eq!(taken + counter.take(), 2);
    });
}

#[test]
fn a_thread_taking_over_an_exited_threads_cell_keeps_its_adds() {
    loom::model(|| {
        // One cell. The first thread to add owns it, then exits. The second
        // either comes while the first still holds index 0 (it shares the
        // cell) or after (it takes over index 0 and the cell, and adds on top
        // of what the first left in it). A take races with both.
        let counter = Arc::new(StripedCounter::with_max_cells(1));
        let first = {
            let c = counter.clone();
            thread::spawn(move || {
                c.add(3);
                give_back_this_threads_index();
            })
        };
        let second = {
            let c = counter.clone();
            thread::spawn(move || c.add(4))
        };
        let taken = counter.take();
        first.join().unwrap();
        second.join().unwrap();
        assert_eq!(taken + counter.take(), 7);
        assert_eq!(counter.sum(), 0);
    });
}

#[test]
fn an_owner_and_a_sharer_of_one_cell_lose_nothing() {
    loom::model(|| {
        // One cell, two adders: one owns the cell, the other adds to its
        // shared word; a take races with both.
        let counter = Arc::new(StripedCounter::with_max_cells(1));
        let adders: Vec<_> = (1..=2)
            .map(|n| {
                let c = counter.clone();
                thread::spawn(move || c.add(n))
            })
            .collect();
        let taken = counter.take();
        for a in adders {
            a.join().unwrap();
        }
        assert_eq!(taken + counter.take(), 3);
    });
}
