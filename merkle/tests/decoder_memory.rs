//! The decoder's memory is a small multiple of the message: 256 KiB of the
//! smallest items (5-byte `Children` with no child set) once reached a
//! 30 MB peak. One test in this binary, so that the peak it reads is its
//! own.

use peak_alloc::PeakAlloc;
use sysblocks_merkle::wire::{
    Children, DECODED_BYTES_PER_BYTE, Item, decode_message, encode_message,
};
use sysblocks_merkle::{MerkleStore, Reconciler, SyncConfig};

#[global_allocator]
static PEAK: PeakAlloc = PeakAlloc;

#[test]
fn decoding_and_receiving_stay_within_a_small_multiple_of_the_message() {
    let config = SyncConfig::default();
    // The smallest items: 128 parents at level 2 (one-byte node ids, so
    // 5-byte items), repeated.
    let count = (config.max_message - 1) / 5;
    let items: Vec<Item> = (0..count as u64)
        .map(|node| Item::Children { level: 2, node: node % 128, children: Children::default() })
        .collect();
    // And for the receiver's bookkeeping: every item a distinct parent at
    // level 4 (three-byte node ids, 7-byte items).
    let distinct: Vec<Item> = (0..(config.max_message as u64 - 1) / 7)
        .map(|i| Item::Children { level: 4, node: 16_384 + i, children: Children::default() })
        .collect();
    let distinct = encode_message(&distinct);
    let message = encode_message(&items);
    drop(items);
    assert!(message.len() <= config.max_message && message.len() > config.max_message - 8);

    let before = PEAK.current_usage();
    PEAK.reset_peak_usage();
    let decoded = decode_message(&message, config.max_message).unwrap();
    let peak = PEAK.peak_usage().saturating_sub(before);
    assert_eq!(decoded.len(), count);
    drop(decoded);
    assert!(
        peak <= DECODED_BYTES_PER_BYTE * message.len(),
        "decoding {} bytes peaked at {peak} bytes",
        message.len()
    );

    // The receiver decodes one item at a time: its peak is the store's
    // bookkeeping of the distinct nodes, not the decoded message.
    let mut store: MerkleStore<Vec<u8>, Vec<u8>> = MerkleStore::new();
    for i in 0..1000u32 {
        store.put(i.to_le_bytes().to_vec(), b"v".to_vec(), 1).unwrap();
    }
    for message in [&message, &distinct] {
        let mut side = Reconciler::new(config).unwrap();
        let before = PEAK.current_usage();
        PEAK.reset_peak_usage();
        side.receive(&mut store, message).unwrap();
        let peak = PEAK.peak_usage().saturating_sub(before);
        assert!(
            peak <= DECODED_BYTES_PER_BYTE * message.len(),
            "receiving {} bytes peaked at {peak} bytes",
            message.len()
        );
    }
}
