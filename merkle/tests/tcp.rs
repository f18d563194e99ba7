//! Sync over real TCP on loopback: within one process, and between two OS
//! processes.
#![cfg(feature = "tokio")]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use sysblocks_merkle::{MerkleStore, SyncConfig, sync_stream};

type Store = MerkleStore<Vec<u8>, Vec<u8>>;

#[tokio::test]
async fn two_tasks_sync_over_loopback_tcp() {
    let mut a: Store = MerkleStore::new();
    let mut b: Store = MerkleStore::new();
    for i in 0..5_000u32 {
        a.put(i.to_le_bytes().to_vec(), b"same".to_vec(), 1).unwrap();
        b.put(i.to_le_bytes().to_vec(), b"same".to_vec(), 1).unwrap();
    }
    for i in 0..50u32 {
        a.put((i * 97).to_le_bytes().to_vec(), b"newer-on-a".to_vec(), 2).unwrap();
        b.delete((i * 89 + 1).to_le_bytes().to_vec(), 3).unwrap();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let stats = sync_stream(&mut stream, &mut b, SyncConfig::default(), false).await.unwrap();
        (b, stats)
    });
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let stats_a = sync_stream(&mut stream, &mut a, SyncConfig::default(), true).await.unwrap();
    let (b, stats_b) = server.await.unwrap();
    assert_eq!(a.root_hash(), b.root_hash());
    assert!(a.iter().eq(b.iter()));
    assert_eq!(stats_a.keys_repaired + stats_b.keys_repaired, 100);
    assert_eq!(stats_a.bytes_sent, stats_b.bytes_received);
}

fn root_line(output: &str) -> (String, u64) {
    let line = output.lines().find(|l| l.starts_with("root ")).expect("a root line");
    let mut parts = line.split_whitespace();
    let root = parts.nth(1).unwrap().to_string();
    let repaired = parts.nth(1).unwrap().parse().unwrap();
    (root, repaired)
}

#[test]
fn two_processes_sync_over_tcp() {
    let peer = env!("CARGO_BIN_EXE_merkle-peer");
    // The listener changes every 100th key to version 5, the connector every
    // 70th to version 7; afterwards both hold the newer of each.
    let mut server = Command::new(peer)
        .args(["listen", "20000", "5", "100"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("merkle-peer starts");
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let port_line = lines.next().expect("a port line").unwrap();
    let port = port_line.strip_prefix("port ").expect("port line").to_string();
    let client = Command::new(peer).args(["connect", &port, "20000", "7", "70"]).output().unwrap();
    assert!(client.status.success(), "{}", String::from_utf8_lossy(&client.stderr));
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(server.wait().unwrap().success());
    let (client_root, client_repaired) = root_line(&String::from_utf8_lossy(&client.stdout));
    let (server_root, server_repaired) = root_line(&rest.join("\n"));
    assert_eq!(client_root, server_root, "both processes end with the same root");

    // The same outcome computed in this process.
    let mut expected: Store = MerkleStore::new();
    for i in 0..20_000u32 {
        for (variant, step) in [(5u64, 100u32), (7, 70)] {
            let version = if i % step == 0 { variant } else { 1 };
            expected
                .put(
                    format!("key:{i}").into_bytes(),
                    format!("value:{i}:{version}").into_bytes(),
                    version,
                )
                .unwrap();
        }
    }
    let hex: String = expected.root_hash().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(client_root, hex);
    // Keys changed on one side only, or on both (the newer version wins).
    let only_server = (0..20_000u32).filter(|i| i % 100 == 0 && i % 70 != 0).count() as u64;
    let only_client = (0..20_000u32).filter(|i| i % 70 == 0).count() as u64;
    assert_eq!(client_repaired, only_server, "the client takes the server's newer keys");
    assert_eq!(server_repaired, only_client, "the server takes the client's newer keys");
}
