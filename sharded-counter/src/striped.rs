//! [`StripedCounter`]: an in-process counter that scales with cores.
//!
//! Each thread that adds holds a small index, unique among the threads alive
//! (see `thread_index.rs`), and a counter gives the thread with index
//! `i` its cell `i`. Only that thread writes the cell's own word, so its add
//! is a load and a store: no locked instruction, no compare-and-swap. Threads
//! whose index is past the counter's last cell share cells through a second
//! word that takes atomic adds.

use std::sync::PoisonError;

use crate::sync::{AtomicBool, AtomicI64, AtomicUsize, Mutex, Ordering};
use crate::thread_index;

/// One counter cell on cache lines of its own (128 bytes: two lines, as the
/// adjacent-line prefetcher of x86 pulls pairs), so that threads adding to
/// different cells never share a line. The owner's words fill the first
/// line and the shared word the second, so that threads sharing the cell
/// do not take the owner's line from it on every add.
#[repr(C, align(128))]
#[derive(Debug, Default)]
struct PaddedCell {
    /// Written only by the thread that holds this cell's index, with a load
    /// and a store: the sum of every add that thread (and the earlier holders
    /// of the index) made here.
    own: AtomicI64,
    /// How much of `own` the takes so far have handed out. Written only by
    /// `take`, under the counter's take lock.
    taken: AtomicI64,
    /// Whether any thread has added here: the first add of a thread on a
    /// cell not yet in use goes the slow way, which counts the cell in.
    used: AtomicBool,
    /// Atomic adds from threads with no cell of their own (an index past the
    /// last cell); `take` swaps it to 0.
    shared: SecondLine,
}

impl PaddedCell {
    /// Adds to the owner's word: only the thread holding this cell's index
    /// calls it, so a load and a store add without a lock; the store's
    /// release makes the add visible to `sum` and `take`.
    #[inline(always)]
    fn add_own(&self, n: i64) {
        self.own.store(self.own.load(Ordering::Relaxed).wrapping_add(n), Ordering::Release);
    }
}

/// The shared word of a cell, on the cell's second cache line.
#[repr(align(64))]
#[derive(Debug, Default)]
struct SecondLine(AtomicI64);

/// A counter split over cache-padded cells, one per thread: each thread adds
/// to a cell no other thread writes, so its adds never contend and need no
/// locked instruction; reading sums the cells.
///
/// Cells come into use lazily, one for each thread that adds (a thread's
/// cell is picked by a small index the thread holds for life, unique among
/// the threads alive; a new thread takes over the index, and so the cells,
/// of one that has exited), up to a bound: by default the next power of two
/// of twice the number of cores. Threads past the bound (a process with more
/// threads adding at once than that) share the cells through a second word
/// of each, with an atomic add. Cells never move, so nothing is lost as
/// they come into use.
///
/// * [`add`](Self::add): a load and a store on the thread's own cache line.
/// * [`sum`](Self::sum): reads every cell in use, O(cells). Not a snapshot:
///   adds that race with it may or may not be counted, and a sum never counts
///   an add that has not happened.
/// * [`take`](Self::take): hands out what was added since the last take and
///   leaves 0: an add lands either before a take reads its cell (taken) or
///   after (left for the next take), never in neither and never in both.
///   Batched writers flush with it.
///
/// ```
/// use sysblocks_sharded_counter::StripedCounter;
///
/// let views = StripedCounter::new();
/// std::thread::scope(|s| {
///     for _ in 0..4 {
///         s.spawn(|| for _ in 0..1000 { views.add(1) });
///     }
/// });
/// assert_eq!(views.sum(), 4000);
/// ```
#[derive(Debug)]
pub struct StripedCounter {
    cells: Box<[PaddedCell]>,
    /// One past the highest cell in use: where `sum` and `take` stop.
    end: AtomicUsize,
    /// Takes one at a time, so that each moves `taken` from where the last
    /// one left it.
    taking: Mutex<()>,
}

