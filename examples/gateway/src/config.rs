//! The gateway's configuration file (TOML), and the checks that refuse a bad
//! one at start, or at a reload (which then keeps the old one), with the
//! file, the line and the reason.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! redis = "redis://127.0.0.1:6379/"       # or redis_cluster = ["redis://...", ...];
//!                                         # neither: limits in this process
//!
//! [server]                                # all optional
//! max_header_bytes = 16384                # larger headers: 431
//! max_body_bytes = 1048576                # larger bodies: 413
//! header_timeout_ms = 5000                # headers slower than this: cut off
//! body_timeout_ms = 10000                 # a body slower than this: 408
//!
//! [[upstream]]
//! name = "api"
//! servers = ["127.0.0.1:9001", "127.0.0.1:9002"]
//! hash_key = "header:x-user"              # the route key (default: the path)
//! balance_factor = 1.25                   # bounded loads: at most c x the mean
//! eject_after = 5                         # consecutive failures
//!
//! [[route]]
//! name = "pricing"                        # default: the prefix
//! host = "api.example.com"                # optional: any host
//! prefix = "/pricing"
//! upstream = "api"
//! retries = 1                             # idempotent requests, next replica
//! cache = { max_bytes = 67108864 }        # optional
//! limit = { key = "client_ip", algorithm = "sliding_window_log", rate = "1000/min",
//!           shadow = false, on_failure = "open" }
//! ```
//!
//! A route's `limit` is a descriptor in the spirit of Envoy's: where the key
//! comes from (`client_ip`, `path`, or `header:NAME`), one of the five
//! algorithms of sysblocks-ratelimit with its rate and burst, `shadow` (count
//! and report, never refuse) and what to do when Redis fails (`open`: admit,
//! `closed`: refuse with 503).

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use sysblocks_ratelimit::Limit;
use toml::Spanned;

/// A configuration that cannot be used: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file's name, as given.
    pub file: String,
    /// The line (from 1; 0 when the whole file is at fault).
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// Where Redis is, if limits are shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server.
    Standalone(String),
    /// A Redis Cluster, by some of its nodes.
    Cluster(Vec<String>),
}

/// Limits on what a client may send, and how slowly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerLimits {
    /// The request line and headers, at most (beyond: 431).
    pub max_header_bytes: usize,
    /// A request body, at most (beyond: 413).
    pub max_body_bytes: u64,
    /// Time for a client to send its headers (beyond: the connection is
    /// closed).
    pub header_timeout_ms: u64,
    /// Time for a client to send its body (beyond: 408).
    pub body_timeout_ms: u64,
}

impl Default for ServerLimits {
    /// 16 KiB of headers, 1 MiB of body, 5 s for the headers, 10 s for
    /// the body.
    fn default() -> Self {
        ServerLimits {
            max_header_bytes: 16 * 1024,
            max_body_bytes: 1 << 20,
            header_timeout_ms: 5_000,
            body_timeout_ms: 10_000,
        }
    }
}

impl ServerLimits {
    /// The header timeout.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }

    /// The body timeout.
    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms)
    }
}

/// Where a key (a limit's, or a route key for consistent hashing) comes
/// from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The client's address.
    ClientIp,
    /// The request's path.
    Path,
    /// A request header (its name, lowercased).
    Header(String),
}

impl KeySource {
    fn parse(text: &str) -> Result<KeySource, String> {
        match text {
            "client_ip" => Ok(KeySource::ClientIp),
            "path" => Ok(KeySource::Path),
            _ => match text.strip_prefix("header:") {
                Some(name) if !name.is_empty() && name.bytes().all(is_token_byte) => {
                    Ok(KeySource::Header(name.to_ascii_lowercase()))
                }
                Some(name) => Err(format!("{name:?} is not a header name")),
                None => Err(format!(
                    "key {text:?}: expected \"client_ip\", \"path\" or \"header:NAME\""
                )),
            },
        }
    }
}

/// The bytes of an HTTP token (RFC 9110), which header names are.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// What a route's limit does when Redis cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Admit (the default: an outage of the limiter is not an outage of
    /// the API).
    #[default]
    Open,
    /// Refuse with 503.
    Closed,
}

/// A route's limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteLimit {
    /// Where the key comes from.
    pub key: KeySource,
    /// The algorithm, rate and burst.
    pub limit: Limit,
    /// Count and report, never refuse.
    pub shadow: bool,
    /// What to do when Redis fails.
    pub on_failure: OnFailure,
}

