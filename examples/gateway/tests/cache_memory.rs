//! The cache's byte bound holds in memory, not only in its own accounting:
//! 20,000 distinct cacheable responses through a 1 MB cache leave the
//! gateway's live heap within a few times that bound. (hyper's parsed
//! bodies and header values are slices of its read buffers; an entry kept
//! as parsed would hold kilobytes of buffer alive.)

mod common;

use std::net::SocketAddr;

use axum::body::Body;
use http::Request;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use peak_alloc::PeakAlloc;
use sysblocks_gateway::upstream_sim::UpstreamSim;

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

const MAX_BYTES: usize = 1_000_000;

async fn fetch(client: &Client<HttpConnector, Body>, gw: SocketAddr, from: usize, to: usize) {
    for i in from..to {
        let url = format!("http://{gw}/item/{i}?bytes=256&cache=max-age%3D600");
        let request = Request::get(url).body(Body::empty()).unwrap();
        let response = client.request(request).await.expect("the gateway answers");
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body.len(), 256);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn kept_responses_use_their_own_size_of_memory() {
    let up = UpstreamSim::start("up", "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let cache = format!("cache = {{ max_bytes = {MAX_BYTES} }}");
    let (gw, _stop) = common::gateway(up.address(), "", &cache).await;
    let client: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new()).build_http();

    // Connections, buffers and pools made by the first requests.
    fetch(&client, gw, 0, 100).await;
    let before = HEAP.current_usage();
    fetch(&client, gw, 100, 20_100).await;
    let grown = HEAP.current_usage().saturating_sub(before);
    assert!(
        grown < 4 * MAX_BYTES,
        "20,000 kept responses through a {MAX_BYTES}-byte cache grew the heap by {grown} bytes"
    );
}
