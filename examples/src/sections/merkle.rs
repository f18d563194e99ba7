//! Tour section: two replicas of 100,000 keys, one of which missed some
//! writes and deletes, repaired by Merkle anti-entropy.

use std::error::Error;

use sysblocks_merkle::{MerkleStore, SyncConfig, sync_in_memory};

use super::TourOptions;
use crate::charts::{Chart, Corner, Kind, Series};
use crate::report::Section;

const KEYS: u32 = 100_000;

/// Runs the section.
///
/// # Errors
/// Only on a bug (the stores refuse nothing here).
pub fn run(options: &TourOptions) -> Result<(), Box<dyn Error>> {
    let section = Section::start("merkle: two replicas repair what differs");
    let mut primary: MerkleStore<Vec<u8>, Vec<u8>> = MerkleStore::new();
    for i in 0..KEYS {
        primary.put(format!("user:{i}").into_bytes(), format!("profile-{i}").into_bytes(), 1)?;
    }
    let base = options.drawing().then(|| primary.clone());
    let mut replica = primary.clone();
    let full_transfer: usize =
        primary.iter().map(|(k, e)| k.len() + e.value.as_ref().map_or(0, Vec::len) + 8).sum();

    // The replica was down while the primary took 40 updates, 25 deletes
    // and 15 new keys; meanwhile the replica alone took 5 updates.
    for i in 0..40 {
        primary.put(format!("user:{}", i * 997).into_bytes(), b"updated".to_vec(), 2)?;
    }
    for i in 0..25 {
        primary.delete(format!("user:{}", 50_000 + i * 13).into_bytes(), 2)?;
    }
    for i in 0..15 {
        primary.put(format!("new:{i}").into_bytes(), b"fresh".to_vec(), 2)?;
    }
    for i in 0..5 {
        replica.put(format!("user:{}", 90_000 + i).into_bytes(), b"replica-side".to_vec(), 3)?;
    }
    section.row("keys per replica", KEYS);
    section.row(
        "differences",
        "40 updates + 25 deletes + 15 inserts on one side, 5 updates on the other",
    );
    section.row("roots equal before", primary.root_hash() == replica.root_hash());

    let outcome = sync_in_memory(&mut primary, &mut replica, SyncConfig::default())?;
    let (a, b, rounds) = (outcome.initiator, outcome.responder, outcome.rounds);
    section.row("roots equal after", primary.root_hash() == replica.root_hash());
    section.row("messages", rounds);
    section.row("bytes primary -> replica", a.bytes_sent);
    section.row("bytes replica -> primary", b.bytes_sent);
    section.row("keys repaired on the replica", b.keys_repaired);
    section.row("keys repaired on the primary", a.keys_repaired);
    section.row(
        "vs sending every entry",
        format!(
            "{full_transfer} bytes ({:.1}x more)",
            full_transfer as f64 / (a.bytes_sent + b.bytes_sent) as f64
        ),
    );
    if let Some(base) = base {
        let mut exchanged = Vec::new();
        for d in [1u32, 10, 100, 1_000, 10_000] {
            let mut ahead = base.clone();
            let mut behind = base.clone();
            for i in 0..d {
                // Spread evenly over the key space.
                ahead.put(
                    format!("user:{}", i * (KEYS / d.max(1)).max(1)).into_bytes(),
                    b"v2".to_vec(),
                    2,
                )?;
            }
            let outcome = sync_in_memory(&mut ahead, &mut behind, SyncConfig::default())?;
            let bytes = outcome.initiator.bytes_sent + outcome.responder.bytes_sent;
            exchanged.push((f64::from(d), bytes as f64));
        }
        let everything = full_transfer as f64;
        options.chart(|| {
            Chart::new(
                "merkle",
                "merkle-bytes.svg",
                "Bytes exchanged to repair d differing keys out of 100,000",
                "differing keys d (log scale)",
                "bytes exchanged (log scale)",
            )
            .log(true, true)
            .legend_at(Corner::LowerRight)
            .with(Series::new("Merkle anti-entropy", Kind::Line, exchanged))
            .with(Series::new(
                format!("sending every entry, {everything:.0} bytes"),
                Kind::Reference,
                vec![(1.0, everything), (10_000.0, everything)],
            ))
            .caption(
                "The repair's cost follows the number of differences, not the size of the \
                 data: one differing key costs under 2 KB, and only at thousands of \
                 differences does it approach sending everything.",
            )
        });
    }
    section.finish();
    Ok(())
}
