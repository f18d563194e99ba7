//! The `crawl` command: options, and what each mode runs.
//!
//! * `crawl` alone starts sim-web on loopback and crawls it with one
//!   worker in this process, with a progress bar and a summary, then
//!   checks the crawl against sim-web's log.
//! * `crawl --workers N --redis URL` runs N worker processes (this same
//!   binary with `--worker ID`) sharing the crawl through Redis (add
//!   `--cluster` for a Redis Cluster, URL a comma-separated list of
//!   nodes).
//! * `--seeds FILE` crawls the URLs in FILE instead of sim-web (one a
//!   line; junk lines are reported and skipped), `--hosts FILE` resolves
//!   names from a `name address:port` table before DNS.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sysblocks_core::RedisConnection;
use sysblocks_sharded_counter::{KeyedBatchConfig, KeyedBatchedCounter};
use tokio::sync::{oneshot, watch};
use url::Url;

use crate::cluster::{Cluster, ClusterConfig};
use crate::crawl::{CrawlConfig, Crawler, Stats, Summary, parse_seeds};
use crate::fetch::Resolver;
use crate::politeness::Shared;
use crate::sim_web::{SimConfig, SimWeb};

/// The usage line.
pub const USAGE: &str = "usage: crawl [--seeds FILE] [--hosts FILE] [--workers N --redis URL [--cluster]] \
[--delay-ms N] [--concurrency N] [--max-depth N] [--max-pages-per-host N] [--max-attempts N] \
[--sim-hosts N] [--sim-pages N] [--sim-latency-ms N] [--no-specials] [--fetch-timeout-ms N] \
[--backoff-ms N] [--lease-ms N] [--partitions N] [--run NAME] [--events FILE] [--no-progress] \
[--metrics ADDR] [--worker ID]";

/// The command's options.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// A seed list instead of sim-web.
    pub seeds: Option<PathBuf>,
    /// A hosts table.
    pub hosts: Option<PathBuf>,
    /// Worker processes (with `redis`).
    pub workers: usize,
    /// Redis URL (or Cluster nodes, comma-separated).
    pub redis: Option<String>,
    /// Whether `redis` is a Cluster.
    pub cluster: bool,
    /// Run as this worker of a distributed crawl (what `--workers` spawns).
    pub worker: Option<String>,
    /// The crawl's name in Redis.
    pub run: String,
    /// Delay between two requests to a host, unless robots.txt asks more.
    pub delay: Duration,
    /// Fetches in flight.
    pub concurrency: usize,
    /// Depth limit.
    pub max_depth: u32,
    /// Pages per host limit.
    pub max_pages_per_host: u32,
    /// Attempts per URL.
    pub max_attempts: u32,
    /// sim-web's shape.
    pub sim: SimConfig,
    /// The whole-fetch timeout.
    pub fetch_timeout: Duration,
    /// The first backoff after a 503 or a failure.
    pub backoff: Duration,
    /// Lease of a claimed URL.
    pub lease: Duration,
    /// Partitions of the politeness keys.
    pub partitions: u32,
    /// Event log.
    pub events: Option<PathBuf>,
    /// Whether to draw a progress bar.
    pub progress: bool,
    /// Where to serve `/metrics` (a worker, or the one-process crawl).
    pub metrics: Option<std::net::SocketAddr>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seeds: None,
            hosts: None,
            workers: 1,
            redis: None,
            cluster: false,
            worker: None,
            run: format!("run{}", std::process::id()),
            delay: Duration::from_millis(100),
            concurrency: 256,
            max_depth: 16,
            max_pages_per_host: 1000,
            // A demo against sim-web should end in seconds: its dead host
            // and hanging page cost attempts x timeout each.
            max_attempts: 3,
            sim: SimConfig::default(),
            fetch_timeout: Duration::from_secs(2),
            backoff: Duration::from_millis(500),
            lease: Duration::from_secs(10),
            partitions: 16,
            events: None,
            progress: true,
            metrics: None,
        }
    }
}

