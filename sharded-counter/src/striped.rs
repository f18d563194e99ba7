//! [`StripedCounter`]: an in-process counter that scales with cores.

use std::cell::Cell;

use crate::sync::{AtomicI64, AtomicUsize, Ordering, thread_local};

/// One counter cell on a cache line of its own (128 bytes: two lines, as the
/// adjacent-line prefetcher of x86 pulls pairs), so that threads adding to
/// different cells never share a line.
#[repr(align(128))]
#[derive(Debug, Default)]
struct PaddedCell(AtomicI64);

/// A new thread's probe. Under loom every execution of a model must be the
/// same, so there the probe is a constant (contention still moves threads
/// apart, which is what the models explore).
fn first_probe() -> u32 {
    if cfg!(sysblocks_loom) {
        0x9e37_79b9
    } else {
        NEXT_PROBE.fetch_add(0x9e37_79b9, std::sync::atomic::Ordering::Relaxed).max(1)
    }
}

/// Hands each thread a distinct starting probe.
static NEXT_PROBE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0x9e37_79b9);

#[cfg(not(sysblocks_loom))]
thread_local! {
    /// This thread's probe in the high 32 bits (which cell it adds to,
    /// rehashed on contention) and its count of adds in the low 32 (to
    /// pick the one in 64 that checks for contention): one thread-local
    /// word, read and written once per add. Successive threads get
    /// successive multiples of an odd constant as probes, so their low bits
    /// (which pick the cell) differ; never 0, which xorshift would keep at
    /// 0. Initialised by a constant (probe 0: "none yet"), so that reading
    /// it needs no lazy-init check: a thread's first add is a check, and
    /// sets its real probe.
    static STATE: Cell<u64> = const { Cell::new(FIRST_STATE) };
}

// loom's thread_local! takes no const initialiser.
#[cfg(sysblocks_loom)]
thread_local! {
    static STATE: Cell<u64> = Cell::new(FIRST_STATE);
}

/// A thread's state before its first add: no probe, and a count one short
/// of a check, so that the first add checks (and sets the probe).
const FIRST_STATE: u64 = 63;

/// Counts this add; returns the thread's probe, and whether this add is the
/// one in 64 that checks for contention with a compare-and-swap (under
/// loom, every add does, so that the models explore the contended path).
#[inline(always)]
fn probe_and_tick() -> (u32, bool) {
    let state = STATE.with(|s| {
        // The count wraps into the probe every 2^32 adds: that only moves
        // the thread to another cell.
        let state = s.get().wrapping_add(1);
        s.set(state);
        state
    });
    ((state >> 32) as u32, cfg!(sysblocks_loom) || state & 63 == 0)
}

/// This thread's probe, set on its first use.
fn probe() -> u32 {
    let probe = (STATE.with(Cell::get) >> 32) as u32;
    if probe != 0 { probe } else { set_probe(first_probe()) }
}

/// Sets this thread's probe, keeping its count.
fn set_probe(probe: u32) -> u32 {
    STATE.with(|s| s.set((u64::from(probe) << 32) | (s.get() & 0xffff_ffff)));
    probe
}

/// A counter split over cache-padded cells, like Java's `LongAdder`: each
/// thread adds to "its" cell, so threads rarely contend on one cache line;
/// reading sums the cells.
///
/// It starts with one cell and doubles the number of cells in use each time
/// an add meets contention, up to a bound (by default the next power of
/// two of twice the number of cores). Cells never move, so growing loses
/// nothing. Contention is seen by a failed compare-and-swap, which one add
/// in 64 of each thread (and its first) makes; the others are a plain
/// atomic add.
///
/// * [`add`](Self::add): one atomic add on an uncontended line.
/// * [`sum`](Self::sum): reads every cell in use, O(cells). Not a snapshot:
///   adds that race with it may or may not be counted, and a sum never counts
///   an add that has not happened.
/// * [`take`](Self::take): swaps every cell to 0 and returns what it took:
///   an add lands either before the swap of its cell (taken) or after (left
///   for the next take), never in neither. Batched writers flush with it.
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
    /// Cells in use minus one (they are a power of two, only ever growing):
    /// the mask that turns a probe into a cell.
    mask: AtomicUsize,
}

