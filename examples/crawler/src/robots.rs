//! robots.txt: fetched once per host (scheme, name and port), parsed with
//! the `texting_robots` crate, kept in an `LruCache` with a time to live
//! (sysblocks-lru-cache), and obeyed: disallowed paths are never asked
//! for, and a `Crawl-delay` becomes the host's delay (capped).
//!
//! The rules for a robots.txt that cannot be had follow Google's:
//!
//! | answer                              | rules                        |
//! |-------------------------------------|------------------------------|
//! | 2xx                                 | parsed (the first 500 KiB)   |
//! | 2xx that does not parse             | allow everything             |
//! | 4xx (no robots.txt)                 | allow everything             |
//! | 5xx, 429, timeout, refused          | disallow everything          |
//!
//! The crawl loop asks again after a backoff when robots.txt cannot be had,
//! and keeps "disallow everything" (for the cache's lifetime) only after
//! the URL's last attempt.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sysblocks_lru_cache::LruCache;
use texting_robots::Robot;
use url::Url;

use crate::fetch::{FetchError, Page};

/// The most of a robots.txt that is read (Google reads 500 KiB).
pub const MAX_ROBOTS_BYTES: usize = 500 * 1024;

/// The longest crawl-delay obeyed (StormCrawler's cap); a longer one is
/// cut to this.
pub const MAX_CRAWL_DELAY: Duration = Duration::from_secs(30);

/// One host's rules.
#[derive(Debug)]
pub enum Rules {
    /// Parsed rules.
    Parsed(Box<Robot>),
    /// Everything may be fetched (no robots.txt, or an unreadable one).
    AllowAll,
    /// Nothing may be fetched (the server failed): why.
    DisallowAll(String),
}

impl Rules {
    /// Rules from a robots.txt response, for the agent `agent`.
    pub fn from_response(agent: &str, response: Result<&Page, &FetchError>) -> Rules {
        match response {
            Ok(page) => Rules::from_parts(agent, page.status, &page.body),
            Err(error) => Rules::DisallowAll(format!("robots.txt: {error}")),
        }
    }

    /// Rules from a status (0: no response) and a body.
    pub fn from_parts(agent: &str, status: u16, body: &[u8]) -> Rules {
        match status {
            200..=299 => match Robot::new(agent, &body[..body.len().min(MAX_ROBOTS_BYTES)]) {
                Ok(robot) => Rules::Parsed(Box::new(robot)),
                Err(_) => Rules::AllowAll,
            },
            0 => Rules::DisallowAll("robots.txt: no response".to_owned()),
            429 | 500.. => Rules::DisallowAll(format!("robots.txt answered {status}")),
            _ => Rules::AllowAll,
        }
    }

    /// Whether `url` may be fetched.
    pub fn allows(&self, url: &Url) -> bool {
        match self {
            Rules::Parsed(robot) => robot.allowed(url.as_str()),
            Rules::AllowAll => true,
            Rules::DisallowAll(_) => false,
        }
    }

    /// The crawl-delay asked for, capped at [`MAX_CRAWL_DELAY`].
    pub fn crawl_delay(&self) -> Option<Duration> {
        match self {
            Rules::Parsed(robot) => robot
                .delay
                .filter(|d| d.is_finite() && *d > 0.0)
                .map(|d| Duration::from_secs_f32(d.min(MAX_CRAWL_DELAY.as_secs_f32()))),
            _ => None,
        }
    }
}

/// The URL of `url`'s host's robots.txt.
pub fn robots_url(url: &Url) -> Url {
    let mut robots = url.clone();
    robots.set_path("/robots.txt");
    robots.set_query(None);
    robots.set_fragment(None);
    robots
}

/// The cache key of a host: scheme, name and port.
pub fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Rules per host, each kept for a time to live, at most `capacity` hosts.
#[derive(Debug)]
pub struct RobotsCache {
    cache: Mutex<LruCache<String, Arc<Rules>>>,
}

impl RobotsCache {
    /// A cache of `capacity` hosts whose rules live `ttl`.
    ///
    /// # Errors
    /// A zero capacity or time to live.
    pub fn new(capacity: usize, ttl: Duration) -> Result<RobotsCache, String> {
        let cache = LruCache::builder()
            .capacity(capacity)
            .time_to_live(ttl)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(RobotsCache { cache: Mutex::new(cache) })
    }

    /// The rules of `url`'s host, if known and not expired.
    pub fn get(&self, url: &Url) -> Option<Arc<Rules>> {
        let mut cache = self.cache.lock().ok()?;
        cache.get(&origin_of(url)).cloned()
    }

    /// Remembers the rules of `url`'s host.
    pub fn insert(&self, url: &Url, rules: Rules) -> Arc<Rules> {
        let rules = Arc::new(rules);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(origin_of(url), Arc::clone(&rules));
        }
        rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn page(status: u16, body: &str) -> Page {
        Page {
            status,
            content_type: "text/plain".into(),
            location: None,
            retry_after: None,
            body: Bytes::from(body.to_owned()),
            truncated: false,
        }
    }

    #[test]
    fn rules_follow_the_answer() {
        let url = Url::parse("http://a.test/private/x").unwrap();
        let ok = page(200, "User-agent: *\nDisallow: /private/\nCrawl-delay: 4000\n");
        let rules = Rules::from_response("sysblocks-crawler", Ok(&ok));
        assert!(!rules.allows(&url));
        assert!(rules.allows(&Url::parse("http://a.test/public").unwrap()));
        assert_eq!(rules.crawl_delay(), Some(MAX_CRAWL_DELAY), "capped");
        assert!(Rules::from_response("x", Ok(&page(404, ""))).allows(&url));
        assert!(!Rules::from_response("x", Ok(&page(503, ""))).allows(&url));
        let garbage: String =
            (0..2_000_000).map(|i| char::from(b' ' + (i * 7 % 90) as u8)).collect();
        let huge = page(200, &(garbage + "\nUser-agent: *\nDisallow: /\n"));
        assert!(Rules::from_response("x", Ok(&huge)).allows(&url), "read up to the cap only");
        assert_eq!(robots_url(&url).as_str(), "http://a.test/robots.txt");
    }
}
