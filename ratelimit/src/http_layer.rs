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

use crate::decision::Decision;
use crate::error::LimitError;
use crate::keyed_limiter::KeyedLimiter;

/// How a request names its limit key: any closure `Fn(&Request<B>) ->
/// Option<K>`, or [`ClientIp`](crate::ClientIp). `None`: the request has no
/// key (see [`RateLimitLayer::deny_missing_key`]).
pub trait KeyExtractor<B>: Send + Sync + 'static {
    /// The key type.
    type Key: Send + Sync + 'static;

    /// The key of `request`, if it has one.
    fn extract(&self, request: &Request<B>) -> Option<Self::Key>;
}

impl<B, K, F> KeyExtractor<B> for F
where
    F: Fn(&Request<B>) -> Option<K> + Send + Sync + 'static,
    K: Send + Sync + 'static,
{
    type Key = K;

    fn extract(&self, request: &Request<B>) -> Option<K> {
        self(request)
    }
}

/// An extractor whose requests without a key share one key (one bucket
/// for every anonymous caller), from [`RateLimitLayer::share_missing_key`].
#[derive(Debug, Clone)]
pub struct OrShared<F, K> {
    inner: Arc<F>,
    shared: K,
}

impl<B, F, K> KeyExtractor<B> for OrShared<F, K>
where
    F: KeyExtractor<B, Key = K>,
    K: Clone + Send + Sync + 'static,
{
    type Key = K;

    fn extract(&self, request: &Request<B>) -> Option<K> {
        self.inner.extract(request).or_else(|| Some(self.shared.clone()))
    }
}

/// Why the layer refused a request, for the hook that builds the response
/// ([`RateLimitLayer::with_refusal`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refused {
    /// Over the limit: 429 by default.
    Limited(Decision),
    /// A new key while the key table is full of busy keys: 429 by default.
    TooManyKeys,
    /// The backend failed (with `FailurePolicy::Error`):
    /// 503 by default.
    Unavailable,
    /// No key, with [`RateLimitLayer::deny_missing_key`]: 400 by default.
    MissingKey,
}

type RefusalFn = dyn Fn(&Refused) -> Response<String> + Send + Sync;

/// The default refusal: an RFC 9457 problem document
/// (`application/problem+json`) with the status, a title, a detail and, for
/// a limit, the seconds to wait.
pub fn problem_response(refused: &Refused) -> Response<String> {
    let (status, detail, retry) = match refused {
        Refused::Limited(decision) => (
            StatusCode::TOO_MANY_REQUESTS,
            "the rate limit for this key is exhausted",
            decision.retry_after.map(|r| seconds(r).max(1)),
        ),
        Refused::TooManyKeys => {
            (StatusCode::TOO_MANY_REQUESTS, "too many clients are being limited at once", Some(1))
        }
        Refused::Unavailable => {
            (StatusCode::SERVICE_UNAVAILABLE, "the rate limit store is unavailable", Some(1))
        }
        Refused::MissingKey => {
            (StatusCode::BAD_REQUEST, "the request carries no rate limit key", None)
        }
    };
    let title = status.canonical_reason().unwrap_or("Error");
    let mut body = format!(
        "{{\"type\":\"about:blank\",\"title\":\"{title}\",\"status\":{},\"detail\":\"{detail}\"",
        status.as_u16()
    );
    if let Some(retry) = retry {
        body.push_str(&format!(",\"retry_after\":{retry}"));
    }
    body.push('}');
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    response
}

/// How the layer names its policy in the headers.
#[derive(Debug, Clone)]
struct Policy {
    name: Arc<str>,
    legacy: bool,
    deny_missing: bool,
    shadow: bool,
}

