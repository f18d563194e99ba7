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
