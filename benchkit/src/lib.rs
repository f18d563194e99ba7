//! Interleaved A/B measurement: our type and the peer crate run in turns in
//! one process, on the same data, many short times over, and each ratio is
//! reported as a median with a 90% interval, not as two medians taken
//! minutes apart.
//!
//! Why: on a shared 2-core VM, the speed of the machine drifts by 10 to 20%
//! over minutes (other tenants, frequency, the page cache). Two separate
//! criterion runs each see a different machine, so their ratio carries the
//! drift. Alternating A and B every few milliseconds puts both sides of one
//! pair on the same machine; the spread of the pair ratios shows the noise
//! that remains, and the order alternates (AB, BA, AB, ...) so that neither
//! side always runs on a warm cache.
//!
//! Each workload is a closure that runs `iters` operations and returns the
//! time they took (as criterion's `iter_custom`), so the same driver times
//! one call, two threads sharing a limiter, or 64 tasks talking to Redis.
//!
//! ```
//! use std::time::Instant;
//! use sysblocks_benchkit::{Ab, Target};
//!
//! let ab = Ab { pairs: 9, sample: std::time::Duration::from_micros(200) };
//! let row = ab.time_ratio("demo", "sum of 0..n, wrapping", Target::None,
//!     |n| { let t = Instant::now(); std::hint::black_box((0..n).fold(0u64, u64::wrapping_add)); t.elapsed() },
//!     |n| { let t = Instant::now(); std::hint::black_box((0..n).fold(0u64, u64::wrapping_add)); t.elapsed() });
//! assert!(row.summary.ci.0 <= row.summary.median && row.summary.median <= row.summary.ci.1);
//! ```

use std::fmt;
use std::time::Duration;

/// How many pairs to run and how long one side of a pair should take.
#[derive(Debug, Clone, Copy)]
pub struct Ab {
    /// Pairs (one run of ours and one of the peer's) per row.
    pub pairs: usize,
    /// The least time one side of a pair runs: the operation count is
    /// doubled until our side takes this long, then kept for every pair.
    pub sample: Duration,
}

impl Default for Ab {
    /// 61 pairs of at least 20 ms a side: about 3 s a row for a workload
    /// whose peer is as fast as ours.
    fn default() -> Self {
        Ab { pairs: 61, sample: Duration::from_millis(20) }
    }
}

/// What a row promises: where the whole 90% interval of its ratio must lie.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// The interval lies below this (a time ratio: lower is better).
    Below(f64),
    /// The interval lies at or below this (an exact figure such as bytes).
    AtMost(f64),
    /// The interval lies at or above this (a throughput ratio, or an
    /// absolute rate: higher is better).
    AtLeast(f64),
    /// Reported, with no target.
    None,
}

impl Target {
    /// Whether the interval `(low, high)` lies wholly on the right side.
    /// `None` for a row without a target.
    pub fn met(self, (low, high): (f64, f64)) -> Option<bool> {
        match self {
            Target::Below(bound) => Some(high < bound),
            Target::AtMost(bound) => Some(high <= bound),
            Target::AtLeast(bound) => Some(low >= bound),
            Target::None => None,
        }
    }
}

impl Target {
    /// The target as one word, for the `ABS|` lines: `below:0.9`,
    /// `atmost:0.5`, `atleast:1`, `none`.
    pub fn code(self) -> String {
        match self {
            Target::Below(bound) => format!("below:{bound}"),
            Target::AtMost(bound) => format!("atmost:{bound}"),
            Target::AtLeast(bound) => format!("atleast:{bound}"),
            Target::None => "none".to_string(),
        }
    }