/// A tower [`Layer`] that rate-limits requests by a key taken from each
/// request (a [`KeyExtractor`]: a closure reading an API key or a user id,
/// or [`ClientIp`](crate::ClientIp)), against any [`KeyedLimiter`]: in
/// process ([`Keyed`](crate::Keyed)) or on Redis
/// (`RedisLimiter`, feature `redis`), so that every instance of a
/// service shares one limit. Cloning the layer, or the services it makes,
/// shares one limiter (unlike `tower::limit::RateLimit`, whose clones each
/// get their own).
///
/// Admitted responses carry, per the IETF httpapi draft "RateLimit header
/// fields for HTTP":
///
/// ```text
/// RateLimit-Policy: "default";q=100;w=60
/// RateLimit: "default";r=42;t=17
/// ```
///
/// (`q`: the limit, `w`: the limiter's policy window in seconds, `r`: what
/// remains, `t`: seconds until the limit is fully available again). A
/// denied request gets `429 Too Many Requests` with the same fields,
/// `Retry-After`, and an RFC 9457 problem body ([`problem_response`];
/// [`with_refusal`](Self::with_refusal) builds another). The legacy
/// `X-RateLimit-Limit`, `-Remaining` and `-Reset` fields are optional. A
/// full key table answers 429; a failed backend (with
/// `FailurePolicy::Error`) answers 503.
///
/// A request without a key passes unlimited by default;
/// [`deny_missing_key`](Self::deny_missing_key) refuses it (400), and
/// [`share_missing_key`](Self::share_missing_key) puts all such requests
/// under one shared key.
///
/// ```
/// use sysblocks_ratelimit::{Keyed, Rate, RateLimitLayer, TokenBucket};
/// use tower_layer::Layer;
/// # struct App; // the application's service
///
/// let per_key: Keyed<String, _> = Keyed::new(100_000, || TokenBucket::new(20, Rate::per_second(10)?))?;
/// let layer = RateLimitLayer::new(per_key, |req: &http::Request<()>| {
///     req.headers().get("x-api-key").and_then(|v| v.to_str().ok()).map(str::to_string)
/// })
/// .share_missing_key("anonymous".to_string());
/// // In axum or tower: `ServiceBuilder::new().layer(layer).service(app)`.
/// let limited = layer.layer(App);
/// # drop(limited);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A gateway's setup: one limit per client IP shared by every instance on
/// Redis, the client's address taken from `X-Forwarded-For` only when the
/// request came through our own load balancers, requests without an
/// address refused, and a plain-text 429:
///
/// ```no_run
/// # #![allow(dead_code)]
/// # #[cfg(feature = "redis")]
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use sysblocks_ratelimit::{
///     Algorithm, ClientIp, Limit, ProxyHeader, RateLimitLayer, RedisLimiter, Refused,
/// };
///
/// let client = redis::Client::open("redis://127.0.0.1:6379/")?;
/// let limit = Limit::new(Algorithm::SlidingWindowCounter, "600/min".parse()?);
/// let limiter = RedisLimiter::new(client.get_connection_manager().await?, limit, "ip:")?;
/// let by_ip = ClientIp::peer().behind_proxies(ProxyHeader::XForwardedFor, &["10.0.0.0/8"])?;
/// let layer = RateLimitLayer::new(limiter, move |req: &http::Request<()>| {
///     by_ip.client_ip(req).map(|ip| ip.to_string())
/// })
/// .deny_missing_key()
/// .with_refusal(|refused| {
///     let status = match refused {
///         Refused::MissingKey => http::StatusCode::BAD_REQUEST,
///         Refused::Unavailable => http::StatusCode::SERVICE_UNAVAILABLE,
///         _ => http::StatusCode::TOO_MANY_REQUESTS,
///     };
///     let mut response = http::Response::new("slow down\n".to_string());
///     *response.status_mut() = status;
///     response
/// });
/// # drop(layer);
/// # Ok(()) }
/// ```
pub struct RateLimitLayer<D, F> {
    limiter: Arc<D>,
    key: Arc<F>,
    policy: Policy,
    refusal: Arc<RefusalFn>,
}

impl<D, F> Clone for RateLimitLayer<D, F> {
    fn clone(&self) -> Self {
        RateLimitLayer {
            limiter: self.limiter.clone(),
            key: self.key.clone(),
            policy: self.policy.clone(),
            refusal: self.refusal.clone(),
        }
    }
}

impl<D, F> fmt::Debug for RateLimitLayer<D, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer").field("policy", &self.policy).finish_non_exhaustive()
    }
}

