//! The request smuggling guard.
//!
//! A request that carries both `Content-Length` and `Transfer-Encoding`
//! can be framed two ways: if the gateway and the server behind it choose
//! differently, the rest of the body becomes a second request that the
//! gateway never saw (request smuggling). RFC 9112 (6.1) lets a server
//! either refuse such a request or follow `Transfer-Encoding` and close
//! the connection. hyper does the latter without telling the service, so
//! the gateway watches the bytes itself: [`Watched`] wraps the client's
//! connection and follows its framing (heads parsed with `httparse`,
//! bodies skipped by their length or their chunks), and records the first
//! request whose head has both headers. The service refuses that request
//! with a 400, and hyper closes the connection after it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most of a head or a chunk line the watcher keeps; past it, hyper
/// refuses the request anyway (431), and the watcher stops.
const MAX_LINE: usize = 64 * 1024;

/// Where the watcher is in the connection's byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a request head.
    Head,
    /// Skipping a body of known length: bytes left.
    Fixed(u64),
    /// Reading a chunk-size line.
    ChunkSize,
    /// Skipping chunk data: bytes left.
    ChunkData(u64),
    /// Reading the line break after chunk data.
    ChunkEnd,
    /// Reading trailer lines up to an empty one.
    Trailers,
    /// Not watching any more: a conflict was found (hyper closes the
    /// connection after that request), or the bytes are not HTTP/1.1 that
    /// hyper would accept (it answers 400 and closes).
    Off,
}

/// Follows the framing of the requests on one connection.
#[derive(Debug)]
pub struct Framing {
    state: State,
    line: Vec<u8>,
    /// Complete heads seen so far.
    requests: u64,
    /// The index of the first head with both `Content-Length` and
    /// `Transfer-Encoding` (`u64::MAX`: none).
    conflict: Arc<AtomicU64>,
}

impl Default for Framing {
    fn default() -> Self {
        Framing {
            state: State::Head,
            line: Vec::new(),
            requests: 0,
            conflict: Arc::new(AtomicU64::new(u64::MAX)),
        }
    }
}

impl Framing {
    /// A watcher for a new connection.
    pub fn new() -> Framing {
        Framing::default()
    }

    /// The index (0 for the connection's first request) of the first
    /// request whose head carries both `Content-Length` and
    /// `Transfer-Encoding`, if one has arrived.
    pub fn conflict(&self) -> Option<u64> {
        conflict_of(&self.conflict)
    }

    /// A handle on [`conflict`](Self::conflict) for the service.
    pub fn conflicts(&self) -> Conflicts {
        Conflicts(Arc::clone(&self.conflict))
    }

    /// Takes the next bytes the client sent.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match self.state {
                State::Off => return,
                State::Fixed(left) => {
                    let n = left.min(bytes.len() as u64);
                    bytes = &bytes[n as usize..];
                    self.state = if n == left { State::Head } else { State::Fixed(left - n) };
                }
                State::ChunkData(left) => {
                    let n = left.min(bytes.len() as u64);
                    bytes = &bytes[n as usize..];
                    self.state =
                        if n == left { State::ChunkEnd } else { State::ChunkData(left - n) };
                }
                State::Head => {
                    // At most one byte past the bound, to know it was passed.
                    let taken = bytes.len().min(MAX_LINE + 1 - self.line.len());
                    let before = self.line.len();
                    self.line.extend_from_slice(&bytes[..taken]);
                    // A head can only end with a line break: a client that
                    // trickles its head a byte at a time costs one parse
                    // per line, not one per byte.
                    let parsed = if bytes[..taken].contains(&b'\n') { self.head() } else { None };
                    match parsed {
                        Some(used) => {
                            // What followed the head is body or the next
                            // request: feed it again in the new state.
                            let rest = used.saturating_sub(before);
                            bytes = &bytes[rest.min(bytes.len())..];
                            self.line.clear();
                        }
                        None => {
                            bytes = &bytes[taken..];
                            if self.line.len() > MAX_LINE {
                                self.off();
                            }
                        }
                    }
                }
                State::ChunkSize | State::ChunkEnd | State::Trailers => {
                    let Some(end) = bytes.iter().position(|b| *b == b'\n') else {
                        self.line.extend_from_slice(bytes);
                        if self.line.len() > MAX_LINE {
                            self.off();
                        }
                        return;
                    };
                    self.line.extend_from_slice(&bytes[..=end]);
                    bytes = &bytes[end + 1..];
                    let line = std::mem::take(&mut self.line);
                    self.line_done(&line);
                }
            }
        }
    }

    fn off(&mut self) {
        self.state = State::Off;
        self.line = Vec::new();
    }

    /// Parses the head gathered so far: the bytes it used when complete.
    fn head(&mut self) -> Option<usize> {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut request = httparse::Request::new(&mut headers);
        let used = match request.parse(&self.line) {
            Ok(httparse::Status::Complete(used)) => used,
            Ok(httparse::Status::Partial) => return None,
            Err(_) => {
                self.off();
                return None;
            }
        };
        let index = self.requests;
        self.requests += 1;
        let mut length = None;
        let mut chunked = None;
        for h in request.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                length = Some(
                    std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse::<u64>().ok()),
                );
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                let last = h.value.rsplit(|b| *b == b',').next().unwrap_or_default();
                chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            }
        }
        self.state = match (length, chunked) {
            (Some(_), Some(_)) => {
                self.conflict.store(index, Ordering::Release);
                State::Off
            }
            (_, Some(true)) => State::ChunkSize,
            (Some(Some(0)) | None, None) => State::Head,
            (Some(Some(n)), None) => State::Fixed(n),
            // A length that is not a number, or an encoding other than
            // chunked: hyper answers 400 and closes.
            _ => State::Off,
        };
        if self.state == State::Off {
            self.line = Vec::new();
        }
        Some(used)
    }

    /// Acts on one complete line of chunked framing.
    fn line_done(&mut self, line: &[u8]) {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        self.state = match self.state {
            State::ChunkSize => {
                let size = text.split(|b| *b == b';').next().unwrap_or_default().trim_ascii();
                match std::str::from_utf8(size).ok().and_then(|s| u64::from_str_radix(s, 16).ok()) {
                    Some(0) => State::Trailers,
                    Some(n) => State::ChunkData(n),
                    None => State::Off,
                }
            }
            State::ChunkEnd if text.is_empty() => State::ChunkSize,
            State::Trailers if text.is_empty() => State::Head,
            State::Trailers => State::Trailers,
            _ => State::Off,
        };
    }
}

