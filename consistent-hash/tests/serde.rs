//! Ring configurations and snapshots round-trip through serde.
#![cfg(feature = "serde")]

use sysblocks_consistent_hash::{HashRing, RingConfig, RingError};

#[test]
fn ring_round_trips_as_its_configuration() {
    let mut ring = HashRing::with_vnodes(100).unwrap();
    ring.add_in_zone("a".to_string(), 1, "z1").unwrap();
    ring.add_in_zone("b".to_string(), 3, "z2").unwrap();
    ring.add("c".to_string()).unwrap();
    let json = serde_json::to_string(&ring).unwrap();
    let back: HashRing<String> = serde_json::from_str(&json).unwrap();
    assert!(ring.points().eq(back.points()));
    assert_eq!(back.zone(&"b".to_string()), Some("z2"));
    assert_eq!(back.config(), ring.config());
}

#[test]
fn config_from_a_file_with_defaults() {
    let text = r#"{ "nodes": [ { "node": "cache-1" }, { "node": "cache-2", "weight": 2 } ] }"#;
    let config: RingConfig<String> = serde_json::from_str(text).unwrap();
    let ring = HashRing::from_config(config).unwrap();
    assert_eq!(ring.vnodes_per_weight(), 160);
    assert_eq!(ring.point_count(), 3 * 160);
}

#[test]
fn another_placement_version_is_refused() {
    let text = r#"{ "placement_version": 2, "nodes": [ { "node": "a" } ] }"#;
    let err = serde_json::from_str::<HashRing<String>>(text).unwrap_err();
    assert!(err.to_string().contains("placement version 2"), "{err}");
    let config: RingConfig<String> = serde_json::from_str(text).unwrap();
    assert_eq!(
        HashRing::from_config(config).unwrap_err(),
        RingError::PlacementVersion { found: 2 }
    );
}

#[test]
fn invalid_config_is_an_error_not_a_panic() {
    let text = r#"{ "nodes": [ { "node": "a", "weight": 0 } ] }"#;
    assert!(serde_json::from_str::<HashRing<String>>(text).is_err());
    let text = r#"{ "vnodes_per_weight": 0, "nodes": [] }"#;
    assert!(serde_json::from_str::<HashRing<String>>(text).is_err());
}
