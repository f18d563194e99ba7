//! One function per building block, each printing one section of the tour.

pub mod consistent_hash;
pub mod lru_cache;
pub mod merkle;
pub mod ratelimit;
pub mod scheduler;
pub mod sharded_counter;

/// A tour section: prints its findings, fails only on a bug (or when the
/// Redis it was pointed at is unreachable).
pub type SectionFn = fn(&TourOptions) -> Result<(), Box<dyn std::error::Error>>;

/// Every section, in the order the tour runs them.
pub const ALL: &[(&str, SectionFn)] = &[
    ("ratelimit", ratelimit::run),
    ("consistent-hash", consistent_hash::run),
    ("merkle", merkle::run),
    ("lru-cache", lru_cache::run),
    ("sharded-counter", sharded_counter::run),
    ("scheduler", scheduler::run),
];

/// Options shared by every section.
#[derive(Debug, Clone, Default)]
pub struct TourOptions {
    /// `--redis URL`: run the Redis-backed parts against this server.
    pub redis: Option<String>,
    /// `--report DIR`: where sections put their charts. Without it they
    /// build none (the plain tour stays as fast as it was).
    pub charts: Option<crate::charts::ChartSink>,
}

impl TourOptions {
    /// Whether charts are wanted.
    pub fn drawing(&self) -> bool {
        self.charts.is_some()
    }

    /// Adds the chart `make` builds, if charts are wanted (`make` does not
    /// run otherwise).
    pub fn chart(&self, make: impl FnOnce() -> crate::charts::Chart) {
        if let Some(sink) = &self.charts {
            sink.push(make());
        }
    }
}

/// Runs a section's Redis part against the server given with `--redis`,
/// on a runtime of its own, or notes how to run it.
///
/// # Errors
/// What `part` returns, or a runtime that cannot start.
pub fn with_redis<F>(
    options: &TourOptions,
    section: &crate::report::Section,
    what: &str,
    part: F,
) -> Result<(), Box<dyn std::error::Error>>
where
    F: AsyncFnOnce(&crate::report::Section, &str) -> Result<(), Box<dyn std::error::Error>>,
{
    match &options.redis {
        None => section.note(format!("(run with --redis redis://HOST:PORT/ for {what})")),
        Some(url) => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(part(section, url))?;
        }
    }
    Ok(())
}
