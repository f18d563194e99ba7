#!/usr/bin/env bash
# Tries the install lines of the READMEs as a new user would: a fresh
# project outside the workspace takes every publishable crate, first as a
# path dependency on this checkout, then as a git dependency on it (which
# builds what is committed), and a program that uses each crate builds and
# runs. scripts/test.sh runs it; it needs only cargo and git.
#
#   scripts/try-install.sh            both forms
#   KEEP=1 scripts/try-install.sh     and leave the projects for a look
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/sysblocks-try-install.XXXXXX")
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT

# The program a new user might write first: one use of each crate.
write_main() {
  cat > src/main.rs <<'RUST'
use std::time::Duration;

use sysblocks_consistent_hash::HashRing;
use sysblocks_lru_cache::LruCache;
use sysblocks_merkle::{MerkleStore, SyncConfig, sync_in_memory};
use sysblocks_ratelimit::{ManualClock, Rate, TokenBucket};
use sysblocks_scheduler::{MemoryBackend, Registry, Scheduler, Task, TaskState, TokioClock, Worker, WorkerConfig};
use sysblocks_sharded_counter::StripedCounter;
use std::sync::Arc;

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bucket = TokenBucket::with_clock(3, Rate::per_second(1)?, ManualClock::new())?;
    assert_eq!((0..5).filter(|_| bucket.check().allowed).count(), 3);

    let mut ring = HashRing::new();
    for node in ["a", "b", "c"] {
        ring.add(node)?;
    }
    assert_eq!(ring.replicas(b"key", 3).count(), 3);

    let mut cache = LruCache::builder().capacity(1).build()?;
    cache.insert(1, "one");
    cache.insert(2, "two");
    assert_eq!(cache.peek(&1), None);

    let counter = StripedCounter::new();
    counter.add(41);
    counter.add(1);
    assert_eq!(counter.sum(), 42);

    let mut left = MerkleStore::new();
    left.put(b"k".to_vec(), b"v".to_vec(), 1)?;
    let mut right: MerkleStore = MerkleStore::new();
    sync_in_memory(&mut left, &mut right, SyncConfig::default())?;
    assert_eq!(left.root_hash(), right.root_hash());

    let backend = Arc::new(MemoryBackend::new());
    let clock = Arc::new(TokioClock::starting_at(Duration::from_secs(1_700_000_000)));
    let mut registry = Registry::new();
    registry.register("noop", |_ctx, _: ()| async { Ok(()) });
    let scheduler = Scheduler::new(backend.clone(), clock.clone()).with_registry(&registry);
    let task = scheduler.submit(Task::new("noop", &())?).await?;
    let worker = Arc::new(Worker::new(backend, registry, WorkerConfig::default())?.with_clock(clock));
    let running = tokio::spawn({
        let worker = worker.clone();
        async move { worker.run(Duration::from_secs(1)).await }
    });
    assert_eq!(scheduler.wait(task.id(), Duration::from_secs(10)).await?.state, TaskState::Succeeded);
    worker.shutdown();
    running.await??;

    println!("every crate works from outside the workspace");
    Ok(())
}
RUST
}

# Adds every crate with `cargo add $1 <where>` as the READMEs say.
try_form() {
  local form=$1 project="$work/$1"
  echo "== $form dependencies, in a new project outside the workspace"
  cargo new --quiet --name my-service "$project"
  cd "$project"
  if [ "$form" = path ]; then
    cargo add --quiet --path "$root/core" --features redis
    cargo add --quiet --path "$root/ratelimit" --features redis,tower,async,serde
    cargo add --quiet --path "$root/consistent-hash" --features serde
    cargo add --quiet --path "$root/lru-cache"
    cargo add --quiet --path "$root/merkle" --features tokio
    cargo add --quiet --path "$root/sharded-counter" --features redis
    cargo add --quiet --path "$root/scheduler" --features redis
  else
    local url="file://$root"
    cargo add --quiet --git "$url" sysblocks-core --features redis
    cargo add --quiet --git "$url" sysblocks-ratelimit --features redis,tower,async,serde
    cargo add --quiet --git "$url" sysblocks-consistent-hash --features serde
    cargo add --quiet --git "$url" sysblocks-lru-cache
    cargo add --quiet --git "$url" sysblocks-merkle --features tokio
    cargo add --quiet --git "$url" sysblocks-sharded-counter --features redis
    cargo add --quiet --git "$url" sysblocks-scheduler --features redis
  fi
  cargo add --quiet tokio --features macros,rt,time,test-util
  sed -n '/^\[dependencies\]/,$p' Cargo.toml
  write_main
  cargo run --quiet
  cd "$root"
}

try_form path
try_form git
