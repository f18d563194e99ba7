//! Consistent hashing that stays put: a weighted virtual-node ring whose
//! placement is specified byte for byte and pinned by golden vectors, with
//! replica lists of distinct physical nodes (zone-aware if you like),
//! rebalance plans, bounded loads, and jump and rendezvous hashing for
//! comparison.
//!
//! Adding an (N+1)th node moves about 1/(N+1) of the keys, all of them onto
//! the new node; removing a node moves only its own keys. Lookups are O(1)
//! expected (a prefix index over a flat sorted array of points) and never
//! allocate; nothing here uses `std`'s `Hash` trait, so placement does not
//! change between Rust releases or builds.
//!
//! Skip to [`HashRing`] for the ring, [`rebalance_plan`] for what moves when it
//! changes, [`HashRing::node_for_bounded`] for bounded loads, [`jump_hash`] and
//! [`Rendezvous`] for the alternatives, and the [`guide`] for how it all works
//! and which to choose.
//!
//! ```
//! use sysblocks_consistent_hash::{rebalance_plan, HashRing};
//!
//! let mut ring = HashRing::new(); // 160 virtual nodes per unit of weight
//! for node in ["db-1", "db-2", "db-3"] {
//!     ring.add(node)?;
//! }
//! let owner = ring.node_for(b"customer:1001").unwrap();
//! let replicas: Vec<_> = ring.replicas(b"customer:1001", 2).collect();
//! assert_eq!(replicas[0], owner);
//!
//! // A fourth node joins: only keys that move to it change owner.
//! let mut bigger = ring.clone();
//! bigger.add("db-4")?;
//! let plan = rebalance_plan(&ring, &bigger);
//! assert!(plan.moves.iter().all(|m| m.to == Some("db-4")));
//! println!("{:.1}% of keys move", 100.0 * plan.fraction_moved());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Crate features
//!
//! * **serde** - `Serialize`/`Deserialize` for [`RingConfig`], [`HashRing`]
//!   (as its configuration, checked against [`PLACEMENT_VERSION`]) and
//!   [`RebalancePlan`].

#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod config;
mod error;
pub mod guide;
pub mod hash;
mod jump;
mod node;
mod placement;
mod rebalance;
mod rendezvous;
mod ring;
mod shared;

pub use config::{NodeConfig, RingConfig};
pub use error::RingError;
pub use hash::{PLACEMENT_VERSION, hash_key, vnode_position};
pub use jump::{JumpHash, jump_hash};
pub use node::RingNode;
pub use placement::Placement;
pub use rebalance::{HashRange, Move, RebalancePlan, rebalance_plan};
pub use rendezvous::Rendezvous;
pub use ring::{DEFAULT_VNODES, HashRing, MAX_POINTS, Replicas};
pub use shared::SharedRing;

/// The README's examples, compiled and run with the doc tests, so that the
/// page a new user reads first cannot drift from the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
