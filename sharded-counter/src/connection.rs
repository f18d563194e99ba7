//! [`RedisConnection`]: a standalone or a cluster connection behind one type.

use futures_util::future::join_all;
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, RedisResult};

/// A connection to Redis: a reconnecting standalone [`ConnectionManager`] or
/// an async Redis Cluster connection. Cheap to clone (both multiplex one set
/// of sockets).
#[derive(Clone)]
pub enum RedisConnection {
    /// One server (or a proxy), reconnecting by itself after errors.
    Standalone(ConnectionManager),
    /// A Redis Cluster; commands are routed to the node owning their key.
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisConnection::Standalone(_) => f.write_str("RedisConnection::Standalone"),
            RedisConnection::Cluster(_) => f.write_str("RedisConnection::Cluster"),
        }
    }
}

impl From<ConnectionManager> for RedisConnection {
    fn from(c: ConnectionManager) -> Self {
        RedisConnection::Standalone(c)
    }
}

impl From<ClusterConnection> for RedisConnection {
    fn from(c: ClusterConnection) -> Self {
        RedisConnection::Cluster(c)
    }
}

impl RedisConnection {
    /// Runs one command.
    pub(crate) async fn run<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        match self {
            RedisConnection::Standalone(c) => cmd.query_async(&mut c.clone()).await,
            RedisConnection::Cluster(c) => cmd.query_async(&mut c.clone()).await,
        }
    }

    /// Runs commands whose keys may live in different slots, returning one
    /// result per command. Standalone: one pipeline, one round trip (a
    /// transport error fails them all). Cluster: sent concurrently, each to
    /// its node, where the multiplexed connection pipelines them; never a
    /// cross-slot multi-key command.
    pub(crate) async fn run_each<T: FromRedisValue>(&self, cmds: &[Cmd]) -> Vec<RedisResult<T>> {
        match self {
            RedisConnection::Standalone(c) => {
                let mut pipe = redis::pipe();
                for cmd in cmds {
                    pipe.add_command(cmd.clone());
                }
                let mut con = c.clone();
                match con.req_packed_commands(&pipe, 0, cmds.len()).await {
                    Ok(values) => values
                        .into_iter()
                        .map(|v| T::from_redis_value(v).map_err(redis::RedisError::from))
                        .collect(),
                    Err(e) => cmds.iter().map(|_| Err(clone_error(&e))).collect(),
                }
            }
            RedisConnection::Cluster(c) => {
                join_all(cmds.iter().map(|cmd| {
                    let mut con = c.clone();
                    async move { cmd.query_async::<T>(&mut con).await }
                }))
                .await
            }
        }
    }
}

/// A copy of a Redis error for each command of a failed pipeline.
fn clone_error(e: &redis::RedisError) -> redis::RedisError {
    redis::RedisError::from((e.kind(), "pipeline failed", e.to_string()))
}
