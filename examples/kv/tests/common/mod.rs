//! What the kv tests share: a handler over a map, enough to exercise the
//! data port without a store behind it; a cluster of real node processes;
//! clients that record what they saw.
#![allow(dead_code)]

pub mod cluster;
pub mod workload;

use std::collections::HashMap;
use std::sync::Mutex;

use sysblocks_kv::command::Request;
use sysblocks_kv::connection::{Handler, Session};
use sysblocks_kv::resp::Reply;

/// A map behind the handler. A read asked for `R 9` (per request or by
/// the connection's `CONSISTENCY`) is refused, so that tests can see which
/// consistency reached the handler.
#[derive(Default)]
pub struct Map(pub Mutex<HashMap<Vec<u8>, Vec<u8>>>);

impl Handler for Map {
    async fn handle(&self, session: &Session, request: Request) -> Reply {
        let mut map = self.0.lock().unwrap();
        match request {
            Request::Get { key, r } => {
                if r.or(session.r) == Some(9) {
                    return Reply::error("ERR asked for R 9");
                }
                Reply::Bulk(map.get(&key).cloned())
            }
            Request::Set { key, value, .. } => {
                map.insert(key, value);
                Reply::ok()
            }
            Request::Del { keys } => {
                Reply::Integer(keys.iter().filter(|k| map.remove(*k).is_some()).count() as i64)
            }
            Request::Exists { keys } => {
                Reply::Integer(keys.iter().filter(|k| map.contains_key(*k)).count() as i64)
            }
            other => Reply::error(format!("ERR unexpected {other:?}")),
        }
    }
}
