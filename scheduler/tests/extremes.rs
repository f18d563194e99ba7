//! No input to the policy and task builders panics: retry delays for any
//! attempt and any durations stay within the cap, and task builders take
//! any time (the backends refuse what they cannot store, with a typed
//! error).

use std::time::Duration;

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use sysblocks_scheduler::{Jitter, RetryPolicy, Task};

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::MAX),
        Just(Duration::from_nanos(1)),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        any::<u64>().prop_map(Duration::from_millis),
    ]
}

fn attempt() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), Just(1), Just(u32::MAX), Just(31), Just(32), Just(63), any::<u32>()]
}

proptest! {
    #[test]
    fn retry_delays_never_panic_and_stay_within_the_cap(
        base in duration(),
        cap in duration(),
        max in attempt(),
        attempt in attempt(),
        previous in duration(),
        seed in any::<u64>(),
    ) {
        let mut rng = SmallRng::seed_from_u64(seed);
        // Each policy with its cap (Sidekiq's is a week).
        let mut policies = vec![(RetryPolicy::sidekiq(), Duration::from_secs(7 * 86_400))];
        if let Ok(p) = RetryPolicy::new(base, cap, max) {
            for jitter in [Jitter::None, Jitter::Full, Jitter::Equal, Jitter::Decorrelated] {
                policies.push((p.with_jitter(jitter), cap));
            }
        } else {
            prop_assert!(max == 0 || base.is_zero() || cap < base);
        }
        for (policy, cap) in policies {
            let delay = policy.delay_with(attempt, previous, &mut rng);
            prop_assert!(delay <= cap, "{:?} over the cap {:?}", delay, cap);
            let _ = policy.exponential(attempt);
            let _ = policy.should_retry(attempt);
        }
    }

    #[test]
    fn task_builders_take_any_time(delay in duration(), at in any::<u64>(), priority in any::<u8>()) {
        let _ = Task::new("t", &1).unwrap().after(delay).priority(priority);
        let _ = Task::new("t", &1).unwrap().at(at);
    }
}
