//! Peek, refund, all-or-nothing, reconfiguration, keyed limits, the leaky
//! bucket, config parsing, and no panic on any input.

use std::time::Duration;

use proptest::prelude::*;
use sysblocks_ratelimit::{
    Algorithm, AnyLimiter, Keyed, LeakyBucket, Limit, LimitError, Limiter, ManualClock, Rate,
    TokenBucket, check_all, gcra_step,
};

const ALGORITHMS: [Algorithm; 5] = Algorithm::ALL;

fn algorithm() -> impl Strategy<Value = Algorithm> {
    proptest::sample::select(ALGORITHMS.to_vec())
}

fn limiter(
    algorithm: Algorithm,
    count: u64,
    per_ms: u64,
    clock: &ManualClock,
) -> AnyLimiter<ManualClock> {
    let rate = Rate::new(count, Duration::from_millis(per_ms)).unwrap();
    Limit::new(algorithm, rate).build_with_clock(clock.clone()).unwrap()
}

proptest! {
    /// A peek decides what the check right after it decides, and changes
    /// nothing: a second peek agrees with the first.
    #[test]
    fn peek_is_the_check_without_the_taking(
        algorithm in algorithm(),
        count in 1u64..10,
        per_ms in 1u64..1_000,
        arrivals in proptest::collection::vec((0u64..400_000_000, 1u64..4), 1..100),
    ) {
        let clock = ManualClock::new();
        let l = limiter(algorithm, count, per_ms, &clock);
        for (gap, cost) in arrivals {
            clock.advance_nanos(gap);
            let cost = cost.min(l.limit());
            let peeked = l.peek_n(cost).unwrap();
            prop_assert_eq!(peeked, l.peek_n(cost).unwrap());
            prop_assert_eq!(peeked, l.check_n(cost).unwrap());
        }
    }

    /// Admitting a request and refunding it at once leaves every later
    /// decision as if the request never came.
    #[test]
    fn a_refund_undoes_an_admission(
        algorithm in algorithm(),
        count in 1u64..10,
        per_ms in 1u64..1_000,
        arrivals in proptest::collection::vec((0u64..400_000_000, 1u64..4, any::<bool>()), 1..100),
    ) {
        let clock = ManualClock::new();
        let with = limiter(algorithm, count, per_ms, &clock);
        let without = limiter(algorithm, count, per_ms, &clock);
        for (gap, cost, refunded) in arrivals {
            clock.advance_nanos(gap);
            let cost = cost.min(with.limit());
            if refunded {
                if with.check_n(cost).unwrap().allowed {
                    with.refund(cost);
                }
            } else {
                prop_assert_eq!(with.check_n(cost).unwrap(), without.check_n(cost).unwrap());
            }
        }
    }

    /// check_all admits iff every limiter would, and a denial leaves every
    /// limiter as it was.
    #[test]
    fn check_all_is_all_or_nothing(
        algorithms in proptest::collection::vec((algorithm(), 1u64..6, 1u64..500), 1..4),
        arrivals in proptest::collection::vec((0u64..100_000_000, 1u64..3), 1..80),
    ) {
        let clock = ManualClock::new();
        let limiters: Vec<_> =
            algorithms.iter().map(|&(a, c, p)| limiter(a, c, p, &clock)).collect();
        let refs: Vec<&dyn Limiter> = limiters.iter().map(|l| l as &dyn Limiter).collect();
        let min_limit = limiters.iter().map(Limiter::limit).min().unwrap();
        for (gap, cost) in arrivals {
            clock.advance_nanos(gap);
            let cost = cost.min(min_limit);
            let before: Vec<_> = limiters.iter().map(|l| l.peek_n(cost).unwrap()).collect();
            let decision = check_all(&refs, cost).unwrap();
            prop_assert_eq!(decision.allowed, before.iter().all(|d| d.allowed));
            if !decision.allowed {
                let after: Vec<_> = limiters.iter().map(|l| l.peek_n(cost).unwrap()).collect();
                prop_assert_eq!(before, after, "a denial changes nothing");
            }
        }
    }

    /// The leaky bucket as a meter is GCRA with tau = t × (capacity − 1); as
    /// a shaper, its admitted requests depart in order, one interval apart.
    #[test]
    fn leaky_bucket_meters_like_gcra_and_spaces_departures(
        capacity in 1u64..10,
        per_ms in 1u64..1_000,
        arrivals in proptest::collection::vec((0u64..200_000_000, 1u64..4), 1..150),
    ) {
        let clock = ManualClock::new();
        let rate = Rate::new(1, Duration::from_millis(per_ms)).unwrap();
        let bucket = LeakyBucket::with_clock(capacity, rate, clock.clone()).unwrap();
        let t = rate.interval_nanos();
        let mut tat = None;
        let mut last_departure: Option<(u64, u64)> = None;
        for (gap, cost) in arrivals {
            clock.advance_nanos(gap);
            let now = sysblocks_ratelimit::Clock::now_nanos(&clock);
            let cost = cost.min(capacity);
            let (model, next) = gcra_step(tat, now, t, t * (capacity - 1), capacity, cost);
            let d = bucket.check_n(cost).unwrap();
            prop_assert_eq!(d.allowed, model.allowed);
            prop_assert_eq!(d.retry_after, model.retry_after);
            if d.allowed {
                tat = next;
                let departs = now + d.wait.as_nanos() as u64;
                if let Some((previous, previous_cost)) = last_departure {
                    prop_assert!(departs >= previous + t * previous_cost, "departures keep the rate");
                }
                last_departure = Some((departs, cost));
                prop_assert!(d.wait.as_nanos() as u64 <= t * (capacity - cost), "the queue is bounded");
            }
        }
    }

    /// No input makes any constructor, check or reconfiguration panic:
    /// errors are typed. Reconfiguration draws a new limit and window, and
    /// every decision's `remaining` stays within its limit.
    #[test]
    fn no_input_panics(
        algorithm in algorithm(),
        count in extreme_u64(),
        per_nanos in extreme_u64(),
        burst in proptest::option::of(extreme_u64()),
        new_count in extreme_u64(),
        new_per_nanos in extreme_u64(),
        new_burst in proptest::option::of(extreme_u64()),
        costs in proptest::collection::vec(extreme_u64(), 1..6),
        nows in proptest::collection::vec(extreme_u64(), 1..6),
        text in ".{0,12}",
    ) {
        let _ = text.parse::<Rate>();
        let _ = format!("{count}/{text}").parse::<Rate>();
        let rate = Rate::new(count, Duration::from_nanos(per_nanos));
        let new_rate = Rate::new(new_count, Duration::from_nanos(new_per_nanos));
        if let (Ok(rate), Ok(new_rate)) = (rate, new_rate) {
            prop_assert_eq!(rate.to_string().parse::<Rate>().map(|r| r.interval_nanos()), Ok(rate.interval_nanos()));
            let limit = Limit { algorithm, rate, burst };
            let new_limit = Limit { algorithm, rate: new_rate, burst: new_burst };
            if let Ok(l) = limit.build_with_clock(ManualClock::new()) {
                for (i, (&now, &cost)) in nows.iter().cycle().zip(costs.iter()).enumerate() {
                    if i == 2 {
                        let _ = l.set_limit(&new_limit);
                    }
                    for d in [l.check_n_at(now, cost), l.peek_n_at(now, cost)].into_iter().flatten() {
                        prop_assert!(d.remaining <= d.limit, "{:?}", d);
                    }
                    l.refund_at(now, cost);
                    let _ = l.check_n_at(now.saturating_add(1), cost);
                    let _ = l.is_idle_at(now);
                }
                let _ = l.set_limit(&limit);
            }
        }
    }

    /// Whatever the rate and burst, a limiter that builds never admits more
    /// than its limit at one instant (slow rates once saturated their
    /// arithmetic and admitted everything).
    #[test]
    fn no_configuration_admits_more_than_its_limit_at_once(
        algorithm in algorithm(),
        count in extreme_u64(),
        per_nanos in extreme_u64(),
        burst in proptest::option::of(1u64..50),
        now in extreme_u64(),
    ) {
        let Ok(rate) = Rate::new(count, Duration::from_nanos(per_nanos)) else { return Ok(()) };
        let burst = burst.filter(|_| matches!(algorithm, Algorithm::TokenBucket | Algorithm::LeakyBucket));
        let Ok(l) = (Limit { algorithm, rate, burst }).build_with_clock(ManualClock::new()) else {
            return Ok(());
        };
        let limit = l.limit();
        let tries = limit.min(50) + 5;
        let admitted = (0..tries).filter(|_| l.check_n_at(now, 1).is_ok_and(|d| d.allowed)).count();
        prop_assert!(admitted as u64 <= limit, "{} admitted of limit {}", admitted, limit);
    }
}

