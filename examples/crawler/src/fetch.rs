//! The fetcher: one HTTP/1.1 GET with every limit a crawler needs (connect,
//! idle-read and total timeouts, a body-size cap, a content-type filter),
//! name resolution from a hosts table before DNS, one kept-alive
//! connection per address, and link extraction with a real HTML parser.
//!
//! Redirects are not followed here: a redirect's target is a new URL that
//! goes back to the frontier and waits for its host's turn like any other
//! (following it at once would send two requests to a host with no delay
//! between them). [`FetchConfig::max_redirects`] bounds the chain.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::header;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use url::Url;

use crate::normalize::{Limits, Refused, resolve};

/// The limits of one fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchConfig {
    /// Connecting, at most.
    pub connect_timeout: Duration,
    /// Waiting for the response head or the next piece of the body.
    pub read_timeout: Duration,
    /// The whole fetch, body included (a server that trickles bytes
    /// forever is cut off here).
    pub total_timeout: Duration,
    /// Body bytes read, at most; the rest is dropped (and the page marked
    /// truncated).
    pub max_body: usize,
    /// Redirects followed from a link, at most.
    pub max_redirects: u32,
    /// The `User-Agent` sent, and the name robots.txt rules are matched
    /// against (its first word).
    pub user_agent: String,
    /// Sent as `x-crawler-worker` when set (sim-web logs it).
    pub worker: Option<String>,
}

impl Default for FetchConfig {
    /// Connect within 5 s, each read within 10 s, the whole fetch within
    /// 30 s; 2 MiB of body; 5 redirects; agent `sysblocks-crawler/0.1`.
    fn default() -> Self {
        FetchConfig {
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(30),
            max_body: 2 << 20,
            max_redirects: 5,
            user_agent: "sysblocks-crawler/0.1".to_owned(),
            worker: None,
        }
    }
}

/// Why a fetch got no response.
#[derive(Debug)]
#[non_exhaustive]
pub enum FetchError {
    /// The host name did not resolve.
    Resolve(String),
    /// The connection failed.
    Connect(std::io::Error),
    /// A timeout: which one.
    Timeout(&'static str),
    /// The HTTP exchange failed (a reset, a malformed response).
    Http(String),
    /// Only `http` is fetched (this crawler is built without TLS).
    Unsupported(String),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Resolve(host) => write!(f, "could not resolve {host}"),
            FetchError::Connect(e) => write!(f, "could not connect: {e}"),
            FetchError::Timeout(what) => write!(f, "timed out {what}"),
            FetchError::Http(e) => write!(f, "HTTP error: {e}"),
            FetchError::Unsupported(scheme) => {
                write!(f, "{scheme} is not fetched (this crawler speaks plain HTTP only)")
            }
        }
    }
}

impl std::error::Error for FetchError {}

const BODY_TIMEOUT: &str = "reading the body";

impl FetchError {
    /// Whether another attempt may do better: not for a body that did not
    /// arrive in time (the server answered, and will trickle again), nor
    /// for a scheme this crawler does not speak.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, FetchError::Timeout(BODY_TIMEOUT) | FetchError::Unsupported(_))
    }
}

/// A response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`, lowercased, without parameters.
    pub content_type: String,
    /// `Location`, for a redirect.
    pub location: Option<String>,
    /// `Retry-After`, in seconds or as a date, as a wait from now.
    pub retry_after: Option<Duration>,
    /// The body read (nothing for a type that is not parsed).
    pub body: Bytes,
    /// Whether the body went past the cap and was cut.
    pub truncated: bool,
}

impl Page {
    /// Whether the body is HTML (only HTML is parsed for links).
    pub fn is_html(&self) -> bool {
        is_html(&self.content_type)
    }

    /// Whether the status is a redirect with a target.
    pub fn redirect(&self) -> Option<&str> {
        matches!(self.status, 301 | 302 | 303 | 307 | 308)
            .then_some(self.location.as_deref())
            .flatten()
    }
}

fn is_html(content_type: &str) -> bool {
    matches!(content_type, "text/html" | "application/xhtml+xml" | "")
}

