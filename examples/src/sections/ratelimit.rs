//! Tour section: every algorithm against the same burst on a manual clock,
//! the seeds' worked examples, keyed limits under a flood of keys, and with
//! `--redis` one limit shared through Redis.

use std::error::Error;
use std::time::Duration;

use sysblocks_ratelimit::{
    Algorithm, FixedWindow, Keyed, LeakyBucket, Limit, LimitError, Limiter, ManualClock, Rate,
    RedisLimiter, SlidingCounterState, SlidingWindowCounter, SlidingWindowLog, TokenBucket,
    check_all, sliding_counter_step,
};

use super::TourOptions;
use crate::charts::{Chart, Kind, Series};
use crate::report::Section;

/// Runs the section.
///
/// # Errors
/// Only on a bug (the limits here are valid).
pub fn run(options: &TourOptions) -> Result<(), Box<dyn Error>> {
    let section = Section::start("ratelimit: five algorithms, keyed, all-or-nothing, Redis");
    section.note("token bucket of 10 refilling 2/s:");
    let clock = ManualClock::new();
    let bucket = TokenBucket::with_clock(10, Rate::per_second(2)?, clock.clone())?;
    let burst: Vec<_> = (0..11).map(|_| bucket.check()).collect();
    let admitted = burst.iter().filter(|d| d.allowed).count();
    section.row("11 requests at once", format!("{admitted} admitted, {} denied", 11 - admitted));
    if let Some(denied) = burst.iter().find(|d| !d.allowed) {
        section.row(
            "  the 11th",
            format!(
                "retry after {:?}, full again after {:?}",
                denied.retry_after.unwrap_or_default(),
                denied.reset_after
            ),
        );
    }
    clock.advance(Duration::from_secs(5));
    let later = (0..11).filter(|_| bucket.check().allowed).count();
    section.row("5 s later, 11 more", format!("{later} admitted"));

    // Every window algorithm against the same burst: 15 requests at once,
    // limit 10 per second.
    let second = Duration::from_secs(1);
    let fixed = FixedWindow::with_clock(10, second, clock.clone())?;
    let log = SlidingWindowLog::with_clock(10, second, clock.clone())?;
    let counter = SlidingWindowCounter::with_clock(10, second, clock.clone())?;
    let token = TokenBucket::with_clock(10, Rate::per_second(10)?, clock.clone())?;
    let leaky = LeakyBucket::with_clock(10, Rate::per_second(10)?, clock.clone())?;
    let count = |f: &dyn Fn() -> bool| (0..15).filter(|_| f()).count();
    section.note("15 requests at once, limit 10 per second:");
    section.row("  token bucket", format!("{} admitted", count(&|| token.check().allowed)));
    let waits: Vec<_> = (0..15).map(|_| leaky.check()).filter(|d| d.allowed).collect();
    section.row(
        "  leaky bucket (shaper)",
        format!(
            "{} queued, leaving {:?} apart, the last after {:?}",
            waits.len(),
            waits.get(1).map(|d| d.wait).unwrap_or_default(),
            waits.last().map(|d| d.wait).unwrap_or_default()
        ),
    );
    section.row("  fixed window", format!("{} admitted", count(&|| fixed.check().allowed)));
    section.row("  sliding window log", format!("{} admitted", count(&|| log.check().allowed)));
    section.row(
        "  sliding window counter",
        format!("{} admitted", count(&|| counter.check().allowed)),
    );

    // The sliding counter's worked example: 100 per minute, 80 last
    // minute, 30 so far, half way through.
    let minute = 60_000_000_000u64;
    let state = SlidingCounterState { window: 1, current: 30, previous: 80 };
    let (d, _) = sliding_counter_step(state, minute + minute / 2, minute, 100, 1);
    section.row(
        "sliding counter 80 prev, 30 now, 50%",
        format!("estimate 70: {}", if d.allowed { "admitted" } else { "denied" }),
    );

    // Two limits at once: 5 per second and 8 per minute, all or nothing.
    let per_second = TokenBucket::with_clock(5, Rate::per_second(5)?, clock.clone())?;
    let per_minute = SlidingWindowLog::with_clock(8, Duration::from_secs(60), clock.clone())?;
    let both: [&dyn Limiter; 2] = [&per_second, &per_minute];
    let mut admitted = 0;
    for _ in 0..4 {
        admitted += (0..5).filter(|_| check_all(&both, 1).is_ok_and(|d| d.allowed)).count();
        clock.advance(Duration::from_secs(1));
    }
    section.row(
        "5/s and 8/min, 4 bursts of 5 (1 s apart)",
        format!("{admitted} admitted: the minute limit binds, no token is lost on a denial"),
    );

    // Keyed: a flood of new keys cannot grow memory past the cap.
    let keyed = {
        let clock = clock.clone();
        Keyed::new(1_000, move || TokenBucket::with_clock(5, Rate::per_second(1)?, clock.clone()))?
    };
    let mut refused = 0;
    for key in 0..100_000u64 {
        if let Err(LimitError::TooManyKeys { .. }) = keyed.check(&key) {
            refused += 1;
        }
    }
    section.row(
        "keyed, 100,000 new keys, cap 1,000",
        format!("{} keys held, {refused} refused", keyed.len()),
    );
    clock.advance(Duration::from_secs(5));
    section.row("  5 s later (buckets full again)", format!("{} idle keys swept", keyed.sweep()));

    if options.drawing() {
        boundary_charts(options)?;
    }
    super::with_redis(options, &section, "a limit shared in Redis", redis_part)?;
    section.finish();
    Ok(())
}