/// A route's cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// The cache's bound, in bytes of cached responses.
    pub max_bytes: u64,
}

/// A group of upstream servers.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    /// Its name, which routes refer to.
    pub name: String,
    /// Its servers.
    pub servers: Vec<SocketAddr>,
    /// Where the route key comes from (default: the path).
    pub hash_key: KeySource,
    /// Bounded loads: no server gets more than `balance_factor` (above 1)
    /// x the mean of requests in flight (plus one).
    pub balance_factor: f64,
    /// Consecutive failures that eject a server until a probe succeeds.
    pub eject_after: u32,
}

/// A route: requests for `host` (any, when `None`) whose path starts with
/// `prefix` go to `upstream`.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Its name (in metrics and the `RateLimit-Policy` header).
    pub name: String,
    /// The host it is for, lowercased, without a port.
    pub host: Option<String>,
    /// The path prefix.
    pub prefix: String,
    /// The upstream group's name.
    pub upstream: String,
    /// Retries of idempotent requests on the next replica.
    pub retries: u32,
    /// Its limit.
    pub limit: Option<RouteLimit>,
    /// Its cache.
    pub cache: Option<CacheConfig>,
}

/// A checked configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the gateway listens.
    pub listen: SocketAddr,
    /// Where limits are shared, if anywhere.
    pub redis: Option<RedisTarget>,
    /// Client limits.
    pub server: ServerLimits,
    /// The upstream groups.
    pub upstreams: Vec<Upstream>,
    /// The routes.
    pub routes: Vec<Route>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Spanned<String>,
    #[serde(default)]
    redis: Option<Spanned<String>>,
    #[serde(default)]
    redis_cluster: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    server: ServerLimits,
    #[serde(default, rename = "upstream")]
    upstreams: Vec<Spanned<RawUpstream>>,
    #[serde(default, rename = "route")]
    routes: Vec<Spanned<RawRoute>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    name: String,
    servers: Vec<String>,
    #[serde(default)]
    hash_key: Option<String>,
    #[serde(default)]
    balance_factor: Option<f64>,
    #[serde(default)]
    eject_after: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    host: Option<String>,
    prefix: String,
    upstream: String,
    #[serde(default)]
    retries: Option<u32>,
    #[serde(default)]
    cache: Option<CacheConfig>,
    #[serde(default)]
    limit: Option<RawLimit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimit {
    key: String,
    #[serde(flatten)]
    limit: Limit,
    #[serde(default)]
    shadow: bool,
    #[serde(default)]
    on_failure: OnFailure,
}

