//! [`RedisBackend`]: one queue in Redis, shared by any number of processes.

use std::sync::LazyLock;

use redis::{RedisError, Script, Value};
pub use sysblocks_core::RedisConnection;

use crate::backend::{AttemptLimits, Backend, Turn};
use crate::error::{BackendError, SchedulerError};
use crate::task::{
    Claimed, Counts, NewTask, OnParentFailure, Submitted, TaskId, TaskInfo, TaskState,
};

const PRELUDE: &str = include_str!("lua/prelude.lua");
const BATCH: &str = include_str!("lua/batch.lua");

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

/// A script of a worker's turn: the prelude, the batch transitions, `body`.
fn batch_script(body: &str) -> Script {
    script(&format!("{BATCH}\n{body}"))
}

static SUBMIT: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/submit.lua")));
static CLAIM: LazyLock<Script> = LazyLock::new(|| batch_script(include_str!("lua/claim.lua")));
static ACKS: LazyLock<Script> = LazyLock::new(|| batch_script(include_str!("lua/acks.lua")));
static ACK_CLAIM: LazyLock<Script> =
    LazyLock::new(|| batch_script(include_str!("lua/ack_claim.lua")));
static TRANSITION: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/transition.lua")));
static ADMIN: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/admin.lua")));

/// One queue in Redis. Every transition is one Lua script, so it is atomic
/// however many processes share the queue; all of a queue's keys carry the
/// hash tag `{queue}`, so it works on a Redis Cluster (each queue lives on
/// one slot; spread load with several queues).
///
/// Keys: `{queue}:t:<id>` (a hash per task), `{queue}:delayed`, `:ready`,
/// `:running`, `:dead` (sorted sets), `{queue}:children:<id>` (a list),
/// `{queue}:idem:<key>` (expiring), `{queue}:counts`, `:seq`, `:token`.
/// Succeeded tasks expire after a retention period (a day by default); dead
/// ones stay until replayed.
///
/// **Retries and lost replies.** The Cluster client resends a command after
/// an I/O error. Every script here reads before it writes and checks the
/// state it expects, so a resent ack, fail, renew or release finds the task
/// already moved and answers `StaleLease` (the first one took effect). A
/// resent submit of a task that the first send added answers
/// `DuplicateId`: look the task up by its id (which the caller chose or
/// got back) before submitting it again. A claim whose reply is lost leaves
/// its tasks leased to nobody until the lease runs out; the reaper then
/// returns them to the queue (the lost attempt counts toward the task's
/// attempts).
///
/// The connection (a [`RedisConnection`]: a `ConnectionManager`, a
/// `MultiplexedConnection` or a `ClusterConnection` converts into one)
/// reconnects by itself and bounds every call (one second by default, so a
/// dead server fails a call rather than hanging it); a worker whose calls fail while Redis is down logs and retries,
/// and carries on when Redis returns. With persistence (AOF), no task is
/// lost across a Redis restart.
#[derive(Debug, Clone)]
pub struct RedisBackend {
    connection: RedisConnection,
    prefix: String,
    retention_ms: u64,
}

impl RedisBackend {
    /// The queue named `queue` on `connection`.
    ///
    /// # Errors
    /// [`SchedulerError::InvalidQueue`] for an empty name or one with `{`
    /// or `}` (the name is the queue's hash tag: an empty tag, or a brace in
    /// it, would spread the queue's keys over Cluster slots).
    pub fn new(
        connection: impl Into<RedisConnection>,
        queue: &str,
    ) -> Result<Self, SchedulerError> {
        if queue.is_empty() || queue.contains(['{', '}']) {
            return Err(SchedulerError::InvalidQueue { name: queue.to_string() });
        }
        Ok(RedisBackend {
            connection: connection.into(),
            prefix: format!("{{{queue}}}:"),
            retention_ms: 24 * 3600 * 1000,
        })
    }

    /// Succeeded tasks expire after `retention` (default a day); the
    /// `succeeded` count keeps counting them.
    #[must_use]
    pub fn with_retention(mut self, retention: std::time::Duration) -> Self {
        self.retention_ms = crate::clock::millis(retention).max(1);
        self
    }

    /// The prefix of the queue's keys (`{queue}:`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    async fn run(&self, script: &Script, args: &[String]) -> Result<Value, SchedulerError> {
        let mut invocation = script.key(format!("{}seq", self.prefix));
        invocation.arg(&self.prefix);
        for arg in args {
            invocation.arg(arg);
        }
        let mut connection = self.connection.clone();
        invocation.invoke_async(&mut connection).await.map_err(backend_error)
    }

    async fn transition(
        &self,
        op: &str,
        id: &TaskId,
        token: u64,
        now: u64,
        extra: &[String],
    ) -> Result<(), SchedulerError> {
        let mut args = vec![op.to_string(), id.to_string(), token.to_string(), now.to_string()];
        args.extend_from_slice(extra);
        let reply: String = from_value(self.run(&TRANSITION, &args).await?)?;
        status(id, &reply)
    }
}

/// A lease's length as the scripts take it.
fn lease_time(lease_ms: u64) -> String {
    crate::backend::clamp_time(lease_ms).to_string()
}

