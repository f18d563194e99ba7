//! A node's counters, rendered for `GET /metrics` in the Prometheus text
//! format. Request counters are `sysblocks-sharded-counter`'s
//! `StripedCounter`s: every connection task adds to them, and striping
//! keeps those adds from contending on one cache line.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sysblocks_sharded_counter::StripedCounter;

/// The commands requests are counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `GET`.
    Get,
    /// `SET`.
    Set,
    /// `DEL`.
    Del,
    /// `EXISTS`.
    Exists,
}

impl Command {
    const ALL: [Command; 4] = [Command::Get, Command::Set, Command::Del, Command::Exists];

    fn name(self) -> &'static str {
        match self {
            Command::Get => "get",
            Command::Set => "set",
            Command::Del => "del",
            Command::Exists => "exists",
        }
    }
}

/// The kinds of repair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    /// A read that found stale replicas wrote the newest entry back.
    ReadRepair,
    /// A write held for a replica that was down, delivered.
    HintedHandoff,
    /// A Merkle sync session between replicas.
    AntiEntropy,
}

impl Repair {
    const ALL: [Repair; 3] = [Repair::ReadRepair, Repair::HintedHandoff, Repair::AntiEntropy];

    fn name(self) -> &'static str {
        match self {
            Repair::ReadRepair => "read_repair",
            Repair::HintedHandoff => "hinted_handoff",
            Repair::AntiEntropy => "anti_entropy",
        }
    }
}

/// Upper bounds of the latency buckets, in microseconds.
const BUCKETS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000,
];

/// A latency histogram: a count per bucket, the sum and the count.
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS_US.len()],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        if let Some(i) = BUCKETS_US.iter().position(|&b| us <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// Everything a node counts.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: [StripedCounter; 4],
    errors: [StripedCounter; 4],
    latency: [Histogram; 4],
    repaired_keys: [AtomicU64; 3],
    repaired_bytes: [AtomicU64; 3],
    sync_bytes: AtomicU64,
    sync_sessions: AtomicU64,
    sync_failures: AtomicU64,
    cache_hits: StripedCounter,
    cache_misses: StripedCounter,
    limited: AtomicU64,
    hints_written: AtomicU64,
    hints_dropped: AtomicU64,
    quorum_reads: StripedCounter,
}

/// Values read at render time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    /// Hints held for other nodes.
    pub hints_pending: u64,
    /// Live keys in this node's partitions.
    pub keys: u64,
    /// Open client connections.
    pub connections: u64,
}

impl Metrics {
    /// A request finished after `elapsed`, with an error or not.
    pub fn request(&self, command: Command, elapsed: Duration, failed: bool) {
        let i = command as usize;
        self.requests[i].add(1);
        if failed {
            self.errors[i].add(1);
        }
        self.latency[i].observe(elapsed);
    }

    /// A repair of `kind` stored `keys` entries of `bytes` (keys plus values).
    pub fn repaired(&self, kind: Repair, keys: u64, bytes: u64) {
        self.repaired_keys[kind as usize].fetch_add(keys, Ordering::Relaxed);
        self.repaired_bytes[kind as usize].fetch_add(bytes, Ordering::Relaxed);
    }

    /// Keys repaired so far by `kind`.
    pub fn repaired_keys(&self, kind: Repair) -> u64 {
        self.repaired_keys[kind as usize].load(Ordering::Relaxed)
    }

