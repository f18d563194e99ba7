//! [`RateLimitLayer`]: a tower layer that limits HTTP requests per key and
//! answers with the IETF `RateLimit` headers.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use crate::error::LimitError;
use crate::keyed::Keyed;
use crate::limiter::Limiter;
use crate::token_bucket::Decision;

/// Something that decides per key: [`Keyed`] in process, or
/// [`RedisLimiter`](crate::RedisLimiter) (feature `redis`) when many
/// servers share the limit.
pub trait KeyedDecision<K>: Send + Sync + 'static {
    /// Decides one request for `key`.
    fn decide(&self, key: &K) -> impl Future<Output = Result<Decision, LimitError>> + Send;
}

impl<K, L> KeyedDecision<K> for Keyed<K, L>
where
    K: Eq + std::hash::Hash + Clone + Send + Sync + 'static,
    L: Limiter + 'static,
{
    fn decide(&self, key: &K) -> impl Future<Output = Result<Decision, LimitError>> + Send {
        std::future::ready(self.check(key))
    }
}

#[cfg(feature = "redis")]
impl<C: crate::RedisConnection> KeyedDecision<String> for crate::RedisLimiter<C> {
    fn decide(&self, key: &String) -> impl Future<Output = Result<Decision, LimitError>> + Send {
        self.check(key)
    }
}

/// How the layer names its policy in the headers.
#[derive(Debug, Clone)]
struct Policy {
    name: Arc<str>,
    window: Duration,
    legacy: bool,
}

/// A tower [`Layer`] that rate-limits requests by a key taken from each
/// request (a closure: client IP, API key, user id; `None` lets the request
/// through unlimited). Cloning it, or the services it makes, shares one
/// limiter: every clone counts against the same limits (unlike
/// `tower::limit::RateLimit`, whose clones each get their own).
///
/// Admitted responses carry, per the IETF httpapi draft "RateLimit header
/// fields for HTTP":
///
/// ```text
/// RateLimit-Policy: "default";q=100;w=60
/// RateLimit: "default";r=42;t=17
/// ```
///
/// (`q`: the limit, `w`: the policy window in seconds, `r`: what remains,
/// `t`: seconds until the limit is fully available again). A denied request
/// gets `429 Too Many Requests` with the same fields and `Retry-After`. The
/// legacy `X-RateLimit-Limit`, `-Remaining` and `-Reset` fields are
/// optional. A full key table answers 429; a failed backend (with
/// [`FailurePolicy::Error`](crate::FailurePolicy)) answers 503.
///
/// ```
/// use std::time::Duration;
/// use sysblocks_ratelimit::{Keyed, Rate, RateLimitLayer, TokenBucket};
/// use tower_layer::Layer;
/// # struct App; // the application's service
///
/// let per_key: Keyed<String, _> = Keyed::new(100_000, || TokenBucket::new(20, Rate::per_second(10)?))?;
/// let layer = RateLimitLayer::new(per_key, Duration::from_secs(2), |req: &http::Request<()>| {
///     req.headers().get("x-api-key").and_then(|v| v.to_str().ok()).map(str::to_string)
/// });
/// // In axum or tower: `ServiceBuilder::new().layer(layer).service(app)`.
/// let limited = layer.layer(App);
/// # drop(limited);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RateLimitLayer<D, F> {
    limiter: Arc<D>,
    key: Arc<F>,
    policy: Policy,
}

impl<D, F> Clone for RateLimitLayer<D, F> {
    fn clone(&self) -> Self {
        RateLimitLayer {
            limiter: self.limiter.clone(),
            key: self.key.clone(),
            policy: self.policy.clone(),
        }
    }
}

impl<D, F> fmt::Debug for RateLimitLayer<D, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer").field("policy", &self.policy).finish_non_exhaustive()
    }
}