/// Host names to addresses: a table first (sim-web's, like `curl
/// --resolve`), then the system resolver, remembered for the run.
#[derive(Debug, Default)]
pub struct Resolver {
    table: HashMap<String, SocketAddr>,
    cache: Mutex<HashMap<(String, u16), SocketAddr>>,
}

impl Resolver {
    /// A resolver with no table: DNS only.
    pub fn new() -> Resolver {
        Resolver::default()
    }

    /// A resolver from a hosts file's text: `name address:port` lines,
    /// `#` comments and blank lines skipped.
    ///
    /// # Errors
    /// The first bad line, with its number and what is wrong.
    pub fn from_hosts(text: &str) -> Result<Resolver, String> {
        let mut table = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some(name), Some(address), None) = (words.next(), words.next(), words.next())
            else {
                return Err(format!("line {}: expected `name address:port`, got {line:?}", n + 1));
            };
            let address: SocketAddr = address
                .parse()
                .map_err(|e| format!("line {}: {address:?} is not an address:port ({e})", n + 1))?;
            table.insert(name.to_ascii_lowercase(), address);
        }
        Ok(Resolver { table, cache: Mutex::default() })
    }

    /// The address of `url`'s host if the table has it: the politeness
    /// key of hosts grouped by address. (An address learnt from DNS is not
    /// used as a key: a host's key must not change once its URLs are
    /// queued, or two keys would give it two turns.)
    pub fn known_ip(&self, url: &Url) -> Option<std::net::IpAddr> {
        self.table.get(url.host_str()?).map(SocketAddr::ip)
    }

    /// Where `url`'s host is.
    ///
    /// # Errors
    /// [`FetchError::Resolve`] when neither the table nor DNS knows it.
    pub async fn resolve(&self, url: &Url) -> Result<SocketAddr, FetchError> {
        let host = url.host_str().unwrap_or("");
        if let Some(address) = self.table.get(host) {
            return Ok(*address);
        }
        let port = url.port_or_known_default().unwrap_or(80);
        let key = (host.to_owned(), port);
        if let Some(address) = self.cache.lock().ok().and_then(|c| c.get(&key).copied()) {
            return Ok(address);
        }
        let lookup =
            tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((host, port)));
        let address = match lookup.await {
            Ok(Ok(mut addresses)) => addresses.next(),
            _ => None,
        }
        .ok_or_else(|| FetchError::Resolve(host.to_owned()))?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(key, address);
        }
        Ok(address)
    }
}

/// Sends GETs, keeping one idle connection per address for the next
/// request (a host is asked one request at a time, so one is enough).
#[derive(Debug)]
pub struct Fetcher {
    config: FetchConfig,
    idle: Mutex<HashMap<SocketAddr, SendRequest<Empty<Bytes>>>>,
}

impl Fetcher {
    /// A fetcher with these limits.
    pub fn new(config: FetchConfig) -> Fetcher {
        Fetcher { config, idle: Mutex::default() }
    }

    /// GETs `url` from `address`, reading at most `max_body` bytes of an
    /// HTML body (of `text/plain` too when `want_text`, for robots.txt).
    ///
    /// # Errors
    /// A [`FetchError`] when no response came.
    pub async fn get(
        &self,
        url: &Url,
        address: SocketAddr,
        want_text: bool,
    ) -> Result<Page, FetchError> {
        if url.scheme() != "http" {
            return Err(FetchError::Unsupported(url.scheme().to_owned()));
        }
        let deadline = tokio::time::Instant::now() + self.config.total_timeout;
        self.exchange(url, address, want_text, deadline).await
    }