/// Values that reach the edges of `u64` arithmetic often, and any value.
fn extreme_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::MAX),
        Just(u64::MAX - 1),
        Just(1 << 63),
        Just(86_400_000_000_000),
        1u64..1000,
        any::<u64>(),
    ]
}

#[test]
fn invalid_configuration_is_a_typed_error() {
    assert_eq!(Rate::new(0, Duration::from_secs(1)), Err(LimitError::ZeroRate));
    assert_eq!(Rate::new(5, Duration::ZERO), Err(LimitError::ZeroRate));
    assert!(matches!(Rate::new(10, Duration::from_nanos(5)), Err(LimitError::RateTooFast { .. })));
    for bad in ["", "100", "/s", "ten/s", "-5/s", "5/fortnight", "5/0s", "NaN/s", "1.5/s", "0/s"] {
        assert!(bad.parse::<Rate>().is_err(), "{bad:?} parses");
    }
    assert!(matches!("abc".parse::<Rate>(), Err(LimitError::BadRate { .. })));
    let rate = Rate::per_second(5).unwrap();
    assert_eq!(TokenBucket::new(0, rate).unwrap_err(), LimitError::ZeroCapacity);
    assert_eq!(LeakyBucket::new(0, rate).unwrap_err(), LimitError::ZeroCapacity);
    let bucket = TokenBucket::new(3, rate).unwrap();
    assert_eq!(bucket.check_n(0).unwrap_err(), LimitError::ZeroCost);
    assert_eq!(
        bucket.check_n(4).unwrap_err(),
        LimitError::CostAboveCapacity { cost: 4, capacity: 3 }
    );
    let limit = Limit::new(Algorithm::FixedWindow, rate).with_burst(2);
    assert_eq!(limit.build().unwrap_err(), LimitError::BadBurst);
    let zero = Limit::new(Algorithm::TokenBucket, rate).with_burst(0);
    assert_eq!(zero.build().unwrap_err(), LimitError::ZeroCapacity);
    let built = Limit::new(Algorithm::TokenBucket, rate).build().unwrap();
    assert_eq!(
        built.set_limit(&Limit::new(Algorithm::FixedWindow, rate)),
        Err(LimitError::AlgorithmChanged)
    );
    // Every error explains itself.
    assert!(LimitError::ZeroRate.to_string().contains("rate"));
}

