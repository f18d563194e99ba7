//! The state machine is written twice: `MemoryBackend` in Rust and
//! `RedisBackend` in Lua. This drives both (and the Redis Cluster) with the
//! same seeded sequence of submit / claim / ack / fail / renew / release /
//! reap / replay / time steps, with stale tokens, unknown parents,
//! duplicate ids and idempotency keys among them, and requires every result
//! and the final state of every task to be equal.
#![cfg(feature = "redis")]

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sysblocks_scheduler::{
    AttemptLimits, Backend, MemoryBackend, NewTask, OnParentFailure, RedisBackend, TaskId,
};
use sysblocks_testkit::{Cluster, Redis};

const START: u64 = 1_700_000_000_000;

/// One operation, with everything it needs drawn from the seed.
#[derive(Debug, Clone)]
enum Op {
    Submit(Vec<NewTask>),
    Claim {
        lease_ms: u64,
        max: usize,
    },
    Renew {
        lease: usize,
        stale: bool,
        lease_ms: u64,
    },
    Ack {
        lease: usize,
        stale: bool,
    },
    /// Several acks in one call: repeats and stale tokens among them.
    AckMany(Vec<(usize, bool)>),
    /// A worker's turn: acks (picked as for `AckMany`, resolved to leases
    /// before any backend runs it), then a claim.
    AckAndClaim {
        picks: Vec<(usize, bool)>,
        acks: Vec<(TaskId, u64)>,
        lease_ms: u64,
        max: usize,
    },
    Fail {
        lease: usize,
        stale: bool,
        retry_in: Option<u64>,
    },
    Release {
        lease: usize,
        stale: bool,
    },
    Reap,
    Replay(TaskId),
    Info(TaskId),
    Counts,
    DeadLetters(usize),
    Advance(u64),
}

/// What the three backends are driven through, so that one loop serves all.
async fn apply<B: Backend>(
    backend: &B,
    op: &Op,
    now: u64,
    leases: &[(TaskId, u64)],
    limits: &AttemptLimits,
) -> String {
    let lease = |i: usize, stale: bool| pick(leases, i, stale);
    match op {
        Op::Submit(tasks) => format!("{:?}", backend.submit(tasks.clone(), now).await),
        Op::Claim { lease_ms, max } => {
            format!("{:?}", backend.claim(now, *lease_ms, *max).await)
        }
        Op::Renew { lease: i, stale, lease_ms } => {
            let (id, token) = lease(*i, *stale);
            format!("{:?}", backend.renew(&id, token, now, *lease_ms).await)
        }
        Op::Ack { lease: i, stale } => {
            let (id, token) = lease(*i, *stale);
            format!("{:?}", backend.ack(&id, token, now).await)
        }
        Op::AckMany(picks) => {
            let acks: Vec<(TaskId, u64)> =
                picks.iter().map(|&(i, stale)| lease(i, stale)).collect();
            format!("{:?}", backend.ack_many(&acks, now).await)
        }
        Op::AckAndClaim { acks, lease_ms, max, .. } => {
            format!("{:?}", backend.ack_and_claim(acks, now, *lease_ms, *max).await)
        }
        Op::Fail { lease: i, stale, retry_in } => {
            let (id, token) = lease(*i, *stale);
            let retry_at = retry_in.map(|d| now + d);
            format!("{:?}", backend.fail(&id, token, now, "boom", retry_at).await)
        }
        Op::Release { lease: i, stale } => {
            let (id, token) = lease(*i, *stale);
            format!("{:?}", backend.release(&id, token, now).await)
        }
        Op::Reap => format!("{:?}", backend.reap(now, limits).await),
        Op::Replay(id) => format!("{:?}", backend.replay(id, now).await),
        Op::Info(id) => format!("{:?}", backend.info(id).await),
        Op::Counts => format!("{:?}", backend.counts().await),
        Op::DeadLetters(limit) => format!("{:?}", backend.dead_letters(*limit).await),
        Op::Advance(_) => String::new(),
    }
}

/// Lease `i` (wrapping), its token made stale if asked.
fn pick(leases: &[(TaskId, u64)], i: usize, stale: bool) -> (TaskId, u64) {
    let (id, token) = leases[i % leases.len()].clone();
    (id, if stale { token + 1_000 } else { token })
}

