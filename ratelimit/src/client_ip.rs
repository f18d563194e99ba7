//! [`ClientIp`]: the client address of an HTTP request, as a rate-limit
//! key: the peer's address, or behind trusted proxies the address they
//! report in `X-Forwarded-For`, `X-Real-IP` or `Forwarded`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, Request};

use crate::error::LimitError;
use crate::http_layer::KeyExtractor;

/// Where a proxy reports the client's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (each proxy appends the
    /// address it received the request from).
    XForwardedFor,
    /// `X-Real-IP: client` (one address, set by the last proxy).
    XRealIp,
    /// RFC 7239 `Forwarded: for=client;proto=https, for=proxy1`.
    Forwarded,
}

/// An IP network (`10.0.0.0/8`, `2001:db8::/32`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    fn parse(text: &str) -> Option<Network> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim().parse().ok()?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().ok().filter(|&p| p <= max)?,
            None => max,
        };
        Some(Network { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

type PeerFn = fn(&http::Extensions) -> Option<IpAddr>;

/// The client's IP address as the key of a limit (like tower-governor's
/// peer-IP and smart-IP extractors).
///
/// * [`ClientIp::peer`]: the address of the TCP peer, read from a
///   [`SocketAddr`] in the request's extensions (insert it per connection
///   in a hyper service). With axum, use [`ClientIp::peer_from`] and read
///   `ConnectInfo<SocketAddr>` (from `into_make_service_with_connect_info`).
/// * [`behind_proxies`](Self::behind_proxies): a proxy header is believed
///   only when the request comes from a configured trusted proxy; the
///   client is then the right-most address in the header that is not a
///   trusted proxy itself (a client can write anything to the left of what
///   its first proxy appends, so nothing further left counts). Without
///   that configuration the headers are ignored: anyone can send them.
///
/// A request without a peer address has no key (see
/// [`RateLimitLayer`](crate::RateLimitLayer) for what happens to it).
///
/// ```
/// use std::net::{IpAddr, SocketAddr};
/// use sysblocks_ratelimit::{ClientIp, ProxyHeader};
///
/// let from_proxy = |xff: &str| {
///     let mut request = http::Request::new(());
///     request.extensions_mut().insert("10.0.0.7:4711".parse::<SocketAddr>().unwrap());
///     request.headers_mut().insert("x-forwarded-for", xff.parse().unwrap());
///     request
/// };
/// let direct = ClientIp::peer();
/// let proxied = ClientIp::peer().behind_proxies(ProxyHeader::XForwardedFor, &["10.0.0.0/8"])?;
/// let request = from_proxy("1.1.1.1, 203.0.113.9");
/// assert_eq!(direct.client_ip(&request), Some("10.0.0.7".parse::<IpAddr>()?));
/// // 203.0.113.9 is what our proxy saw; 1.1.1.1 was written by the client.
/// assert_eq!(proxied.client_ip(&request), Some("203.0.113.9".parse::<IpAddr>()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ClientIp {
    peer: PeerFn,
    header: Option<ProxyHeader>,
    trusted: Vec<Network>,
}

impl fmt::Debug for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIp")
            .field("header", &self.header)
            .field("trusted", &self.trusted)
            .finish_non_exhaustive()
    }
}

impl ClientIp {
    /// The TCP peer's address, from a [`SocketAddr`] request extension.
    pub fn peer() -> Self {
        Self::peer_from(|extensions| extensions.get::<SocketAddr>().map(SocketAddr::ip))
    }

    /// The TCP peer's address as `peer` reads it from the request's
    /// extensions. With axum: `ClientIp::peer_from(|e|
    /// e.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()))`.
    pub fn peer_from(peer: fn(&http::Extensions) -> Option<IpAddr>) -> Self {
        ClientIp { peer, header: None, trusted: Vec::new() }
    }

    /// Believes `header` on requests from `trusted` proxies (networks such
    /// as `"10.0.0.0/8"`, `"::1"`).
    ///
    /// # Errors
    /// [`LimitError::BadNetwork`] for a network that does not parse.
    pub fn behind_proxies(
        mut self,
        header: ProxyHeader,
        trusted: &[&str],
    ) -> Result<Self, LimitError> {
        self.trusted = trusted
            .iter()
            .map(|t| {
                Network::parse(t).ok_or_else(|| LimitError::BadNetwork { text: t.to_string() })
            })
            .collect::<Result<_, _>>()?;
        self.header = Some(header);
        Ok(self)
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(ip))
    }

    /// The client's address for `request`, or `None` without a peer.
    pub fn client_ip<B>(&self, request: &Request<B>) -> Option<IpAddr> {
        let peer = (self.peer)(request.extensions())?.to_canonical();
        let Some(header) = self.header else { return Some(peer) };
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        // Walk from the nearest hop outwards while the hops are our proxies.
        let mut client = peer;
        for hop in hops(request.headers(), header).into_iter().rev() {
            let Some(ip) = hop else { break }; // unreadable: trust nothing beyond
            client = ip;
            if !self.is_trusted(ip) {
                break;
            }
        }
        Some(client)
    }
}

impl<B> KeyExtractor<B> for ClientIp {
    type Key = IpAddr;

    fn extract(&self, request: &Request<B>) -> Option<IpAddr> {
        self.client_ip(request)
    }
}

/// The addresses a proxy header lists, client first (`None`: an entry that
/// is not an address, such as `unknown` or an obfuscated identifier).
fn hops(headers: &HeaderMap, header: ProxyHeader) -> Vec<Option<IpAddr>> {
    let name = match header {
        ProxyHeader::XForwardedFor => "x-forwarded-for",
        ProxyHeader::XRealIp => "x-real-ip",
        ProxyHeader::Forwarded => "forwarded",
    };
    let mut out = Vec::new();
    for value in headers.get_all(name) {
        let Ok(text) = value.to_str() else {
            out.push(None);
            continue;
        };
        for element in text.split(',') {
            let entry = match header {
                ProxyHeader::Forwarded => forwarded_for(element).and_then(parse_node),
                _ => parse_node(element),
            };
            out.push(entry);
        }
    }
    out
}

/// The `for=` parameter of one `Forwarded` element.
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim().eq_ignore_ascii_case("for").then(|| value.trim())
    })
}

/// An address with an optional port: `1.2.3.4`, `1.2.3.4:80`, `::1`,
/// `[::1]:80`, optionally quoted.
fn parse_node(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    // `[v6]` without a port.
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::{Network, parse_node};

    #[test]
    fn networks_contain_what_they_should() {
        let net = Network::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()), "v4-mapped v6 is v4");
        assert!(Network::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!(Network::parse("::/0").unwrap().contains("::1".parse().unwrap()));
        assert!(
            Network::parse("2001:db8::/32").unwrap().contains("2001:db8:1::1".parse().unwrap())
        );
        assert_eq!(Network::parse("10.0.0.0/33"), None);
        assert_eq!(Network::parse("nope"), None);
    }

    #[test]
    fn nodes_parse_with_ports_brackets_and_quotes() {
        for (text, ip) in [
            ("1.2.3.4", "1.2.3.4"),
            (" 1.2.3.4:8080 ", "1.2.3.4"),
            ("\"[2001:db8::1]:443\"", "2001:db8::1"),
            ("[::1]", "::1"),
        ] {
            assert_eq!(parse_node(text), Some(ip.parse().unwrap()), "{text}");
        }
        assert_eq!(parse_node("unknown"), None);
        assert_eq!(parse_node("_hidden"), None);
    }
}