    /// Reads what [`code`](Self::code) wrote.
    pub fn from_code(code: &str) -> Option<Target> {
        if code == "none" {
            return Some(Target::None);
        }
        let (kind, bound) = code.split_once(':')?;
        let bound: f64 = bound.parse().ok()?;
        match kind {
            "below" => Some(Target::Below(bound)),
            "atmost" => Some(Target::AtMost(bound)),
            "atleast" => Some(Target::AtLeast(bound)),
            _ => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Below(bound) => write!(f, "< {bound}"),
            Target::AtMost(bound) => write!(f, "<= {bound}"),
            Target::AtLeast(bound) => write!(f, ">= {bound}"),
            Target::None => f.write_str("-"),
        }
    }
}

/// A median with its 90% interval and the spread of the samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// The median of the samples.
    pub median: f64,
    /// A distribution-free 90% confidence interval for the median (two
    /// order statistics chosen with the binomial distribution): a rerun's
    /// median lands inside it nine times in ten.
    pub ci: (f64, f64),
    /// The 5th and 95th percentiles of the samples: how much one pair
    /// alone can say.
    pub spread: (f64, f64),
    /// How many samples.
    pub n: usize,
}

impl Summary {
    /// The summary of `samples` (at least one; NaNs are not expected).
    ///
    /// # Panics
    /// On an empty slice: a row without a sample is a bug in the bench.
    pub fn of(samples: &[f64]) -> Summary {
        assert!(!samples.is_empty(), "a summary needs at least one sample");
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median =
            if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 };
        let j = median_ci_rank(n);
        let ci = (sorted[j.saturating_sub(1)], sorted[(n - j).min(n - 1)]);
        let at = |q: f64| sorted[((q * (n - 1) as f64).round() as usize).min(n - 1)];
        Summary { median, ci, spread: (at(0.05), at(0.95)), n }
    }
}

/// The largest `j` (1-based) such that `P(X < j) <= 0.05` for `X ~
/// Binomial(n, 1/2)`: the order statistics `x(j)` and `x(n + 1 - j)` then
/// cover the median with probability at least 90%. At least 1.
fn median_ci_rank(n: usize) -> usize {
    // P(X = i) by the recurrence C(n, i + 1) = C(n, i) (n - i) / (i + 1),
    // in logs so that n in the thousands does not underflow.
    let mut log_p = -(n as f64) * std::f64::consts::LN_2;
    let mut below = 0.0; // P(X < i)
    let mut j = 1;
    for i in 0..n {
        let p = log_p.exp();
        if below + p > 0.05 {
            break;
        }
        below += p;
        j = i + 1;
        log_p += ((n - i) as f64).ln() - ((i + 1) as f64).ln();
    }
    j.max(1)
}

/// Runs `ops` operations of one side. Never inlined and named, so that
/// callgrind counts only what happens inside it
/// (`--toggle-collect=*measured_region*`): not the setup, and not a clock's
/// calibration, whose loop runs for a time rather than a number of steps.
#[inline(never)]
pub fn measured_region(side: &mut dyn FnMut(u64) -> Duration, ops: u64) -> Duration {
    side(ops)
}

/// Times `n` calls of `op` on this thread: the body of most rows' sides.
pub fn timed(n: u64, mut op: impl FnMut()) -> Duration {
    let start = std::time::Instant::now();
    for _ in 0..n {
        op();
    }
    start.elapsed()
}

/// Times `threads` threads that each make `n` calls of `op` (sharing
/// whatever `op` refers to), from the first spawn to the last join.
pub fn on_threads(threads: usize, n: u64, op: impl Fn() + Sync) -> Duration {
    let start = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..n {
                    op();
                }
            });
        }
    });
    start.elapsed()
}

/// `AB_SIDE` and `AB_OPS`, when both are set: the single-side mode of
/// [`Ab::time_ratio`] and [`Ab::throughput_ratio`].
fn single_side() -> Option<(String, u64)> {
    let side = std::env::var("AB_SIDE").ok()?;
    let ops = std::env::var("AB_OPS").ok()?.parse().ok()?;
    Some((side, ops))
}

