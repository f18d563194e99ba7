//! One function per building block, each printing one section of the tour.

pub mod consistent_hash;

/// Options shared by every section.
#[derive(Debug, Clone, Default)]
pub struct TourOptions {
    /// `--redis URL`: run the Redis-backed parts against this server.
    pub redis: Option<String>,
}