    async fn connection(
        &self,
        address: SocketAddr,
    ) -> Result<SendRequest<Empty<Bytes>>, FetchError> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.remove(&address));
        if let Some(sender) = idle
            && !sender.is_closed()
        {
            return Ok(sender);
        }
        let stream = tokio::time::timeout(self.config.connect_timeout, TcpStream::connect(address))
            .await
            .map_err(|_| FetchError::Timeout("connecting"))?
            .map_err(FetchError::Connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            .max_buf_size(64 * 1024)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| FetchError::Http(e.to_string()))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    async fn exchange(
        &self,
        url: &Url,
        address: SocketAddr,
        want_text: bool,
        deadline: tokio::time::Instant,
    ) -> Result<Page, FetchError> {
        let mut sender = tokio::time::timeout_at(deadline, self.connection(address))
            .await
            .map_err(|_| FetchError::Timeout("connecting"))??;
        let path = &url[url::Position::BeforePath..url::Position::AfterQuery];
        let host = &url[url::Position::BeforeHost..url::Position::AfterPort];
        let mut request = hyper::Request::get(path)
            .header(header::HOST, host)
            .header(header::USER_AGENT, &self.config.user_agent)
            .header(header::ACCEPT, "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1");
        if let Some(worker) = &self.config.worker {
            request = request.header(crate::sim_web::WORKER_HEADER, worker);
        }
        let request = request.body(Empty::new()).map_err(|e| FetchError::Http(e.to_string()))?;
        let read = self.config.read_timeout;
        let by = |read: Duration| deadline.min(tokio::time::Instant::now() + read);
        let response = tokio::time::timeout_at(by(read), async {
            sender.ready().await?;
            sender.send_request(request).await
        })
        .await
        .map_err(|_| FetchError::Timeout("waiting for the response head"))?
        .map_err(|e| FetchError::Http(e.to_string()))?;
        let (head, mut body) = response.into_parts();
        let text =
            |name| head.headers.get(name).and_then(|v: &header::HeaderValue| v.to_str().ok());
        let content_type = text(header::CONTENT_TYPE)
            .and_then(|v| v.split(';').next())
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let mut page = Page {
            status: head.status.as_u16(),
            location: text(header::LOCATION).map(str::to_owned),
            retry_after: text(header::RETRY_AFTER).and_then(parse_retry_after),
            body: Bytes::new(),
            truncated: false,
            content_type,
        };
        let wanted =
            is_html(&page.content_type) || (want_text && page.content_type == "text/plain");
        if !wanted || page.redirect().is_some() {
            // The body is not read: the connection cannot be reused.
            return Ok(page);
        }
        let mut bytes = BytesMut::new();
        loop {
            let frame = tokio::time::timeout_at(by(read), body.frame())
                .await
                .map_err(|_| FetchError::Timeout(BODY_TIMEOUT))?;
            let Some(frame) = frame else { break };
            let frame = frame.map_err(|e| FetchError::Http(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                let room = self.config.max_body - bytes.len();
                if data.len() > room {
                    bytes.extend_from_slice(&data[..room]);
                    page.truncated = true;
                    page.body = bytes.freeze();
                    return Ok(page);
                }
                bytes.extend_from_slice(&data);
            }
        }
        page.body = bytes.freeze();
        if let Ok(mut idle) = self.idle.lock() {
            idle.insert(address, sender);
        }
        Ok(page)
    }
}

/// `Retry-After` as a wait: delay-seconds, or an HTTP date (a date is read
/// as "soon": one minute, since clocks of crawler and server differ).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    (value.len() > 10 && value.contains("GMT")).then_some(Duration::from_secs(60))
}

/// The links of an HTML page, resolved against its URL (or its first
/// `<base href>`) and normalised.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Links {
    /// Links to follow.
    pub follow: Vec<Url>,
    /// Links not followed: `rel="nofollow"`, or the page's robots meta tag
    /// said nofollow.
    pub nofollow: usize,
    /// Links refused, with why.
    pub refused: Vec<Refused>,
}

