//! Printing helpers: section headers, aligned rows and per-section timing.

use std::time::Instant;

/// A tour section: prints its title when started and its duration when done.
#[derive(Debug)]
pub struct Section {
    title: &'static str,
    started: Instant,
}

impl Section {
    /// Prints the section header and starts its clock.
    pub fn start(title: &'static str) -> Section {
        println!();
        println!("== {title} {}", "=".repeat(70usize.saturating_sub(title.len() + 4)));
        Section { title, started: Instant::now() }
    }

    /// Prints one `label: value` row, labels aligned.
    pub fn row(&self, label: &str, value: impl std::fmt::Display) {
        println!("  {label:<34} {value}");
    }

    /// Prints a free-form line inside the section.
    pub fn note(&self, text: impl std::fmt::Display) {
        println!("  {text}");
    }

    /// Prints how long the section took.
    pub fn finish(self) {
        println!("  ({} took {:.2?})", self.title, self.started.elapsed());
    }
}

/// Formats a fraction as a percentage with two decimals.
pub fn percent(part: f64, whole: f64) -> String {
    if whole == 0.0 { "n/a".to_string() } else { format!("{:.2}%", 100.0 * part / whole) }
}