/// Parses the arguments (without the program name).
///
/// # Errors
/// What is wrong, with the usage line.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut o = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value =
            |name: &str| args.next().ok_or_else(|| format!("{name} takes a value\n{USAGE}"));
        let number = |name: &str, v: String| {
            v.parse::<u64>().map_err(|_| format!("{name} takes a whole number, got {v:?}\n{USAGE}"))
        };
        let ms = |n: u64| Duration::from_millis(n);
        let small =
            |name: &str, n: u64| u32::try_from(n).map_err(|_| format!("{name} is too large: {n}"));
        match arg.as_str() {
            "--seeds" => o.seeds = Some(value("--seeds")?.into()),
            "--hosts" => o.hosts = Some(value("--hosts")?.into()),
            "--events" => o.events = Some(value("--events")?.into()),
            "--redis" => o.redis = Some(value("--redis")?),
            "--worker" => o.worker = Some(value("--worker")?),
            "--run" => o.run = value("--run")?,
            "--metrics" => {
                let v = value(&arg)?;
                o.metrics =
                    Some(v.parse().map_err(|_| {
                        format!("--metrics takes an address:port, got {v:?}\n{USAGE}")
                    })?);
            }
            "--cluster" => o.cluster = true,
            "--no-progress" => o.progress = false,
            "--no-specials" => o.sim.specials = false,
            "--workers" => o.workers = number(&arg, value(&arg)?)? as usize,
            "--concurrency" => o.concurrency = number(&arg, value(&arg)?)? as usize,
            "--delay-ms" => o.delay = ms(number(&arg, value(&arg)?)?),
            "--fetch-timeout-ms" => o.fetch_timeout = ms(number(&arg, value(&arg)?)?),
            "--backoff-ms" => o.backoff = ms(number(&arg, value(&arg)?)?),
            "--lease-ms" => o.lease = ms(number(&arg, value(&arg)?)?),
            "--sim-latency-ms" => o.sim.latency = ms(number(&arg, value(&arg)?)?),
            "--max-depth" => o.max_depth = small(&arg, number(&arg, value(&arg)?)?)?,
            "--max-pages-per-host" => {
                o.max_pages_per_host = small(&arg, number(&arg, value(&arg)?)?)?;
            }
            "--max-attempts" => o.max_attempts = small(&arg, number(&arg, value(&arg)?)?)?,
            "--partitions" => o.partitions = small(&arg, number(&arg, value(&arg)?)?)?,
            "--sim-hosts" => o.sim.hosts = number(&arg, value(&arg)?)? as usize,
            "--sim-pages" => o.sim.pages = number(&arg, value(&arg)?)? as usize,
            "--help" | "-h" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if o.workers == 0 || o.concurrency == 0 || o.partitions == 0 || o.max_attempts == 0 {
        return Err(format!(
            "--workers, --concurrency, --partitions and --max-attempts must be at least 1\n{USAGE}"
        ));
    }
    if (o.workers > 1 || o.worker.is_some()) && o.redis.is_none() {
        return Err(format!(
            "several workers share a crawl through Redis: give --redis URL\n{USAGE}"
        ));
    }
    if o.backoff.is_zero() || o.lease.is_zero() || o.fetch_timeout.is_zero() {
        return Err(format!(
            "--backoff-ms, --lease-ms and --fetch-timeout-ms must be above zero\n{USAGE}"
        ));
    }
    Ok(o)
}

/// The crawl configuration the options describe.
pub fn crawl_config(o: &Options) -> CrawlConfig {
    let mut config = CrawlConfig::default();
    config.frontier.default_delay = o.delay;
    config.frontier.max_depth = o.max_depth;
    config.frontier.max_pages_per_host = o.max_pages_per_host;
    config.frontier.first_backoff = o.backoff;
    config.frontier.max_wait = config.frontier.max_wait.max(o.backoff);
    config.frontier.active_hosts = (o.concurrency * 3).max(1);
    config.fetch.total_timeout = o.fetch_timeout;
    config.fetch.read_timeout = o.fetch_timeout;
    config.fetch.connect_timeout = o.fetch_timeout;
    config.fetch.worker.clone_from(&o.worker);
    config.concurrency = o.concurrency;
    config.max_attempts = o.max_attempts;
    config.events.clone_from(&o.events);
    config
}