    /// A sync session ended, having sent `bytes` (or failed).
    pub fn sync_session(&self, bytes: u64, failed: bool) {
        self.sync_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.sync_sessions.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.sync_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A read cache lookup.
    pub fn cache(&self, hit: bool) {
        if hit { self.cache_hits.add(1) } else { self.cache_misses.add(1) }
    }

    /// A request refused by the per-client limits.
    pub fn limited(&self) {
        self.limited.fetch_add(1, Ordering::Relaxed);
    }

    /// A read sent to a key's replicas (a GET the cache did not answer, a
    /// DEL's or EXISTS's read).
    pub fn quorum_read(&self) {
        self.quorum_reads.add(1);
    }

    /// A hint written for a replica that did not answer.
    pub fn hint_written(&self) {
        self.hints_written.fetch_add(1, Ordering::Relaxed);
    }

    /// A hint not kept: the store holds its limit (anti-entropy repairs
    /// the replica instead).
    pub fn hint_dropped(&self) {
        self.hints_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self, gauges: Gauges) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let commands = Command::ALL.map(Command::name);
        let kinds = Repair::ALL.map(Repair::name);
        let by = |values: &[StripedCounter; 4]| values.each_ref().map(|c| c.sum() as u64);
        let load = |values: &[AtomicU64; 3]| values.each_ref().map(|v| v.load(Ordering::Relaxed));
        labelled(
            &mut out,
            "kv_requests_total",
            "Data port requests by command.",
            "command",
            &commands,
            &by(&self.requests),
        );
        labelled(
            &mut out,
            "kv_request_errors_total",
            "Requests answered with an error.",
            "command",
            &commands,
            &by(&self.errors),
        );
        header(&mut out, "kv_request_seconds", "histogram", "Request latency by command.");
        for c in Command::ALL {
            let h = &self.latency[c as usize];
            let mut cumulative = 0;
            for (i, bound) in BUCKETS_US.iter().enumerate() {
                cumulative += h.buckets[i].load(Ordering::Relaxed);
                let le = *bound as f64 / 1e6;
                let _ = writeln!(
                    out,
                    "kv_request_seconds_bucket{{command=\"{}\",le=\"{le}\"}} {cumulative}",
                    c.name()
                );
            }
            let count = h.count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "kv_request_seconds_bucket{{command=\"{}\",le=\"+Inf\"}} {count}",
                c.name()
            );
            let sum = h.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "kv_request_seconds_sum{{command=\"{}\"}} {sum}", c.name());
            let _ = writeln!(out, "kv_request_seconds_count{{command=\"{}\"}} {count}", c.name());
        }
        labelled(
            &mut out,
            "kv_repair_keys_total",
            "Entries stored by each kind of repair.",
            "kind",
            &kinds,
            &load(&self.repaired_keys),
        );
        labelled(
            &mut out,
            "kv_repair_bytes_total",
            "Key and value bytes stored by each kind of repair.",
            "kind",
            &kinds,
            &load(&self.repaired_bytes),
        );
        let simple: [(&str, &str, &str, u64); 12] = [
            (
                "kv_hints_dropped_total",
                "counter",
                "Hints not kept because the store held its limit.",
                self.hints_dropped.load(Ordering::Relaxed),
            ),
            (
                "kv_quorum_reads_total",
                "counter",
                "Reads this node coordinated across a key's replicas.",
                self.quorum_reads.sum() as u64,
            ),
            (
                "kv_sync_sent_bytes_total",
                "counter",
                "Bytes this node sent in Merkle sync sessions (both roles).",
                self.sync_bytes.load(Ordering::Relaxed),
            ),
            (
                "kv_sync_sessions_total",
                "counter",
                "Merkle sync sessions this node started.",
                self.sync_sessions.load(Ordering::Relaxed),
            ),
            (
                "kv_sync_failures_total",
                "counter",
                "Sync sessions that failed (peer down, timeout, bad input).",
                self.sync_failures.load(Ordering::Relaxed),
            ),
            (
                "kv_cache_hits_total",
                "counter",
                "GETs answered from the read cache.",
                self.cache_hits.sum() as u64,
            ),
            (
                "kv_cache_misses_total",
                "counter",
                "GETs that went to the replicas with the cache on.",
                self.cache_misses.sum() as u64,
            ),
            (
                "kv_limited_total",
                "counter",
                "Requests and connections refused by the per-client limits.",
                self.limited.load(Ordering::Relaxed),
            ),
            (
                "kv_hints_written_total",
                "counter",
                "Hints written for replicas that did not answer.",
                self.hints_written.load(Ordering::Relaxed),
            ),
            ("kv_hints_pending", "gauge", "Hints held for other nodes.", gauges.hints_pending),
            ("kv_keys", "gauge", "Live keys held by this node.", gauges.keys),
            ("kv_connections", "gauge", "Open client connections.", gauges.connections),
        ];
        for (name, kind, help, value) in simple {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }
}

/// A family's `# HELP` and `# TYPE` lines.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A counter family with one sample per label value.
fn labelled(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: &[&str],
    counts: &[u64],
) {
    header(out, name, "counter", help);
    for (value, count) in values.iter().zip(counts) {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {count}");
    }
}

/// The value of an unlabelled or labelled sample in a Prometheus text
/// page (`kv_repair_bytes_total{kind="anti_entropy"}`), for tests and the
/// demo.
pub fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_and_read_back() {
        let m = Metrics::default();
        m.request(Command::Get, Duration::from_micros(300), false);
        m.request(Command::Get, Duration::from_secs(5), true);
        m.repaired(Repair::AntiEntropy, 3, 120);
        let page = m.render(Gauges { hints_pending: 2, keys: 10, connections: 1 });
        assert_eq!(sample(&page, "kv_requests_total{command=\"get\"}"), Some(2.0));
        assert_eq!(sample(&page, "kv_request_errors_total{command=\"get\"}"), Some(1.0));
        assert_eq!(
            sample(&page, "kv_request_seconds_bucket{command=\"get\",le=\"0.0005\"}"),
            Some(1.0)
        );
        assert_eq!(
            sample(&page, "kv_request_seconds_bucket{command=\"get\",le=\"+Inf\"}"),
            Some(2.0)
        );
        assert_eq!(sample(&page, "kv_repair_bytes_total{kind=\"anti_entropy\"}"), Some(120.0));
        assert_eq!(sample(&page, "kv_hints_pending"), Some(2.0));
        assert_eq!(sample(&page, "kv_nothing"), None);
    }
}
