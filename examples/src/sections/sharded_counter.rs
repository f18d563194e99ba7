//! Tour section: a hot counter in process (one atomic vs striped) and, with
//! `--redis`, in Redis (one key vs sharded vs batched).

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use sysblocks_sharded_counter::{BatchedCounter, RedisShardedCounter, StripedCounter};

use super::TourOptions;
use crate::charts::{Chart, Kind, Series};
use crate::report::Section;

const THREADS: usize = 4;
const ADDS: i64 = 2_000_000;

fn rate(count: i64, took: Duration) -> String {
    let per_second = count as f64 / took.as_secs_f64();
    if per_second >= 1e6 {
        format!("{:.1} M/s", per_second / 1e6)
    } else {
        format!("{:.0} k/s", per_second / 1e3)
    }
}

/// Runs the section.
///
/// # Errors
/// When the Redis given with `--redis` fails.
pub fn run(options: &TourOptions) -> Result<(), Box<dyn Error>> {
    let section = Section::start("sharded-counter: one hot counter, many writers");
    let atomic = AtomicI64::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for _ in 0..ADDS {
                    atomic.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let atomic_took = started.elapsed();
    let striped = StripedCounter::new();
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| (0..ADDS).for_each(|_| striped.add(1)));
        }
    });
    let striped_took = started.elapsed();
    section.note(format!("{THREADS} threads x {ADDS} adds in process:"));
    section.row(
        "  one AtomicI64",
        format!(
            "total {}, {}",
            atomic.load(Ordering::Relaxed),
            rate(ADDS * THREADS as i64, atomic_took)
        ),
    );
    section.row(
        "  StripedCounter",
        format!(
            "total {}, {} ({} cells in use)",
            striped.sum(),
            rate(ADDS * THREADS as i64, striped_took),
            striped.cells_in_use()
        ),
    );

    if options.drawing() {
        options.chart(threads_chart);
    }
    let charts = options.clone();
    super::with_redis(options, &section, "the Redis-backed counters", async |section, url| {
        redis_part(section, url, &charts).await
    })?;
    section.finish();
    Ok(())
}

/// Increments per second against threads, one atomic and striped.
fn threads_chart() -> Chart {
    const PER_THREAD: i64 = 1_000_000;
    let mut atomic_rates = Vec::new();
    let mut striped_rates = Vec::new();
    for threads in [1usize, 2, 4, 8] {
        let atomic = AtomicI64::new(0);
        let started = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    for _ in 0..PER_THREAD {
                        atomic.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        let per_second = |took: Duration| (PER_THREAD * threads as i64) as f64 / took.as_secs_f64();
        atomic_rates.push((threads as f64, per_second(started.elapsed()) / 1e6));
        let striped = StripedCounter::new();
        let started = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| (0..PER_THREAD).for_each(|_| striped.add(1)));
            }
        });
        striped_rates.push((threads as f64, per_second(started.elapsed()) / 1e6));
    }
    Chart::new(
        "sharded-counter",
        "sharded-counter-threads.svg",
        "One hot counter: increments per second as threads grow",
        "threads",
        "million increments per second",
    )
    .with(Series::new("one AtomicI64", Kind::Line, atomic_rates))
    .with(Series::new("StripedCounter", Kind::Line, striped_rates))
    .caption(
        "Threads adding to one atomic fight over its cache line, so from two threads on \
         the total falls; the striped counter gives each thread a cell of its own and grows \
         with the cores (two on the machine that drew the committed chart), then holds.",
    )
}

async fn redis_part(
    section: &Section,
    url: &str,
    options: &TourOptions,
) -> Result<(), Box<dyn Error>> {
    const TASKS: i64 = 16;
    const PER_TASK: i64 = 5_000;
    let conn = redis::Client::open(url)?.get_connection_manager().await?;
    let run_id = std::process::id();
    section.note(format!("{TASKS} tasks x {PER_TASK} increments into Redis ({url}):"));

    let hot = format!("sysblocks:tour:{run_id}:hot");
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let (mut con, key) = (conn.clone(), hot.clone());
        tasks.spawn(async move {
            for _ in 0..PER_TASK {
                let _: i64 = redis::cmd("INCR").arg(&key).query_async(&mut con).await?;
            }
            Ok::<_, redis::RedisError>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let naive_took = started.elapsed();
    let mut con = conn.clone();
    let naive_total: i64 = redis::cmd("GET").arg(&hot).query_async(&mut con).await?;
    let _: i64 = redis::cmd("DEL").arg(&hot).query_async(&mut con).await?;
    section.row(
        "  INCR on one key",
        format!("total {naive_total}, {}", rate(TASKS * PER_TASK, naive_took)),
    );

    let name = format!("sysblocks:tour:{run_id}:views");
    let sharded = Arc::new(RedisShardedCounter::open(conn.clone(), &name, 16).await?);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let counter = sharded.clone();
        tasks.spawn(async move {
            for _ in 0..PER_TASK {
                counter.incr(1).await?;
            }
            Ok::<_, sysblocks_sharded_counter::CounterError>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let sharded_took = started.elapsed();
    let exact = sharded.get().await?;
    section.row(
        "  sharded, 16 shards",
        format!("total {exact}, {}", rate(TASKS * PER_TASK, sharded_took)),
    );
    for sample in [4, 8] {
        let estimate = sharded.get_approx(sample).await?;
        section.row(
            &format!("    approximate read, {sample} of 16"),
            format!("{estimate} ({:+.2}% off)", 100.0 * (estimate - exact) as f64 / exact as f64),
        );
    }
    sharded.delete().await?;

    let target = RedisShardedCounter::open(conn.clone(), &format!("{name}:batched"), 16).await?;
    let mut batched = BatchedCounter::start(target, Duration::from_millis(20), 1_000_000)?;
    let adds = TASKS * PER_TASK * 100;
    let started = Instant::now();
    for _ in 0..adds {
        batched.add(1);
    }
    batched.shutdown().await?;
    let batched_took = started.elapsed();
    let total = batched.target().get().await?;
    section.row(
        "  batched (write-behind)",
        format!(
            "total {total} of {adds} acknowledged, {} including the final flush",
            rate(adds, batched_took)
        ),
    );
    batched.target().delete().await?;
    let per_second = |n: i64, took: Duration| n as f64 / took.as_secs_f64() / 1e3;
    options.chart(|| {
        Chart::new(
            "sharded-counter",
            "sharded-counter-redis.svg",
            "A counter in Redis: thousands of increments per second",
            "1: INCR on one key, 2: sharded (16 keys), 3: batched write-behind",
            "thousand increments per second",
        )
        .log(false, true)
        .with(Series::new(
            "increments per second",
            Kind::Bars,
            vec![
                (1.0, per_second(TASKS * PER_TASK, naive_took)),
                (2.0, per_second(TASKS * PER_TASK, sharded_took)),
                (3.0, per_second(adds, batched_took)),
            ],
        ))
        .caption(
            "Every INCR is a round trip to one key; sharding spreads the keys (and, on a \
             Cluster, the nodes); batching adds in memory and sends one write per interval, \
             orders of magnitude faster for counts that may be a moment late.",
        )
    });
    Ok(())
}
