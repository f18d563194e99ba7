//! Kept-alive HTTP/1.1 connections to the upstream servers.
//!
//! Each thread keeps its own idle connections per server (a request that
//! starts on a thread is answered by connections that thread drives, see
//! `Gateway::serve_threads`). A request takes the most recently used idle
//! connection that is ready (last in, first out: it is the least likely to
//! have been closed by the server), or opens one. A connection goes back
//! to the idle list as soon as the response head is in; it is ready for
//! the next request once hyper has read the body through. A connection
//! the server closed while idle is noticed when it is taken; if a request
//! could not be written on it, it is sent on a fresh connection, without
//! counting as a failure of the server.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Time to open a connection to a server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Time for a server to send the head of its response (nginx's
/// `proxy_read_timeout` default).
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// Idle connections kept per server and thread, at most.
const MAX_IDLE: usize = 512;

thread_local! {
    static IDLE: RefCell<HashMap<SocketAddr, Vec<SendRequest<Full<Bytes>>>>> =
        RefCell::new(HashMap::new());
}

/// Why a request to a server failed.
#[derive(Debug)]
pub enum UpstreamError {
    /// The connection could not be opened.
    Connect(std::io::Error),
    /// No connection within [`CONNECT_TIMEOUT`], or no response head
    /// within [`RESPONSE_TIMEOUT`].
    Timeout(&'static str),
    /// The exchange failed.
    Http(hyper::Error),
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::Connect(e) => write!(f, "cannot connect: {e}"),
            UpstreamError::Timeout(what) => write!(f, "timed out {what}"),
            UpstreamError::Http(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for UpstreamError {}

/// Takes an idle connection to `server` that can send now.
fn take_idle(server: SocketAddr) -> Option<SendRequest<Full<Bytes>>> {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.get_mut(&server)?;
        // Closed ones are dropped; busy ones (a body still being read)
        // stay for later.
        list.retain(|sender| !sender.is_closed());
        let ready = list.iter().rposition(SendRequest::is_ready)?;
        Some(list.swap_remove(ready))
    })
}

fn put_idle(server: SocketAddr, sender: SendRequest<Full<Bytes>>) {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.entry(server).or_default();
        if list.len() < MAX_IDLE {
            list.push(sender);
        }
    });
}

async fn connect(server: SocketAddr) -> Result<SendRequest<Full<Bytes>>, UpstreamError> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(server))
        .await
        .map_err(|_| UpstreamError::Timeout("connecting"))?
        .map_err(UpstreamError::Connect)?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(UpstreamError::Http)?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "upstream connection ended");
        }
    });
    Ok(sender)
}

/// Sends `request` (whose URI is the path and query; its body read whole
/// already) to `server` on a kept-alive connection, and returns the
/// response once its head is in.
///
/// # Errors
/// The server cannot be reached, does not answer in time, or breaks the
/// exchange.
pub async fn send(
    server: SocketAddr,
    mut request: Request<Full<Bytes>>,
) -> Result<Response<Incoming>, UpstreamError> {
    loop {
        let (mut sender, reused) = match take_idle(server) {
            Some(sender) => (sender, true),
            // Boxed: most requests find a connection, and the future of
            // one that does not should not make every request's larger.
            None => (Box::pin(connect(server)).await?, false),
        };
        let sent = tokio::time::timeout(RESPONSE_TIMEOUT, sender.try_send_request(request)).await;
        match sent {
            Err(_) => return Err(UpstreamError::Timeout("waiting for the response")),
            Ok(Ok(response)) => {
                put_idle(server, sender);
                return Ok(response);
            }
            Ok(Err(mut error)) => match error.take_message() {
                // Not written: the idle connection had been closed by the
                // server. A fresh one is tried.
                Some(unsent) if reused => request = unsent,
                _ => return Err(UpstreamError::Http(error.into_error())),
            },
        }
    }
}
