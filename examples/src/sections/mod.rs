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
}
