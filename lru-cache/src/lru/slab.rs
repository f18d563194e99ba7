//! The slab under an [`LruCache`](super::LruCache): per-slot metadata and
//! the circular recency list linked by `u32` slot indices, with slot 0 as
//! its sentinel.

/// Slot 0 is the sentinel of the circular recency list: its `next` is the
/// most recently used slot, its `prev` the least recently used, and it links
/// to itself when the cache is empty. With a sentinel, unlinking and
/// relinking need no branches for the ends of the list.
pub(super) const SENTINEL: u32 = 0;

/// An entry taken out of the cache, with everything known about it.
pub(super) struct Entry<K, V> {
    pub(super) key: K,
    pub(super) value: V,
    pub(super) expires: Option<u64>,
}

/// The rest of an entry, in a parallel array read on writes, evictions and
/// (only when some entry has a time to live) reads.
#[derive(Debug, Clone, Copy)]
pub(super) struct Meta {
    pub(super) hash: u64,
    pub(super) weight: u64,
    pub(super) expires: Option<u64>,
    /// Whether the slot holds an entry (false: free, or the sentinel).
    pub(super) live: bool,
}

/// A hash-table bucket: the entry itself and its slot in the recency list.
/// Key and value sit together, so a hit reads both from one cache line.
pub(super) struct Bucket<K, V> {
    pub(super) key: K,
    pub(super) value: V,
    pub(super) slot: u32,
}

/// An entry's place in the recency list. Links live in their own dense array
/// (8 bytes per slot) so that moving an entry to the front touches a few
/// neighbouring words, not three scattered entries.
#[derive(Debug, Clone, Copy)]
pub(super) struct Link {
    /// Towards the most recently used end.
    pub(super) prev: u32,
    /// Towards the least recently used end.
    pub(super) next: u32,
}

/// Slot arrays holding just the sentinel (slot 0), with room for `reserve`
/// entries.
pub(super) fn sentinel_meta(reserve: usize) -> Vec<Meta> {
    let mut v = Vec::with_capacity(reserve + 1);
    v.push(Meta { hash: 0, weight: 0, expires: None, live: false });
    v
}

/// The links array: a power-of-two length (see [`LruCache::promote`]), all
/// pointing at the sentinel.
pub(super) fn sentinel_links(reserve: usize) -> Vec<Link> {
    vec![Link { prev: SENTINEL, next: SENTINEL }; (reserve + 1).next_power_of_two()]
}

/// Moves live slot `i` to the front of the recency list: unlink and relink
/// in one pass, with no branch (promoting the head itself works through the
/// sentinel), so a skewed workload that often hits the head costs no
/// mispredictions. The links' length is a power of two, so indexing with
/// `i & (len - 1)` changes no valid slot and lets the compiler drop the
/// bounds checks (a masked index is provably in range once the slice is
/// known to be non-empty).
#[inline]
pub(super) fn promote(links: &mut [Link], i: u32) {
    if links.is_empty() {
        return;
    }
    let m = links.len() - 1;
    let Link { prev, next } = links[i as usize & m];
    links[prev as usize & m].next = next;
    links[next as usize & m].prev = prev;
    let head = links[SENTINEL as usize & m].next;
    links[i as usize & m] = Link { prev: SENTINEL, next: head };
    links[head as usize & m].prev = i;
    links[SENTINEL as usize & m].next = i;
}