impl<D, F> RateLimitLayer<D, F> {
    /// Limits by `limiter`, keyed by `key`. `window` is the policy window
    /// the headers announce (`w`): the window of a window algorithm, or the
    /// time a bucket takes to refill completely.
    pub fn new(limiter: D, window: Duration, key: F) -> Self {
        RateLimitLayer {
            limiter: Arc::new(limiter),
            key: Arc::new(key),
            policy: Policy { name: Arc::from("default"), window, legacy: false },
        }
    }

    /// Names the policy in the headers (default `"default"`).
    #[must_use]
    pub fn with_policy_name(mut self, name: &str) -> Self {
        self.policy.name = Arc::from(name);
        self
    }

    /// Also sends `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
    /// `X-RateLimit-Reset` for older clients.
    #[must_use]
    pub fn with_legacy_headers(mut self) -> Self {
        self.policy.legacy = true;
        self
    }
}

impl<S, D, F> Layer<S> for RateLimitLayer<D, F> {
    type Service = RateLimitService<S, D, F>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService { inner, layer: self.clone() }
    }
}

/// The service [`RateLimitLayer`] wraps around an inner service.
pub struct RateLimitService<S, D, F> {
    inner: S,
    layer: RateLimitLayer<D, F>,
}

impl<S: Clone, D, F> Clone for RateLimitService<S, D, F> {
    fn clone(&self) -> Self {
        RateLimitService { inner: self.inner.clone(), layer: self.layer.clone() }
    }
}

impl<S, D, F> fmt::Debug for RateLimitService<S, D, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitService").field("layer", &self.layer).finish_non_exhaustive()
    }
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, D, F, K, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimitService<S, D, F>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    D: KeyedDecision<K>,
    F: Fn(&Request<ReqBody>) -> Option<K> + Send + Sync + 'static,
    K: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The clone that was polled ready serves this request; the fresh
        // clone waits for the next poll_ready (tower's usual pattern).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let key = (self.layer.key)(&request);
        let limiter = self.layer.limiter.clone();
        let policy = self.layer.policy.clone();
        Box::pin(async move {
            let Some(key) = key else { return inner.call(request).await };
            match limiter.decide(&key).await {
                Ok(decision) if decision.allowed => {
                    let mut response = inner.call(request).await?;
                    write_headers(response.headers_mut(), &decision, &policy);
                    Ok(response)
                }
                Ok(decision) => {
                    Ok(refusal(StatusCode::TOO_MANY_REQUESTS, Some(&decision), &policy))
                }
                Err(LimitError::TooManyKeys { .. }) => {
                    Ok(refusal(StatusCode::TOO_MANY_REQUESTS, None, &policy))
                }
                Err(_) => Ok(refusal(StatusCode::SERVICE_UNAVAILABLE, None, &policy)),
            }
        })
    }
}

/// Whole seconds, rounded up (a client that waits this long is not early).
fn seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn value(text: String) -> HeaderValue {
    // Built from digits, quotes, semicolons and a policy name given in
    // code; an invalid name degrades to an empty field, never a panic.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn write_headers(headers: &mut HeaderMap, decision: &Decision, policy: &Policy) {
    let name = &policy.name;
    headers.insert(
        HeaderName::from_static("ratelimit-policy"),
        value(format!("\"{name}\";q={};w={}", decision.limit, seconds(policy.window))),
    );
    headers.insert(
        HeaderName::from_static("ratelimit"),
        value(format!("\"{name}\";r={};t={}", decision.remaining, seconds(decision.reset_after))),
    );
    if policy.legacy {
        headers.insert("x-ratelimit-limit", value(decision.limit.to_string()));
        headers.insert("x-ratelimit-remaining", value(decision.remaining.to_string()));
        headers.insert("x-ratelimit-reset", value(seconds(decision.reset_after).to_string()));
    }
    if let Some(retry) = decision.retry_after {
        headers.insert(http::header::RETRY_AFTER, value(seconds(retry).max(1).to_string()));
    }
}

fn refusal<B: Default>(
    status: StatusCode,
    decision: Option<&Decision>,
    policy: &Policy,
) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = status;
    match decision {
        Some(decision) => write_headers(response.headers_mut(), decision, policy),
        None => {
            response.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
    }
    response
}