impl Default for StripedCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl StripedCounter {
    /// A counter at 0 that may grow to `2 × cores` cells (a power of two).
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        Self::with_max_cells(cores * 2)
    }

    /// A counter at 0 that grows to at most `max_cells` cells (rounded up to
    /// a power of two; at least 1).
    pub fn with_max_cells(max_cells: usize) -> Self {
        let max = max_cells.clamp(1, 1 << 16).next_power_of_two();
        StripedCounter {
            cells: (0..max).map(|_| PaddedCell::default()).collect(),
            mask: AtomicUsize::new(0),
        }
    }

    /// Adds `n` (which may be negative).
    #[inline]
    pub fn add(&self, n: i64) {
        let mask = self.mask.load(Ordering::Acquire);
        let (probe, check) = probe_and_tick();
        // Most adds are one locked add (`fetch_add`), which beats a load
        // and a compare-and-swap (measured: about 10% on one thread, more
        // on two). A fetch_add cannot tell whether another thread is on
        // the same cell, so one add in 64 of each thread goes through a
        // compare-and-swap instead: a thread that keeps sharing a cell
        // fails one of those soon, and the stripe grows or the thread
        // moves.
        if !check {
            self.cells[probe as usize & mask].0.fetch_add(n, Ordering::AcqRel);
            return;
        }
        self.checked_add(n, mask);
    }

    /// The add that checks (a thread's first sets its probe).
    #[inline(never)]
    fn checked_add(&self, n: i64, mask: usize) {
        let cell = &self.cells[probe() as usize & mask].0;
        let current = cell.load(Ordering::Relaxed);
        if cell
            .compare_exchange(current, current.wrapping_add(n), Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            self.contended(cell, n, mask);
        }
    }

    /// Slow path: another thread is on this cell. Add anyway; widen the
    /// stripe if it can still grow, which by itself parts threads whose
    /// probes differ in the new bit (successive threads' probes do), or
    /// else move this thread to another cell.
    #[cold]
    fn contended(&self, cell: &AtomicI64, n: i64, mask: usize) {
        cell.fetch_add(n, Ordering::AcqRel);
        let active = mask + 1;
        if active < self.cells.len()
            && self
                .mask
                .compare_exchange(mask, active * 2 - 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            return;
        }
        // xorshift32: a different cell next time.
        let mut x = probe();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        set_probe(x);
    }

    /// The total of every add so far (see the type's docs on races).
    pub fn sum(&self) -> i64 {
        let active = self.mask.load(Ordering::Acquire) + 1;
        self.cells[..active]
            .iter()
            .fold(0i64, |acc, c| acc.wrapping_add(c.0.load(Ordering::Acquire)))
    }

    /// Takes the total, leaving 0: every add is taken by exactly one `take`.
    pub fn take(&self) -> i64 {
        let active = self.mask.load(Ordering::Acquire) + 1;
        self.cells[..active]
            .iter()
            .fold(0i64, |acc, c| acc.wrapping_add(c.0.swap(0, Ordering::AcqRel)))
    }

    /// Sets the counter to 0. Adds racing with the reset may survive it.
    pub fn reset(&self) {
        let _ = self.take();
    }

    /// How many cells are in use now.
    pub fn cells_in_use(&self) -> usize {
        self.mask.load(Ordering::Acquire) + 1
    }
}

#[cfg(all(test, not(sysblocks_loom)))]
mod tests {
    #[test]
    fn threads_start_on_both_cells_of_a_two_cell_stripe() {
        let low_bits: Vec<u32> =
            (0..8).map(|_| std::thread::spawn(|| super::probe() & 1).join().unwrap()).collect();
        assert!(low_bits.contains(&0) && low_bits.contains(&1), "{low_bits:?}");
    }
}
