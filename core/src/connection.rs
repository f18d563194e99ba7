//! [`RedisConnection`]: a standalone or Cluster connection behind one type,
//! with a bound on every command.

use std::fmt;
use std::time::Duration;

use futures_util::future::join_all;
use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, RedisFuture, RedisResult, Value,
};

/// How long one command (or one pipeline) may take before it fails with a
/// timeout error, unless [`RedisConnection::with_timeout`] says otherwise.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(1);

/// The description of the error a command that ran out of time fails with.
const TIMED_OUT: &str = "redis command timed out";

/// A connection to Redis: one server (a reconnecting `ConnectionManager`,
/// or a `MultiplexedConnection`) or a Redis Cluster (`ClusterConnection`,
/// which routes each command to the node owning its key). Cheap to clone:
/// clones multiplex one set of sockets.
///
/// **Bounded time.** Every command and pipeline sent through it fails with
/// an I/O error ([`is_timeout`] tells it apart) once it has taken longer
/// than the timeout ([`DEFAULT_COMMAND_TIMEOUT`], one second, unless
/// [`with_timeout`](Self::with_timeout) says otherwise). Without it, a
/// command sent while Redis is down waits for the client's reconnection
/// attempts, several seconds with the redis crate's defaults. A command
/// that timed out may still have run on the server.
///
/// It implements the redis crate's `ConnectionLike`, so commands, pipelines
/// and scripts can be sent through it directly, with the bound applied.
#[derive(Clone)]
pub struct RedisConnection {
    kind: Kind,
    timeout: Duration,
}

#[derive(Clone)]
enum Kind {
    Manager(ConnectionManager),
    Multiplexed(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Manager(_) => "standalone (ConnectionManager)",
            Kind::Multiplexed(_) => "standalone (MultiplexedConnection)",
            Kind::Cluster(_) => "cluster",
        };
        f.debug_struct("RedisConnection")
            .field("kind", &kind)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl From<ConnectionManager> for RedisConnection {
    fn from(c: ConnectionManager) -> Self {
        RedisConnection { kind: Kind::Manager(c), timeout: DEFAULT_COMMAND_TIMEOUT }
    }
}

impl From<MultiplexedConnection> for RedisConnection {
    fn from(c: MultiplexedConnection) -> Self {
        RedisConnection { kind: Kind::Multiplexed(c), timeout: DEFAULT_COMMAND_TIMEOUT }
    }
}

impl From<ClusterConnection> for RedisConnection {
    fn from(c: ClusterConnection) -> Self {
        RedisConnection { kind: Kind::Cluster(c), timeout: DEFAULT_COMMAND_TIMEOUT }
    }
}

impl RedisConnection {
    /// The same connection with every command bounded by `timeout` (a zero
    /// timeout is raised to one millisecond).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The bound on each command.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether this is a Cluster connection: all keys of one command (or
    /// script call) must then live in one hash slot.
    pub fn is_cluster(&self) -> bool {
        matches!(self.kind, Kind::Cluster(_))
    }

    /// Runs one command, within the timeout.
    ///
    /// # Errors
    /// Redis's error, or a timeout ([`is_timeout`]).
    pub async fn run<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        cmd.query_async(&mut self.clone()).await
    }

    /// Runs commands whose keys may live in different slots, one result per
    /// command. Standalone: one pipeline, one round trip (a transport error
    /// or a timeout fails them all). Cluster: sent concurrently, each to its
    /// node (where the connection pipelines them) and each within the
    /// timeout; never a cross-slot multi-key command.
    pub async fn run_each<T: FromRedisValue>(&self, cmds: &[Cmd]) -> Vec<RedisResult<T>> {
        if self.is_cluster() {
            return join_all(cmds.iter().map(|cmd| self.run(cmd))).await;
        }
        let mut pipe = redis::pipe();
        for cmd in cmds {
            pipe.add_command(cmd.clone());
        }
        match self.clone().req_packed_commands(&pipe, 0, cmds.len()).await {
            Ok(values) => values
                .into_iter()
                .map(|v| T::from_redis_value(v).map_err(RedisError::from))
                .collect(),
            Err(e) => cmds.iter().map(|_| Err(copy_error(&e))).collect(),
        }
    }

    fn timed_out(&self) -> RedisError {
        RedisError::from((ErrorKind::Io, TIMED_OUT, format!("no reply within {:?}", self.timeout)))
    }
}

/// Whether `error` is this crate's timeout (the command took longer than
/// the connection's bound).
pub fn is_timeout(error: &RedisError) -> bool {
    error.kind() == ErrorKind::Io && error.to_string().contains(TIMED_OUT)
}

/// A copy of a Redis error, for each command of a failed pipeline.
fn copy_error(e: &RedisError) -> RedisError {
    if is_timeout(e) {
        return RedisError::from((ErrorKind::Io, TIMED_OUT, e.to_string()));
    }
    RedisError::from((e.kind(), "pipeline failed", e.to_string()))
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let bound = self.timeout;
            let call = match &mut self.kind {
                Kind::Manager(c) => c.req_packed_command(cmd),
                Kind::Multiplexed(c) => c.req_packed_command(cmd),
                Kind::Cluster(c) => c.req_packed_command(cmd),
            };
            match tokio::time::timeout(bound, call).await {
                Ok(reply) => reply,
                Err(_) => Err(self.timed_out()),
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let bound = self.timeout;
            let call = match &mut self.kind {
                Kind::Manager(c) => c.req_packed_commands(pipeline, offset, count),
                Kind::Multiplexed(c) => c.req_packed_commands(pipeline, offset, count),
                Kind::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            };
            match tokio::time::timeout(bound, call).await {
                Ok(reply) => reply,
                Err(_) => Err(self.timed_out()),
            }
        })
    }

    fn get_db(&self) -> i64 {
        match &self.kind {
            Kind::Manager(c) => c.get_db(),
            Kind::Multiplexed(c) => c.get_db(),
            Kind::Cluster(c) => c.get_db(),
        }
    }
}