fn conflict_of(cell: &AtomicU64) -> Option<u64> {
    Some(cell.load(Ordering::Acquire)).filter(|i| *i != u64::MAX)
}

/// The service's handle on a connection's [`Framing`].
#[derive(Debug, Clone)]
pub struct Conflicts(Arc<AtomicU64>);

impl Conflicts {
    /// Whether the connection's request number `index` (from 0) carried
    /// both `Content-Length` and `Transfer-Encoding`.
    pub fn is_conflicting(&self, index: u64) -> bool {
        conflict_of(&self.0) == Some(index)
    }
}

/// A client connection whose incoming bytes a [`Framing`] watches.
#[derive(Debug)]
pub struct Watched<S> {
    inner: S,
    framing: Framing,
}

impl<S> Watched<S> {
    /// Watches `inner`.
    pub fn new(inner: S) -> Watched<S> {
        Watched { inner, framing: Framing::new() }
    }

    /// The handle the service asks.
    pub fn conflicts(&self) -> Conflicts {
        self.framing.conflicts()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.framing.feed(&buf.filled()[before..]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conflict_after(chunks: &[&[u8]]) -> Option<u64> {
        let mut framing = Framing::new();
        for chunk in chunks {
            framing.feed(chunk);
        }
        framing.conflict()
    }

    #[test]
    fn finds_both_headers_in_the_first_request() {
        let smuggle = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG";
        assert_eq!(conflict_after(&[smuggle]), Some(0));
        let reversed =
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n";
        assert_eq!(conflict_after(&[reversed]), Some(0));
    }

    #[test]
    fn follows_bodies_to_later_requests_in_any_split() {
        let mut stream = Vec::new();
        stream.extend_from_slice(b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
        stream.extend_from_slice(
            b"POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        );
        // A chunk whose data looks like a head must not be taken for one.
        let data = b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        stream.extend_from_slice(format!("{:x};ext=1\r\n", data.len()).as_bytes());
        stream.extend_from_slice(data);
        stream.extend_from_slice(b"\r\n0\r\nX-Trailer: 1\r\n\r\n");
        stream.extend_from_slice(b"GET /c HTTP/1.1\r\nHost: a\r\n\r\n");
        let clean = stream.len();
        stream.extend_from_slice(
            b"POST /d HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        for split in [1, 2, 3, 7, 64, stream.len()] {
            let chunks: Vec<&[u8]> = stream.chunks(split).collect();
            assert_eq!(conflict_after(&chunks), Some(3), "split {split}");
        }
        assert_eq!(conflict_after(&[&stream[..clean]]), None);
    }

    #[test]
    fn gives_up_on_what_hyper_refuses() {
        assert_eq!(conflict_after(&[b"\x16\x03\x01 not http\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"]), None);
        let long = vec![b'a'; 3 * MAX_LINE];
        assert_eq!(conflict_after(&[b"GET / HTTP/1.1\r\nX: ", &long]), None);
    }
}
