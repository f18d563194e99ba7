//! A cluster of real `kv-node` processes on loopback for the fault tests:
//! free ports, a temp dir per cluster, each node's log in its own file,
//! and everything killed and removed on drop (so a failing test leaves
//! nothing running). Conditions are waited for with deadlines.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The fault tests' cluster: N=3 W=2 R=2, anti-entropy every 300 ms, a
/// replica given 300 ms to answer.
pub const FAULT_SETTINGS: &str =
    "replicas = 3\nwrite_quorum = 2\nread_quorum = 2\nsync_interval_ms = 300\ntimeout_ms = 300";

/// One node's addresses, directory and process.
pub struct TestNode {
    pub id: String,
    pub data: SocketAddr,
    pub admin: SocketAddr,
    pub sync: SocketAddr,
    pub dir: PathBuf,
    child: Option<Child>,
}

/// A cluster of node processes.
pub struct TestCluster {
    pub dir: PathBuf,
    pub nodes: Vec<TestNode>,
    settings: String,
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl TestCluster {
    /// `n` nodes with `settings` under `[cluster]`, all started and ready.
    pub fn start(name: &str, n: usize, settings: &str) -> TestCluster {
        let dir = std::env::temp_dir().join(format!("sysblocks-kv-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut cluster = TestCluster { dir, nodes: Vec::new(), settings: settings.to_owned() };
        // Every port at once, so that no two are the same.
        let ports = sysblocks_kv::demo::free_ports(3 * n).expect("free loopback ports");
        for three in ports.chunks(3) {
            cluster.add_node_at(three);
        }
        cluster.write_file(n);
        for i in 0..n {
            cluster.spawn(i, false);
        }
        for i in 0..n {
            cluster.wait_ready(i);
        }
        cluster
    }

    /// A node with fresh ports, not started, not in the file yet (the
    /// running nodes' ports are taken, so these differ from them).
    pub fn add_node(&mut self) -> usize {
        let ports = sysblocks_kv::demo::free_ports(3).expect("free loopback ports");
        self.add_node_at(&ports)
    }

    fn add_node_at(&mut self, ports: &[SocketAddr]) -> usize {
        let i = self.nodes.len();
        let id = format!("n{}", i + 1);
        let dir = self.dir.join(&id);
        self.nodes.push(TestNode {
            id,
            data: ports[0],
            admin: ports[1],
            sync: ports[2],
            dir,
            child: None,
        });
        i
    }

    pub fn cluster_file(&self) -> PathBuf {
        self.dir.join("cluster.toml")
    }

    /// Writes the cluster file with the first `n` nodes.
    pub fn write_file(&self, n: usize) {
        let mut text = format!("[cluster]\n{}\n", self.settings);
        for node in &self.nodes[..n] {
            let _ = write!(
                text,
                "[[node]]\nid = \"{}\"\ndata = \"{}\"\nadmin = \"{}\"\nsync = \"{}\"\n",
                node.id, node.data, node.admin, node.sync
            );
        }
        std::fs::write(self.cluster_file(), text).unwrap();
    }

    /// Starts node `i`'s process.
    pub fn spawn(&mut self, i: usize, join: bool) {
        let node = &self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{}.log", node.id)))
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_kv-node"));
        command
            .args(["--id", &node.id, "--data"])
            .arg(&node.dir)
            .arg("--cluster")
            .arg(self.cluster_file())
            .args(["--cache-mb", "16"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if join {
            command.arg("--join");
        }
        let child = command.spawn().expect("kv-node starts");
        self.nodes[i].child = Some(child);
    }

    /// Waits until node `i` answers on its admin port; fails at once,
    /// with its log, if the process exits instead.
    pub fn wait_ready(&mut self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, _)) = self.http(i, "GET", "/status", "") {
                return;
            }
            if let Some(child) = &mut self.nodes[i].child
                && let Ok(Some(status)) = child.try_wait()
            {
                let log =
                    std::fs::read_to_string(self.dir.join(format!("{}.log", self.nodes[i].id)))
                        .unwrap_or_default();
                panic!("node {} exited ({status}):\n{log}", self.nodes[i].id);
            }
            assert!(
                Instant::now() < deadline,
                "node {} did not start; see its log",
                self.nodes[i].id
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and wait (up to `deadline`) for the process to exit.
    pub fn terminate(&mut self, i: usize, deadline: Duration) -> std::process::ExitStatus {
        self.signal(i, "-TERM");
        let mut child = self.nodes[i].child.take().expect("a running node");
        let until = Instant::now() + deadline;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > until {
                let _ = child.kill();
                panic!("node {} did not stop within {deadline:?} of SIGTERM", self.nodes[i].id);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGSTOP or SIGCONT.
    pub fn signal(&self, i: usize, signal: &str) {
        let pid = self.nodes[i].child.as_ref().expect("a running node").id();
        let status = Command::new("kill").args([signal, &pid.to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// A request to node `i`'s admin port: status and body.
    pub fn http(
        &self,
        i: usize,
        method: &str,
        path: &str,
        body: &str,
    ) -> std::io::Result<(u16, String)> {
        sysblocks_kv::demo::http(self.nodes[i].admin, method, path, body)
    }

    pub fn status(&self, i: usize) -> Value {
        let (code, body) = self.http(i, "GET", "/status", "").expect("status");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// A metric summed over the running nodes.
    pub fn metric(&self, series: &str) -> f64 {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].child.is_some())
            .map(|i| {
                let (_, page) = self.http(i, "GET", "/metrics", "").expect("metrics");
                sysblocks_kv::metrics::sample(&page, series).unwrap_or(0.0)
            })
            .sum()
    }

    /// The running nodes.
    pub fn running(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].child.is_some()).collect()
    }

    /// Waits until, for every partition, every running replica reports the
    /// same root; returns how long it took.
    pub fn wait_converged(&self, deadline: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let statuses: Vec<Value> = self.running().into_iter().map(|i| self.status(i)).collect();
            if sysblocks_kv::demo::replicas_agree(&statuses) {
                return started.elapsed();
            }
            assert!(started.elapsed() < deadline, "replicas did not converge within {deadline:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What node `i` itself holds for each key: `Some(Some(v))`, a
    /// tombstone `Some(None)`, or nothing.
    pub fn local(&self, i: usize, keys: &[Vec<u8>]) -> Vec<Option<Option<Vec<u8>>>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(2000) {
            let body: String = chunk.iter().map(|k| hex(k) + "\n").collect();
            let (code, text) = self.http(i, "POST", "/local", &body).expect("local");
            assert_eq!(code, 200, "{text}");
            for line in text.lines() {
                out.push(match line {
                    "-" => None,
                    "~" => Some(None),
                    h => Some(Some(unhex(h))),
                });
            }
        }
        assert_eq!(out.len(), keys.len());
        out
    }

    pub fn redis_url(&self, i: usize) -> String {
        format!("redis://{}/", self.nodes[i].data)
    }
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].child.is_some() {
                let _ = self.signal_quiet(i, "-CONT");
            }
            self.kill(i);
        }
        if std::thread::panicking() {
            eprintln!("kv test cluster kept for inspection: {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl TestCluster {
    fn signal_quiet(&self, i: usize, signal: &str) -> std::io::Result<()> {
        if let Some(child) = &self.nodes[i].child {
            Command::new("kill").args([signal, &child.id().to_string()]).status()?;
        }
        Ok(())
    }
}
