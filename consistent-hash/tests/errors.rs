//! Bad input gets a typed error with a clear message, never a panic.

use proptest::prelude::*;
use sysblocks_consistent_hash::{HashRing, MAX_POINTS, RingError};

#[test]
fn zero_weight_duplicate_unknown_and_zero_vnodes() {
    let mut ring = HashRing::new();
    ring.add("a").unwrap();
    assert_eq!(ring.add("a"), Err(RingError::DuplicateNode { node: "a".into() }));
    assert_eq!(ring.add_weighted("b", 0), Err(RingError::ZeroWeight { node: "b".into() }));
    assert_eq!(ring.remove(&"b"), Err(RingError::UnknownNode { node: "b".into() }));
    assert_eq!(ring.set_weight(&"b", 2), Err(RingError::UnknownNode { node: "b".into() }));
    assert_eq!(ring.set_weight(&"a", 0), Err(RingError::ZeroWeight { node: "a".into() }));
    assert_eq!(HashRing::<&str>::with_vnodes(0).unwrap_err(), RingError::ZeroVnodes);
    assert_eq!(
        HashRing::from_weighted(160, [("x", 1), ("x", 2)]).unwrap_err(),
        RingError::DuplicateNode { node: "x".into() }
    );
    // The ring is unchanged by the failed calls.
    assert_eq!(ring.node_count(), 1);
    assert_eq!(ring.point_count(), 160);
}

#[test]
fn too_many_points_is_refused_before_allocating() {
    let mut ring = HashRing::new();
    let err = ring.add_weighted("huge", u32::MAX).unwrap_err();
    assert!(matches!(err, RingError::TooManyPoints { requested } if requested > MAX_POINTS));
    assert!(ring.is_empty());
}

#[test]
fn messages_say_what_was_wrong_and_the_value() {
    assert_eq!(
        RingError::ZeroWeight { node: "db-1".into() }.to_string(),
        "weight must be at least 1 (got 0 for node \"db-1\"); remove the node instead"
    );
    assert_eq!(
        RingError::InvalidBalanceFactor { c: 0.5 }.to_string(),
        "balance factor must be finite and greater than 1 (got 0.5)"
    );
    assert_eq!(RingError::EmptyRing.to_string(), "the ring has no nodes");
}

#[derive(Debug, Clone)]
enum Op {
    Add(u8, u32),
    Remove(u8),
    SetWeight(u8, u32),
    Lookup(u64, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<u8>(), 0u32..5).prop_map(|(n, w)| Op::Add(n % 16, w)),
        any::<u8>().prop_map(|n| Op::Remove(n % 16)),
        (any::<u8>(), 0u32..5).prop_map(|(n, w)| Op::SetWeight(n % 16, w)),
        (any::<u64>(), 0usize..20).prop_map(|(h, n)| Op::Lookup(h, n)),
    ]
}

proptest! {
    /// Any sequence of calls, valid or not, leaves a consistent ring and never
    /// panics.
    #[test]
    fn random_operations_never_panic(ops in proptest::collection::vec(op(), 1..60), vnodes in 1u32..30) {
        let mut ring = HashRing::with_vnodes(vnodes).unwrap();
        for op in ops {
            match op {
                Op::Add(n, w) => { let _ = ring.add_weighted(u32::from(n), w); }
                Op::Remove(n) => { let _ = ring.remove(&u32::from(n)); }
                Op::SetWeight(n, w) => { let _ = ring.set_weight(&u32::from(n), w); }
                Op::Lookup(h, n) => {
                    let owner = ring.node_for_hash(h);
                    prop_assert_eq!(owner.is_some(), !ring.is_empty());
                    prop_assert!(ring.replicas_for_hash(h, n).count() <= n);
                    let loads = vec![0; ring.node_count()];
                    let _ = ring.bounded_index(h, &loads, 1.5);
                }
            }
            let expected: u64 = ring.nodes().map(|n| u64::from(ring.weight(n).unwrap())).sum::<u64>() * u64::from(vnodes);
            prop_assert_eq!(ring.point_count() as u64, expected);
        }
    }
}
