//! 1,000,000 random operations against a reference model and against the
//! `lru` crate: identical results, identical evictions, identical order.

use std::collections::VecDeque;
use std::num::NonZeroUsize;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sysblocks_lru_cache::LruCache;

/// The simplest correct LRU: a deque, most recent first. O(n) per operation.
struct Model {
    cap: usize,
    items: VecDeque<(u32, u32)>,
}

impl Model {
    fn position(&self, k: u32) -> Option<usize> {
        self.items.iter().position(|&(key, _)| key == k)
    }
    fn get(&mut self, k: u32) -> Option<u32> {
        let i = self.position(k)?;
        let item = self.items.remove(i)?;
        self.items.push_front(item);
        Some(item.1)
    }
    fn peek(&self, k: u32) -> Option<u32> {
        self.position(k).map(|i| self.items[i].1)
    }
    fn put(&mut self, k: u32, v: u32) -> Option<(u32, u32)> {
        if let Some(i) = self.position(k) {
            let old = self.items.remove(i);
            self.items.push_front((k, v));
            return old;
        }
        let evicted = if self.items.len() == self.cap { self.items.pop_back() } else { None };
        self.items.push_front((k, v));
        evicted
    }
    fn remove(&mut self, k: u32) -> Option<(u32, u32)> {
        let i = self.position(k)?;
        self.items.remove(i)
    }
    fn resize(&mut self, cap: usize) {
        self.cap = cap;
        self.items.truncate(cap);
    }
}

#[test]
fn million_random_operations_match_model_and_lru_crate() {
    let mut rng = SmallRng::seed_from_u64(2026);
    let cap = 16;
    let mut ours = LruCache::new(cap).unwrap();
    let mut model = Model { cap, items: VecDeque::new() };
    let mut peer = lru::LruCache::new(NonZeroUsize::new(cap).unwrap());
    let mut evictions = 0u64;
    for step in 0..1_000_000u32 {
        let k = rng.random_range(0..48u32);
        match rng.random_range(0..100u32) {
            0..35 => {
                let expected = model.get(k);
                assert_eq!(ours.get(&k).copied(), expected, "get {k} at step {step}");
                assert_eq!(peer.get(&k).copied(), expected);
            }
            35..45 => {
                let expected = model.peek(k);
                assert_eq!(ours.peek(&k).copied(), expected, "peek {k} at step {step}");
                assert_eq!(peer.peek(&k).copied(), expected);
            }
            45..85 => {
                let replaced = model.peek(k).is_some();
                let expected = model.put(k, step);
                if expected.is_some() && !replaced {
                    evictions += 1;
                }
                assert_eq!(ours.insert(k, step), expected, "put {k} at step {step}");
                assert_eq!(peer.push(k, step), expected);
            }
            85..92 => {
                let expected = model.remove(k).map(|(_, v)| v);
                assert_eq!(ours.pop(&k), expected, "pop {k} at step {step}");
                assert_eq!(peer.pop(&k), expected);
            }
            92..98 => {
                let expected = model.remove(k);
                assert_eq!(ours.remove(&k), expected, "remove {k} at step {step}");
                assert_eq!(peer.pop_entry(&k), expected);
            }
            98 => {
                let expected = model.items.pop_back();
                assert_eq!(ours.pop_lru(), expected, "pop_lru at step {step}");
                assert_eq!(peer.pop_lru(), expected);
            }
            _ => {
                let new_cap = rng.random_range(1..32usize);
                evictions += model.items.len().saturating_sub(new_cap) as u64;
                model.resize(new_cap);
                ours.resize(new_cap as u64).unwrap();
                peer.resize(NonZeroUsize::new(new_cap).unwrap());
            }
        }
        assert_eq!(ours.len(), model.items.len());
        if step % 1024 == 0 {
            let order: Vec<(u32, u32)> = ours.iter().map(|(k, v)| (*k, *v)).collect();
            let expected: Vec<(u32, u32)> = model.items.iter().copied().collect();
            assert_eq!(order, expected, "order at step {step}");
            let theirs: Vec<(u32, u32)> = peer.iter().map(|(k, v)| (*k, *v)).collect();
            assert_eq!(theirs, expected);
        }
    }
    assert_eq!(ours.stats().evictions, evictions, "capacity evictions counted exactly");
}