/// A connection to Redis, or to a Cluster (`url` a comma-separated list).
///
/// # Errors
/// Redis cannot be reached.
pub async fn connect(url: &str, cluster: bool) -> Result<RedisConnection, String> {
    let fail = |e: redis::RedisError| format!("cannot connect to Redis at {url}: {e}");
    if cluster {
        let nodes: Vec<&str> = url.split(',').collect();
        let client = redis::cluster::ClusterClient::builder(nodes)
            .connection_timeout(Duration::from_secs(1))
            .response_timeout(Duration::from_secs(1))
            .build()
            .map_err(fail)?;
        Ok(client.get_async_connection().await.map_err(fail)?.into())
    } else {
        let client = redis::Client::open(url).map_err(fail)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)));
        Ok(client.get_connection_manager_with_config(config).await.map_err(fail)?.into())
    }
}

fn read(path: &PathBuf) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn seeds_of(
    o: &Options,
    config: &CrawlConfig,
    default: Option<String>,
) -> Result<Vec<Url>, String> {
    let text = match &o.seeds {
        Some(path) => read(path)?,
        None => default.unwrap_or_default(),
    };
    let (seeds, junk) = parse_seeds(&text, &config.frontier);
    for (line, why) in &junk {
        eprintln!("crawl: seed line {line} skipped: {why}");
    }
    if seeds.is_empty() {
        return Err("no seed URL to crawl".into());
    }
    Ok(seeds)
}

fn resolver_of(o: &Options) -> Result<Arc<Resolver>, String> {
    match &o.hosts {
        Some(path) => {
            let text = read(path)?;
            Resolver::from_hosts(&text)
                .map(Arc::new)
                .map_err(|e| format!("{}: {e}", path.display()))
        }
        None => Ok(Arc::new(Resolver::new())),
    }
}

/// Runs one worker of a distributed crawl (`--worker ID`), to the end of
/// the crawl or until `stop`.
///
/// # Errors
/// Bad options, Redis unreachable at the start.
pub async fn run_worker(o: &Options, stop: watch::Receiver<bool>) -> Result<Summary, String> {
    let worker = o.worker.clone().ok_or("--worker ID is needed")?;
    let redis = o.redis.as_deref().ok_or("--redis URL is needed")?;
    let config = crawl_config(o);
    let seeds = seeds_of(o, &config, None)?;
    let connection = connect(redis, o.cluster).await?;
    let shared = Shared::Redis(connection.clone(), format!("crawl-{}:", o.run));
    let crawler = Crawler::new(config, resolver_of(o)?, shared).map_err(|e| e.to_string())?;
    let cluster_config = ClusterConfig {
        run: o.run.clone(),
        worker,
        partitions: o.partitions,
        lease: o.lease,
        max_attempts: o.max_attempts,
        ..ClusterConfig::default()
    };
    let cluster =
        Cluster::join(connection.clone(), cluster_config).await.map_err(|e| e.to_string())?;
    let totals = KeyedBatchedCounter::start(
        connection,
        &format!("crawl-{}:totals:", o.run),
        KeyedBatchConfig::default(),
    )
    .map_err(|e| e.to_string())?;
    if let Some(address) = o.metrics {
        let bound = crate::metrics::serve(address, crawler.stats(), stop.clone())
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(%bound, "serving /metrics");
    }
    let (done, finished) = oneshot::channel();
    let publisher = tokio::spawn(publish(crawler.stats(), totals, finished));
    let summary = crawler.run_cluster(cluster, &seeds, stop).await.map_err(|e| e.to_string());
    let _ = done.send(());
    let _ = publisher.await;
    summary
}