/// One measured row of BENCHMARKS.md.
#[derive(Debug, Clone)]
pub struct Row {
    /// A stable id, `crate/row`.
    pub id: String,
    /// What the row measures, in words.
    pub what: String,
    /// What the numbers are: `ours/peer time`, `ours/peer throughput`, or a
    /// unit for an absolute row.
    pub unit: String,
    /// The samples' summary.
    pub summary: Summary,
    /// Where the interval must lie.
    pub target: Target,
    /// The samples themselves (pair ratios, or one figure per run).
    pub samples: Vec<f64>,
}

impl Row {
    /// The row of `samples` (at least one).
    pub fn new(id: &str, what: &str, unit: &str, target: Target, samples: Vec<f64>) -> Row {
        Row {
            id: id.to_string(),
            what: what.to_string(),
            unit: unit.to_string(),
            summary: Summary::of(&samples),
            target,
            samples,
        }
    }

    /// Whether the whole interval meets the target (`None` without one).
    pub fn met(&self) -> Option<bool> {
        self.target.met(self.summary.ci)
    }

    /// Prints the row for a reader, then one `AB|...` line that
    /// `scripts/bench.sh` collects into BENCHMARKS.md.
    pub fn print(&self) {
        let s = &self.summary;
        let verdict = match self.met() {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "no target",
        };
        println!(
            "{:<36} {:>9.3} (90% CI {:.3} to {:.3}; 5-95% of pairs {:.3} to {:.3}; n = {}) {} target {}: {}",
            self.id,
            s.median,
            s.ci.0,
            s.ci.1,
            s.spread.0,
            s.spread.1,
            s.n,
            self.unit,
            self.target,
            verdict
        );
        println!(
            "AB|{}|{}|{}|{:.4}|{:.4}|{:.4}|{:.4}|{:.4}|{}|{}|{}",
            self.id,
            self.what,
            self.unit,
            s.median,
            s.ci.0,
            s.ci.1,
            s.spread.0,
            s.spread.1,
            s.n,
            self.target,
            verdict
        );
        let samples: Vec<String> = self.samples.iter().map(|x| format!("{x:.6}")).collect();
        println!(
            "ABS|{}|{}|{}|{}|{}",
            self.id,
            self.what,
            self.unit,
            self.target.code(),
            samples.join(",")
        );
    }

    /// Parses an `ABS|...` line that [`print`](Self::print) wrote: how
    /// `ab-pool` gathers the samples of one row from several processes.
    pub fn parse_samples(line: &str) -> Option<Row> {
        let mut fields = line.strip_prefix("ABS|")?.split('|');
        let (id, what, unit) = (fields.next()?, fields.next()?, fields.next()?);
        let target = Target::from_code(fields.next()?)?;
        let samples: Option<Vec<f64>> = fields.next()?.split(',').map(|x| x.parse().ok()).collect();
        let samples = samples?;
        if samples.is_empty() {
            return None;
        }
        Some(Row::new(id, what, unit, target, samples))
    }
}

impl Ab {
    /// The driver with `AB_PAIRS` and `AB_SAMPLE_MS` from the environment
    /// when set (a quick look: `AB_PAIRS=11`), the defaults otherwise.
    pub fn from_env() -> Ab {
        let mut ab = Ab::default();
        if let Some(pairs) = std::env::var("AB_PAIRS").ok().and_then(|v| v.parse().ok()) {
            ab.pairs = pairs;
        }
        if let Some(ms) = std::env::var("AB_SAMPLE_MS").ok().and_then(|v| v.parse().ok()) {
            ab.sample = Duration::from_millis(ms);
        }
        ab
    }

    /// Whether a row runs: `AB_ONLY` (a substring of row ids) unset, or
    /// found in `id`.
    pub fn wants(id: &str) -> bool {
        std::env::var("AB_ONLY").map_or(true, |only| id.contains(only.as_str()))
    }