/// A claim's count as the scripts take it: a Lua number (a double), exact
/// up to 2^53, which no queue reaches.
fn claim_count(max: usize) -> String {
    max.min(1 << 53).to_string()
}

/// The claim script's reply: when the next delayed task is due, then six
/// values per claimed task.
fn claim_reply(reply: Vec<String>) -> (Vec<Claimed>, Option<u64>) {
    let next_due = reply.first().and_then(|d| d.parse::<u64>().ok());
    let parse = |s: &String| s.parse::<u64>().unwrap_or(0);
    let claimed = reply
        .get(1..)
        .unwrap_or_default()
        .chunks_exact(6)
        .map(|c| Claimed {
            id: TaskId(c[0].clone()),
            name: c[1].clone(),
            payload: c[2].clone(),
            attempt: u32::try_from(parse(&c[3])).unwrap_or(u32::MAX),
            token: parse(&c[4]),
            last_delay_ms: parse(&c[5]),
        })
        .collect();
    (claimed, next_due)
}

/// The pairs of id and token that the ack scripts take.
fn push_acks(args: &mut Vec<String>, acks: &[(TaskId, u64)]) {
    for (id, token) in acks {
        args.extend([id.to_string(), token.to_string()]);
    }
}

/// One answer per ack from the ack scripts' statuses.
fn ack_answers(
    acks: &[(TaskId, u64)],
    replies: Vec<String>,
) -> Result<Vec<Result<(), SchedulerError>>, SchedulerError> {
    if replies.len() != acks.len() {
        return Err(SchedulerError::Backend(BackendError::message(format!(
            "{} answers to {} acks",
            replies.len(),
            acks.len()
        ))));
    }
    Ok(acks.iter().zip(&replies).map(|((id, _), reply)| status(id, reply)).collect())
}

/// A transition script's answer about one task.
fn status(id: &TaskId, reply: &str) -> Result<(), SchedulerError> {
    match reply {
        "ok" => Ok(()),
        "stale" => Err(SchedulerError::StaleLease { id: id.to_string() }),
        _ => Err(SchedulerError::NotFound { id: id.to_string() }),
    }
}

/// The task hash fields a [`TaskInfo`] is read from, in this order (the
/// `dead` admin script returns the same fields).
const INFO_FIELDS: [&str; 6] = ["name", "state", "attempts", "last_error", "run_at", "payload"];

/// A [`TaskInfo`] from the values of [`INFO_FIELDS`]; `None` for a task
/// that does not exist.
fn task_info(id: TaskId, values: &[Option<String>]) -> Option<TaskInfo> {
    let [name, state, attempts, last_error, run_at, payload] = values else { return None };
    let state = state.as_deref().and_then(TaskState::parse)?;
    Some(TaskInfo {
        id,
        name: name.clone()?,
        state,
        attempts: attempts.as_deref().and_then(|a| a.parse().ok()).unwrap_or(0),
        last_error: last_error.clone(),
        run_at: run_at.as_deref().and_then(|r| r.parse().ok()).unwrap_or(0),
        payload: payload.clone().unwrap_or_default(),
    })
}

fn backend_error(e: RedisError) -> SchedulerError {
    SchedulerError::Backend(BackendError::new(e))
}

fn from_value<T: redis::FromRedisValue>(value: Value) -> Result<T, SchedulerError> {
    redis::from_redis_value(value).map_err(|e| backend_error(e.into()))
}

