//! Merkle anti-entropy for replicas of a key-value store: a [`MerkleStore`]
//! of versioned entries (deletes are versioned tombstones) whose Merkle
//! summary is maintained incrementally, one path per write, so two replicas
//! can compare themselves range by range and find exactly the keys on which
//! they differ.
//!
//! Two replicas reconcile with a [`Reconciler`] each: a state machine that
//! exchanges compact binary messages (the [`wire`] format), descends only
//! into ranges whose fingerprints differ, and ends with exactly the differing
//! entries crossing, resolved by version. The [`hash`] module is the
//! byte-level spec every replica must agree on; the [`guide`] explains
//! Merkle trees, anti-entropy, over-streaming and what this crate does
//! instead.
//!
//! A store whose values live elsewhere (on disk) keeps a [`MerkleSummary`]
//! instead: the same summary, 48 bytes per key and no values, and
//! implements [`SyncStore`] over the pair, so that a session reads from
//! disk only the entries that differ.
//!
//! ```
//! use sysblocks_merkle::MerkleStore;
//!
//! let mut store = MerkleStore::new();
//! store.put(b"k1".to_vec(), b"v1".to_vec(), 1)?;
//! store.put(b"k2".to_vec(), b"v2".to_vec(), 1)?;
//! let root = store.root();
//! assert_eq!(root.count, 2);
//!
//! // Prove that k1 = v1 at version 1 is in a store with this root.
//! let proof = store.prove(b"k1").unwrap();
//! assert!(proof.verify(b"k1", 1, Some(b"v1"), &root));
//! assert!(!proof.verify(b"k1", 1, Some(b"forged"), &root));
//!
//! // A replica that missed a write and a delete catches up.
//! let mut replica = store.clone();
//! store.put(b"k3".to_vec(), b"v3".to_vec(), 2)?;
//! store.delete(b"k1".to_vec(), 2)?;
//! let config = sysblocks_merkle::SyncConfig::default();
//! let outcome = sysblocks_merkle::sync_in_memory(&mut store, &mut replica, config)?;
//! assert_eq!(store.root_hash(), replica.root_hash());
//! assert_eq!(replica.get(b"k3"), Some(&b"v3".to_vec()));
//! let bytes = outcome.initiator.bytes_sent + outcome.responder.bytes_sent;
//! println!("{bytes} bytes in {} messages", outcome.rounds);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Crate features
//!
//! * **tokio** - `sync_stream`: a sync session over a TCP connection (or any
//!   tokio byte stream), and the `merkle-peer` binary used by the
//!   two-process test.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod error;
pub mod guide;
pub mod hash;
mod reconcile;
mod store;
mod summary;
mod sync_store;
#[cfg(feature = "tokio")]
mod transport;
pub mod wire;

pub use error::MerkleError;
pub use hash::Fingerprint;
pub use reconcile::{Reconciler, SyncConfig, SyncOutcome, SyncStats, sync_in_memory};
pub use store::{
    InclusionProof, Level, MerkleStore, NodeIdHasher, SUMMARY_DEPTH, Versioned, node_of,
};
pub use summary::{MerkleSummary, SUMMARY_CACHED_LEVELS, summarise};
pub use sync_store::{EntrySummary, SyncStore};
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use transport::{read_frame, sync_stream, write_frame};

/// The README's examples, compiled and run with the doc tests, so that the
/// page a new user reads first cannot drift from the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
