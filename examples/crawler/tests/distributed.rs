//! Three worker processes share a crawl of sim-web through Redis, then
//! through the Redis Cluster, with faults: a worker SIGKILLed mid-crawl, and
//! Redis restarted mid-crawl. Judged from sim-web's log: every page
//! reachable within the limits fetched, and fetched once (a repeat only
//! for a URL the killed worker had asked for, or whose lease a worker saw
//! reaped), nothing disallowed asked for, no two requests to one address
//! closer than its delay across all workers, Retry-After respected, the
//! trap and the redirect loops bounded.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use sysblocks_crawler::sim_web::{SimConfig, SimWeb};
use sysblocks_testkit::{Cluster, Redis};

/// The delay between two requests to an address, and the crawl-delay
/// every fifth host asks for in its robots.txt.
const DELAY: Duration = Duration::from_millis(20);
const CRAWL_DELAY: Duration = Duration::from_millis(60);
/// Arrival to arrival, two requests decided `delay` apart on Redis's clock
/// may land this much closer (the time from a worker's decision to the
/// request's arrival varies by a little).
const TOLERANCE: Duration = Duration::from_millis(5);

/// Worker processes, killed on drop.
struct Workers {
    children: Vec<(String, Option<Child>)>,
    dir: PathBuf,
    run: String,
    redis: String,
    cluster: bool,
}

impl Drop for Workers {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            if let Some(child) = child {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run_name() -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("t{}x{nanos:x}", std::process::id())
}

impl Workers {
    fn start(web: &SimWeb, redis: &str, cluster: bool, n: usize) -> Workers {
        let run = run_name();
        let dir = std::env::temp_dir().join(format!("sysblocks-crawler-{run}"));
        std::fs::create_dir_all(&dir).unwrap();
        web.write_hosts_file(&dir.join("hosts")).unwrap();
        std::fs::write(dir.join("seeds"), format!("# the seed\n{}\nnot a url\n", web.seed()))
            .unwrap();
        let mut workers =
            Workers { children: Vec::new(), dir, run, redis: redis.to_owned(), cluster };
        for i in 1..=n {
            workers.add(&format!("w{i}"));
        }
        workers
    }

    /// Starts one more worker, `id`.
    fn add(&mut self, id: &str) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_crawl"));
        command
            .args(["--worker", id, "--redis", &self.redis, "--run", &self.run, "--no-progress"])
            .args(["--delay-ms", &DELAY.as_millis().to_string()])
            .args(["--fetch-timeout-ms", "800", "--backoff-ms", "100", "--max-attempts", "3"])
            .args(["--max-pages-per-host", "60", "--lease-ms", "2000", "--concurrency", "64"])
            .arg("--seeds")
            .arg(self.dir.join("seeds"))
            .arg("--hosts")
            .arg(self.dir.join("hosts"))
            .arg("--events")
            .arg(self.dir.join(format!("{id}.events")))
            .env("CRAWL_LOG", "info")
            .stdout(std::fs::File::create(self.dir.join(format!("{id}.out"))).unwrap())
            .stderr(std::fs::File::create(self.dir.join(format!("{id}.log"))).unwrap());
        if self.cluster {
            command.arg("--cluster");
        }
        self.children
            .push((id.to_owned(), Some(command.spawn().expect("the crawl binary starts"))));
    }

    /// What a worker wrote to its standard error.
    fn log(&self, id: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{id}.log"))).unwrap_or_default()
    }

