//! What can be a node: anything with stable id bytes.

use std::borrow::Cow;

/// A node of a ring: its placement depends only on [`id_bytes`](Self::id_bytes).
///
/// Two nodes with equal id bytes are the same node to the ring. Implement this
/// for your own node type by returning bytes that never change for the node
/// (its name or address), never something derived from `std::hash::Hash`.
///
/// ```
/// use std::borrow::Cow;
/// use sysblocks_consistent_hash::RingNode;
///
/// #[derive(Clone, PartialEq, Eq, Debug)]
/// struct Shard { name: String, port: u16 }
///
/// impl RingNode for Shard {
///     fn id_bytes(&self) -> Cow<'_, [u8]> {
///         Cow::Borrowed(self.name.as_bytes()) // the port may change; the name does not
///     }
/// }
///
/// let mut ring = sysblocks_consistent_hash::HashRing::new();
/// ring.add(Shard { name: "s1".into(), port: 7001 })?;
/// assert_eq!(ring.node_for(b"k").map(|s| s.port), Some(7001));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait RingNode: Clone + Eq {
    /// The bytes that identify this node on the ring.
    fn id_bytes(&self) -> Cow<'_, [u8]>;
}

impl RingNode for String {
    fn id_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.as_bytes())
    }
}

impl RingNode for &str {
    fn id_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.as_bytes())
    }
}

impl RingNode for Vec<u8> {
    fn id_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self)
    }
}

macro_rules! int_node {
    ($($t:ty),*) => {$(
        /// Integers are identified by their little-endian bytes.
        impl RingNode for $t {
            fn id_bytes(&self) -> Cow<'_, [u8]> {
                Cow::Owned(self.to_le_bytes().to_vec())
            }
        }
    )*};
}
int_node!(u16, u32, u64, u128);

/// Socket addresses are identified by their display form (`"10.0.0.1:6379"`).
impl RingNode for std::net::SocketAddr {
    fn id_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.to_string().into_bytes())
    }
}

/// The node's id as text, for error messages.
pub(crate) fn display_id<N: RingNode>(node: &N) -> String {
    String::from_utf8_lossy(&node.id_bytes()).into_owned()
}