/// Seconds at which the bursty trace's requests arrive: 12 in the last
/// 100 ms of the first second and 12 in the first 100 ms of the next
/// (straddling a window boundary), a few steady ones, and a last burst
/// of 12.
fn bursty_trace() -> Vec<f64> {
    let burst = |from: f64| (0..12).map(move |i| from + f64::from(i) * 0.0075);
    let mut trace: Vec<f64> = burst(0.90).collect();
    trace.extend(burst(1.00));
    trace.extend([1.40, 1.60, 1.80, 2.10, 2.30]);
    trace.extend(burst(2.50));
    trace
}

/// The five algorithms (10 per second) against the bursty trace, and the
/// leaky bucket's departures: two charts.
fn boundary_charts(options: &TourOptions) -> Result<(), Box<dyn Error>> {
    let trace = bursty_trace();
    let second = Duration::from_secs(1);
    let clock = ManualClock::new();
    let fixed = FixedWindow::with_clock(10, second, clock.clone())?;
    let log = SlidingWindowLog::with_clock(10, second, clock.clone())?;
    let counter = SlidingWindowCounter::with_clock(10, second, clock.clone())?;
    let token = TokenBucket::with_clock(10, Rate::per_second(10)?, clock.clone())?;
    let leaky = LeakyBucket::with_clock(10, Rate::per_second(10)?, clock.clone())?;
    let limiters: [(&str, &dyn Limiter); 5] = [
        ("fixed window", &fixed),
        ("sliding window log", &log),
        ("sliding window counter", &counter),
        ("token bucket", &token),
        ("leaky bucket (queued)", &leaky),
    ];
    let mut admitted = vec![vec![(0.0, 0.0)]; limiters.len()];
    let mut arrivals = vec![(0.0, 0.0)];
    let mut departures = Vec::new();
    let mut now = 0.0;
    for (n, &at) in trace.iter().enumerate() {
        clock.advance(Duration::from_secs_f64(at - now));
        now = at;
        arrivals.push((at, (n + 1) as f64));
        for (i, (_, limiter)) in limiters.iter().enumerate() {
            let decision = limiter.check_n(1)?;
            let so_far = admitted[i].last().map_or(0.0, |p| p.1);
            admitted[i].push((at, so_far + f64::from(u8::from(decision.allowed))));
            if i == 4 && decision.allowed {
                departures.push(at + decision.wait.as_secs_f64());
            }
        }
    }
    let end = 3.0;
    let mut chart = Chart::new(
        "ratelimit",
        "ratelimit-boundary.svg",
        "Admitted requests, limit 10 per second, bursts at a window boundary",
        "time (s)",
        "requests admitted so far",
    )
    .with(Series::new("arrivals", Kind::Reference, arrivals.clone()));
    for ((name, _), mut points) in limiters.iter().zip(admitted) {
        let last = points.last().map_or(0.0, |p| p.1);
        points.push((end, last));
        chart = chart.with(Series::new(format!("{name}: {last}"), Kind::Line, points));
    }
    options.chart(|| {
        chart.caption(
            "Around t = 1 s the fixed window admits 20 requests in 200 ms, twice its limit, \
             because the counter resets at the boundary; the sliding log never admits more \
             than 10 in any second, and the sliding counter's estimate keeps it close.",
        )
    });
    departures.sort_by(f64::total_cmp);
    let end = departures.last().map_or(end, |last| last.max(end));
    let mut departed: Vec<(f64, f64)> = vec![(0.0, 0.0)];
    departed.extend(departures.iter().enumerate().map(|(n, at)| (*at, (n + 1) as f64)));
    let last = departed.last().map_or(0.0, |p| p.1);
    departed.push((end, last));
    arrivals.push((end, trace.len() as f64));
    options.chart(|| {
        Chart::new(
            "ratelimit",
            "ratelimit-leaky.svg",
            "The leaky bucket as a shaper: arrivals and departures",
            "time (s)",
            "requests so far",
        )
        .with(Series::new("arrivals", Kind::Line, arrivals))
        .with(Series::new("departures (queued requests)", Kind::Line, departed))
        .caption(
            "Bursts arrive at once but leave the leaky bucket evenly, one every 100 ms; \
             a burst larger than the queue of 10 is refused rather than delayed.",
        )
    });
    Ok(())
}

/// Four "servers" (tasks, each with its own limiter object) share one limit
/// of 100 per hour through Redis: 400 attempts, 100 admitted.
async fn redis_part(section: &Section, url: &str) -> Result<(), Box<dyn Error>> {
    let connection = redis::Client::open(url)?.get_connection_manager().await?;
    let limit = Limit::new(Algorithm::SlidingWindowLog, Rate::per_hour(100)?);
    let prefix = format!("sysblocks-tour:{}:", std::process::id());
    let mut servers = Vec::new();
    for _ in 0..4 {
        let limiter = RedisLimiter::new(connection.clone(), limit, &prefix)?;
        servers.push(tokio::spawn(async move {
            let mut admitted = 0u32;
            for _ in 0..100 {
                if limiter.check("tenant-7").await?.allowed {
                    admitted += 1;
                }
            }
            Ok::<_, LimitError>(admitted)
        }));
    }
    let mut admitted = 0;
    for server in servers {
        admitted += server.await??;
    }
    section.row("Redis: 4 servers x 100 attempts, 100/h", format!("{admitted} admitted in total"));
    let mut con = connection;
    let key = format!("{prefix}{{tenant-7}}");
    let _: () = redis::cmd("DEL").arg(&key).arg(format!("{key}:seq")).query_async(&mut con).await?;
    Ok(())
}
