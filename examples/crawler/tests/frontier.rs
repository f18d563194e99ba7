//! The frontier's promises under random pushes, fetches and outcomes,
//! checked against a model of what each host was told: never two leases of
//! one host at once, never a host before its wait is over, every URL
//! queued is leased exactly once, none is lost.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use proptest::prelude::*;
use sysblocks_crawler::frontier::{
    FIRST_BACKOFF, Frontier, FrontierConfig, Lease, MAX_WAIT, Outcome, Pushed,
};

#[derive(Debug, Clone)]
enum Op {
    Push { host: u8, page: u16, priority: usize },
    Fetch,
    Complete { which: usize, outcome: u8 },
    Wait { ms: u32 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..6, 0u16..40, 0usize..4).prop_map(|(host, page, priority)| Op::Push { host, page, priority }),
        3 => Just(Op::Fetch),
        3 => (0usize..8, 0u8..10).prop_map(|(which, outcome)| Op::Complete { which, outcome }),
        2 => (0u32..120_000).prop_map(|ms| Op::Wait { ms }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn hosts_are_served_politely_and_nothing_is_lost(
        ops in proptest::collection::vec(op(), 1..300),
        active in 1usize..4,
    ) {
        let mut f = Frontier::new(FrontierConfig {
            expected_urls: 10_000,
            false_positive_rate: 1e-9,
            active_hosts: active,
            ..FrontierConfig::default()
        }).unwrap();
        let mut now = Duration::ZERO;
        let mut queued: HashSet<String> = HashSet::new();
        let mut leased: HashSet<String> = HashSet::new();
        let mut out: Vec<Lease> = Vec::new();
        // When each host may be asked again, as the model knows it.
        let mut allowed: HashMap<std::sync::Arc<str>, Duration> = HashMap::new();
        let mut backoff: HashMap<std::sync::Arc<str>, Duration> = HashMap::new();
        let mut step = |f: &mut Frontier, op: Op, now: &mut Duration, out: &mut Vec<Lease>| -> Result<(), TestCaseError> {
            match op {
                Op::Push { host, page, priority } => {
                    let url = format!("http://h{host}.test/p{page}");
                    let pushed = f.push(&url, 0, priority);
                    prop_assert_eq!(pushed == Pushed::Queued, queued.insert(url.clone()), "{}", url);
                }
                Op::Fetch => {
                    if let Some(lease) = f.next(*now) {
                        prop_assert!(!out.iter().any(|l| l.host == lease.host), "two leases of {}", lease.host);
                        let at = allowed.get(&lease.host).copied().unwrap_or(Duration::ZERO);
                        prop_assert!(*now >= at, "{} asked at {:?} before {:?}", lease.host, now, at);
                        prop_assert!(leased.insert(lease.entry.url.to_string()), "leased twice");
                        out.push(lease);
                    }
                }
                Op::Complete { which, outcome } => {
                    if !out.is_empty() {
                        let lease = out.remove(which % out.len());
                        let (outcome, wait) = match outcome {
                            0..=5 => {
                                backoff.remove(&lease.host);
                                (Outcome::Done, Duration::from_secs(1))
                            }
                            6 | 7 => (Outcome::RetryAfter(Duration::from_secs(30)), Duration::from_secs(30)),
                            _ => {
                                let b = backoff.get(&lease.host).map_or(FIRST_BACKOFF, |b| (*b * 2).min(MAX_WAIT));
                                backoff.insert(lease.host.clone(), b);
                                (Outcome::Backoff { jitter: 0.0 }, b)
                            }
                        };
                        f.complete(&lease, *now, outcome);
                        allowed.insert(lease.host.clone(), *now + wait);
                    }
                }
                Op::Wait { ms } => *now += Duration::from_millis(u64::from(ms)),
            }
            Ok(())
        };
        for op in ops {
            step(&mut f, op, &mut now, &mut out)?;
        }
        // Drain: finish what is out, then take everything, politely.
        let mut guard = 0;
        while !out.is_empty() || !f.is_empty() {
            guard += 1;
            prop_assert!(guard < 100_000, "the frontier does not drain");
            if !out.is_empty() {
                step(&mut f, Op::Complete { which: 0, outcome: 0 }, &mut now, &mut out)?;
                continue;
            }
            match f.next_ready_at() {
                Some(at) => {
                    now = now.max(at);
                    step(&mut f, Op::Fetch, &mut now, &mut out)?;
                }
                None => prop_assert!(false, "{} queued but nothing ready", f.len()),
            }
        }
        prop_assert_eq!(leased, queued, "every queued URL leased exactly once");
    }
}
