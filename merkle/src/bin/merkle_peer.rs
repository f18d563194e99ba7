//! One replica for the two-process sync test: builds a store of `n` keys
//! (changing every `step`-th one as `variant`), syncs over TCP, and prints
//! its root hash.
//!
//! `merkle-peer listen <n> <variant> <step>`: prints `port <p>`, serves one
//! session. `merkle-peer connect <port> <n> <variant> <step>`: initiates.

use std::process::ExitCode;

use sysblocks_merkle::{MerkleStore, SyncConfig, sync_stream};

fn build(
    n: u32,
    variant: u64,
    step: u32,
) -> Result<MerkleStore<Vec<u8>, Vec<u8>>, Box<dyn std::error::Error>> {
    let mut store = MerkleStore::new();
    for i in 0..n {
        let changed = step > 0 && i % step == 0;
        let version = if changed { variant } else { 1 };
        store.put(
            format!("key:{i}").into_bytes(),
            format!("value:{i}:{version}").into_bytes(),
            version,
        )?;
    }
    Ok(store)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let parse = |s: &String| s.parse::<u64>();
    match args {
        [mode, n, variant, step] if mode == "listen" => {
            let mut store = build(parse(n)? as u32, parse(variant)?, parse(step)? as u32)?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            println!("port {}", listener.local_addr()?.port());
            let (mut stream, _) = listener.accept().await?;
            let stats = sync_stream(&mut stream, &mut store, SyncConfig::default(), false).await?;
            println!("root {} repaired {}", hex(&store.root_hash()), stats.keys_repaired);
        }
        [mode, port, n, variant, step] if mode == "connect" => {
            let mut store = build(parse(n)? as u32, parse(variant)?, parse(step)? as u32)?;
            let mut stream =
                tokio::net::TcpStream::connect(("127.0.0.1", parse(port)? as u16)).await?;
            let stats = sync_stream(&mut stream, &mut store, SyncConfig::default(), true).await?;
            println!("root {} repaired {}", hex(&store.root_hash()), stats.keys_repaired);
        }
        _ => return Err(
            "usage: merkle-peer listen <n> <variant> <step> | connect <port> <n> <variant> <step>"
                .into(),
        ),
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("merkle-peer: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("merkle-peer: {e}");
            ExitCode::FAILURE
        }
    }
}