/// The next operation, given the ids submitted so far and the leases held.
fn next_op(rng: &mut SmallRng, ids: &mut Vec<TaskId>, leases: usize, now: u64) -> Op {
    let known = |rng: &mut SmallRng, ids: &[TaskId]| {
        if ids.is_empty() || rng.random_range(0..10) == 0 {
            TaskId::from("nobody")
        } else {
            ids[rng.random_range(0..ids.len())].clone()
        }
    };
    match rng.random_range(0..100) {
        0..=17 => {
            let mut tasks: Vec<NewTask> = Vec::new();
            for _ in 0..rng.random_range(1..=3) {
                let id = if !ids.is_empty() && rng.random_range(0..15) == 0 {
                    ids[rng.random_range(0..ids.len())].clone() // a duplicate id
                } else {
                    TaskId(format!("t{}", ids.len() + tasks.len()))
                };
                let mut parents = Vec::new();
                if rng.random_range(0..3) == 0 {
                    // A parent submitted earlier, in this batch, or unknown.
                    let pool: Vec<TaskId> =
                        ids.iter().chain(tasks.iter().map(|t| &t.id)).cloned().collect();
                    parents.push(known(rng, &pool));
                }
                let idempotency = (rng.random_range(0..5) == 0)
                    .then(|| (format!("k{}", rng.random_range(0..3)), 400));
                tasks.push(NewTask {
                    id,
                    name: if rng.random_range(0..2) == 0 { "a" } else { "b" }.to_string(),
                    payload: format!("{}", rng.random_range(0..100)),
                    priority: rng.random_range(0..3),
                    run_at: now + [0, 0, 50, 300][rng.random_range(0..4)],
                    parents,
                    on_parent_failure: if rng.random_range(0..2) == 0 {
                        OnParentFailure::Cancel
                    } else {
                        OnParentFailure::Fail
                    },
                    idempotency,
                });
            }
            for t in &tasks {
                if !ids.contains(&t.id) {
                    ids.push(t.id.clone());
                }
            }
            Op::Submit(tasks)
        }
        18..=35 => {
            Op::Claim { lease_ms: rng.random_range(100..=600), max: rng.random_range(0..=3) }
        }
        36..=42 if leases > 0 => {
            Op::Ack { lease: rng.random_range(0..leases), stale: rng.random_range(0..6) == 0 }
        }
        43..=45 if leases > 0 => Op::AckMany(
            (0..rng.random_range(1..=4))
                .map(|_| (rng.random_range(0..leases), rng.random_range(0..6) == 0))
                .collect(),
        ),
        46..=47 => Op::AckAndClaim {
            picks: (0..rng.random_range(0..=3) * usize::from(leases > 0))
                .map(|_| (rng.random_range(0..leases), rng.random_range(0..6) == 0))
                .collect(),
            acks: Vec::new(),
            lease_ms: rng.random_range(100..=600),
            max: rng.random_range(0..=3),
        },
        48..=59 if leases > 0 => Op::Fail {
            lease: rng.random_range(0..leases),
            stale: rng.random_range(0..6) == 0,
            retry_in: (rng.random_range(0..3) > 0).then(|| rng.random_range(1..=400)),
        },
        60..=65 if leases > 0 => Op::Renew {
            lease: rng.random_range(0..leases),
            stale: rng.random_range(0..4) == 0,
            lease_ms: rng.random_range(100..=600),
        },
        66..=69 if leases > 0 => {
            Op::Release { lease: rng.random_range(0..leases), stale: rng.random_range(0..4) == 0 }
        }
        70..=75 => Op::Reap,
        76..=79 => Op::Replay(known(rng, ids)),
        80..=83 => Op::Info(known(rng, ids)),
        84..=86 => Op::Counts,
        87..=88 => Op::DeadLetters(rng.random_range(1..=5)),
        _ => Op::Advance(rng.random_range(0..=500)),
    }
}

/// Leases taken by a claim's reply, read back from its debug form would be
/// fragile: the memory backend's own reply gives them.
async fn claim_leases(
    memory: &MemoryBackend,
    now: u64,
    lease_ms: u64,
    max: usize,
) -> (String, Vec<(TaskId, u64)>) {
    let reply = memory.claim(now, lease_ms, max).await;
    let leases = reply
        .as_ref()
        .map(|(claimed, _)| claimed.iter().map(|c| (c.id.clone(), c.token)).collect())
        .unwrap_or_default();
    (format!("{reply:?}"), leases)
}

