//! The tower layer: per-key limits, 429 with Retry-After, the IETF
//! RateLimit headers, and clones sharing one limit.
#![cfg(feature = "tower")]

use std::convert::Infallible;
use std::future::{Ready, poll_fn, ready};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use std::net::{IpAddr, SocketAddr};

use sysblocks_ratelimit::{
    ClientIp, FixedWindow, Keyed, ManualClock, ProxyHeader, Rate, RateLimitLayer, Refused,
    TokenBucket, Unkeyed,
};
use tower_layer::Layer;
use tower_service::Service;

/// The application behind the layer: answers 200 "hello".
#[derive(Clone)]
struct Hello;

impl Service<Request<()>> for Hello {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        ready(Ok(Response::new("hello".to_string())))
    }
}

async fn send<S>(service: &mut S, api_key: Option<&str>) -> Response<String>
where
    S: Service<Request<()>, Response = Response<String>, Error = Infallible>,
{
    poll_fn(|cx| service.poll_ready(cx)).await.unwrap();
    let mut request = Request::builder().uri("/");
    if let Some(key) = api_key {
        request = request.header("x-api-key", key);
    }
    service.call(request.body(()).unwrap()).await.unwrap()
}

fn header(response: &Response<String>, name: &str) -> Option<String> {
    response.headers().get(name).map(|v| v.to_str().unwrap().to_string())
}

type ByApiKey = fn(&Request<()>) -> Option<String>;

fn layer(clock: ManualClock) -> RateLimitLayer<Keyed<String, TokenBucket<ManualClock>>, ByApiKey> {
    let keyed =
        Keyed::new(1000, move || TokenBucket::with_clock(3, Rate::per_second(1)?, clock.clone()))
            .unwrap();
    let by_api_key: ByApiKey =
        |req| req.headers().get("x-api-key").and_then(|v| v.to_str().ok()).map(str::to_string);
    RateLimitLayer::new(keyed, by_api_key).with_legacy_headers()
}

#[tokio::test]
async fn limits_per_key_with_429_retry_after_and_ratelimit_headers() {
    let clock = ManualClock::new();
    let mut service = layer(clock.clone()).layer(Hello);

    let first = send(&mut service, Some("alice")).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.body(), "hello");
    assert_eq!(header(&first, "ratelimit-policy").unwrap(), "\"default\";q=3;w=3");
    assert_eq!(header(&first, "ratelimit").unwrap(), "\"default\";r=2;t=1");
    assert_eq!(header(&first, "x-ratelimit-remaining").unwrap(), "2");
    assert_eq!(header(&first, "retry-after"), None);

    send(&mut service, Some("alice")).await;
    send(&mut service, Some("alice")).await;
    let denied = send(&mut service, Some("alice")).await;
    assert_eq!(denied.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_ne!(denied.body(), "hello", "the application was not called");
    assert_eq!(header(&denied, "content-type").unwrap(), "application/problem+json");
    let problem: serde_json::Value = serde_json::from_str(denied.body()).unwrap();
    assert_eq!(problem["status"], 429);
    assert_eq!(problem["title"], "Too Many Requests");
    assert_eq!(problem["retry_after"], 1);
    assert_eq!(header(&denied, "retry-after").unwrap(), "1");
    assert_eq!(header(&denied, "ratelimit").unwrap(), "\"default\";r=0;t=3");

    // Another key has its own budget; a request without a key is not limited.
    assert_eq!(send(&mut service, Some("bob")).await.status(), StatusCode::OK);
    for _ in 0..10 {
        let anonymous = send(&mut service, None).await;
        assert_eq!(anonymous.status(), StatusCode::OK);
        assert_eq!(header(&anonymous, "ratelimit"), None);
    }

    clock.advance(Duration::from_secs(1));
    assert_eq!(send(&mut service, Some("alice")).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn clones_of_the_layer_and_service_share_one_limit() {
    let clock = ManualClock::new();
    let layer = layer(clock.clone());
    let mut a = layer.clone().layer(Hello);
    let mut b = layer.layer(Hello);
    let mut c = b.clone();
    let statuses = [
        send(&mut a, Some("k")).await.status(),
        send(&mut b, Some("k")).await.status(),
        send(&mut c, Some("k")).await.status(),
        send(&mut a, Some("k")).await.status(),
    ];
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::OK, StatusCode::OK, StatusCode::TOO_MANY_REQUESTS]
    );
}

