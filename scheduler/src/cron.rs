//! Periodic tasks: [`CronSchedule`] (a cron expression read in a time
//! zone), [`CronJob`] (a task to run at every tick), and the scheduler's
//! methods that submit each tick once however many processes run the job.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;

use std::time::Duration;

use crate::backend::Backend;
use crate::error::SchedulerError;
use crate::scheduler::Scheduler;
use crate::task::Task;

/// A cron expression (5 fields, or 6 with seconds first) evaluated in an
/// IANA time zone, parsed by `croner`.
///
/// **Daylight saving time.** Wall-clock times that do not exist (spring
/// forward) or exist twice (fall back) follow croner's rules, which are
/// Vixie cron's:
///
/// * *gap*: a job at a fixed time inside the missing hour (say 02:30 on the
///   night clocks jump from 02:00 to 03:00) runs once, at the first valid
///   time after the gap (03:00); jobs with wildcard or step hours skip the
///   missing times;
/// * *fold*: a job at a fixed time inside the repeated hour runs once, at
///   its first occurrence; jobs with wildcard or step fields run in both
///   passes.
///
/// Times are milliseconds since the Unix epoch.
///
/// ```
/// use sysblocks_scheduler::CronSchedule;
///
/// let daily = CronSchedule::parse("30 2 * * *", "Europe/Berlin")?;
/// // 2026-03-29 is the spring-forward night in Berlin: 02:30 does not
/// // exist, so the job runs at 03:00 local (01:00 UTC).
/// let before = 1_774_735_200_000; // 2026-03-28 22:00 UTC
/// assert_eq!(daily.next_after(before), Some(1_774_746_000_000)); // 2026-03-29 01:00 UTC
/// # Ok::<(), sysblocks_scheduler::SchedulerError>(())
/// ```
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
    zone: Tz,
    expression: String,
}

impl CronSchedule {
    /// Parses `expression` in the zone named `zone` ("UTC",
    /// "America/New_York", ...).
    ///
    /// # Errors
    /// [`SchedulerError::InvalidCron`] for an expression that does not
    /// parse or an unknown zone.
    pub fn parse(expression: &str, zone: &str) -> Result<Self, SchedulerError> {
        let invalid = |message: String| SchedulerError::InvalidCron {
            expression: format!("{expression} ({zone})"),
            message,
        };
        let cron = Cron::from_str(expression).map_err(|e| invalid(e.to_string()))?;
        let zone: Tz = zone.parse().map_err(|_| invalid(format!("unknown time zone {zone:?}")))?;
        Ok(CronSchedule { cron, zone, expression: expression.to_string() })
    }

    /// The expression as given.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The first fire time strictly after `after_ms`, or `None` if there is
    /// none (an impossible date such as 30 February) or it is out of range.
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        let after = i64::try_from(after_ms).ok()?;
        let utc: DateTime<Utc> = Utc.timestamp_millis_opt(after).single()?;
        let local = utc.with_timezone(&self.zone);
        let next = self.cron.find_next_occurrence(&local, false).ok()?;
        u64::try_from(next.timestamp_millis()).ok()
    }
}

/// A periodic job: `task_name` with `payload` at every tick of `schedule`.
#[derive(Debug, Clone)]
pub struct CronJob {
    /// Unique per queue; part of each tick's task id.
    pub name: String,
    /// The handler to run.
    pub task_name: String,
    /// The JSON payload of each run.
    pub payload: String,
    /// When.
    pub schedule: CronSchedule,
}

impl CronJob {
    /// A job running `task_name` with `payload` on `schedule`.
    ///
    /// # Errors
    /// [`SchedulerError::BadPayload`] when the payload does not serialise.
    pub fn new<P: serde::Serialize>(
        name: &str,
        task_name: &str,
        payload: &P,
        schedule: CronSchedule,
    ) -> Result<Self, SchedulerError> {
        let payload = Task::new(task_name, payload)?.payload().to_string();
        Ok(CronJob { name: name.to_string(), task_name: task_name.to_string(), payload, schedule })
    }
}

impl<B: Backend> Scheduler<B> {
    /// Submits the cron job's task for its first tick after `after_ms` and
    /// returns that tick (`None`: the schedule has no further tick). The
    /// task's id and idempotency key are derived from the job and the tick,
    /// so that any number of processes running the same job submit each
    /// tick once.
    ///
    /// # Errors
    /// As [`submit`](Self::submit).
    pub async fn fire_next(
        &self,
        job: &CronJob,
        after_ms: u64,
    ) -> Result<Option<u64>, SchedulerError> {
        let Some(tick) = job.schedule.next_after(after_ms) else { return Ok(None) };
        let id = format!("cron:{}:{tick}", job.name);
        let task = Task::new(&job.task_name, &serde_json::Value::Null)?
            .with_id(id.as_str())
            .at(tick)
            .idempotency_key(&id, Duration::from_secs(24 * 3600));
        let task = Task { payload: job.payload.clone(), ..task };
        match self.submit(task).await {
            Ok(_) | Err(SchedulerError::DuplicateId { .. }) => Ok(Some(tick)),
            Err(e) => Err(e),
        }
    }

    /// Runs a cron job until the future is dropped: before each tick, its
    /// task is submitted due at the tick (see [`fire_next`](Self::fire_next)
    /// for why several processes may run the same job).
    ///
    /// # Errors
    /// The first submission that fails.
    pub async fn run_cron(&self, job: CronJob) -> Result<(), SchedulerError> {
        let mut after = self.now_ms();
        loop {
            let Some(tick) = self.fire_next(&job, after).await? else { return Ok(()) };
            // Sleep until the tick, then look for the one after it.
            let wait = tick.saturating_sub(self.now_ms());
            tokio::time::sleep(Duration::from_millis(wait)).await;
            after = tick;
        }
    }
}
