//! Golden vectors for the hashing spec (encoding version 1). A change here
//! breaks every replica that has not upgraded: bump ENCODING_VERSION instead.

use sysblocks_merkle::hash::{ENCODING_VERSION, Fingerprint, entry_hash, key_position};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn encoding_version_is_1() {
    assert_eq!(ENCODING_VERSION, 1);
}

#[test]
fn key_position_is_sha256_of_the_key() {
    // SHA-256("abc"), the FIPS 180-2 test vector.
    assert_eq!(
        hex(&key_position(b"abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn entry_hashes() {
    assert_eq!(hex(&entry_hash(b"k", 1, Some(b"v"))), GOLDEN_LIVE);
    assert_eq!(hex(&entry_hash(b"k", 1, None)), GOLDEN_TOMBSTONE);
    assert_ne!(
        entry_hash(b"k", 1, Some(b"")),
        entry_hash(b"k", 1, None),
        "an empty value is not a delete"
    );
}

#[test]
fn fingerprints_add_and_subtract_mod_2_256() {
    let max = Fingerprint { sum: [u64::MAX; 4], count: 1 };
    let one = Fingerprint { sum: [1, 0, 0, 0], count: 1 };
    let mut fp = max;
    fp.add(&one);
    assert_eq!(fp, Fingerprint { sum: [0; 4], count: 2 }, "wraps around 2^256");
    fp.sub(&one);
    assert_eq!(fp, max);
}

// Computed from the spec in src/hash.rs with an independent SHA-256
// (Python's hashlib), not by this crate.
const GOLDEN_LIVE: &str = "70772b2f81b47874450337c20a7bcbeab88f62a91c6fc12edec395bc6143fa5f";
const GOLDEN_TOMBSTONE: &str = "cbcb9637c317238b4d648a75dc9b6138c6e3a87c5e1f7a0c85460f338df78f61";

/// The wire format (version 2): a fingerprint carries its count and the
/// first 12 bytes of its sum. A change here breaks every peer that has not
/// upgraded: bump WIRE_VERSION instead.
#[test]
fn wire_version_2_fingerprints() {
    use sysblocks_merkle::wire::{
        Children, Item, SUM_BYTES, WIRE_VERSION, WireFp, decode_message, encode_message,
    };
    assert_eq!((WIRE_VERSION, SUM_BYTES), (2, 12));
    let sum: [u8; 16] = std::array::from_fn(|i| i as u8 + 1);
    let fp = WireFp { count: 300, sum };
    let mut children = [None; 16];
    children[3] = Some(fp);
    let message = encode_message(&[
        Item::Fingerprint { level: 1, node: 5, fp },
        Item::Children { level: 0, node: 0, children: Children::from_array(children) },
    ]);
    assert_eq!(
        hex(&message),
        concat!(
            "02", // version
            "01",
            "01",
            "05",
            "ac02",
            "0102030405060708090a0b0c", // fingerprint
            "02",
            "00",
            "00",
            "0800",
            "ac02",
            "0102030405060708090a0b0c", // children
        )
    );
    // The receiver sees the 12 bytes, then zeros: the form to compare in.
    let decoded = decode_message(&message, usize::MAX).unwrap();
    let Item::Fingerprint { fp: received, .. } = decoded[0] else { panic!("{decoded:?}") };
    assert_eq!(received, fp.on_wire());
    assert_eq!(&received.sum[..12], &sum[..12]);
    assert_eq!(received.sum[12..], [0; 4]);
    // A version 1 message (16-byte sums) is refused by its version byte.
    let mut old = message.clone();
    old[0] = 1;
    assert!(matches!(
        decode_message(&old, usize::MAX),
        Err(sysblocks_merkle::MerkleError::WireVersion { found: 1 })
    ));
}
