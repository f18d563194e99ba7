//! One data-port connection, over an in-memory stream: pipelining, the
//! session, protocol errors, clients that leave mid-command, limits.

mod common;

use sysblocks_kv::connection::{ConnectionLimits, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn exchange(input: &[u8]) -> (Vec<u8>, common::Map) {
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let map = common::Map::default();
    let served = async {
        serve(server, &map, ConnectionLimits::default()).await.unwrap();
    };
    let talk = async {
        client.write_all(input).await.unwrap();
        client.shutdown().await.unwrap();
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        out
    };
    let ((), out) = tokio::join!(served, talk);
    (out, map)
}

#[tokio::test]
async fn pipelined_commands_are_answered_in_order() {
    let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\nEXISTS k nope\r\nPING\r\n*2\r\n$3\r\nDEL\r\n$1\r\nk\r\nGET k\r\n";
    let (out, _) = exchange(input).await;
    assert_eq!(out, b"+OK\r\n$1\r\nv\r\n:1\r\n+PONG\r\n:1\r\n$-1\r\n".as_slice());
}

#[tokio::test]
async fn the_session_keeps_its_consistency_and_errors_do_not_close() {
    let input = b"CONSISTENCY R 9\r\nGET k\r\nGET k R 1\r\nFLUSHALL\r\nPING\r\n";
    let (out, _) = exchange(input).await;
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        "+OK\r\n-ERR asked for R 9\r\n$-1\r\n-ERR unknown command 'FLUSHALL'\r\n+PONG\r\n"
    );
}

#[tokio::test]
async fn a_protocol_error_is_answered_then_the_connection_closes() {
    let (out, map) = exchange(b"SET a 1\r\n*1\r\n$x\r\nSET b 2\r\n").await;
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("+OK\r\n-ERR Protocol error: invalid length"), "{text}");
    assert!(!text.contains("OK\r\n+OK"), "nothing after the error is run");
    let map = map.0.lock().unwrap();
    assert!(map.contains_key(b"a".as_slice()) && !map.contains_key(b"b".as_slice()));
}

#[tokio::test]
async fn a_client_gone_mid_command_leaves_nothing_half_written() {
    // The value's bytes never all arrive.
    let (out, map) = exchange(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nonly").await;
    assert!(out.is_empty());
    assert!(map.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn oversized_values_are_refused_with_a_clear_error() {
    let big = vec![b'x'; (512 << 10) + 1];
    let mut input = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n", big.len()).into_bytes();
    input.extend_from_slice(&big);
    input.extend_from_slice(b"\r\nGET k\r\n");
    let (out, _) = exchange(&input).await;
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("-ERR a value of 524289 bytes is over the limit of 524288\r\n"),
        "{text}"
    );
    assert!(text.ends_with("$-1\r\n"), "the connection goes on: {text}");
}
