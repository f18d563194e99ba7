//! Ring configuration: the plain data a ring is built from, and (with the
//! `serde` feature) its serialized form.
//!
//! A ring serializes as its configuration, not its points: the points follow
//! from the configuration and the placement spec, so a deserialized ring is
//! rebuilt and places every key exactly as the original did. The
//! configuration carries [`PLACEMENT_VERSION`]; data written under another
//! version is refused.

use crate::error::RingError;
use crate::hash::PLACEMENT_VERSION;
use crate::node::RingNode;
use crate::ring::{DEFAULT_VNODES, HashRing, NodeSlot};

/// One node of a [`RingConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct NodeConfig<N> {
    /// The node.
    pub node: N,
    /// Its integer weight (at least 1; 1 when omitted).
    #[cfg_attr(feature = "serde", serde(default = "one"))]
    pub weight: u32,
    /// Its failure domain, if any.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "Option::is_none"))]
    pub zone: Option<String>,
}

#[cfg(feature = "serde")]
fn one() -> u32 {
    1
}

#[cfg(feature = "serde")]
fn default_vnodes() -> u32 {
    DEFAULT_VNODES
}

#[cfg(feature = "serde")]
fn current_version() -> u32 {
    PLACEMENT_VERSION
}

/// Everything a [`HashRing`] is built from.
///
/// ```
/// use sysblocks_consistent_hash::{HashRing, NodeConfig, RingConfig};
///
/// let config = RingConfig {
///     vnodes_per_weight: 160,
///     nodes: vec![
///         NodeConfig { node: "a".to_string(), weight: 1, zone: Some("eu-1".into()) },
///         NodeConfig { node: "b".to_string(), weight: 2, zone: Some("eu-2".into()) },
///     ],
///     ..RingConfig::default()
/// };
/// let ring = HashRing::from_config(config.clone())?;
/// assert_eq!(ring.config(), config);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RingConfig<N> {
    /// The placement spec the configuration was written under.
    #[cfg_attr(feature = "serde", serde(default = "current_version"))]
    pub placement_version: u32,
    /// Virtual nodes per unit of weight.
    #[cfg_attr(feature = "serde", serde(default = "default_vnodes"))]
    pub vnodes_per_weight: u32,
    /// The nodes, in order.
    pub nodes: Vec<NodeConfig<N>>,
}

impl<N> Default for RingConfig<N> {
    fn default() -> Self {
        RingConfig {
            placement_version: PLACEMENT_VERSION,
            vnodes_per_weight: DEFAULT_VNODES,
            nodes: Vec::new(),
        }
    }
}

impl<N: RingNode> HashRing<N> {
    /// Builds a ring from its configuration.
    ///
    /// # Errors
    /// [`RingError::PlacementVersion`] for another spec version, and any error
    /// of [`HashRing::add_in_zone`].
    pub fn from_config(config: RingConfig<N>) -> Result<Self, RingError> {
        if config.placement_version != PLACEMENT_VERSION {
            return Err(RingError::PlacementVersion { found: config.placement_version });
        }
        let zones: Vec<Option<String>> = config.nodes.iter().map(|n| n.zone.clone()).collect();
        let mut ring = HashRing::from_weighted(
            config.vnodes_per_weight,
            config.nodes.into_iter().map(|n| (n.node, n.weight)),
        )?;
        for (slot, zone) in ring.nodes.iter_mut().zip(zones) {
            slot.zone = zone;
        }
        Ok(ring)
    }

    /// The configuration this ring was built from.
    pub fn config(&self) -> RingConfig<N> {
        RingConfig {
            placement_version: PLACEMENT_VERSION,
            vnodes_per_weight: self.vnodes_per_weight(),
            nodes: self
                .nodes
                .iter()
                .map(|NodeSlot { node, weight, zone }| NodeConfig {
                    node: node.clone(),
                    weight: *weight,
                    zone: zone.clone(),
                })
                .collect(),
        }
    }
}

#[cfg(feature = "serde")]
impl<N: RingNode + serde::Serialize> serde::Serialize for HashRing<N> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.config().serialize(serializer)
    }
}

#[cfg(feature = "serde")]
impl<'de, N: RingNode + serde::Deserialize<'de>> serde::Deserialize<'de> for HashRing<N> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let config = RingConfig::<N>::deserialize(deserializer)?;
        HashRing::from_config(config).map_err(serde::de::Error::custom)
    }
}