fn submission_json(tasks: &[NewTask]) -> String {
    let list: Vec<serde_json::Value> = tasks
        .iter()
        .map(|t| {
            serde_json::json!({
                "id": t.id.as_str(),
                "name": t.name,
                "payload": t.payload,
                "priority": t.priority,
                "run_at": t.run_at,
                "parents": t.parents.iter().map(TaskId::as_str).collect::<Vec<_>>(),
                "on_fail": match t.on_parent_failure {
                    OnParentFailure::Cancel => "cancel",
                    OnParentFailure::Fail => "fail",
                },
                "idem_key": t.idempotency.as_ref().map(|(k, _)| k.as_str()),
                "idem_window": t.idempotency.as_ref().map_or(0, |&(_, w)| crate::backend::clamp_time(w)),
            })
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}

impl Backend for RedisBackend {
    async fn submit(
        &self,
        tasks: Vec<NewTask>,
        now: u64,
    ) -> Result<Vec<Submitted>, SchedulerError> {
        crate::backend::check_times(&tasks)?;
        let args = [now.to_string(), submission_json(&tasks)];
        let reply: Vec<String> = from_value(self.run(&SUBMIT, &args).await?)?;
        match reply.first().map(String::as_str) {
            Some("ok") => Ok(reply[1..]
                .iter()
                .map(|r| match r.split_once(':') {
                    Some(("dup", id)) => Submitted::Duplicate(TaskId::from(id)),
                    _ => Submitted::New(TaskId::from(r.trim_start_matches("new:"))),
                })
                .collect()),
            Some("duplicate") => Err(SchedulerError::DuplicateId { id: reply[1].clone() }),
            Some("unknown_parent") => {
                Err(SchedulerError::UnknownParent { parent: reply[1].clone() })
            }
            _ => Err(SchedulerError::Backend(BackendError::message(format!(
                "unexpected reply {reply:?}"
            )))),
        }
    }

    async fn claim(
        &self,
        now: u64,
        lease_ms: u64,
        max: usize,
    ) -> Result<(Vec<Claimed>, Option<u64>), SchedulerError> {
        let args = [now.to_string(), lease_time(lease_ms), claim_count(max)];
        Ok(claim_reply(from_value(self.run(&CLAIM, &args).await?)?))
    }

    async fn renew(
        &self,
        id: &TaskId,
        token: u64,
        now: u64,
        lease_ms: u64,
    ) -> Result<(), SchedulerError> {
        let lease_ms = crate::backend::clamp_time(lease_ms);
        self.transition("renew", id, token, now, &[lease_ms.to_string()]).await
    }

    async fn ack(&self, id: &TaskId, token: u64, now: u64) -> Result<(), SchedulerError> {
        let pair = [(id.clone(), token)];
        self.ack_many(&pair, now).await?.pop().unwrap_or(Ok(()))
    }

    async fn ack_many(
        &self,
        acks: &[(TaskId, u64)],
        now: u64,
    ) -> Result<Vec<Result<(), SchedulerError>>, SchedulerError> {
        if acks.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = vec![now.to_string(), self.retention_ms.to_string()];
        push_acks(&mut args, acks);
        ack_answers(acks, from_value(self.run(&ACKS, &args).await?)?)
    }

    async fn ack_and_claim(
        &self,
        acks: &[(TaskId, u64)],
        now: u64,
        lease_ms: u64,
        max: usize,
    ) -> Result<Turn, SchedulerError> {
        let mut args = vec![
            now.to_string(),
            lease_time(lease_ms),
            claim_count(max),
            self.retention_ms.to_string(),
        ];
        push_acks(&mut args, acks);
        let (acked, claim): (Vec<String>, Vec<String>) =
            from_value(self.run(&ACK_CLAIM, &args).await?)?;
        let (claimed, next_due) = claim_reply(claim);
        Ok(Turn { acked: ack_answers(acks, acked)?, claimed, next_due })
    }

    async fn fail(
        &self,
        id: &TaskId,
        token: u64,
        now: u64,
        error: &str,
        retry_at: Option<u64>,
    ) -> Result<(), SchedulerError> {
        let retry =
            retry_at.map(|at| crate::backend::clamp_time(at).to_string()).unwrap_or_default();
        self.transition("fail", id, token, now, &[error.to_string(), retry]).await
    }

    async fn release(&self, id: &TaskId, token: u64, now: u64) -> Result<(), SchedulerError> {
        self.transition("release", id, token, now, &[]).await
    }

    async fn reap(&self, now: u64, limits: &AttemptLimits) -> Result<u64, SchedulerError> {
        let (by_name, default) = limits.parts();
        let limits = serde_json::to_string(by_name)
            .map_err(|e| SchedulerError::Backend(BackendError::new(e)))?;
        let args = ["reap".into(), now.to_string(), limits, default.to_string()];
        from_value(self.run(&ADMIN, &args).await?)
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<TaskInfo>, SchedulerError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // One script: the ids and their fields, five values per task.
        // The last index to read, as an integer string: Lua numbers are
        // doubles, so a huge limit must not pass through one.
        let last = (limit.min(i64::MAX as usize) - 1).to_string();
        let fields: Vec<Option<String>> =
            from_value(self.run(&ADMIN, &["dead".into(), last]).await?)?;
        Ok(fields
            .chunks_exact(1 + INFO_FIELDS.len())
            .filter_map(|c| task_info(TaskId(c[0].clone()?), &c[1..]))
            .collect())
    }

    async fn replay(&self, id: &TaskId, now: u64) -> Result<(), SchedulerError> {
        let reply: String = from_value(
            self.run(&ADMIN, &["replay".into(), id.to_string(), now.to_string()]).await?,
        )?;
        match reply.as_str() {
            "ok" => Ok(()),
            "missing" => Err(SchedulerError::NotFound { id: id.to_string() }),
            state => {
                Err(SchedulerError::WrongState { id: id.to_string(), state: state.to_string() })
            }
        }
    }

    async fn info(&self, id: &TaskId) -> Result<Option<TaskInfo>, SchedulerError> {
        let mut connection = self.connection.clone();
        let values: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(format!("{}t:{id}", self.prefix))
            .arg(&INFO_FIELDS)
            .query_async(&mut connection)
            .await
            .map_err(backend_error)?;
        Ok(task_info(id.clone(), &values))
    }

    async fn counts(&self) -> Result<Counts, SchedulerError> {
        let mut connection = self.connection.clone();
        let all: std::collections::HashMap<String, i64> = redis::cmd("HGETALL")
            .arg(format!("{}counts", self.prefix))
            .query_async(&mut connection)
            .await
            .map_err(backend_error)?;
        Ok(Counts::from_fn(|state| {
            u64::try_from(all.get(state.as_str()).copied().unwrap_or(0)).unwrap_or(0)
        }))
    }
}
