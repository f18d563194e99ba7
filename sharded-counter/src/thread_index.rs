//! A small index for each thread, unique among the threads alive: a thread
//! takes one on its first add to any [`StripedCounter`](crate::StripedCounter)
//! and gives it back when it exits, and the next thread to need one takes the
//! smallest free index. So indexes stay as small as the number of threads
//! that count at once, and a counter can give index `i` its cell `i`: no two
//! live threads ever write the same cell.
//!
//! The hand-over goes through a lock: the exiting thread's last add to a cell
//! happens before it releases the index, and the next holder takes the index
//! under the same lock before its first add, so the new holder's load sees
//! every add the old one made.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

#[cfg(not(sysblocks_loom))]
use std::sync::{Mutex, PoisonError};

use crate::sync::thread_local;

/// No index yet: the thread has not counted.
const NONE: usize = usize::MAX;
/// The thread gave its index back (it is exiting): adds after that share a
/// cell.
const GONE: usize = usize::MAX - 1;

/// The indexes handed out: every index below `next` is held or free.
#[derive(Debug)]
struct Pool {
    next: usize,
    free: BinaryHeap<Reverse<usize>>,
}

impl Pool {
    const fn new() -> Self {
        Pool { next: 0, free: BinaryHeap::new() }
    }

    /// The smallest free index.
    fn take(&mut self) -> usize {
        match self.free.pop() {
            Some(Reverse(index)) => index,
            None => {
                self.next += 1;
                self.next - 1
            }
        }
    }

    fn give_back(&mut self, index: usize) {
        self.free.push(Reverse(index));
    }
}

#[cfg(not(sysblocks_loom))]
static POOL: Mutex<Pool> = Mutex::new(Pool::new());

#[cfg(not(sysblocks_loom))]
fn with_pool<R>(f: impl FnOnce(&mut Pool) -> R) -> R {
    f(&mut POOL.lock().unwrap_or_else(PoisonError::into_inner))
}

// Under loom the pool is a loom static behind a loom lock, so that the models
// see the hand-over's ordering, and each execution of a model starts from an
// empty pool.
#[cfg(sysblocks_loom)]
loom::lazy_static! {
    static ref POOL: loom::sync::Mutex<Pool> = loom::sync::Mutex::new(Pool::new());
}

#[cfg(sysblocks_loom)]
fn with_pool<R>(f: impl FnOnce(&mut Pool) -> R) -> R {
    f(&mut POOL.lock().unwrap())
}

/// Gives a thread's index back when the thread exits.
#[derive(Debug)]
struct Held(Cell<usize>);

// loom runs thread-local destructors where no loom lock can be taken; the
// models give indexes back with `give_back_this_threads_index`.
#[cfg(sysblocks_loom)]
impl Drop for Held {
    fn drop(&mut self) {}
}

#[cfg(not(sysblocks_loom))]
impl Drop for Held {
    fn drop(&mut self) {
        let index = self.0.get();
        if index < GONE {
            give_back(index);
        }
    }
}

/// Gives this thread's `index` back to the pool. Later adds of this thread
/// (from other thread-locals' drops) must not use the cell that the next
/// holder will own, so they share one.
fn give_back(index: usize) {
    let _ = INDEX.try_with(|i| i.set(GONE));
    with_pool(|pool| pool.give_back(index));
}

/// Under loom, a thread-local's drop runs where loom can take no lock, so
/// nothing gives an index back by itself: a model calls this at the end of a
/// thread, where that thread's destructor would give it back.
#[cfg(sysblocks_loom)]
pub fn give_back_this_threads_index() {
    let index = current();
    if index < GONE {
        HELD.with(|held| held.0.set(NONE));
        give_back(index);
    }
}

#[cfg(not(sysblocks_loom))]
thread_local! {
    /// This thread's index, read on every add: a constant initialiser and
    /// no destructor, so that reading it is one load with no lazy-init
    /// check. `Held` below owns the index and gives it back.
    static INDEX: Cell<usize> = const { Cell::new(NONE) };
    static HELD: Held = const { Held(Cell::new(NONE)) };
}

// loom's thread_local! takes no const initialiser.
#[cfg(sysblocks_loom)]
thread_local! {
    static INDEX: Cell<usize> = Cell::new(NONE);
    static HELD: Held = Held(Cell::new(NONE));
}

/// This thread's index, or a value past every counter's cells (`NONE`,
/// `GONE`) if it has none.
#[inline(always)]
pub(crate) fn current() -> usize {
    INDEX.with(Cell::get)
}

/// This thread's index, taking one if it has none; `None` for a thread
/// that is exiting and has given its index back.
pub(crate) fn get_or_assign() -> Option<usize> {
    match current() {
        GONE => None,
        NONE => {
            let index = with_pool(Pool::take);
            if HELD.try_with(|held| held.0.set(index)).is_ok() {
                INDEX.with(|i| i.set(index));
                Some(index)
            } else {
                // Its thread-locals are being destroyed: nothing would give
                // the index back later.
                give_back(index);
                None
            }
        }
        index => Some(index),
    }
}

#[cfg(all(test, not(sysblocks_loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_pool_hands_out_the_smallest_free_index() {
        let mut pool = Pool::new();
        assert_eq!([pool.take(), pool.take(), pool.take()], [0, 1, 2]);
        pool.give_back(2);
        pool.give_back(0);
        assert_eq!([pool.take(), pool.take(), pool.take()], [0, 2, 3]);
    }

    #[test]
    fn live_threads_hold_distinct_indexes_and_give_them_back_on_exit() {
        let barrier = std::sync::Barrier::new(8);
        let live: Vec<usize> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        let index = get_or_assign().unwrap();
                        assert_eq!(get_or_assign(), Some(index), "an index is for life");
                        barrier.wait();
                        index
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut distinct = live.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 8, "{live:?}");
        // A joined thread has run its thread-local destructors: all eight
        // indexes are free again (no other test in this binary takes one).
        let free: Vec<usize> = with_pool(|pool| pool.free.iter().map(|r| r.0).collect());
        assert!(live.iter().all(|i| free.contains(i)), "live {live:?}, free {free:?}");
    }
}