    /// The operation count at which `ours` takes at least `self.sample`.
    fn calibrate(&self, ours: &mut impl FnMut(u64) -> Duration) -> u64 {
        let mut iters = 1u64;
        loop {
            if ours(iters) >= self.sample || iters >= 1 << 40 {
                return iters;
            }
            iters *= 2;
        }
    }

    /// Pair ratios of `measure(ours) / measure(peer)`, alternating which
    /// side goes first.
    ///
    /// With `AB_SIDE=ours` (or `peer`) and `AB_OPS=N` in the environment,
    /// runs only that side, N operations, once, inside
    /// [`measured_region`], and returns no sample: `scripts/bench.sh` runs
    /// a row so under callgrind to count the instructions of one
    /// operation, a figure that does not depend on what else the machine
    /// is doing.
    fn pairs(
        &self,
        mut ours: impl FnMut(u64) -> Duration,
        mut peer: impl FnMut(u64) -> Duration,
        ratio: impl Fn(Duration, Duration) -> f64,
    ) -> Vec<f64> {
        if let Some((side, ops)) = single_side() {
            if side == "peer" {
                measured_region(&mut peer, ops);
            } else {
                measured_region(&mut ours, ops);
            }
            return Vec::new();
        }
        let iters = self.calibrate(&mut ours);
        // One unmeasured pair warms both sides.
        ours(iters);
        peer(iters);
        (0..self.pairs)
            .map(|i| {
                let (a, b) = if i % 2 == 0 {
                    let a = ours(iters);
                    (a, peer(iters))
                } else {
                    let b = peer(iters);
                    (ours(iters), b)
                };
                ratio(a, b)
            })
            .collect()
    }

    /// Our time over the peer's for the same operations (lower is better).
    /// Each closure runs the given number of operations and returns how
    /// long they took.
    pub fn time_ratio(
        &self,
        id: &str,
        what: &str,
        target: Target,
        ours: impl FnMut(u64) -> Duration,
        peer: impl FnMut(u64) -> Duration,
    ) -> Row {
        let samples = self.pairs(ours, peer, |a, b| a.as_secs_f64() / b.as_secs_f64());
        Self::ratio_row(id, what, "time ours/peer", target, samples)
    }

    /// The row of a ratio measurement; in the single-side mode (no
    /// samples) an empty row that is not printed.
    fn ratio_row(id: &str, what: &str, unit: &str, target: Target, samples: Vec<f64>) -> Row {
        if samples.is_empty() {
            let nothing = Summary {
                median: f64::NAN,
                ci: (f64::NAN, f64::NAN),
                spread: (f64::NAN, f64::NAN),
                n: 0,
            };
            return Row {
                id: id.to_string(),
                what: what.to_string(),
                unit: unit.to_string(),
                summary: nothing,
                target,
                samples,
            };
        }
        Self::samples(id, what, unit, target, samples)
    }

    /// Our throughput over the peer's for the same work (higher is
    /// better): the peer's time over ours.
    pub fn throughput_ratio(
        &self,
        id: &str,
        what: &str,
        target: Target,
        ours: impl FnMut(u64) -> Duration,
        peer: impl FnMut(u64) -> Duration,
    ) -> Row {
        let samples = self.pairs(ours, peer, |a, b| b.as_secs_f64() / a.as_secs_f64());
        Self::ratio_row(id, what, "throughput ours/peer", target, samples)
    }