/// Adds this worker's counts to the crawl's totals in Redis (sharded
/// counters, batched), so that every worker's pages add up; the last
/// deltas are flushed when `done` fires.
async fn publish(
    stats: Arc<Stats>,
    mut totals: KeyedBatchedCounter,
    mut done: oneshot::Receiver<()>,
) {
    let mut sent = Summary::default();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        let last = tokio::select! {
            _ = tick.tick() => false,
            _ = &mut done => true,
        };
        let now = stats.summary(Duration::ZERO);
        for (name, n, before) in [
            ("pages", now.pages, sent.pages),
            ("requests", now.requests, sent.requests),
            ("bytes", now.bytes, sent.bytes),
            ("errors", now.errors + now.http_errors, sent.errors + sent.http_errors),
        ] {
            if n > before {
                let _ = totals.add(name, (n - before) as i64);
            }
        }
        sent = now;
        if last {
            let _ = totals.shutdown().await;
            return;
        }
    }
}

fn progress_bar(enabled: bool) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} [{elapsed}] {msg}") {
        bar.set_style(style);
    }
    bar
}

/// The `crawl` command.
///
/// # Errors
/// What went wrong, for the user.
pub async fn run(o: Options, stop: watch::Receiver<bool>) -> Result<(), String> {
    if o.worker.is_some() {
        let summary = run_worker(&o, stop).await?;
        println!("{summary}");
        return Ok(());
    }
    let dir = std::env::temp_dir().join(format!("sysblocks-crawl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let web = if o.seeds.is_none() {
        let web = SimWeb::start(o.sim.clone()).await.map_err(|e| format!("sim-web: {e}"))?;
        println!(
            "sim-web: {} hosts x {} pages on {} addresses (plus {} special hosts), seed {}",
            o.sim.hosts,
            o.sim.pages,
            o.sim.hosts.div_ceil(o.sim.hosts_per_ip),
            if o.sim.specials { crate::sim_web::SPECIAL_HOSTS.len() + 1 } else { 0 },
            web.seed()
        );
        Some(web)
    } else {
        None
    };
    let mut o = o;
    if let Some(web) = &web {
        let hosts = dir.join("hosts");
        web.write_hosts_file(&hosts).map_err(|e| e.to_string())?;
        o.hosts = Some(hosts);
        let seeds = dir.join("seeds");
        std::fs::write(&seeds, web.seed()).map_err(|e| e.to_string())?;
        o.seeds = Some(seeds);
    }
    let result = if o.workers > 1 || o.redis.is_some() {
        run_distributed(&o, stop).await
    } else {
        run_local(&o, stop).await
    };
    if let Some(web) = &web {
        let config = crawl_config(&o);
        let report = web.report(|_| config.frontier.default_delay, Duration::from_millis(5));
        let expected = web.expected();
        let missing = web.unfetched().len();
        let forbidden = web.forbidden_asked().len();
        println!(
            "sim-web saw {} requests: {} of {} expected pages fetched, {} repeated, {} disallowed asked for, \
             {} pairs closer than the delay, {} crawl-delays and {} Retry-Afters broken, {} overlapping",
            web.requests(),
            expected.len() - missing,
            expected.len(),
            report.repeats.len(),
            forbidden,
            report.too_close.len(),
            report.crawl_delay_broken.len(),
            report.retry_after_broken.len(),
            report.overlapping
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_local(o: &Options, stop: watch::Receiver<bool>) -> Result<(), String> {
    let config = crawl_config(o);
    let seeds = seeds_of(o, &config, None)?;
    let crawler =
        Crawler::new(config, resolver_of(o)?, Shared::Local).map_err(|e| e.to_string())?;
    if let Some(address) = o.metrics {
        let bound = crate::metrics::serve(address, crawler.stats(), stop.clone())
            .await
            .map_err(|e| e.to_string())?;
        println!("metrics: http://{bound}/metrics");
    }
    let bar = progress_bar(o.progress);
    let stats = crawler.stats();
    let start = Instant::now();
    let crawl = crawler.run_local(&seeds, stop);
    tokio::pin!(crawl);
    let summary = loop {
        tokio::select! {
            summary = &mut crawl => break summary.map_err(|e| e.to_string())?,
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                let s = stats.summary(start.elapsed());
                bar.set_message(format!(
                    "{} pages, {} hosts active, frontier {}, {:.0} pages/s",
                    s.pages,
                    stats.active_hosts.load(std::sync::atomic::Ordering::Relaxed),
                    stats.frontier.load(std::sync::atomic::Ordering::Relaxed),
                    s.pages as f64 / start.elapsed().as_secs_f64().max(1e-3)
                ));
                bar.tick();
            }
        }
    };
    bar.finish_and_clear();
    println!("{summary}");
    Ok(())
}

async fn run_distributed(o: &Options, mut stop: watch::Receiver<bool>) -> Result<(), String> {
    let redis = o.redis.clone().ok_or("--redis URL is needed")?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut children = Vec::new();
    for i in 1..=o.workers {
        let mut command = tokio::process::Command::new(&exe);
        command
            .args([
                "--worker",
                &format!("w{i}"),
                "--redis",
                &redis,
                "--run",
                &o.run,
                "--no-progress",
            ])
            .args(["--delay-ms", &o.delay.as_millis().to_string()])
            .args(["--concurrency", &o.concurrency.to_string()])
            .args(["--max-depth", &o.max_depth.to_string()])
            .args(["--max-pages-per-host", &o.max_pages_per_host.to_string()])
            .args(["--max-attempts", &o.max_attempts.to_string()])
            .args(["--fetch-timeout-ms", &o.fetch_timeout.as_millis().to_string()])
            .args(["--backoff-ms", &o.backoff.as_millis().to_string()])
            .args(["--lease-ms", &o.lease.as_millis().to_string()])
            .args(["--partitions", &o.partitions.to_string()])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
        if o.cluster {
            command.arg("--cluster");
        }
        for (flag, path) in [("--seeds", &o.seeds), ("--hosts", &o.hosts)] {
            if let Some(path) = path {
                command.arg(flag).arg(path);
            }
        }
        children.push(command.spawn().map_err(|e| format!("cannot start a worker: {e}"))?);
    }
    let pids: Vec<u32> = children.iter().filter_map(tokio::process::Child::id).collect();
    println!("{} workers crawling through Redis at {redis} (run {})", o.workers, o.run);
    let connection = connect(&redis, o.cluster).await?;
    let totals = KeyedBatchedCounter::start(
        connection,
        &format!("crawl-{}:totals:", o.run),
        KeyedBatchConfig::default(),
    )
    .map_err(|e| e.to_string())?;
    let bar = progress_bar(o.progress);
    let start = Instant::now();
    let mut codes = Vec::new();
    let mut stopping: Option<Instant> = None;
    for mut child in children {
        loop {
            tokio::select! {
                status = child.wait() => {
                    codes.push(status.map_err(|e| e.to_string())?);
                    break;
                }
                () = tokio::time::sleep(Duration::from_millis(200)) => {
                    if stopping.is_some_and(|at| at.elapsed() > crate::crawl::DRAIN_DEADLINE * 2) {
                        let _ = child.start_kill();
                    }
                    let pages = totals.get("pages").await.unwrap_or(0);
                    bar.set_message(format!(
                        "{pages} pages over all workers, {:.0} pages/s",
                        pages as f64 / start.elapsed().as_secs_f64().max(1e-3)
                    ));
                    bar.tick();
                }
                _ = stop.changed(), if stopping.is_none() => {
                    // Each worker stops as on Ctrl-C (its fetches in flight
                    // finish, its leases go back); killed if it takes too
                    // long.
                    stopping = Some(Instant::now());
                    for pid in &pids {
                        let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
                    }
                }
            }
        }
    }
    bar.finish_and_clear();
    let get = |name: &'static str| {
        let totals = &totals;
        async move { totals.get(name).await.unwrap_or(0) }
    };
    println!(
        "{} pages, {} requests, {:.1} MB, {} errors over {} workers in {:.2} s",
        get("pages").await,
        get("requests").await,
        get("bytes").await as f64 / 1e6,
        get("errors").await,
        o.workers,
        start.elapsed().as_secs_f64()
    );
    if codes.iter().any(|c| !c.success()) {
        return Err(format!("a worker failed: {codes:?}"));
    }
    Ok(())
}