#[test]
fn rates_print_as_they_parse() {
    for text in
        ["100/s", "5000/h", "10/500ms", "3/m", "7/d", "1/250us", "3/9ns", "2/90m", "1/4294967296ns"]
    {
        let rate: Rate = text.parse().unwrap();
        assert_eq!(rate.to_string().parse::<Rate>().unwrap(), rate, "{text}");
    }
    assert_eq!("5000/h".parse::<Rate>().unwrap().to_string(), "5000/h");
    assert_eq!("10/500ms".parse::<Rate>().unwrap().to_string(), "10/500ms");
}

#[cfg(feature = "serde")]
#[test]
fn limits_load_from_config_and_bad_ones_are_errors() {
    let json = r#"[
        {"algorithm": "token_bucket", "rate": "100/s", "burst": 20},
        {"algorithm": "sliding_window_log", "rate": "5000/h"}
    ]"#;
    let limits: Vec<Limit> = serde_json::from_str(json).unwrap();
    assert_eq!(
        limits[0],
        Limit::new(Algorithm::TokenBucket, "100/s".parse().unwrap()).with_burst(20)
    );
    assert_eq!(limits[1].capacity(), 5000);
    assert_eq!(limits[1].window(), Duration::from_secs(3600));
    let back: Vec<Limit> = serde_json::from_str(&serde_json::to_string(&limits).unwrap()).unwrap();
    assert_eq!(back, limits);
    for bad in [
        r#"{"algorithm": "token_bucket", "rate": "0/s"}"#,
        r#"{"algorithm": "token_bucket", "rate": "fast"}"#,
        r#"{"algorithm": "magic", "rate": "1/s"}"#,
        r#"{"algorithm": "token_bucket", "rate": "1/s", "brust": 3}"#,
    ] {
        assert!(serde_json::from_str::<Limit>(bad).is_err(), "{bad}");
    }
}

