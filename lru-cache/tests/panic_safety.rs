//! A key or value whose `Drop` panics leaves the cache usable and
//! consistent: every structural change is complete before anything is dropped.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};

use sysblocks_lru_cache::LruCache;

static ARMED: AtomicBool = AtomicBool::new(false);

#[derive(Debug, PartialEq)]
struct Grenade(u32);

impl Drop for Grenade {
    fn drop(&mut self) {
        if self.0.is_multiple_of(5) && ARMED.swap(false, Ordering::SeqCst) {
            panic!("drop of {} panicked", self.0);
        }
    }
}

fn check_consistent(cache: &mut LruCache<u32, Grenade>) {
    let keys: Vec<u32> = cache.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys.len(), cache.len(), "list and count agree");
    assert!(cache.len() <= 8);
    for k in &keys {
        assert_eq!(cache.peek(k).map(|g| g.0), Some(*k), "every listed key is indexed");
    }
    let back: Vec<u32> = cache.iter().rev().map(|(k, _)| *k).collect();
    assert_eq!(back, keys.iter().rev().copied().collect::<Vec<_>>(), "links agree both ways");
}

#[test]
fn panicking_drops_leave_the_cache_consistent() {
    let mut cache = LruCache::new(8).unwrap();
    let mut panics = 0;
    for i in 0..2_000u32 {
        ARMED.store(true, Ordering::SeqCst);
        let k = i % 23;
        let result = catch_unwind(AssertUnwindSafe(|| match i % 4 {
            0 | 1 => drop(cache.insert(k, Grenade(k))),
            2 => drop(cache.remove(&k)),
            _ => cache.resize(u64::from(k % 8 + 1)).unwrap(),
        }));
        ARMED.store(false, Ordering::SeqCst);
        if result.is_err() {
            panics += 1;
        }
        check_consistent(&mut cache);
    }
    assert!(panics > 0, "the test must actually exercise panicking drops");
    ARMED.store(true, Ordering::SeqCst);
    let result = catch_unwind(AssertUnwindSafe(|| cache.clear()));
    ARMED.store(false, Ordering::SeqCst);
    let _ = result;
    assert!(cache.is_empty());
    cache.insert(1, Grenade(1));
    assert_eq!(cache.get(&1), Some(&Grenade(1)));
}
