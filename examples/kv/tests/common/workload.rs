//! Clients for the fault tests: the redis crate against the data ports,
//! every operation bounded in time and recorded for the history checker.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use sysblocks_kv::history::Recorder;

/// How long a client waits for one reply (several node timeouts).
const OP_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn connect(url: &str) -> Option<MultiplexedConnection> {
    let client = redis::Client::open(url).ok()?;
    tokio::time::timeout(OP_TIMEOUT, client.get_multiplexed_async_connection()).await.ok()?.ok()
}

/// `SET key value`, recorded; whether it was acknowledged.
pub async fn set(
    con: &mut MultiplexedConnection,
    recorder: &Recorder,
    key: &[u8],
    value: &[u8],
) -> bool {
    let op = recorder.invoke_write(key, Some(value));
    let reply = tokio::time::timeout(
        OP_TIMEOUT,
        redis::cmd("SET").arg(key).arg(value).query_async::<String>(con),
    )
    .await;
    let acked = matches!(reply, Ok(Ok(ref ok)) if ok == "OK");
    recorder.complete_write(op, acked);
    acked
}

/// `GET key`, recorded; `None` when it failed.
pub async fn get(
    con: &mut MultiplexedConnection,
    recorder: &Recorder,
    key: &[u8],
) -> Option<Option<Vec<u8>>> {
    let op = recorder.invoke_read(key);
    let reply = tokio::time::timeout(
        OP_TIMEOUT,
        redis::cmd("GET").arg(key).query_async::<Option<Vec<u8>>>(con),
    )
    .await;
    let result = match reply {
        Ok(Ok(value)) => Some(value),
        _ => None,
    };
    recorder.complete_read(op, result.clone());
    result
}

pub fn key(i: u32) -> Vec<u8> {
    format!("key:{i:06}").into_bytes()
}

/// A value of 100 bytes unique to key `i` and generation `g`.
pub fn value(i: u32, g: u32) -> Vec<u8> {
    let mut v = format!("{i:06}-{g:04}-").into_bytes();
    v.resize(100, b'v');
    v
}

/// Writes keys `range` (generation `g`) from `clients` tasks spread over
/// the data ports `urls`; returns the keys acknowledged. `progress`
/// counts the writes done, for a test that acts midway.
pub async fn write_range(
    urls: &[String],
    range: std::ops::Range<u32>,
    g: u32,
    clients: usize,
    recorder: &Arc<Recorder>,
    progress: &Arc<AtomicUsize>,
) -> Vec<u32> {
    let next = Arc::new(AtomicUsize::new(range.start as usize));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let url = urls[c % urls.len()].clone();
        let (next, recorder, progress) = (next.clone(), recorder.clone(), progress.clone());
        let end = range.end as usize;
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut con = connect(&url).await;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    return acked;
                }
                let i = i as u32;
                if con.is_none() {
                    con = connect(&url).await;
                }
                let ok = match &mut con {
                    Some(c) => set(c, &recorder, &key(i), &value(i, g)).await,
                    None => {
                        let op = recorder.invoke_write(&key(i), Some(&value(i, g)));
                        recorder.complete_write(op, false);
                        false
                    }
                };
                if ok {
                    acked.push(i);
                } else {
                    con = None;
                }
                progress.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    acked.sort_unstable();
    acked
}