impl<D, F> RateLimitLayer<D, F> {
    /// Limits by `limiter`, keyed by `key`. The headers announce the
    /// limiter's own limit and window.
    pub fn new(limiter: D, key: F) -> Self {
        RateLimitLayer {
            limiter: Arc::new(limiter),
            key: Arc::new(key),
            policy: Policy {
                name: Arc::from("default"),
                legacy: false,
                deny_missing: false,
                shadow: false,
            },
            refusal: Arc::new(problem_response),
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

    /// Shadow mode, to try a limit on live traffic before enforcing it:
    /// every request is decided and counted as usual and carries the
    /// `RateLimit` headers, but none is refused; a request that would have
    /// been refused is marked `RateLimit-Shadow: refused`. A limiter
    /// failure lets the request through.
    #[must_use]
    pub fn shadow(mut self) -> Self {
        self.policy.shadow = true;
        self
    }

    /// Refuses requests without a key ([`Refused::MissingKey`], 400 by
    /// default) instead of letting them through unlimited.
    #[must_use]
    pub fn deny_missing_key(mut self) -> Self {
        self.policy.deny_missing = true;
        self
    }

    /// Limits requests without a key under the one key `shared`: every
    /// anonymous caller draws from the same budget.
    pub fn share_missing_key<K>(self, shared: K) -> RateLimitLayer<D, OrShared<F, K>> {
        RateLimitLayer {
            limiter: self.limiter,
            key: Arc::new(OrShared { inner: self.key, shared }),
            policy: self.policy,
            refusal: self.refusal,
        }
    }

    /// Builds refused responses with `refusal` (status, headers, body)
    /// instead of [`problem_response`]. The layer adds `Retry-After` and
    /// the `RateLimit` headers to what it returns.
    #[must_use]
    pub fn with_refusal(
        mut self,
        refusal: impl Fn(&Refused) -> Response<String> + Send + Sync + 'static,
    ) -> Self {
        self.refusal = Arc::new(refusal);
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

impl<S, D, F, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimitService<S, D, F>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    F: KeyExtractor<ReqBody>,
    D: KeyedLimiter<F::Key> + 'static,
    ReqBody: Send + 'static,
    ResBody: From<String> + Send + 'static,
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
        let key = self.layer.key.extract(&request);
        let layer = self.layer.clone();
        Box::pin(async move {
            let refuse = |refused: Refused| layer.refuse::<F::Key, ResBody>(&refused);
            let Some(key) = key else {
                if layer.policy.deny_missing {
                    return Ok(refuse(Refused::MissingKey));
                }
                return inner.call(request).await;
            };
            match layer.limiter.check(&key).await {
                Ok(decision) if decision.allowed || layer.policy.shadow => {
                    let mut response = inner.call(request).await?;
                    layer.write_headers::<F::Key>(response.headers_mut(), &decision);
                    if !decision.allowed {
                        response.headers_mut().remove(http::header::RETRY_AFTER);
                        response.headers_mut().insert(
                            HeaderName::from_static("ratelimit-shadow"),
                            HeaderValue::from_static("refused"),
                        );
                    }
                    Ok(response)
                }
                Err(_) if layer.policy.shadow => inner.call(request).await,
                Ok(decision) => Ok(refuse(Refused::Limited(decision))),
                Err(LimitError::TooManyKeys { .. }) => Ok(refuse(Refused::TooManyKeys)),
                Err(_) => Ok(refuse(Refused::Unavailable)),
            }
        })
    }
}

impl<D, F> RateLimitLayer<D, F> {
    /// The response for a refused request: the hook's, with the limit's
    /// headers (or a one-second `Retry-After` when there is no decision).
    fn refuse<K: ?Sized, B: From<String>>(&self, refused: &Refused) -> Response<B>
    where
        D: KeyedLimiter<K>,
    {
        let mut response = (self.refusal)(refused).map(B::from);
        match refused {
            Refused::Limited(decision) => {
                self.write_headers::<K>(response.headers_mut(), decision);
            }
            Refused::TooManyKeys | Refused::Unavailable => {
                response
                    .headers_mut()
                    .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Refused::MissingKey => {}
        }
        response
    }

    fn write_headers<K: ?Sized>(&self, headers: &mut HeaderMap, decision: &Decision)
    where
        D: KeyedLimiter<K>,
    {
        let policy = &self.policy;
        let name = &policy.name;
        let window = seconds(KeyedLimiter::<K>::window(&*self.limiter));
        headers.insert(
            HeaderName::from_static("ratelimit-policy"),
            value(format!("\"{name}\";q={};w={window}", decision.limit)),
        );
        headers.insert(
            HeaderName::from_static("ratelimit"),
            value(format!(
                "\"{name}\";r={};t={}",
                decision.remaining,
                seconds(decision.reset_after)
            )),
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
}

/// Whole seconds, rounded up (a client that waits this long is not early).
fn seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn value(text: String) -> HeaderValue {
    // Built from digits, quotes, semicolons and a policy name given in
    // code; an invalid name degrades to an empty field, never a panic.
    // (From the String itself: its buffer becomes the value's, no copy.)
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}
