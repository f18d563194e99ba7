//! URL normalisation: one spelling per page, so that the seen-set and the
//! per-host queues treat `HTTP://Example.COM:80/a/./b/../c?b=2&a=1#top`
//! and `http://example.com/a/c?a=1&b=2` as the same URL.
//!
//! The `url` crate already lowercases the scheme and host, removes the
//! default port, resolves `.` and `..` segments and percent-encodes what
//! must be. On top of that this module drops the fragment (never sent to
//! the server), drops session-id parameters (`jsessionid`, `phpsessid`,
//! `sid`, `sessionid`, in the query or as a `;jsessionid=` path
//! parameter: the same page under endless names is a classic spider
//! trap), sorts the remaining query parameters, and refuses what a crawler
//! should not fetch (other schemes, user info, over-long URLs).
//!
//! ```
//! use sysblocks_crawler::normalize::{Limits, normalize};
//!
//! let url = normalize("HTTP://Example.COM:80/a/./b/../c?b=2&sid=XYZ&a=1#top", &Limits::default())?;
//! assert_eq!(url.as_str(), "http://example.com/a/c?a=1&b=2");
//! # Ok::<(), sysblocks_crawler::normalize::Refused>(())
//! ```

use std::fmt;

use url::Url;

/// Query parameters (lowercased) that carry a session id.
const SESSION_PARAMS: [&str; 5] = ["jsessionid", "phpsessid", "sid", "sessionid", "session_id"];

/// What a URL may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest URL kept, in bytes after normalisation (spider traps
    /// grow their URLs).
    pub max_url_len: usize,
}

impl Default for Limits {
    /// URLs up to 2,048 bytes, the length browsers and sitemaps agree on.
    fn default() -> Self {
        Limits { max_url_len: 2048 }
    }
}

/// Why a URL is not crawled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// It does not parse (relative without a base, bad host, ...).
    Unparsable(String),
    /// Not http or https.
    Scheme(String),
    /// It carries a user name or password.
    Credentials,
    /// No host.
    NoHost,
    /// Longer than the limit after normalisation.
    TooLong(usize),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Unparsable(e) => write!(f, "not a URL: {e}"),
            Refused::Scheme(s) => write!(f, "scheme {s:?} is not crawled (only http and https)"),
            Refused::Credentials => write!(f, "URLs with a user name or password are not crawled"),
            Refused::NoHost => write!(f, "the URL has no host"),
            Refused::TooLong(n) => write!(f, "the URL is {n} bytes long, over the limit"),
        }
    }
}

impl std::error::Error for Refused {}

/// Parses and normalises an absolute URL.
///
/// # Errors
/// A [`Refused`] saying why the URL is not crawled.
pub fn normalize(text: &str, limits: &Limits) -> Result<Url, Refused> {
    let url = Url::parse(text.trim()).map_err(|e| Refused::Unparsable(e.to_string()))?;
    clean(url, limits)
}

/// Resolves a link found on the page at `base` (the page's URL, or its
/// `<base href>`), then normalises it.
///
/// # Errors
/// A [`Refused`] saying why the link is not crawled.
pub fn resolve(base: &Url, link: &str, limits: &Limits) -> Result<Url, Refused> {
    let url = base.join(link.trim()).map_err(|e| Refused::Unparsable(e.to_string()))?;
    clean(url, limits)
}

fn clean(mut url: Url, limits: &Limits) -> Result<Url, Refused> {
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(Refused::Scheme(other.to_owned())),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refused::Credentials);
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Refused::NoHost);
    }
    url.set_fragment(None);
    // `;jsessionid=...` path parameters (Java servers).
    let path = url.path().to_owned();
    let cleaned: Vec<String> = path
        .split('/')
        .map(|segment| match segment.split_once(';') {
            Some((name, param)) if is_session(param.split('=').next().unwrap_or("")) => {
                name.to_owned()
            }
            _ => segment.to_owned(),
        })
        .collect();
    let cleaned = cleaned.join("/");
    if cleaned != path {
        url.set_path(&cleaned);
    }
    if url.query().is_some() {
        let mut pairs: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| !is_session(k))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        pairs.sort();
        if pairs.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
    }
    let len = url.as_str().len();
    if len > limits.max_url_len {
        return Err(Refused::TooLong(len));
    }
    Ok(url)
}

fn is_session(name: &str) -> bool {
    SESSION_PARAMS.iter().any(|s| name.eq_ignore_ascii_case(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(text: &str) -> String {
        normalize(text, &Limits::default()).unwrap().to_string()
    }

    #[test]
    fn one_spelling_per_page() {
        assert_eq!(norm("HTTP://Example.COM:80/a/./b/../c#frag"), "http://example.com/a/c");
        assert_eq!(norm("https://example.com:443"), "https://example.com/");
        assert_eq!(norm("http://example.com/?b=2&a=1"), "http://example.com/?a=1&b=2");
        assert_eq!(norm("http://example.com/p?PHPSESSID=abc"), "http://example.com/p");
        assert_eq!(
            norm("http://example.com/p;jsessionid=ABC?x=1&sid=9"),
            "http://example.com/p?x=1"
        );
        assert_eq!(norm("http://example.com/a%2fb"), "http://example.com/a%2fb");
        let base = normalize("http://example.com/dir/page.html", &Limits::default()).unwrap();
        let link = resolve(&base, "../other.html#x", &Limits::default()).unwrap();
        assert_eq!(link.as_str(), "http://example.com/other.html");
        let link = resolve(&base, "//cdn.example.com/x", &Limits::default()).unwrap();
        assert_eq!(link.as_str(), "http://cdn.example.com/x");
    }

    #[test]
    fn what_is_not_crawled_is_refused_with_a_reason() {
        let limits = Limits { max_url_len: 40 };
        assert!(matches!(normalize("mailto:a@b.c", &limits), Err(Refused::Scheme(_))));
        assert!(matches!(normalize("ftp://example.com/", &limits), Err(Refused::Scheme(_))));
        assert!(matches!(normalize("http://u:p@example.com/", &limits), Err(Refused::Credentials)));
        assert!(matches!(normalize("not a url", &limits), Err(Refused::Unparsable(_))));
        let long = format!("http://example.com/{}", "a".repeat(40));
        assert!(matches!(normalize(&long, &limits), Err(Refused::TooLong(_))));
        let base = normalize("http://example.com/", &limits).unwrap();
        assert!(matches!(resolve(&base, "javascript:alert(1)", &limits), Err(Refused::Scheme(_))));
    }
}
