//! [`Iter`]: the live entries of an [`LruCache`], most recently used first.

use std::fmt;
use std::hash::{BuildHasher, Hash};

use super::LruCache;

/// Iterator over live entries, most recently used first. Double-ended.
pub struct Iter<'a, K, V, S> {
    pub(super) cache: &'a LruCache<K, V, S>,
    pub(super) next: u32,
    pub(super) back: u32,
    pub(super) remaining: usize,
    pub(super) now: Option<u64>,
}

impl<K, V, S> fmt::Debug for Iter<'_, K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").field("remaining", &self.remaining).finish()
    }
}

impl<'a, K, V, S> Iter<'a, K, V, S> {
    /// The key and value of live slot `i` (in the bucket of its place).
    fn entry(&self, i: u32) -> Option<(&'a K, &'a V)> {
        let cache = self.cache;
        let bucket = cache.table.get_bucket(cache.slots.places[i as usize].bucket)?;
        Some((&bucket.key, &bucket.value))
    }

    fn live(&self, i: u32) -> bool {
        match (self.cache.slots.expires(i), self.now) {
            (Some(at), Some(now)) => now < at,
            _ => true,
        }
    }
}

impl<'a, K, V, S> Iterator for Iter<'a, K, V, S> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        while self.remaining > 0 {
            let i = self.next;
            self.next = self.cache.links[i as usize].next;
            self.remaining -= 1;
            if self.live(i) {
                return self.entry(i);
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining))
    }
}

impl<K, V, S> DoubleEndedIterator for Iter<'_, K, V, S> {
    fn next_back(&mut self) -> Option<Self::Item> {
        while self.remaining > 0 {
            let i = self.back;
            self.back = self.cache.links[i as usize].prev;
            self.remaining -= 1;
            if self.live(i) {
                return self.entry(i);
            }
        }
        None
    }
}

impl<'a, K: Hash + Eq, V, S: BuildHasher> IntoIterator for &'a LruCache<K, V, S> {
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V, S>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}
