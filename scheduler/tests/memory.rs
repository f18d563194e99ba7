//! The behaviour suite on the in-memory backend, in tokio's virtual time.

mod common;

use std::sync::Arc;
use std::time::Duration;

use sysblocks_scheduler::{Clock, MemoryBackend, TokioClock};

const START: u64 = 1_700_000_000_000;

fn setup() -> (Arc<MemoryBackend>, Arc<dyn Clock>) {
    (
        Arc::new(MemoryBackend::new()),
        Arc::new(TokioClock::starting_at(Duration::from_millis(START))),
    )
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

#[tokio::test]
async fn succeeded_tasks_are_forgotten_after_the_retention() {
    use sysblocks_scheduler::{Backend, Scheduler, Task, TaskState};
    let backend = Arc::new(MemoryBackend::new().with_retention(Duration::from_secs(60)));
    let scheduler = Scheduler::new(backend.clone(), Arc::new(common::FixedClock(START)));
    let task = scheduler.submit(Task::new("j", &()).unwrap()).await.unwrap();
    let (claimed, _) = backend.claim(START, 1_000, 1).await.unwrap();
    backend.ack(task.id(), claimed[0].token, START + 10).await.unwrap();
    assert_eq!(backend.info(task.id()).await.unwrap().unwrap().state, TaskState::Succeeded);
    backend.claim(START + 60_009, 1_000, 1).await.unwrap();
    assert!(backend.info(task.id()).await.unwrap().is_some(), "kept for the retention");
    backend.claim(START + 60_010, 1_000, 1).await.unwrap();
    assert!(backend.info(task.id()).await.unwrap().is_none(), "then forgotten");
    assert_eq!(backend.counts().await.unwrap().succeeded, 1, "still counted");
}

#[tokio::test]
async fn a_forgotten_task_leaves_its_place_to_new_ones() {
    use sysblocks_scheduler::{Backend, TaskId, TaskState};
    let backend = MemoryBackend::new().with_retention(Duration::from_secs(1));
    let task = |id: &str, parents: &[&str]| common::plain_task(id, parents, START);
    // Three tasks succeed and are forgotten.
    backend.submit(vec![task("a", &[]), task("b", &[]), task("c", &[])], START).await.unwrap();
    let (claimed, _) = backend.claim(START, 1_000, 3).await.unwrap();
    let acks: Vec<(TaskId, u64)> = claimed.iter().map(|c| (c.id.clone(), c.token)).collect();
    let answers = backend.ack_many(&acks, START).await.unwrap();
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    backend.claim(START + 1_000, 1_000, 0).await.unwrap();
    assert!(backend.info(&TaskId::from("a")).await.unwrap().is_none(), "forgotten");
    // A forgotten task is unknown as a parent; its id may be used again,
    // and new tasks take the forgotten ones' places.
    let later = START + 2_000;
    assert!(matches!(
        backend.submit(vec![task("x", &["b"])], later).await,
        Err(sysblocks_scheduler::SchedulerError::UnknownParent { .. })
    ));
    backend.submit(vec![task("a", &[]), task("d", &[]), task("e", &["a"])], later).await.unwrap();
    let state = |id: &'static str| {
        let backend = &backend;
        async move { backend.info(&TaskId::from(id)).await.unwrap().map(|i| i.state) }
    };
    assert_eq!(state("a").await, Some(TaskState::Ready));
    assert_eq!(state("d").await, Some(TaskState::Ready));
    assert_eq!(state("e").await, Some(TaskState::Waiting), "waits for the new a");
    assert_eq!(state("b").await, None);
    let (claimed, _) = backend.claim(later, 1_000, 5).await.unwrap();
    let ids: Vec<&str> = claimed.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["a", "d"], "in submission order");
    backend.ack(&claimed[0].id, claimed[0].token, later).await.unwrap();
    assert_eq!(state("e").await, Some(TaskState::Ready), "released by the new a");
    let counts = backend.counts().await.unwrap();
    assert_eq!((counts.succeeded, counts.running, counts.ready), (4, 1, 1));
}

#[tokio::test]
async fn poison_tasks_die_after_their_attempts() {
    common::poison_tasks_die_after_their_attempts(Arc::new(MemoryBackend::new()), START).await;
}

#[tokio::test]
async fn extreme_inputs_agree_across_backends() {
    common::extreme_inputs_agree_across_backends(Arc::new(MemoryBackend::new()), START).await;
}

#[tokio::test(start_paused = true)]
async fn wait_resolves_with_the_final_state() {
    let (backend, clock) = setup();
    common::wait_resolves_with_the_final_state(backend, clock).await;
}
