//! StripedCounter: no lost add across threads; take hands out every add once.

use std::sync::atomic::{AtomicI64, Ordering};

use sysblocks_sharded_counter::StripedCounter;

#[test]
fn threads_lose_no_add() {
    let counter = StripedCounter::with_max_cells(8);
    std::thread::scope(|s| {
        for t in 0..8i64 {
            let counter = &counter;
            s.spawn(move || {
                for i in 0..50_000i64 {
                    counter.add(if i % 2 == 0 { t + 1 } else { -(t + 1) + 2 });
                }
            });
        }
    });
    let expected: i64 = (0..8i64).map(|t| 25_000 * (t + 1) + 25_000 * (1 - t)).sum();
    assert_eq!(counter.sum(), expected);
    assert!(counter.cells_in_use() >= 1 && counter.cells_in_use() <= 8);
}

#[test]
fn concurrent_takes_hand_out_every_add_exactly_once() {
    let counter = StripedCounter::new();
    let taken = AtomicI64::new(0);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                for _ in 0..100_000 {
                    counter.add(1);
                }
            });
        }
        s.spawn(|| {
            for _ in 0..1_000 {
                taken.fetch_add(counter.take(), Ordering::Relaxed);
            }
        });
    });
    assert_eq!(taken.load(Ordering::Relaxed) + counter.take(), 300_000);
    assert_eq!(counter.sum(), 0);
}

#[test]
fn max_cells_is_a_power_of_two_bound() {
    let counter = StripedCounter::with_max_cells(0);
    counter.add(5);
    assert_eq!(counter.sum(), 5);
    assert_eq!(counter.cells_in_use(), 1);
    counter.reset();
    assert_eq!(counter.sum(), 0);
}

#[test]
fn the_stripe_grows_only_as_more_threads_add() {
    // One thread alone adds to one cell all along.
    let alone = StripedCounter::with_max_cells(8);
    for _ in 0..100_000 {
        alone.add(1);
    }
    assert_eq!(alone.cells_in_use(), 1);
    // Two threads adding at once each get a cell of their own. Each thread
    // stops once the second cell is in use (or after 20 million adds, which
    // would fail the test). Room for far more threads than this binary's
    // tests run at once, so both have a cell of their own.
    let shared = StripedCounter::with_max_cells(1024);
    let start = std::sync::Barrier::new(2);
    let added: i64 = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    let mut added = 0;
                    while shared.cells_in_use() == 1 && added < 20_000_000 {
                        shared.add(1);
                        added += 1;
                    }
                    added
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    assert!(shared.cells_in_use() > 1, "no growth after {added} adds");
    assert_eq!(shared.sum(), added, "growing lost no add");
}

#[test]
fn threads_past_the_last_cell_share_it_and_takes_still_count_each_add_once() {
    // One cell: at most one thread (index 0) owns it, every other thread
    // adds to its shared word, while a fifth thread takes.
    let counter = StripedCounter::with_max_cells(1);
    let taken = AtomicI64::new(0);
    let adding = std::sync::atomic::AtomicUsize::new(4);
    std::thread::scope(|s| {
        for t in 0..4i64 {
            let (counter, adding) = (&counter, &adding);
            s.spawn(move || {
                for i in 0..50_000i64 {
                    counter.add(if i % 3 == 0 { -t } else { t + 1 });
                }
                adding.fetch_sub(1, Ordering::AcqRel);
            });
        }
        s.spawn(|| {
            while adding.load(Ordering::Acquire) > 0 {
                taken.fetch_add(counter.take(), Ordering::Relaxed);
            }
        });
    });
    // Per thread: 16,667 adds of -t and 33,333 of t + 1.
    let expected: i64 = (0..4i64).map(|t| 16_667 * -t + 33_333 * (t + 1)).sum();
    assert_eq!(taken.load(Ordering::Relaxed) + counter.take(), expected);
    assert_eq!(counter.sum(), 0);
    assert_eq!(counter.cells_in_use(), 1);
}
