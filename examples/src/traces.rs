//! Reading the ARC block traces (OLTP, P12) for cache hit ratios.
//!
//! The traces come from Nimrod Megiddo and Dharmendra S. Modha, "ARC: A
//! Self-Tuning, Low Overhead Replacement Cache," USENIX FAST 03, San
//! Francisco, CA, pp. 115-130, 2003. They live in `shared/traces/arc/` beside
//! the workspace (or in the folder named by `SYSBLOCKS_TRACES`), compressed
//! with zstd. Each line is `start_block block_count ignored request_id`, and
//! every block from `start_block` to `start_block + block_count - 1` is one
//! access.

use std::io::{BufRead, BufReader};

/// The citation the traces' conditions of use require.
pub const CITATION: &str = "Nimrod Megiddo and Dharmendra S. Modha, \"ARC: A Self-Tuning, Low \
                            Overhead Replacement Cache,\" USENIX FAST 03, San Francisco, CA, \
                            pp. 115-130, 2003.";
use std::path::PathBuf;

/// The folder holding `OLTP.lis.zst` and `P12.lis.zst`.
pub fn trace_dir() -> PathBuf {
    match std::env::var_os("SYSBLOCKS_TRACES") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/traces/arc"),
    }
}

/// Every block access of trace `name` ("OLTP" or "P12"), in order.
///
/// # Errors
/// When the file is missing or malformed; the message names the path.
pub fn load(name: &str) -> Result<Vec<u64>, String> {
    let path = trace_dir().join(format!("{name}.lis.zst"));
    let file = std::fs::File::open(&path)
        .map_err(|e| format!("cannot open trace {}: {e} (set SYSBLOCKS_TRACES)", path.display()))?;
    let decoder = ruzstd::decoding::StreamingDecoder::new(BufReader::new(file))
        .map_err(|e| format!("{} is not zstd: {e}", path.display()))?;
    let mut accesses = Vec::new();
    for (n, line) in BufReader::new(decoder).lines().enumerate() {
        let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
        let mut fields = line.split_whitespace().map(str::parse::<u64>);
        let (Some(Ok(start)), Some(Ok(count))) = (fields.next(), fields.next()) else {
            return Err(format!("{}:{}: malformed line {line:?}", path.display(), n + 1));
        };
        accesses.extend(start..start + count);
    }
    Ok(accesses)
}

/// Replays `accesses` through a cache: `access(block)` looks the block up,
/// inserts it on a miss, and says whether it was a hit. Returns the hits.
pub fn count_hits(accesses: &[u64], mut access: impl FnMut(u64) -> bool) -> u64 {
    accesses.iter().map(|&block| u64::from(access(block))).sum()
}

/// Hits of an exact LRU of `capacity` blocks over `accesses`, counted with
/// `sysblocks_lru_cache::LruCache`.
pub fn lru_hits(accesses: &[u64], capacity: usize) -> u64 {
    let Ok(mut cache) = sysblocks_lru_cache::LruCache::new(capacity) else { return 0 };
    count_hits(accesses, |block| {
        cache.get(&block).is_some() || {
            cache.insert(block, ());
            false
        }
    })
}
