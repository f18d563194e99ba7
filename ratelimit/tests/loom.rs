//! Loom model of TokenBucket's compare-and-swap loop: concurrent checks never
//! admit more tokens than the bucket holds.
//!
//! Run: `RUSTFLAGS="--cfg sysblocks_loom" LOOM_MAX_PREEMPTIONS=2 cargo test
//! --release -p sysblocks-ratelimit --test loom`
#![cfg(sysblocks_loom)]

use loom::sync::Arc;
use loom::thread;
use sysblocks_ratelimit::{ManualClock, Rate, TokenBucket};

#[test]
fn concurrent_checks_never_overdraw() {
    loom::model(|| {
        // Two tokens, no refill within the model (the clock stands still).
        let bucket = Arc::new(
            TokenBucket::with_clock(2, Rate::per_hour(1).unwrap(), ManualClock::new()).unwrap(),
        );
        let spawn =
            |b: Arc<TokenBucket<ManualClock>>| thread::spawn(move || u64::from(b.check().allowed));
        let a = spawn(bucket.clone());
        let c = spawn(bucket.clone());
        let here = u64::from(bucket.check().allowed);
        let admitted = a.join().unwrap() + c.join().unwrap() + here;
        assert_eq!(admitted, 2, "exactly the capacity is admitted");
    });
}

#[test]
fn a_refund_racing_a_check_loses_no_token() {
    loom::model(|| {
        // One token; A takes it and gives it back while B tries to take it.
        let bucket = Arc::new(
            TokenBucket::with_clock(1, Rate::per_hour(1).unwrap(), ManualClock::new()).unwrap(),
        );
        let a = {
            let bucket = bucket.clone();
            thread::spawn(move || {
                let taken = bucket.check().allowed;
                if taken {
                    bucket.refund(1);
                }
                taken
            })
        };
        let b_taken = bucket.check().allowed;
        let a_taken = a.join().unwrap();
        assert!(a_taken || b_taken, "the token went to one of them");
        // A gave its token back; B kept its own: the bucket holds exactly
        // what B did not take.
        assert_eq!(bucket.peek().allowed, !b_taken);
    });
}

/// `set_limit` racing a check: the check sees old settings, new ones or a
/// mix of the two, and whichever it sees it neither panics (a capacity
/// lowered under a cost already checked once underflowed) nor admits more
/// than the larger capacity.
#[test]
fn set_limit_racing_a_check_never_overflows_or_overdraws() {
    loom::model(|| {
        let bucket = Arc::new(
            TokenBucket::with_clock(3, Rate::per_hour(1).unwrap(), ManualClock::new()).unwrap(),
        );
        let b = bucket.clone();
        let setter = thread::spawn(move || b.set_limit(1, Rate::per_second(1).unwrap()).unwrap());
        let first = bucket.check_n(2).map(|d| u64::from(d.allowed) * 2).unwrap_or(0);
        let second = u64::from(bucket.check().allowed);
        setter.join().unwrap();
        assert!(first + second <= 3, "admitted {} of at most 3", first + second);
    });
}
