//! The data port speaks enough of the Redis protocol that the redis crate
//! works against it unchanged: commands, pipelines, errors, over real TCP
//! on loopback.

mod common;

use std::sync::Arc;

use sysblocks_kv::connection::{ConnectionLimits, serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_crate_works_against_the_data_port() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Arc::new(common::Map::default());
    let server = {
        let handler = handler.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let handler = handler.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, &*handler, ConnectionLimits::default()).await;
                });
            }
        })
    };
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut con).await.unwrap();
    assert_eq!(pong, "PONG");
    let () = redis::cmd("SET").arg("k").arg("v").query_async(&mut con).await.unwrap();
    let v: Option<String> = redis::cmd("GET").arg("k").query_async(&mut con).await.unwrap();
    assert_eq!(v.as_deref(), Some("v"));
    let (a, b, n): (Option<String>, Option<String>, i64) = redis::pipe()
        .cmd("SET")
        .arg("x")
        .arg("1")
        .ignore()
        .cmd("GET")
        .arg("x")
        .cmd("GET")
        .arg("missing")
        .cmd("EXISTS")
        .arg("x")
        .arg("k")
        .arg("missing")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!((a.as_deref(), b, n), (Some("1"), None, 2));
    let error = redis::cmd("FLUSHALL").query_async::<()>(&mut con).await.unwrap_err();
    assert!(error.to_string().contains("unknown command"), "{error}");
    let deleted: i64 = redis::cmd("DEL").arg("k").arg("x").query_async(&mut con).await.unwrap();
    assert_eq!(deleted, 2);
    assert!(handler.0.lock().unwrap().is_empty());
    server.abort();
}