    /// An absolute figure with no peer: `value(iters, elapsed)` of each of
    /// `self.pairs` runs (operations per second, nanoseconds per
    /// operation, ...), in `unit`. With `AB_SIDE` and `AB_OPS` set, runs
    /// N operations once inside [`measured_region`] and returns an empty
    /// row, as [`time_ratio`](Self::time_ratio) does.
    pub fn absolute(
        &self,
        id: &str,
        what: &str,
        unit: &str,
        target: Target,
        mut run: impl FnMut(u64) -> Duration,
        value: impl Fn(u64, Duration) -> f64,
    ) -> Row {
        // The single-side mode (see `pairs`): N operations, once, for a
        // profiler; no sample.
        if let Some((_, ops)) = single_side() {
            measured_region(&mut run, ops);
            return Self::ratio_row(id, what, unit, target, Vec::new());
        }
        let iters = self.calibrate(&mut run);
        run(iters);
        let samples: Vec<f64> = (0..self.pairs).map(|_| value(iters, run(iters))).collect();
        Self::samples(id, what, unit, target, samples)
    }

    /// A row from samples measured elsewhere (one per run of a whole
    /// workload, such as draining a queue), summarised and printed.
    pub fn samples(id: &str, what: &str, unit: &str, target: Target, samples: Vec<f64>) -> Row {
        let row = Row::new(id, what, unit, target, samples);
        row.print();
        row
    }

    /// A figure that does not vary between runs (bytes on a wire,
    /// instructions counted by a simulator): one sample, an interval of
    /// width zero.
    pub fn exact(id: &str, what: &str, unit: &str, target: Target, value: f64) -> Row {
        Self::samples(id, what, unit, target, vec![value])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_interval_ranks_match_the_binomial_tables() {
        // n = 10: P(X <= 1) = 0.0107 and P(X <= 2) = 0.0547 > 0.05, so j =
        // 2: x(2)..x(9) covers the median with 97.9%, x(3)..x(8) only 89%.
        assert_eq!(median_ci_rank(10), 2);
        // n = 5: P(X = 0) = 0.03125 <= 0.05, P(X <= 1) = 0.1875: j = 1.
        assert_eq!(median_ci_rank(5), 1);
        // n = 61: P(X <= 23) = 0.0354, P(X <= 24) = 0.0623: j = 24.
        assert_eq!(median_ci_rank(61), 24);
        assert_eq!(median_ci_rank(1), 1);
    }

    #[test]
    fn summary_of_known_samples() {
        let samples: Vec<f64> = (1..=10).map(f64::from).collect();
        let s = Summary::of(&samples);
        assert_eq!(s.median, 5.5);
        assert_eq!(s.ci, (2.0, 9.0));
        assert_eq!(s.n, 10);
        assert!(s.spread.0 <= s.ci.0 && s.ci.1 <= s.spread.1);
    }

    #[test]
    fn rows_survive_their_abs_line() {
        let row = Row::new(
            "a/b",
            "what it is",
            "time ours/peer",
            Target::Below(0.9),
            vec![0.5, 0.75, 1.25],
        );
        let line = format!(
            "ABS|{}|{}|{}|{}|{}",
            row.id,
            row.what,
            row.unit,
            row.target.code(),
            row.samples.iter().map(|x| format!("{x:.6}")).collect::<Vec<_>>().join(",")
        );
        let back = Row::parse_samples(&line).expect("parses");
        assert_eq!((back.id, back.what, back.unit), (row.id, row.what, row.unit));
        assert_eq!(back.target, Target::Below(0.9));
        assert_eq!(back.samples, row.samples);
        assert_eq!(Target::from_code(&Target::None.code()), Some(Target::None));
        assert_eq!(Target::from_code("sideways:1"), None);
        assert!(Row::parse_samples("AB|a/b|x|y|1|2|3").is_none());
    }

    #[test]
    fn targets_judge_the_whole_interval() {
        assert_eq!(Target::Below(0.9).met((0.8, 0.89)), Some(true));
        assert_eq!(Target::Below(0.9).met((0.8, 0.91)), Some(false));
        assert_eq!(Target::AtLeast(1.0).met((1.0, 1.2)), Some(true));
        assert_eq!(Target::AtLeast(1.0).met((0.99, 1.2)), Some(false));
        assert_eq!(Target::None.met((0.0, 9.0)), None);
    }
}
