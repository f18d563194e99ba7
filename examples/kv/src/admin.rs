//! The admin port (HTTP):
//!
//! | route | what |
//! |---|---|
//! | `GET /status` | JSON: the ring, this node's partitions (replicas, root hash, keys), peers' health, hints pending, the change in progress |
//! | `GET /metrics` | Prometheus text: requests and latencies by command, keys and bytes by kind of repair, hints |
//! | `POST /faults?drop=n2,n3` | the fault layer: drop traffic to and from these peers (`POST /faults` heals) |
//! | `POST /reload` | read the cluster file again and start moving to it |
//! | `POST /local` | what this replica itself holds for the keys in the body (hex, one per line): per line the value in hex, `-` for nothing, `~` for a tombstone |

use std::fmt::Write as _;
use std::sync::{Arc, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::net::TcpListener;

use crate::metrics::Gauges;
use crate::node::Shared;

/// Serves the admin port until shutdown.
pub async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    let stopped = shared.stopped();
    let app = Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/faults", post(faults))
        .route("/reload", post(reload))
        .route("/local", post(local))
        .with_state(shared);
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stopped).await {
        tracing::warn!(error = %e, "the admin port stopped");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(2 * bytes.len()), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    let membership = shared.membership().clone();
    let config = membership.config().clone();
    let ring: Vec<_> = config
        .nodes
        .iter()
        .map(|n| json!({ "id": n.id, "weight": n.weight, "zone": n.zone, "data": n.data.to_string() }))
        .collect();
    let mut partitions = Vec::new();
    for p in 0..shared.store.partitions() {
        if !membership.serves(&shared.id, p) {
            continue;
        }
        let Some(summary) = shared.store.summary(p) else { continue };
        let replicas: Vec<&String> = membership.replica_sets(p).into_iter().flatten().collect();
        partitions.push(json!({
            "partition": p,
            "replicas": replicas,
            "root": hex(&summary.root_hash()),
            "entries": summary.entry_count(),
            "keys": summary.len(),
        }));
    }
    let health = shared.health.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let peers: Vec<_> = membership
        .all_nodes()
        .into_iter()
        .filter(|n| *n != shared.id)
        .map(|n| {
            let h = health.get(&n).cloned().unwrap_or_default();
            json!({ "id": n, "healthy": h.failures == 0, "failures": h.failures, "last_error": h.last_error })
        })
        .collect();
    let change = membership.change.as_ref().map(|c| {
        json!({
            "epoch": c.next.epoch,
            "moves": c.moves.len(),
            "filled": c.filled,
            "switched": c.switched,
            "dropped": c.dropped,
        })
    });
    let body = json!({
        "node": shared.id,
        "epoch": membership.current.epoch,
        "replicas": config.replicas,
        "write_quorum": config.write_quorum,
        "read_quorum": config.read_quorum,
        "uptime_ms": shared.started.elapsed().as_millis() as u64,
        "open": { "rows": shared.open_stats.rows, "rebuild_ms": shared.open_stats.rebuild.as_millis() as u64 },
        "ring": ring,
        "partitions": partitions,
        "peers": peers,
        "hints_pending": shared.store.hint_count().unwrap_or(0),
        "faults": { "dropped": shared.faults.dropped() },
        "change": change,
    });
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let keys = (0..shared.store.partitions())
        .filter_map(|p| shared.store.summary(p).map(|s| s.len() as u64))
        .sum();
    let connections =
        shared.connections.lock().unwrap_or_else(PoisonError::into_inner).values().sum();
    let gauges =
        Gauges { hints_pending: shared.store.hint_count().unwrap_or(0), keys, connections };
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], shared.metrics.render(gauges))
        .into_response()
}

async fn faults(State(shared): State<Arc<Shared>>, uri: Uri) -> Response {
    let mut dropped = Vec::new();
    for pair in uri.query().unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("drop", list)) => {
                dropped.extend(list.split(',').filter(|n| !n.is_empty()).map(str::to_owned));
            }
            _ => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("unknown parameter {pair:?}; use drop=n2,n3\n"),
                )
                    .into_response();
            }
        }
    }
    let membership = shared.membership().clone();
    if let Some(unknown) = dropped.iter().find(|n| !membership.knows(n)) {
        return (StatusCode::BAD_REQUEST, format!("no node {unknown:?} in the cluster file\n"))
            .into_response();
    }
    for peer in &dropped {
        shared.peers.forget(peer);
    }
    shared.faults.drop_peers(dropped);
    let body = json!({ "dropped": shared.faults.dropped() });
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

async fn reload(State(shared): State<Arc<Shared>>) -> Response {
    match shared.reload() {
        Ok(moves) => {
            let body = json!({ "moves": moves });
            ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

async fn local(State(shared): State<Arc<Shared>>, body: String) -> Response {
    let mut out = String::new();
    for (i, line) in body.lines().enumerate() {
        let Some(key) = unhex(line.trim()) else {
            return (StatusCode::BAD_REQUEST, format!("line {}: not hex\n", i + 1)).into_response();
        };
        let partition = shared.partition_of(&key);
        match shared.store.get(partition, &key) {
            Ok(None) => out.push('-'),
            Ok(Some(entry)) => match entry.value {
                None => out.push('~'),
                Some(value) => out.push_str(&hex(&value)),
            },
            Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        }
        out.push('\n');
    }
    out.into_response()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}
