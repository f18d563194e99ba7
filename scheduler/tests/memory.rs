//! The behaviour suite on the in-memory backend, in tokio's virtual time.

mod common;

use std::sync::Arc;
use std::time::Duration;

use sysblocks_scheduler::{Clock, MemoryBackend, TokioClock};

const START: u64 = 1_700_000_000_000;

fn setup() -> (Arc<MemoryBackend>, Arc<dyn Clock>) {
    (Arc::new(MemoryBackend::new()), Arc::new(TokioClock::starting_at(START)))
}

#[tokio::test(start_paused = true)]
async fn retries_follow_the_policy_then_dead_letter_then_replay() {
    let (backend, clock) = setup();
    common::retries_then_dead_letter_then_replay(backend, clock, Duration::from_secs(1), true)
        .await;
}

#[tokio::test(start_paused = true)]
async fn random_dags_run_parents_first() {
    for seed in 0..10 {
        let (backend, clock) = setup();
        common::random_dags_respect_order(backend, clock, seed).await;
    }
}

#[tokio::test(start_paused = true)]
async fn cycles_are_rejected_and_failures_propagate() {
    let (backend, clock) = setup();
    common::cycles_rejected_and_failures_propagate(backend, clock).await;
}

#[tokio::test]
async fn stale_leases_are_fenced_and_expired_ones_reaped() {
    common::leases_fence_stale_workers(Arc::new(MemoryBackend::new()), START).await;
}

#[tokio::test]
async fn priorities_delays_and_idempotency_keys() {
    common::priorities_delays_and_idempotency(Arc::new(MemoryBackend::new()), START).await;
}

#[tokio::test(start_paused = true)]
async fn panics_unknown_names_and_bad_payloads_are_failed_attempts() {
    let (backend, clock) = setup();
    common::panics_and_bad_tasks_are_failed_attempts(backend, clock).await;
}
