//! Golden vectors: placement version 1, byte for byte. If one of these
//! changes, keys move between nodes for every user of the crate: that needs a
//! new PLACEMENT_VERSION, never an edit of these numbers.

use sysblocks_consistent_hash::{HashRing, PLACEMENT_VERSION, hash_key, jump_hash, vnode_position};

#[test]
fn placement_version_is_1() {
    assert_eq!(PLACEMENT_VERSION, 1);
}

#[test]
fn key_hashes() {
    assert_eq!(hash_key(b""), 0xe247_b930_a0c5_a9b1);
    assert_eq!(hash_key(b"a"), 0x9db1_258d_0530_e1bd);
    assert_eq!(hash_key(b"user:42"), 0x7450_a0de_aa3b_246c);
    assert_eq!(hash_key(b"the quick brown fox"), 0x8b29_80bd_6119_f290);
}

#[test]
fn vnode_positions() {
    assert_eq!(vnode_position(b"node-a", 0), 0xb721_9bf3_3cf1_88aa);
    assert_eq!(vnode_position(b"node-a", 1), 0xa058_2caf_1ef9_0061);
    assert_eq!(vnode_position(b"node-a", 159), 0x8893_300e_3848_32ee);
    assert_eq!(vnode_position(b"node-b", 0), 0x4030_058d_7a99_8c72);
    assert_eq!(vnode_position(b"", 0), 0x050f_55aa_ee2a_7308);
}

fn fixed_ring() -> HashRing<&'static str> {
    HashRing::from_weighted(160, [("alpha", 1), ("beta", 2), ("gamma", 1), ("delta", 3)]).unwrap()
}

#[test]
fn ring_points() {
    let ring = fixed_ring();
    assert_eq!(ring.point_count(), 7 * 160);
    let first: Vec<(u64, &str)> = ring.points().take(4).map(|(p, n)| (p, *n)).collect();
    assert_eq!(
        first,
        [
            (0x003a_ecce_df4c_9aa5, "alpha"),
            (0x006d_1bd8_3dda_6ce2, "alpha"),
            (0x0071_2aba_c37a_726d, "delta"),
            (0x0071_6fe3_cd0e_2a2f, "delta"),
        ]
    );
}

#[test]
fn node_for_on_a_fixed_ring() {
    let ring = fixed_ring();
    let owners: Vec<&str> =
        (0..24).map(|i| *ring.node_for(format!("key-{i}").as_bytes()).unwrap()).collect();
    assert_eq!(
        owners,
        [
            "gamma", "alpha", "beta", "beta", "beta", "beta", "beta", "delta", "alpha", "delta",
            "delta", "delta", "delta", "alpha", "delta", "gamma", "gamma", "delta", "beta",
            "gamma", "gamma", "beta", "beta", "beta",
        ]
    );
}

#[test]
fn replicas_on_a_fixed_ring() {
    let ring = fixed_ring();
    let lists: Vec<Vec<&str>> = ["key-0", "key-1", "key-2"]
        .iter()
        .map(|k| ring.replicas(k.as_bytes(), 3).copied().collect())
        .collect();
    assert_eq!(
        lists,
        [["gamma", "beta", "delta"], ["alpha", "delta", "beta"], ["beta", "alpha", "delta"]]
    );
}

#[test]
fn insertion_order_does_not_change_placement() {
    let a = fixed_ring();
    let mut b = HashRing::new();
    for (n, w) in [("delta", 3), ("gamma", 1), ("beta", 2), ("alpha", 1)] {
        b.add_weighted(n, w).unwrap();
    }
    assert!(a.points().zip(b.points()).all(|(x, y)| x == y));
}

/// Guava's published vectors for `Hashing.consistentHash(long, int)`.
#[test]
fn jump_hash_matches_guava() {
    let expected = [0, 55, 62, 8, 45, 59, 86, 97, 82, 59, 73, 37, 17, 56, 86, 21, 90, 37, 38, 83];
    let got: Vec<u32> = (0..20).map(|k| jump_hash(k, 100)).collect();
    assert_eq!(got, expected);
    assert_eq!(jump_hash(10_863_919_174_838_991, 11), 6);
    assert_eq!(jump_hash(2_016_238_256_797_177_309, 11), 3);
    assert_eq!(jump_hash(1_673_758_223_894_951_030, 11), 5);
    assert_eq!(jump_hash(2, 100_001), 80_343);
    assert_eq!(jump_hash(2201, 100_001), 22_152);
    assert_eq!(jump_hash(2202, 100_001), 15_018);
}
