//! The route cache: 1,000 concurrent requests for one cold key make one
//! upstream request; the upstream's Cache-Control decides what is kept;
//! only safe methods without credentials use it.

mod common;

use std::time::Duration;

use axum::body::Body;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sysblocks_gateway::proxy::ttl_of;
use sysblocks_gateway::upstream_sim::UpstreamSim;

async fn gateway(up: &UpstreamSim) -> (std::net::SocketAddr, tokio::sync::watch::Sender<bool>) {
    common::gateway(up.address(), "", "cache = { max_bytes = 1000000 }").await
}

async fn get(
    client: &Client<HttpConnector, Body>,
    method: Method,
    url: String,
) -> (StatusCode, String, String) {
    let request = Request::builder().method(method).uri(url).body(Body::empty()).unwrap();
    let response = client.request(request).await.expect("the gateway answers");
    let cache =
        response.headers().get("x-cache").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let status = response.status();
    let body = String::from_utf8_lossy(&response.into_body().collect().await.unwrap().to_bytes())
        .into_owned();
    (status, cache, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_misses_make_one_upstream_request() {
    let up = UpstreamSim::start("up", "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (gw, _stop) = gateway(&up).await;
    let client: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new()).build_http();
    // The upstream takes 300 ms, so the thousand requests meet its one load.
    let url = format!("http://{gw}/item/1?latency_ms=300&cache=max-age%3D60");
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move { get(&client, Method::GET, url).await })
        })
        .collect();
    let mut misses = 0;
    for task in tasks {
        let (status, cache, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(body.starts_with("up GET /item/1"), "{body}");
        misses += usize::from(cache == "MISS");
    }
    assert_eq!(up.served(), 1, "one upstream request for a thousand concurrent misses");
    assert_eq!(misses, 1, "one caller loaded; the rest waited for it");
    let (_, cache, _) = get(&client, Method::GET, url.clone()).await;
    assert_eq!(cache, "HIT");
    assert_eq!(up.served(), 1);

    // no-store: not kept (each request goes up), POST: never cached.
    let no_store = format!("http://{gw}/item/2?cache=no-store");
    get(&client, Method::GET, no_store.clone()).await;
    get(&client, Method::GET, no_store).await;
    assert_eq!(up.served(), 3);
    let (status, cache, _) = get(&client, Method::POST, url).await;
    assert_eq!((status, cache.as_str()), (StatusCode::OK, ""));
    assert_eq!(up.served(), 4);
}

#[test]
fn cache_control_decides_the_time_to_live() {
    let headers = |value: &str| {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::CACHE_CONTROL, value.parse().unwrap());
        h
    };
    assert_eq!(
        ttl_of(StatusCode::OK, &headers("public, max-age=60")),
        Some(Duration::from_secs(60))
    );
    assert_eq!(
        ttl_of(StatusCode::OK, &headers("max-age=60, s-maxage=5")),
        Some(Duration::from_secs(5))
    );
    assert_eq!(ttl_of(StatusCode::OK, &headers("max-age=60, private")), None);
    assert_eq!(ttl_of(StatusCode::OK, &headers("no-store")), None);
    assert_eq!(ttl_of(StatusCode::OK, &headers("max-age=0")), None);
    assert_eq!(ttl_of(StatusCode::NOT_FOUND, &headers("max-age=60")), None);
    assert_eq!(ttl_of(StatusCode::OK, &http::HeaderMap::new()), None);
}