#[tokio::test]
async fn the_policy_window_comes_from_the_limiter() {
    // A window limiter announces its window; a bucket the time to refill.
    let window = Keyed::new(10, || FixedWindow::new(5, Duration::from_secs(60))).unwrap();
    let by_api_key: ByApiKey =
        |req| req.headers().get("x-api-key").and_then(|v| v.to_str().ok()).map(str::to_string);
    let mut service = RateLimitLayer::new(window, by_api_key).layer(Hello);
    let response = send(&mut service, Some("k")).await;
    assert_eq!(header(&response, "ratelimit-policy").unwrap(), "\"default\";q=5;w=60");
    let bucket = Unkeyed(TokenBucket::new(10, Rate::per_second(2).unwrap()).unwrap());
    let mut service = RateLimitLayer::new(bucket, by_api_key).layer(Hello);
    let response = send(&mut service, Some("k")).await;
    assert_eq!(header(&response, "ratelimit-policy").unwrap(), "\"default\";q=10;w=5");
}

#[tokio::test]
async fn requests_without_a_key_can_pass_be_denied_or_share_one_budget() {
    let clock = ManualClock::new();
    let mut allow = layer(clock.clone()).layer(Hello);
    let mut deny = layer(clock.clone()).deny_missing_key().layer(Hello);
    let mut share = layer(clock.clone()).share_missing_key("anonymous".to_string()).layer(Hello);
    for _ in 0..5 {
        assert_eq!(send(&mut allow, None).await.status(), StatusCode::OK);
    }
    let denied = send(&mut deny, None).await;
    assert_eq!(denied.status(), StatusCode::BAD_REQUEST);
    assert_eq!(header(&denied, "content-type").unwrap(), "application/problem+json");
    assert_eq!(send(&mut deny, Some("alice")).await.status(), StatusCode::OK);
    // The anonymous callers share one bucket of 3, apart from keyed ones.
    let statuses: Vec<_> =
        [send(&mut share, None).await, send(&mut share, None).await, send(&mut share, None).await]
            .iter()
            .map(Response::status)
            .collect();
    assert_eq!(statuses, [StatusCode::OK; 3]);
    assert_eq!(send(&mut share, None).await.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(send(&mut share, Some("alice")).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_hook_builds_the_refusal_and_the_layer_adds_the_headers() {
    let clock = ManualClock::new();
    let layer = layer(clock).with_refusal(|refused| {
        let mut response =
            Response::new(format!("slow down: {}", matches!(refused, Refused::Limited(_))));
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        response.headers_mut().insert("content-type", "text/plain".parse().unwrap());
        response
    });
    let mut service = layer.layer(Hello);
    for _ in 0..3 {
        send(&mut service, Some("k")).await;
    }
    let denied = send(&mut service, Some("k")).await;
    assert_eq!(denied.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(denied.body(), "slow down: true");
    assert_eq!(header(&denied, "content-type").unwrap(), "text/plain");
    assert_eq!(header(&denied, "retry-after").unwrap(), "1");
    assert_eq!(header(&denied, "ratelimit").unwrap(), "\"default\";r=0;t=3");
}

/// A request from `peer` with the given headers.
fn from(peer: &str, headers: &[(&'static str, &str)]) -> Request<()> {
    let mut request = Request::new(());
    if !peer.is_empty() {
        request.extensions_mut().insert(peer.parse::<SocketAddr>().unwrap());
    }
    for (name, value) in headers {
        request.headers_mut().append(*name, value.parse::<http::HeaderValue>().unwrap());
    }
    request
}

fn ip(text: &str) -> Option<IpAddr> {
    Some(text.parse().unwrap())
}

#[test]
fn the_peer_address_is_the_key_and_proxy_headers_are_ignored_unless_trusted() {
    let peer = ClientIp::peer();
    let spoofed =
        from("198.51.100.4:5000", &[("x-forwarded-for", "1.2.3.4"), ("x-real-ip", "1.2.3.4")]);
    assert_eq!(peer.client_ip(&spoofed), ip("198.51.100.4"));
    assert_eq!(peer.client_ip(&from("", &[("x-forwarded-for", "1.2.3.4")])), None, "no peer");
    // A header from a peer that is not a trusted proxy is not believed.
    let proxied =
        ClientIp::peer().behind_proxies(ProxyHeader::XForwardedFor, &["10.0.0.0/8"]).unwrap();
    assert_eq!(proxied.client_ip(&spoofed), ip("198.51.100.4"));
    // An axum-style source for the peer.
    let custom = ClientIp::peer_from(|_| Some("192.0.2.1".parse().unwrap()));
    assert_eq!(custom.client_ip(&from("", &[])), ip("192.0.2.1"));
}

#[test]
fn x_forwarded_for_yields_the_rightmost_untrusted_hop() {
    let trusted = ["10.0.0.0/8", "2001:db8::/32"];
    let xff = ClientIp::peer().behind_proxies(ProxyHeader::XForwardedFor, &trusted).unwrap();
    let cases = [
        // (header values, client)
        (vec!["203.0.113.9"], "203.0.113.9"),
        (vec!["6.6.6.6, 203.0.113.9"], "203.0.113.9"),
        (vec!["6.6.6.6, 203.0.113.9, 10.1.1.1"], "203.0.113.9"),
        (vec!["6.6.6.6", "203.0.113.9, 10.1.1.1"], "203.0.113.9"),
        (vec!["10.2.2.2, 10.1.1.1"], "10.2.2.2"), // all hops ours: the leftmost
        (vec!["6.6.6.6, garbage, 10.1.1.1"], "10.1.1.1"), // nothing beyond garbage
        (vec!["[2001:db8::5]:80, 2001:db8::7"], "2001:db8::5"),
        (vec![], "10.0.0.1"),
    ];
    for (values, client) in cases {
        let headers: Vec<_> = values.iter().map(|v| ("x-forwarded-for", *v)).collect();
        assert_eq!(xff.client_ip(&from("10.0.0.1:1", &headers)), ip(client), "{values:?}");
    }
}

#[test]
fn x_real_ip_and_forwarded_are_read_from_trusted_proxies() {
    let real = ClientIp::peer().behind_proxies(ProxyHeader::XRealIp, &["127.0.0.1"]).unwrap();
    assert_eq!(
        real.client_ip(&from("127.0.0.1:9", &[("x-real-ip", "203.0.113.9")])),
        ip("203.0.113.9")
    );
    assert_eq!(
        real.client_ip(&from("127.0.0.2:9", &[("x-real-ip", "203.0.113.9")])),
        ip("127.0.0.2")
    );
    let forwarded =
        ClientIp::peer().behind_proxies(ProxyHeader::Forwarded, &["127.0.0.0/8"]).unwrap();
    let header = "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https, For=127.0.0.3";
    assert_eq!(
        forwarded.client_ip(&from("127.0.0.1:9", &[("forwarded", header)])),
        ip("2001:db8:cafe::17")
    );
    assert_eq!(
        forwarded.client_ip(&from("127.0.0.1:9", &[("forwarded", "for=unknown;proto=http")])),
        ip("127.0.0.1"),
        "an obfuscated hop stops the walk at the proxy"
    );
    assert!(ClientIp::peer().behind_proxies(ProxyHeader::Forwarded, &["10.0.0.0/99"]).is_err());
}

#[tokio::test]
async fn the_layer_limits_by_client_ip() {
    #[derive(Clone)]
    struct Echo;
    impl Service<Request<()>> for Echo {
        type Response = Response<String>;
        type Error = Infallible;
        type Future = Ready<Result<Response<String>, Infallible>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: Request<()>) -> Self::Future {
            ready(Ok(Response::new(String::new())))
        }
    }
    let per_ip: Keyed<IpAddr, _> =
        Keyed::new(100, || TokenBucket::new(1, Rate::per_second(1).unwrap())).unwrap();
    let key = ClientIp::peer().behind_proxies(ProxyHeader::XForwardedFor, &["10.0.0.0/8"]).unwrap();
    let mut service = RateLimitLayer::new(per_ip, key).layer(Echo);
    let mut call = async |request: Request<()>| {
        poll_fn(|cx| service.poll_ready(cx)).await.unwrap();
        service.call(request).await.unwrap().status()
    };
    assert_eq!(
        call(from("10.0.0.1:1", &[("x-forwarded-for", "203.0.113.1")])).await,
        StatusCode::OK
    );
    // The same client through another proxy: the same budget.
    let again = call(from("10.0.0.2:1", &[("x-forwarded-for", "203.0.113.1")])).await;
    assert_eq!(again, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        call(from("10.0.0.2:1", &[("x-forwarded-for", "203.0.113.2")])).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn shadow_mode_decides_and_counts_but_never_refuses() {
    let clock = ManualClock::new();
    let mut service = layer(clock.clone()).shadow().layer(Hello);
    let statuses: Vec<StatusCode> = {
        let mut out = Vec::new();
        for _ in 0..5 {
            out.push(send(&mut service, Some("alice")).await.status());
        }
        out
    };
    assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
    let fourth_on = send(&mut service, Some("alice")).await;
    assert_eq!(fourth_on.body(), "hello", "the application was called");
    assert_eq!(header(&fourth_on, "ratelimit-shadow").unwrap(), "refused");
    assert_eq!(header(&fourth_on, "ratelimit").unwrap(), "\"default\";r=0;t=3");
    assert_eq!(header(&fourth_on, "retry-after"), None, "nothing to retry: it was served");
    // The budget was really spent: the same layer enforcing would refuse.
    let first = send(&mut service, Some("bob")).await;
    assert_eq!(header(&first, "ratelimit-shadow"), None);
    assert_eq!(header(&first, "ratelimit").unwrap(), "\"default\";r=2;t=1");
}
