//! Waiting for room on tokio's paused clock: fairness, cancellation,
//! jitter bounds, and the leaky bucket's departures.
#![cfg(feature = "async")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sysblocks_ratelimit::{
    AsyncLimiter, LeakyBucket, LimitError, Limiter, Rate, TokenBucket, TokioClock,
};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn until_ready_serves_waiters_in_arrival_order() {
    let bucket = TokenBucket::with_clock(4, Rate::per_second(10).unwrap(), TokioClock::new());
    let limiter = Arc::new(AsyncLimiter::new(bucket.unwrap()));
    assert!(limiter.until_n_ready(4).await.unwrap().allowed); // now empty
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    // A big request first, then small ones: the big one is not starved.
    for (i, cost) in [(0, 4u64), (1, 1), (2, 1), (3, 1)] {
        let (limiter, order) = (limiter.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let _ = limiter.until_n_ready(cost).await.unwrap();
            order.lock().unwrap().push(i);
        }));
        tokio::task::yield_now().await; // arrive in this order
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);
    assert!(matches!(
        limiter.until_n_ready(5).await,
        Err(LimitError::CostAboveCapacity { cost: 5, capacity: 4 })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_wait_takes_nothing() {
    let bucket = TokenBucket::with_clock(1, Rate::per_second(1).unwrap(), TokioClock::new());
    let limiter = AsyncLimiter::new(bucket.unwrap());
    let _ = limiter.until_ready().await;
    // Give up after 100 ms of a 1 s wait.
    let waited = tokio::time::timeout(Duration::from_millis(100), limiter.until_ready()).await;
    assert!(waited.is_err());
    let start = Instant::now();
    let _ = limiter.until_ready().await;
    assert_eq!(start.elapsed(), Duration::from_millis(900), "the token came back on schedule");
}

#[tokio::test(start_paused = true)]
async fn jitter_stays_within_its_bound() {
    let bucket = TokenBucket::with_clock(1, Rate::per_second(10).unwrap(), TokioClock::new());
    let limiter = AsyncLimiter::new(bucket.unwrap()).with_jitter(Duration::from_millis(50));
    let _ = limiter.until_ready().await;
    let mut spread = Vec::new();
    for _ in 0..50 {
        let start = Instant::now();
        let _ = limiter.until_ready().await;
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(100) - Duration::from_millis(1));
        assert!(waited <= Duration::from_millis(150) + Duration::from_millis(1), "{waited:?}");
        spread.push(waited);
    }
    spread.sort();
    assert!(spread[0] < spread[49], "jitter varies the waits");
}

/// The largest jitters are taken, not a panic (adding one to the wait
/// once overflowed): the wait just gets very long.
#[tokio::test(start_paused = true)]
async fn the_largest_jitters_wait_without_a_panic() {
    for jitter in [Duration::MAX, Duration::from_nanos(u64::MAX)] {
        let bucket = TokenBucket::with_clock(1, Rate::per_second(10).unwrap(), TokioClock::new());
        let limiter = AsyncLimiter::new(bucket.unwrap()).with_jitter(jitter);
        assert!(limiter.until_ready().await.allowed, "room at once: no wait, no jitter");
        // The next one waits 100 ms plus a draw from up to 584 years.
        let waited = tokio::time::timeout(Duration::from_secs(1), limiter.until_ready()).await;
        assert!(waited.is_err(), "{jitter:?}: still waiting after a second");
    }
}

#[tokio::test(start_paused = true)]
async fn leaky_bucket_departs_one_interval_apart_and_cancelled_slots_are_reused() {
    let bucket = Arc::new(
        LeakyBucket::with_clock(5, Rate::per_second(10).unwrap(), TokioClock::new()).unwrap(),
    );
    let start = Instant::now();
    let departures = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..5u64 {
        let (bucket, departures) = (bucket.clone(), departures.clone());
        tasks.push(tokio::spawn(async move {
            let d = bucket.acquire(1).await.unwrap();
            assert!(d.allowed);
            departures.lock().unwrap().push((i, start.elapsed()));
        }));
        tokio::task::yield_now().await;
    }
    // The queue is full: a sixth is denied at once, not queued.
    assert!(!bucket.acquire(1).await.unwrap().allowed);
    // The third request (slot at 200 ms) gives up at 50 ms.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let quitter = tasks.remove(2);
    quitter.abort();
    assert!(quitter.await.unwrap_err().is_cancelled());
    // A newcomer takes the freed 200 ms slot rather than one at 500 ms.
    let newcomer = bucket.check();
    assert!(newcomer.allowed);
    assert_eq!(newcomer.wait, Duration::from_millis(150));
    for task in tasks {
        task.await.unwrap();
    }
    let times: Vec<_> = departures.lock().unwrap().iter().map(|&(_, t)| t).collect();
    let ms = |n| Duration::from_millis(n);
    assert_eq!(times, vec![ms(0), ms(100), ms(300), ms(400)]);
    assert!(bucket.is_idle_at(bucket.now() + 1_000_000_000));
}

#[tokio::test(start_paused = true)]
async fn until_ready_waits_for_a_shapers_slot() {
    let bucket = LeakyBucket::with_clock(5, Rate::per_second(10).unwrap(), TokioClock::new());
    let limiter = AsyncLimiter::new(bucket.unwrap());
    let start = Instant::now();
    for _ in 0..3 {
        let _ = limiter.until_ready().await;
    }
    assert_eq!(start.elapsed(), Duration::from_millis(200), "departures 100 ms apart");
}