#[test]
fn reconfiguration_keeps_what_is_in_use() {
    let clock = ManualClock::new();
    let bucket = TokenBucket::with_clock(4, Rate::per_second(1).unwrap(), clock.clone()).unwrap();
    assert!(bucket.check_n(4).unwrap().allowed);
    // Empty, refilling at 1/s; at 10/s the same debt comes back 10x faster.
    bucket.set_limit(4, Rate::per_second(10).unwrap()).unwrap();
    assert!(!bucket.check().allowed);
    clock.advance(Duration::from_millis(100));
    assert!(bucket.check().allowed);
    assert!(!bucket.check().allowed);
    // A full bucket stays full when it grows.
    clock.advance(Duration::from_secs(10));
    bucket.set_limit(8, Rate::per_second(10).unwrap()).unwrap();
    assert_eq!((0..10).filter(|_| bucket.check().allowed).count(), 8, "full stays full");
    assert_eq!(bucket.set_limit(0, Rate::per_second(1).unwrap()), Err(LimitError::ZeroCapacity));

    let window = Limit::new(Algorithm::FixedWindow, "2/s".parse().unwrap())
        .build_with_clock(clock.clone())
        .unwrap();
    assert_eq!((0..5).filter(|_| window.check().allowed).count(), 2);
    window.set_limit(&Limit::new(Algorithm::FixedWindow, "4/s".parse().unwrap())).unwrap();
    assert_eq!((0..5).filter(|_| window.check().allowed).count(), 2, "the count is kept");
}

#[test]
fn keyed_memory_stays_bounded_under_a_flood_of_new_keys() {
    let clock = ManualClock::new();
    let make = {
        let clock = clock.clone();
        move || TokenBucket::with_clock(2, Rate::per_second(1)?, clock.clone())
    };
    let keyed = Keyed::new(100, make).unwrap();
    // A legitimate client is known before the flood.
    assert!(keyed.check(&u64::MAX).unwrap().allowed);
    let mut refused = 0;
    for attacker_key in 0..100_000u64 {
        match keyed.check(&attacker_key) {
            Ok(d) => assert!(d.allowed),
            Err(LimitError::TooManyKeys { max: 100 }) => refused += 1,
            Err(other) => panic!("unexpected {other}"),
        }
        assert!(keyed.len() <= 100, "the cap holds");
    }
    assert_eq!(refused, 100_000 - 99, "only free slots were given out");
    // The known client still gets its own decisions.
    assert!(keyed.check(&u64::MAX).unwrap().allowed);
    assert!(!keyed.check(&u64::MAX).unwrap().allowed);
    // Once the attackers' buckets are full again, they are forgotten and
    // new keys get slots.
    // Sweeps are spaced one per max_keys / 8 refusals, so a new key gets
    // in within that many attempts.
    clock.advance(Duration::from_secs(2));
    let attempts = (0..=100 / 8).position(|_| keyed.check(&1_000_000).is_ok());
    assert!(attempts.is_some(), "a new key gets a slot after a sweep");
    assert_eq!(keyed.len(), 1, "idle keys were swept");
}

#[test]
fn keyed_works_with_every_algorithm_and_peeks_unknown_keys_freshly() {
    for algorithm in ALGORITHMS {
        let clock = ManualClock::new();
        let limit = Limit::new(algorithm, "3/s".parse().unwrap());
        let keyed = {
            let clock = clock.clone();
            Keyed::new(10, move || limit.build_with_clock(clock.clone())).unwrap()
        };
        assert!(keyed.peek_n(&"new", 1).unwrap().allowed);
        assert!(keyed.is_empty(), "{algorithm:?}: a peek stores nothing");
        assert_eq!((0..5).filter(|_| keyed.check(&"a").unwrap().allowed).count(), 3);
        keyed.refund(&"a", 1);
        assert!(keyed.check(&"a").unwrap().allowed, "{algorithm:?}: refunded");
        keyed
            .reconfigure(
                move || {
                    Limit::new(algorithm, "5/s".parse().unwrap())
                        .build_with_clock(ManualClock::new())
                },
                |l| drop(l.set_limit(&Limit::new(algorithm, "5/s".parse().unwrap()))),
            )
            .unwrap();
        assert_eq!(keyed.check(&"a").unwrap().limit, 5, "{algorithm:?}");
    }
    assert!(
        Keyed::<u8, TokenBucket>::new(0, || TokenBucket::new(1, Rate::per_second(1)?)).is_err()
    );
    assert!(
        Keyed::<u8, TokenBucket>::new(5, || TokenBucket::new(0, Rate::per_second(1)?)).is_err()
    );
}

