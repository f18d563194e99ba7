//! Routing by consistent hash of the route key with bounded loads: 10
//! upstreams and 1,000,000 route keys; a key's upstream is the same for
//! every gateway instance and after restarts (it depends only on the
//! servers), removing an upstream moves only its keys, and with bounded
//! loads no upstream has more than c x the mean in flight (plus one).

use std::net::SocketAddr;

use sysblocks_gateway::proxy::Balancer;

fn servers(n: u16) -> Vec<SocketAddr> {
    (0..n).map(|i| SocketAddr::from(([127, 0, 0, 1], 9000 + i))).collect()
}

#[test]
fn a_keys_upstream_is_stable_and_a_removal_moves_only_its_keys() {
    let all = servers(10);
    let a = Balancer::new(&all, 1.25);
    let mut reversed = all.clone();
    reversed.reverse();
    let b = Balancer::new(&reversed, 1.25); // another instance, servers listed otherwise
    let removed = all[3];
    let without: Vec<SocketAddr> = all.iter().copied().filter(|s| *s != removed).collect();
    let c = Balancer::new(&without, 1.25);
    let mut moved = 0u32;
    for k in 0..1_000_000u32 {
        let key = format!("/users/{k}");
        let here = a.server_for(key.as_bytes()).unwrap();
        assert_eq!(Some(here), b.server_for(key.as_bytes()), "{key}");
        let after = c.server_for(key.as_bytes()).unwrap();
        if after != here {
            assert_eq!(here, removed, "{key} moved from {here}, which stayed");
            moved += 1;
        }
    }
    // About a tenth of the keys were on the removed upstream.
    assert!((70_000..=130_000).contains(&moved), "{moved} keys moved");
}

#[test]
fn bounded_loads_keep_every_upstream_under_c_times_the_mean_plus_one() {
    let c = 1.25;
    let balancer = Balancer::new(&servers(10), c);
    let mut held = Vec::new();
    // Skewed keys: most requests for a few hot keys.
    for i in 0..2_000u32 {
        let key = if i % 10 < 8 { format!("/hot/{}", i % 3) } else { format!("/cold/{i}") };
        held.push(balancer.pick(key.as_bytes()).unwrap());
        let loads = balancer.loads();
        let total: u64 = loads.iter().sum();
        let bound = (c * total as f64 / 10.0).ceil() + 1.0;
        assert!(loads.iter().all(|&l| l as f64 <= bound), "{loads:?} over {bound}");
        if i % 7 == 0 {
            held.swap_remove(0); // a request finishes
        }
    }
    drop(held);
    assert!(balancer.loads().iter().all(|&l| l == 0), "every finished request is uncounted");
}

#[test]
fn a_server_failing_in_a_row_is_left_out_and_its_keys_go_to_the_next_replica() {
    let all = servers(3);
    let balancer = Balancer::with_ejection(&all, 1.25, 2);
    let key = b"/users/7";
    let first = balancer.pick(key).unwrap();
    let bad = first.server();
    balancer.report(&first, false);
    drop(first);
    assert!(!balancer.is_ejected(bad), "one failure is not enough");
    let again = balancer.pick(key).unwrap();
    assert_eq!(again.server(), bad);
    balancer.report(&again, false);
    drop(again);
    assert!(balancer.is_ejected(bad), "two in a row leave it out");
    for k in 0..1000 {
        let key = format!("/users/{k}");
        let guard = balancer.pick(key.as_bytes()).unwrap();
        assert_ne!(guard.server(), bad, "{key} went to the server left out");
    }
    // A retry avoids the server already tried.
    let guard = balancer.pick(key).unwrap();
    let tried = [guard.index()];
    drop(guard);
    let retry = balancer.pick_avoiding(key, &tried).unwrap();
    assert!(!tried.contains(&retry.index()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_requests_are_retried_on_the_next_replica() {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;
    use sysblocks_gateway::{config::Config, proxy::Gateway, upstream_sim::UpstreamSim};

    let a = UpstreamSim::start("a", "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let b = UpstreamSim::start("b", "127.0.0.1:0".parse().unwrap()).await.unwrap();
    // A server that refuses connections: bound, then closed.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let text = format!(
        "listen = \"127.0.0.1:0\"\n[[upstream]]\nname = \"api\"\nservers = [\"{}\", \"{}\", \"{dead}\"]\neject_after = 2\n[[route]]\nprefix = \"/\"\nupstream = \"api\"\nretries = 1\n",
        a.address(),
        b.address()
    );
    let gateway =
        std::sync::Arc::new(Gateway::new(Config::parse("g.toml", &text).unwrap(), None).unwrap());
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let gw = gateway.serve(stopped).await.unwrap();
    let client: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new()).build_http();
    for k in 0..60 {
        let request =
            http::Request::get(format!("http://{gw}/users/{k}")).body(Body::empty()).unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), http::StatusCode::OK, "/users/{k}");
        let _ = response.into_body().collect().await;
    }
    assert_eq!(a.served() + b.served(), 60, "every request answered by a live server");
    // The dead server failed twice in a row while the GETs were retried:
    // it is left out, so even POSTs (never retried) all reach a live one.
    let mut failed = 0;
    for k in 0..60 {
        let request =
            http::Request::post(format!("http://{gw}/users/{k}")).body(Body::from("x")).unwrap();
        let response = client.request(request).await.unwrap();
        failed += usize::from(response.status() == http::StatusCode::BAD_GATEWAY);
        let _ = response.into_body().collect().await;
    }
    assert_eq!(failed, 0, "{failed} POSTs went to the server left out");
}