impl Default for StripedCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl StripedCounter {
    /// A counter at 0 that may use up to `2 × cores` cells (a power of two).
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        Self::with_max_cells(cores * 2)
    }

    /// A counter at 0 that uses at most `max_cells` cells (rounded up to a
    /// power of two; at least 1, at most 65,536): the threads with an index
    /// below it get a cell of their own, the others share.
    pub fn with_max_cells(max_cells: usize) -> Self {
        let max = max_cells.clamp(1, 1 << 16).next_power_of_two();
        StripedCounter {
            cells: (0..max).map(|_| PaddedCell::default()).collect(),
            end: AtomicUsize::new(0),
            taking: Mutex::new(()),
        }
    }

    /// Adds `n` (which may be negative).
    #[inline]
    pub fn add(&self, n: i64) {
        // The hot path: this thread's own cell, already in use. (Reading
        // `used` with acquire makes the cell's counting in, by whichever
        // thread did it, happen before this add; on x86 it is a plain load
        // all the same.)
        if let Some(cell) = self.cells.get(thread_index::current())
            && cell.used.load(Ordering::Acquire)
        {
            cell.add_own(n);
            return;
        }
        self.add_slow(n);
    }

    /// A thread's first add on this counter, or a thread with no cell of its
    /// own.
    #[cold]
    fn add_slow(&self, n: i64) {
        let index = thread_index::get_or_assign();
        match index.filter(|&i| i < self.cells.len()) {
            Some(own_cell) => {
                self.count_in(own_cell);
                self.cells[own_cell].add_own(n);
            }
            None => {
                // Past the last cell (or a thread that is exiting, whose
                // index is gone): share a cell's second word. The cell count
                // is a power of two, so the mask spreads such threads evenly.
                let shared = index.map_or(0, |i| i & (self.cells.len() - 1));
                self.count_in(shared);
                self.cells[shared].shared.0.fetch_add(n, Ordering::AcqRel);
            }
        }
    }

    /// Marks cell `index` as in use, before its first add: `end`
    /// first, so that whoever sees the cell in use also sees `sum` and
    /// `take` reach it.
    fn count_in(&self, index: usize) {
        let cell = &self.cells[index];
        if cell.used.load(Ordering::Acquire) {
            return;
        }
        self.end.fetch_max(index + 1, Ordering::AcqRel);
        cell.used.store(true, Ordering::Release);
    }

    /// The total of every add so far, less what `take` has handed out (see
    /// the type's docs on races).
    pub fn sum(&self) -> i64 {
        let end = self.end.load(Ordering::Acquire);
        self.cells[..end].iter().fold(0i64, |acc, c| {
            // `taken` first: a take stores it after reading `own`, so the
            // `own` read here is at least what that take read.
            let taken = c.taken.load(Ordering::Acquire);
            let own = c.own.load(Ordering::Acquire).wrapping_sub(taken);
            acc.wrapping_add(own).wrapping_add(c.shared.0.load(Ordering::Acquire))
        })
    }

    /// Takes the total, leaving 0: every add is taken by exactly one `take`.
    pub fn take(&self) -> i64 {
        let _one_at_a_time = self.taking.lock().unwrap_or_else(PoisonError::into_inner);
        let end = self.end.load(Ordering::Acquire);
        self.cells[..end].iter().fold(0i64, |acc, c| {
            let own = c.own.load(Ordering::Acquire);
            let new = own.wrapping_sub(c.taken.load(Ordering::Relaxed));
            c.taken.store(own, Ordering::Release);
            acc.wrapping_add(new).wrapping_add(c.shared.0.swap(0, Ordering::AcqRel))
        })
    }

    /// Sets the counter to 0. Adds racing with the reset may survive it.
    pub fn reset(&self) {
        let _ = self.take();
    }

    /// How many cells are in use now: one per thread that has added, up to
    /// the bound (threads past it share cells already counted, or count in
    /// the one they share); 1 for a counter no thread has added to yet.
    pub fn cells_in_use(&self) -> usize {
        let end = self.end.load(Ordering::Acquire);
        self.cells[..end].iter().filter(|c| c.used.load(Ordering::Acquire)).count().max(1)
    }
}

#[cfg(all(test, not(sysblocks_loom)))]
mod tests {
    use super::PaddedCell;

    #[test]
    fn a_cell_is_two_lines_with_the_shared_word_on_the_second() {
        assert_eq!(std::mem::size_of::<PaddedCell>(), 128);
        assert_eq!(std::mem::offset_of!(PaddedCell, shared), 64);
    }
}