async fn differential(redis: &RedisBackend, cluster: &RedisBackend, seed: u64, steps: usize) {
    let memory = MemoryBackend::new();
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut limits = AttemptLimits::new(3);
    limits.set("b", 2);
    let mut now = START;
    let mut ids: Vec<TaskId> = Vec::new();
    let mut leases: Vec<(TaskId, u64)> = Vec::new();
    for step in 0..steps {
        let mut op = next_op(&mut rng, &mut ids, leases.len(), now);
        if let Op::AckAndClaim { picks, acks, .. } = &mut op {
            *acks = picks.iter().map(|&(i, stale)| pick(&leases, i, stale)).collect();
        }
        let ours = match &op {
            Op::Advance(ms) => {
                now += ms;
                continue;
            }
            Op::Claim { lease_ms, max } => {
                let (reply, taken) = claim_leases(&memory, now, *lease_ms, *max).await;
                leases.extend(taken);
                reply
            }
            Op::AckAndClaim { acks, lease_ms, max, .. } => {
                let turn = memory.ack_and_claim(acks, now, *lease_ms, *max).await;
                if let Ok(turn) = &turn {
                    leases.extend(turn.claimed.iter().map(|c| (c.id.clone(), c.token)));
                }
                format!("{turn:?}")
            }
            _ => apply(&memory, &op, now, &leases, &limits).await,
        };
        if std::env::var("DIFF_TRACE").is_ok_and(|v| v == seed.to_string()) {
            eprintln!("TRACE {step} now={now} {op:?} => {ours}");
        }
        let on_redis = apply(redis, &op, now, &leases, &limits).await;
        let on_cluster = apply(cluster, &op, now, &leases, &limits).await;
        assert_eq!(ours, on_redis, "seed {seed} step {step}: {op:?} (memory vs Redis)");
        assert_eq!(ours, on_cluster, "seed {seed} step {step}: {op:?} (memory vs Cluster)");
        // A lease that was used up (acked, failed, released) stays in the
        // list: presenting it again is a stale token, which is worth testing.
        if leases.len() > 12 {
            leases.remove(0);
        }
    }
    // The final state of every task ever submitted, and the totals.
    for id in &ids {
        let ours = format!("{:?}", memory.info(id).await);
        assert_eq!(ours, format!("{:?}", redis.info(id).await), "seed {seed}: final {id:?}");
        assert_eq!(ours, format!("{:?}", cluster.info(id).await), "seed {seed}: final {id:?}");
    }
    let counts = format!("{:?}", memory.counts().await);
    assert_eq!(counts, format!("{:?}", redis.counts().await), "seed {seed}: counts");
    assert_eq!(counts, format!("{:?}", cluster.counts().await), "seed {seed}: counts");
    let dead = format!("{:?}", memory.dead_letters(1_000).await);
    assert_eq!(dead, format!("{:?}", redis.dead_letters(1_000).await), "seed {seed}: dead");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_redis_and_cluster_backends_agree_on_random_operations() {
    let redis = Redis::new();
    let cluster = Cluster::new();
    for seed in 0..32 {
        let queue = format!("diff{seed}");
        let on_redis = RedisBackend::new(
            redis.connection_manager().await,
            &format!("{}{queue}", redis.prefix()),
        )
        .unwrap();
        let on_cluster =
            RedisBackend::new(cluster.connection().await, &format!("{}{queue}", cluster.prefix()))
                .unwrap();
        differential(&on_redis, &on_cluster, seed, 500).await;
    }
}

fn task(id: &str, parents: &[&str], key: Option<&str>) -> NewTask {
    NewTask {
        id: TaskId::from(id),
        name: "a".to_string(),
        payload: "null".to_string(),
        priority: 0,
        run_at: START,
        parents: parents.iter().map(|&p| TaskId::from(p)).collect(),
        on_parent_failure: OnParentFailure::Cancel,
        idempotency: key.map(|k| (k.to_string(), 60_000)),
    }
}

/// Found by the differential test: the memory backend let a task be its own
/// parent (it then waited for itself forever), and a child of a task that
/// its idempotency key kept out ran at once (memory) or waited forever
/// (Redis); it waits for the task that runs instead.
async fn parents_resolve_the_same_way<B: Backend>(backend: &B) {
    let own = backend.submit(vec![task("self", &["self"], None)], START).await;
    assert!(matches!(own, Err(sysblocks_scheduler::SchedulerError::UnknownParent { .. })));
    backend.submit(vec![task("first", &[], Some("k"))], START).await.unwrap();
    let reply = backend
        .submit(vec![task("again", &[], Some("k")), task("child", &["again"], None)], START)
        .await
        .unwrap();
    assert_eq!(reply[0], sysblocks_scheduler::Submitted::Duplicate(TaskId::from("first")));
    let (claimed, _) = backend.claim(START, 1_000, 10).await.unwrap();
    let ids: Vec<&str> = claimed.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["first"], "the child waits for the task that runs");
    backend.ack(&claimed[0].id, claimed[0].token, START).await.unwrap();
    let (claimed, _) = backend.claim(START, 1_000, 10).await.unwrap();
    let ids: Vec<&str> = claimed.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["child"]);
}

#[tokio::test]
async fn parents_resolve_the_same_way_on_every_backend() {
    let redis = Redis::new();
    let cluster = Cluster::new();
    parents_resolve_the_same_way(&MemoryBackend::new()).await;
    let q = format!("{}parents", redis.prefix());
    parents_resolve_the_same_way(&RedisBackend::new(redis.connection_manager().await, &q).unwrap())
        .await;
    let q = format!("{}parents", cluster.prefix());
    parents_resolve_the_same_way(&RedisBackend::new(cluster.connection().await, &q).unwrap()).await;
}
