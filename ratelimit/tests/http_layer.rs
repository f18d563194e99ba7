//! The tower layer: per-key limits, 429 with Retry-After, the IETF
//! RateLimit headers, and clones sharing one limit.
#![cfg(feature = "tower")]

use std::convert::Infallible;
use std::future::{Ready, poll_fn, ready};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use sysblocks_ratelimit::{Keyed, ManualClock, Rate, RateLimitLayer, TokenBucket};
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
    RateLimitLayer::new(keyed, Duration::from_secs(3), by_api_key).with_legacy_headers()
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
    assert_eq!(denied.body(), "", "the application was not called");
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