impl Config {
    /// Reads and checks the file at `path`.
    ///
    /// # Errors
    /// The file cannot be read, or is not a valid configuration.
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: 0,
            reason: format!("cannot read it: {e}"),
        })?;
        Config::parse(&path.display().to_string(), &text)
    }

    /// Checks the text of a configuration file named `file`.
    ///
    /// # Errors
    /// The first thing wrong, with its line.
    pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
        let at = |span: Range<usize>, reason: String| ConfigError {
            file: file.to_owned(),
            line: text[..span.start.min(text.len())].matches('\n').count() + 1,
            reason,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            at(span, e.message().trim().to_owned())
        })?;
        let listen = raw.listen.get_ref().parse().map_err(|_| {
            at(
                raw.listen.span(),
                format!("listen {:?} is not an address:port", raw.listen.get_ref()),
            )
        })?;
        let redis = match (raw.redis, raw.redis_cluster) {
            (Some(_), Some(cluster)) => {
                return Err(at(cluster.span(), "give redis or redis_cluster, not both".into()));
            }
            (Some(url), None) => Some(RedisTarget::Standalone(url.into_inner())),
            (None, Some(nodes)) if nodes.get_ref().is_empty() => {
                return Err(at(nodes.span(), "redis_cluster lists no node".into()));
            }
            (None, Some(nodes)) => Some(RedisTarget::Cluster(nodes.into_inner())),
            (None, None) => None,
        };
        let server = raw.server;
        if server.max_header_bytes < 1024 || server.max_body_bytes == 0 {
            return Err(at(
                0..0,
                "server: max_header_bytes must be at least 1024 and max_body_bytes at least 1"
                    .into(),
            ));
        }
        if server.header_timeout_ms == 0 || server.body_timeout_ms == 0 {
            return Err(at(0..0, "server: the timeouts must be above zero".into()));
        }
        let mut upstreams: Vec<Upstream> = Vec::new();
        for spanned in raw.upstreams {
            let span = spanned.span();
            let raw = spanned.into_inner();
            if upstreams.iter().any(|u| u.name == raw.name) {
                return Err(at(span, format!("upstream {:?} is defined twice", raw.name)));
            }
            if raw.servers.is_empty() {
                return Err(at(span, format!("upstream {:?} has no server", raw.name)));
            }
            let mut servers = Vec::new();
            for server in &raw.servers {
                servers.push(server.parse().map_err(|_| {
                    at(
                        span.clone(),
                        format!("upstream {:?}: {server:?} is not an address:port", raw.name),
                    )
                })?);
            }
            let hash_key = match &raw.hash_key {
                Some(text) => KeySource::parse(text)
                    .map_err(|e| at(span.clone(), format!("upstream {:?}: {e}", raw.name)))?,
                None => KeySource::Path,
            };
            let balance_factor = raw.balance_factor.unwrap_or(1.25);
            if !(balance_factor.is_finite() && balance_factor > 1.0) {
                return Err(at(
                    span,
                    format!(
                        "upstream {:?}: balance_factor must be above 1 (got {balance_factor})",
                        raw.name
                    ),
                ));
            }
            let eject_after = raw.eject_after.unwrap_or(5);
            if eject_after == 0 {
                return Err(at(
                    span,
                    format!("upstream {:?}: eject_after must be at least 1", raw.name),
                ));
            }
            upstreams.push(Upstream {
                name: raw.name,
                servers,
                hash_key,
                balance_factor,
                eject_after,
            });
        }
        let mut routes: Vec<Route> = Vec::new();
        for spanned in raw.routes {
            let span = spanned.span();
            let raw = spanned.into_inner();
            if !raw.prefix.starts_with('/') {
                return Err(at(span, format!("route prefix {:?} must start with /", raw.prefix)));
            }
            if !upstreams.iter().any(|u| u.name == raw.upstream) {
                return Err(at(
                    span,
                    format!("route {:?}: no upstream is named {:?}", raw.prefix, raw.upstream),
                ));
            }
            let host = raw.host.map(|h| h.to_ascii_lowercase());
            if routes.iter().any(|r| r.host == host && r.prefix == raw.prefix) {
                return Err(at(
                    span,
                    format!("route {:?} is defined twice for this host", raw.prefix),
                ));
            }
            let limit = match raw.limit {
                Some(limit) => {
                    let key = KeySource::parse(&limit.key)
                        .map_err(|e| at(span.clone(), format!("route {:?}: {e}", raw.prefix)))?;
                    limit.limit.validate().map_err(|e| {
                        at(span.clone(), format!("route {:?}: limit: {e}", raw.prefix))
                    })?;
                    Some(RouteLimit {
                        key,
                        limit: limit.limit,
                        shadow: limit.shadow,
                        on_failure: limit.on_failure,
                    })
                }
                None => None,
            };
            if raw.cache.is_some_and(|c| c.max_bytes == 0) {
                return Err(at(
                    span,
                    format!("route {:?}: cache.max_bytes must be at least 1", raw.prefix),
                ));
            }
            routes.push(Route {
                name: raw.name.unwrap_or_else(|| raw.prefix.clone()),
                host,
                prefix: raw.prefix,
                upstream: raw.upstream,
                retries: raw.retries.unwrap_or(1),
                limit,
                cache: raw.cache,
            });
        }
        Ok(Config { listen, redis, server, upstreams, routes })
    }

    /// The route for a request: the longest prefix among the routes for
    /// its host, then among the routes for any host.
    pub fn route_for(&self, host: Option<&str>, path: &str) -> Option<&Route> {
        let host = host.map(|h| h.split(':').next().unwrap_or(h).to_ascii_lowercase());
        let best = |for_host: bool| {
            self.routes
                .iter()
                .filter(|r| {
                    if for_host { r.host.is_some() && r.host == host } else { r.host.is_none() }
                })
                .filter(|r| path.starts_with(&r.prefix))
                .max_by_key(|r| r.prefix.len())
        };
        best(true).or_else(|| best(false))
    }

    /// The upstream group named `name`.
    pub fn upstream(&self, name: &str) -> Option<&Upstream> {
        self.upstreams.iter().find(|u| u.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
listen = "127.0.0.1:8080"
redis = "redis://127.0.0.1:6379/"

[[upstream]]
name = "api"
servers = ["127.0.0.1:9001", "127.0.0.1:9002"]
hash_key = "header:X-User"

[[route]]
prefix = "/"
upstream = "api"

[[route]]
name = "pricing"
prefix = "/pricing"
upstream = "api"
limit = { key = "header:x-api-key", algorithm = "fixed_window", rate = "1000/min", shadow = true, on_failure = "closed" }

[[route]]
host = "Admin.Example.com"
prefix = "/pricing"
upstream = "api"
cache = { max_bytes = 1000 }
"#;

    #[test]
    fn a_good_file_loads_and_routes_by_host_then_longest_prefix() {
        let config = Config::parse("g.toml", GOOD).unwrap();
        assert_eq!(config.redis, Some(RedisTarget::Standalone("redis://127.0.0.1:6379/".into())));
        assert_eq!(config.upstreams[0].hash_key, KeySource::Header("x-user".into()));
        let pricing = config.route_for(Some("api.example.com"), "/pricing/eu").unwrap();
        assert_eq!(pricing.name, "pricing");
        let limit = pricing.limit.as_ref().unwrap();
        assert!(limit.shadow);
        assert_eq!(limit.on_failure, OnFailure::Closed);
        assert_eq!(limit.limit.capacity(), 1000);
        let admin = config.route_for(Some("admin.example.com:8080"), "/pricing").unwrap();
        assert!(admin.cache.is_some(), "the host's own route wins");
        assert_eq!(config.route_for(Some("admin.example.com"), "/other").unwrap().prefix, "/");
    }

    #[test]
    fn bad_files_are_refused_with_the_line_and_the_reason() {
        let cases: [(&str, usize, &str); 9] = [
            ("listen = \"nowhere\"\n", 1, "not an address:port"),
            ("listen = \"127.0.0.1:1\"\nbogus = 1\n", 2, "unknown field"),
            (
                "listen = \"127.0.0.1:1\"\n[[route]]\nprefix = \"/\"\nupstream = \"nope\"\n",
                2,
                "no upstream is named",
            ),
            (
                "listen = \"127.0.0.1:1\"\n[[upstream]]\nname = \"a\"\nservers = []\n",
                2,
                "has no server",
            ),
            (
                "listen = \"127.0.0.1:1\"\n[[upstream]]\nname = \"a\"\nservers = [\"x\"]\n",
                2,
                "not an address:port",
            ),
            (
                "listen = \"127.0.0.1:1\"\n[[upstream]]\nname = \"a\"\nservers = [\"127.0.0.1:2\"]\n\n[[route]]\nprefix = \"/\"\nupstream = \"a\"\nlimit = { key = \"ip\", algorithm = \"fixed_window\", rate = \"1/s\" }\n",
                6,
                "expected \"client_ip\"",
            ),
            (
                "listen = \"127.0.0.1:1\"\n[[upstream]]\nname = \"a\"\nservers = [\"127.0.0.1:2\"]\n[[route]]\nprefix = \"/\"\nupstream = \"a\"\nlimit = { key = \"path\", algorithm = \"fixed_window\", rate = \"0/s\" }\n",
                8,
                "rate",
            ),
            (
                "listen = \"127.0.0.1:1\"\n[[upstream]]\nname = \"a\"\nservers = [\"127.0.0.1:2\"]\n[[route]]\nprefix = \"x\"\nupstream = \"a\"\n",
                5,
                "must start with /",
            ),
            ("listen = \"127.0.0.1:1\"\nredis = \"r\"\nredis_cluster = [\"r\"]\n", 3, "not both"),
        ];
        for (text, line, reason) in cases {
            let e = Config::parse("g.toml", text).unwrap_err();
            assert_eq!((e.file.as_str(), e.line), ("g.toml", line), "{text}\n{e}");
            assert!(e.reason.contains(reason), "{e}");
            assert!(e.to_string().starts_with(&format!("g.toml:{line}: ")));
        }
        let missing = Config::load(std::path::Path::new("/nonexistent/g.toml")).unwrap_err();
        assert!(missing.reason.starts_with("cannot read it"));
    }
}