/// Extracts the links of an HTML body. A body that is not valid HTML is
/// read as a browser would (the parser recovers), and what cannot be read
/// at all yields no links.
pub fn extract_links(page_url: &Url, body: &[u8], limits: &Limits) -> Links {
    use lol_html::{HtmlRewriter, Settings, element};
    use std::cell::RefCell;

    let hrefs: RefCell<Vec<(String, bool)>> = RefCell::default();
    let base: RefCell<Option<String>> = RefCell::default();
    let meta_nofollow = RefCell::new(false);
    let settings = Settings::new()
        .append_element_content_handler(element!("a[href], area[href]", |el| {
            if let Some(href) = el.get_attribute("href") {
                let nofollow = el.get_attribute("rel").is_some_and(|rel| {
                    rel.split_ascii_whitespace().any(|r| r.eq_ignore_ascii_case("nofollow"))
                });
                hrefs.borrow_mut().push((href, nofollow));
            }
            Ok(())
        }))
        .append_element_content_handler(element!("base[href]", |el| {
            let mut base = base.borrow_mut();
            if base.is_none() {
                *base = el.get_attribute("href");
            }
            Ok(())
        }))
        .append_element_content_handler(element!("meta[name][content]", |el| {
            let name = el.get_attribute("name").unwrap_or_default();
            let content = el.get_attribute("content").unwrap_or_default().to_ascii_lowercase();
            if name.eq_ignore_ascii_case("robots")
                && (content.contains("nofollow") || content.contains("none"))
            {
                *meta_nofollow.borrow_mut() = true;
            }
            Ok(())
        }));
    let mut rewriter = HtmlRewriter::new(settings, |_: &[u8]| {});
    let parsed = rewriter.write(body).and_then(|()| rewriter.end());
    drop(parsed);
    let hrefs = hrefs.into_inner();
    let mut links = Links::default();
    if meta_nofollow.into_inner() {
        links.nofollow = hrefs.len();
        return links;
    }
    let base = base
        .into_inner()
        .and_then(|b| page_url.join(b.trim()).ok())
        .unwrap_or_else(|| page_url.clone());
    for (href, nofollow) in hrefs {
        if nofollow {
            links.nofollow += 1;
            continue;
        }
        match resolve(&base, &href, limits) {
            Ok(url) => links.follow.push(url),
            Err(refused) => links.refused.push(refused),
        }
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_resolve_against_the_base_and_nofollow_is_obeyed() {
        let page = Url::parse("http://a.test/dir/page").unwrap();
        let html = br##"<html><head><base href="http://a.test/other/"></head><body>
            <a href="x">x</a> <a href="/abs">abs</a> <a rel="nofollow" href="/no">no</a>
            <a href="mailto:me@a.test">mail</a> <a href="#frag">frag</a>
            <A HREF="http://B.test/Up">up</A></body></html>"##;
        let links = extract_links(&page, html, &Limits::default());
        let urls: Vec<&str> = links.follow.iter().map(Url::as_str).collect();
        assert_eq!(
            urls,
            [
                "http://a.test/other/x",
                "http://a.test/abs",
                "http://a.test/other/",
                "http://b.test/Up"
            ]
        );
        assert_eq!(links.nofollow, 1);
        assert_eq!(links.refused.len(), 1, "the mailto: link");

        let meta = br#"<meta name="robots" content="noindex, nofollow"><a href="/x">x</a>"#;
        let links = extract_links(&page, meta, &Limits::default());
        assert!(links.follow.is_empty());
        assert_eq!(links.nofollow, 1);
    }

    #[test]
    fn garbage_html_gives_what_it_can_and_never_panics() {
        let page = Url::parse("http://a.test/").unwrap();
        let mut body = b"<a href='/ok'>ok</a><a href=\"".to_vec();
        body.extend_from_slice(&[0xff, 0xfe, 0, b'<', b'<']);
        body.extend_from_slice(b"<a href=\"http://[::1:bad/\">bad</a><a href=");
        let links = extract_links(&page, &body, &Limits::default());
        assert_eq!(links.follow[0].as_str(), "http://a.test/ok");
        for len in 0..body.len() {
            extract_links(&page, &body[..len], &Limits::default());
        }
    }

    #[test]
    fn hosts_files_are_read_with_errors_by_line() {
        let r = Resolver::from_hosts("# sim-web\nh0.sim 127.0.0.2:8080\n\nH1.SIM 127.0.0.3:81\n")
            .unwrap();
        assert_eq!(r.table["h1.sim"], "127.0.0.3:81".parse().unwrap());
        let e = Resolver::from_hosts("a 127.0.0.1:1\nb nowhere\n").unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
        assert_eq!(parse_retry_after(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