/// A case the property test once found: a sliding counter whose window is
/// near `u64::MAX` nanoseconds, denied with a retry in the next window.
#[test]
fn huge_windows_do_not_overflow() {
    let rate =
        Rate::new(8_301_602_227_872_120_057, Duration::from_nanos(11_249_993_777_981_910_811))
            .unwrap();
    for algorithm in ALGORITHMS {
        let limiter = Limit::new(algorithm, rate).build_with_clock(ManualClock::new()).unwrap();
        let cost = limiter.limit() - 1;
        for now in [0, 1, u64::MAX / 2, u64::MAX - 1] {
            let _ = limiter.check_n_at(now, cost).unwrap();
            let _ = limiter.check_n_at(now, cost).unwrap();
            let _ = limiter.peek_n_at(now, limiter.limit()).unwrap();
        }
    }
}

/// Every in-process limiter has the same inherent methods (`check`,
/// `check_n`, `peek`, `peek_n`, `refund`), and peeking changes nothing:
/// a peek agrees with the check that follows it, for the leaky bucket too.
#[test]
fn every_limiter_has_the_same_methods_and_peeks_without_taking() {
    use sysblocks_ratelimit::{
        FixedWindow, LeakyBucket, ManualClock, Rate, SlidingWindowCounter, SlidingWindowLog,
        TokenBucket,
    };
    macro_rules! same_methods {
        ($limiter:expr) => {{
            let limiter = $limiter;
            for _ in 0..3 {
                let peeked = limiter.peek();
                let peeked_n = limiter.peek_n(2).unwrap();
                assert_eq!(limiter.peek(), peeked, "a peek takes nothing");
                assert_eq!(limiter.peek_n(2).unwrap(), peeked_n);
                let checked = limiter.check_n(2).unwrap();
                assert_eq!(checked.allowed, peeked_n.allowed);
                assert_eq!(checked.remaining, peeked_n.remaining);
                if checked.allowed {
                    limiter.refund(2);
                    assert!(limiter.peek_n(2).unwrap().allowed, "the refund gave it back");
                    let _ = limiter.check_n(2).unwrap();
                }
                let _ = limiter.check();
            }
            assert!(!limiter.check_n(4).unwrap().allowed, "4 of 4 used up");
        }};
    }
    let clock = ManualClock::new();
    let per = Duration::from_secs(10);
    same_methods!(TokenBucket::with_clock(4, Rate::new(4, per).unwrap(), clock.clone()).unwrap());
    same_methods!(LeakyBucket::with_clock(4, Rate::new(4, per).unwrap(), clock.clone()).unwrap());
    same_methods!(FixedWindow::with_clock(4, per, clock.clone()).unwrap());
    same_methods!(SlidingWindowLog::with_clock(4, per, clock.clone()).unwrap());
    same_methods!(SlidingWindowCounter::with_clock(4, per, clock.clone()).unwrap());
}

/// Configuration errors, bad requests and runtime failures are told apart.
#[test]
fn error_kinds_tell_configuration_requests_and_runtime_apart() {
    use sysblocks_ratelimit::{ErrorKind, Keyed, TokenBucket};
    let config = TokenBucket::new(0, Rate::per_second(1).unwrap()).unwrap_err();
    assert_eq!(config.kind(), ErrorKind::Config);
    assert_eq!("fast".parse::<Rate>().unwrap_err().kind(), ErrorKind::Config);
    let bucket = TokenBucket::new(2, Rate::per_second(1).unwrap()).unwrap();
    assert_eq!(bucket.check_n(3).unwrap_err().kind(), ErrorKind::Request);
    assert_eq!(bucket.check_n(0).unwrap_err().kind(), ErrorKind::Request);
    let keyed = Keyed::new(1, || TokenBucket::new(1, Rate::per_hour(1).unwrap())).unwrap();
    assert!(keyed.check(&"a").unwrap().allowed, "key a takes the one slot, and is busy");
    let full = keyed.check(&"b").unwrap_err();
    assert_eq!(full.kind(), ErrorKind::Runtime, "{full}");
    assert!(std::error::Error::source(&full).is_none());
}
