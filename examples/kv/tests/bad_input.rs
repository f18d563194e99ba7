//! Bad input against a real node process: oversized keys and values,
//! malformed RESP, garbage and strangers on the sync port, a malformed
//! cluster file, a client that leaves mid-command. Each gets a clear
//! error; the node goes on serving and nothing half-done is stored.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::cluster::TestCluster;
use sysblocks_kv::peer::{Reply, Request, decode_reply, encode_request};
use sysblocks_merkle::Versioned;

fn raw(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(bytes).unwrap();
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    out
}

/// Sends one peer frame and reads one reply frame (None: closed unanswered).
fn peer_call(addr: std::net::SocketAddr, payload: &[u8]) -> Option<Reply> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(&(payload.len() as u32).to_be_bytes()).unwrap();
    stream.write_all(payload).unwrap();
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let mut reply = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut reply).ok()?;
    Some(decode_reply(&reply).unwrap())
}

fn still_serves(con: &mut redis::Connection) {
    let pong: String = redis::cmd("PING").query(con).unwrap();
    assert_eq!(pong, "PONG");
    let _: () = redis::cmd("SET").arg("alive").arg("yes").query(con).unwrap();
    let v: String = redis::cmd("GET").arg("alive").query(con).unwrap();
    assert_eq!(v, "yes");
}

#[test]
fn a_node_refuses_bad_input_clearly_and_keeps_serving() {
    let cluster = TestCluster::start("bad-input", 1, "replicas = 1");
    let node = &cluster.nodes[0];
    let client = redis::Client::open(cluster.redis_url(0)).unwrap();
    let mut con = client.get_connection().unwrap();

    // Oversized keys and values.
    let big_key = vec![b'k'; 2048];
    let err = redis::cmd("SET").arg(&big_key).arg("v").query::<()>(&mut con).unwrap_err();
    assert!(err.to_string().contains("key"), "{err}");
    let big_value = vec![b'v'; 600 * 1024];
    let err = redis::cmd("SET").arg("k").arg(&big_value).query::<()>(&mut con).unwrap_err();
    assert!(err.to_string().contains("value"), "{err}");
    let err = redis::cmd("GET").arg("k").arg("R").arg("0").query::<()>(&mut con).unwrap_err();
    assert!(err.to_string().contains('R'), "{err}");
    still_serves(&mut con);

    // Malformed RESP: an error line, then the connection closes.
    for garbage in [&b"*2\r\n$3\r\nGET\r\n$-5\r\n"[..], b"\x00\x01hello\r\n", b"*99999999\r\n"] {
        let reply = raw(node.data, garbage);
        assert!(reply.starts_with(b"-ERR"), "{:?}", String::from_utf8_lossy(&reply));
    }
    // A client that leaves in the middle of a SET stores nothing.
    let reply = raw(node.data, b"*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$5\r\nhel");
    assert!(reply.is_empty());
    let half: Option<String> = redis::cmd("GET").arg("half").query(&mut con).unwrap();
    assert_eq!(half, None);
    still_serves(&mut con);

    // Garbage on the sync port: a huge length, random bytes, a bad frame.
    let _ = raw(node.sync, &[0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
    let _ = raw(node.sync, b"GET / HTTP/1.1\r\n\r\n");
    match peer_call(node.sync, &[7, b'g', b'a', b'r', b'b', b'a', b'g', b'e', 42]) {
        Some(Reply::Error(e)) => assert!(e.contains("malformed"), "{e}"),
        other => panic!("{other:?}"),
    }
    // A stranger: no node of the cluster file, refused, nothing written.
    let write = Request::Write {
        partition: 0,
        key: b"intruder-key".to_vec(),
        entry: Versioned { version: u64::MAX, value: Some(b"x".to_vec()) },
    };
    match peer_call(node.sync, &encode_request("intruder", &write)) {
        Some(Reply::Error(e)) => assert!(e.contains("intruder"), "{e}"),
        other => panic!("{other:?}"),
    }
    match peer_call(node.sync, &encode_request("intruder", &Request::Sync { partition: 0 })) {
        Some(Reply::Error(e)) => assert!(e.contains("no node"), "{e}"),
        other => panic!("{other:?}"),
    }
    // A known node with a version from far in the future: refused, so it
    // cannot drag the clock (and every later write) along.
    let future = Request::Write {
        partition: 0,
        key: b"future".to_vec(),
        entry: Versioned { version: u64::MAX, value: Some(b"x".to_vec()) },
    };
    match peer_call(node.sync, &encode_request("n1", &future)) {
        Some(Reply::Error(e)) => assert!(e.contains("ahead"), "{e}"),
        other => panic!("{other:?}"),
    }
    let _: () = redis::cmd("SET").arg("future").arg("now").query(&mut con).unwrap();
    let v: String = redis::cmd("GET").arg("future").query(&mut con).unwrap();
    assert_eq!(v, "now");
    // A known node asking for a partition that does not exist.
    match peer_call(node.sync, &encode_request("n1", &Request::Sync { partition: 1 << 20 })) {
        Some(Reply::Error(e)) => assert!(e.contains("partition"), "{e}"),
        other => panic!("{other:?}"),
    }
    let stolen: Option<String> = redis::cmd("GET").arg("intruder-key").query(&mut con).unwrap();
    assert_eq!(stolen, None);
    still_serves(&mut con);

    // A malformed cluster file: the node refuses to start, naming the line.
    let bad = cluster.dir.join("bad.toml");
    std::fs::write(&bad, "[[node]]\nid = \"n1\"\ndata = \"127.0.0.1:1\"\nadmin = \"nowhere\"\nsync = \"127.0.0.1:2\"\n")
        .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kv-node"))
        .args(["--id", "n1", "--data"])
        .arg(cluster.dir.join("bad-node"))
        .arg("--cluster")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 4"), "{stderr}");
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_kv-node")).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
}
