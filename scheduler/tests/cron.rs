//! Cron: next fire times against croner itself (time zones, DST gaps and
//! folds), and cron jobs firing exactly once per tick on a paused clock.
#![cfg(feature = "cron")]

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;
use sysblocks_scheduler::{
    CronJob, CronSchedule, MemoryBackend, Registry, Scheduler, SchedulerError, TokioClock, Worker,
    WorkerConfig,
};

const ZONES: [&str; 5] =
    ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"];
const EXPRESSIONS: [&str; 6] =
    ["30 2 * * *", "0 * * * *", "*/15 1-3 * * *", "0 0 1 * *", "45 23 * * MON-FRI", "0 30 1 * * *"];

fn utc_ms(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> u64 {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap().timestamp_millis() as u64
}

proptest! {
    /// Over random instants, every zone and expression: our next fire time
    /// is croner's own answer for the same instant in that zone.
    #[test]
    fn next_fire_times_match_croner(
        zone in proptest::sample::select(ZONES.to_vec()),
        expression in proptest::sample::select(EXPRESSIONS.to_vec()),
        // 2024-01-01 to 2030-01-01, in seconds.
        at in 1_704_067_200i64..1_893_456_000,
    ) {
        let ours = CronSchedule::parse(expression, zone).unwrap();
        let tz: Tz = zone.parse().unwrap();
        let local = Utc.timestamp_opt(at, 0).unwrap().with_timezone(&tz);
        let theirs = croner::Cron::from_str(expression).unwrap().find_next_occurrence(&local, false).unwrap();
        prop_assert_eq!(ours.next_after(at as u64 * 1000), Some(theirs.timestamp_millis() as u64));
    }
}

#[test]
fn dst_gap_runs_a_fixed_time_job_once_after_the_gap() {
    // New York springs forward on 2026-03-08: 02:00 EST becomes 03:00 EDT.
    let daily = CronSchedule::parse("30 2 * * *", "America/New_York").unwrap();
    let before = utc_ms(2026, 3, 8, 5, 0); // 00:00 EST
    // 02:30 does not exist; the job runs at 03:00 EDT = 07:00 UTC.
    assert_eq!(daily.next_after(before), Some(utc_ms(2026, 3, 8, 7, 0)));
    // And the next day at 02:30 EDT = 06:30 UTC.
    assert_eq!(daily.next_after(utc_ms(2026, 3, 8, 7, 0)), Some(utc_ms(2026, 3, 9, 6, 30)));
}

#[test]
fn dst_fold_runs_a_fixed_time_job_once() {
    // New York falls back on 2026-11-01: 01:00-02:00 happens twice.
    let daily = CronSchedule::parse("30 1 * * *", "America/New_York").unwrap();
    let first = daily.next_after(utc_ms(2026, 11, 1, 4, 0)).unwrap(); // from 00:00 EDT
    assert_eq!(first, utc_ms(2026, 11, 1, 5, 30), "01:30 EDT, the first pass");
    let next = daily.next_after(first).unwrap();
    assert_eq!(next, utc_ms(2026, 11, 2, 6, 30), "not again at 01:30 EST: the next day");
    // An interval job fires in both passes of the repeated hour.
    let quarterly = CronSchedule::parse("*/30 1 * * *", "America/New_York").unwrap();
    let mut fires = Vec::new();
    let mut t = utc_ms(2026, 11, 1, 4, 0);
    while let Some(next) = quarterly.next_after(t) {
        if next >= utc_ms(2026, 11, 1, 8, 0) {
            break;
        }
        fires.push(next);
        t = next;
    }
    assert_eq!(fires.len(), 4, "01:00 and 01:30, in EDT and again in EST");
}

#[test]
fn invalid_cron_is_a_typed_error() {
    for (expression, zone) in
        [("61 * * * *", "UTC"), ("* * *", "UTC"), ("0 0 * * *", "Mars/Olympus")]
    {
        assert!(matches!(
            CronSchedule::parse(expression, zone),
            Err(SchedulerError::InvalidCron { .. })
        ));
    }
}

/// Two schedulers (two processes, say) run the same job over the same
/// queue on a paused clock: each tick's task is submitted and run once.
#[tokio::test(start_paused = true)]
async fn a_cron_job_fires_once_per_tick_across_runners() {
    let start = utc_ms(2026, 6, 1, 12, 0);
    let clock = Arc::new(TokioClock::starting_at(Duration::from_millis(start)));
    let backend = Arc::new(MemoryBackend::new());
    let runs: Arc<std::sync::Mutex<Vec<u64>>> = Arc::default();
    let mut registry = Registry::new();
    {
        let (runs, clock) = (runs.clone(), clock.clone());
        registry.register("tick", move |_ctx, (): ()| {
            let (runs, clock) = (runs.clone(), clock.clone());
            async move {
                runs.lock().unwrap().push(sysblocks_scheduler::Clock::now_ms(&*clock));
                Ok(())
            }
        });
    }
    let job =
        CronJob::new("every-minute", "tick", &(), CronSchedule::parse("* * * * *", "UTC").unwrap())
            .unwrap();
    let scheduler = Scheduler::new(backend.clone(), clock.clone());
    let runners: Vec<_> = (0..2)
        .map(|_| {
            let (scheduler, job) = (scheduler.clone(), job.clone());
            tokio::spawn(async move { scheduler.run_cron(job).await })
        })
        .collect();
    let worker = Arc::new(
        Worker::new(backend.clone(), registry, WorkerConfig::default())
            .unwrap()
            .with_clock(clock.clone()),
    );
    let running = tokio::spawn({
        let worker = worker.clone();
        async move { worker.run(Duration::from_secs(1)).await }
    });
    tokio::time::sleep(Duration::from_secs(5 * 60 + 30)).await;
    worker.shutdown();
    running.await.unwrap().unwrap();
    for runner in runners {
        runner.abort();
    }
    let runs = runs.lock().unwrap().clone();
    let minutes: Vec<u64> = runs.iter().map(|t| (t - start) / 60_000).collect();
    assert_eq!(minutes, [1, 2, 3, 4, 5], "one run per minute, none twice");
    let lateness = runs.iter().map(|t| (t - start) % 60_000).max().unwrap();
    assert!(lateness <= 10, "each run within 10 ms of its tick ({lateness} ms)");
}