    /// Asks a worker to stop (SIGTERM) and waits for it: it must finish
    /// its fetches in flight, give its leases back and exit 0.
    async fn terminate(&mut self, id: &str) {
        let (_, child) = self.children.iter_mut().find(|(i, _)| i == id).unwrap();
        let mut child = child.take().unwrap();
        let pid = child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "{id} did not stop on SIGTERM");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(status.success(), "{id} exited with {status} on SIGTERM:\n{}", self.log(id));
    }

    fn kill(&mut self, id: &str) {
        let (_, child) = self.children.iter_mut().find(|(i, _)| i == id).unwrap();
        let mut child = child.take().unwrap();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }

    /// Waits for every worker still running to exit by itself, and says
    /// how each did.
    async fn wait(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        for (id, child) in &mut self.children {
            let Some(child) = child else { continue };
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    let log = std::fs::read_to_string(self.dir.join(format!("{id}.log")))
                        .unwrap_or_default();
                    assert!(status.success(), "{id} exited with {status}:\n{log}");
                    break;
                }
                if Instant::now() >= deadline {
                    let log = std::fs::read_to_string(self.dir.join(format!("{id}.log")))
                        .unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(30).collect();
                    panic!(
                        "{id} did not finish within {within:?}; its log ends:\n{}",
                        tail.join("\n")
                    );
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// URLs whose lease a worker saw lost.
    fn lost(&self) -> HashSet<String> {
        let mut lost = HashSet::new();
        for (id, _) in &self.children {
            let text =
                std::fs::read_to_string(self.dir.join(format!("{id}.events"))).unwrap_or_default();
            for line in text.lines() {
                let event: serde_json::Value = serde_json::from_str(line).unwrap();
                if event["event"] == "lost" {
                    lost.insert(event["url"].as_str().unwrap().to_owned());
                }
            }
        }
        lost
    }
}

async fn web() -> SimWeb {
    SimWeb::start(SimConfig { crawl_delay: Some(CRAWL_DELAY), ..SimConfig::default() })
        .await
        .unwrap()
}

/// Waits until sim-web has seen `n` requests.
async fn until_requests(web: &SimWeb, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while web.requests() < n {
        assert!(Instant::now() < deadline, "the crawl made only {} requests", web.requests());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Everything the log must show; `killed` is the worker SIGKILLed, whose
/// requests may be repeated.
fn judge(web: &SimWeb, lost: &HashSet<String>, killed: Option<&str>) {
    let log = web.log();
    let missing = web.unfetched();
    assert!(missing.is_empty(), "not fetched: {missing:?}");
    let forbidden = web.forbidden_asked();
    assert!(forbidden.is_empty(), "disallowed or nofollow fetched: {forbidden:?}");
    let report = web.report(|_| DELAY, TOLERANCE);
    let impolite = report.impolite();
    assert!(impolite.is_empty(), "{}", impolite.join("\n"));
    let mut explained = 0;
    for ((host, path), times) in &report.repeats {
        let url = format!("http://{host}{path}");
        let by_killed = killed.is_some_and(|k| {
            log.iter().any(|l| &l.host == host && &l.path == path && l.worker.as_deref() == Some(k))
        });
        assert!(
            by_killed || lost.contains(&url),
            "{url} fetched {times} times, and neither the killed worker asked for it nor was its lease lost"
        );
        explained += 1;
    }
    println!("{} requests, {} repeats, each explained", log.len(), explained);
    let count = |host: &str, prefix: &str| {
        log.iter().filter(|l| l.host == host && l.path.starts_with(prefix)).count()
    };
    assert!(count("trap.sim", "/") <= 61, "the calendar trap is bounded by the host's page limit");
    assert!(count("redirect.sim", "/endless/") <= 2 * 6, "an endless redirect chain is bounded");
    assert!(count("redirect.sim", "/loop/") <= 2 * 2, "a redirect loop is fetched once round");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_on_redis_lose_nothing_when_one_is_killed_and_one_joins() {
    let redis = Redis::new();
    let web = web().await;
    let mut workers = Workers::start(&web, redis.url(), false, 3);
    until_requests(&web, 150).await;
    workers.kill("w2");
    until_requests(&web, 250).await;
    workers.add("w4");
    workers.wait(Duration::from_secs(120)).await;
    judge(&web, &workers.lost(), Some("w2"));
    assert!(workers.log("w4").contains("membership changed"), "w4 joined:\n{}", workers.log("w4"));
    assert!(workers.log("w1").contains("seed line 3 skipped"), "the junk seed line is reported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_on_the_cluster_lose_nothing_when_one_is_killed() {
    let cluster = Cluster::new();
    let web = web().await;
    let mut workers = Workers::start(&web, &cluster.nodes().join(","), true, 3);
    until_requests(&web, 150).await;
    workers.kill("w3");
    workers.wait(Duration::from_secs(120)).await;

    judge(&web, &workers.lost(), Some("w3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_mid_crawl_loses_nothing() {
    let mut redis = Redis::private_persistent();
    let web = web().await;
    let mut workers = Workers::start(&web, redis.url(), false, 3);
    until_requests(&web, 150).await;
    let server = redis.server().unwrap();
    server.stop();
    // The fault: Redis is gone for a second (the workers fetch what they
    // hold meanwhile, and keep their acks and links for later).
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.restart();
    workers.wait(Duration::from_secs(120)).await;
    judge(&web, &workers.lost(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_with_sigterm_hands_its_work_over_without_a_repeat() {
    let redis = Redis::new();
    let web = web().await;
    let mut workers = Workers::start(&web, redis.url(), false, 2);
    until_requests(&web, 150).await;
    workers.terminate("w1").await;
    workers.wait(Duration::from_secs(120)).await;
    // No worker was killed: every repeat must be a lease seen lost.
    judge(&web, &workers.lost(), None);
}

#[test]
fn bad_options_are_refused_with_the_usage() {
    for args in [
        &["--workers", "0"][..],
        &["--workers", "3"][..],
        &["--delay-ms", "soon"][..],
        &["--frobnicate"][..],
        &["--worker", "w1"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_crawl")).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage: crawl"), "{args:?}");
    }
    let missing = Command::new(env!("CARGO_BIN_EXE_crawl"))
        .args(["--seeds", "/nonexistent/seeds", "--no-progress"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
}
