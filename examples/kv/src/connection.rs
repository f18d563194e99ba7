//! One client connection of the data port: read bytes, cut them into
//! commands, answer each in order, and close on a protocol error (after
//! saying why), an I/O error, or end of input.
//!
//! Commands may be pipelined (many sent before the first reply); replies
//! are written in command order, flushed once per batch of commands that
//! arrived together. What the commands do is the [`Handler`]'s business, so
//! the same loop serves a single node, a coordinator, and the tests.
//!
//! A client that disconnects in the middle of a command leaves nothing
//! behind: a command reaches the handler only once all its bytes are in.

use std::future::Future;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::command::{self, Request};
use crate::resp::{self, Reply};

/// What a connection remembers between its commands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    /// The connection's default R (`CONSISTENCY R n`), if set.
    pub r: Option<usize>,
    /// The connection's default W (`CONSISTENCY W n`), if set.
    pub w: Option<usize>,
}

/// Carries out requests.
pub trait Handler: Send + Sync + 'static {
    /// The reply to `request`, given the connection's session.
    fn handle(&self, session: &Session, request: Request) -> impl Future<Output = Reply> + Send;
}

/// The limits of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// What the protocol may declare.
    pub resp: resp::Limits,
    /// What a request may carry.
    pub command: command::Limits,
}

/// Serves one connection until the client leaves or breaks the protocol.
///
/// # Errors
/// The connection's I/O errors (a client that vanished).
pub async fn serve<S, H>(stream: S, handler: &H, limits: ConnectionLimits) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    serve_until(stream, handler, limits, std::future::pending()).await
}

/// [`serve`] until `shutdown` completes: the connection then stops
/// reading, once the commands already read are answered (graceful
/// shutdown: nothing in flight is cut off, nothing half-read is run).
///
/// # Errors
/// The connection's I/O errors (a client that vanished).
pub async fn serve_until<S, H>(
    mut stream: S,
    handler: &H,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    let mut shutdown = std::pin::pin!(shutdown);
    let mut session = Session::default();
    let mut buffer: Vec<u8> = Vec::with_capacity(4096);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            read = stream.read(&mut chunk) => read?,
            () = &mut shutdown => return Ok(()),
        };
        if n == 0 {
            // End of input; a partial command in the buffer is dropped.
            return Ok(());
        }
        buffer.extend_from_slice(&chunk[..n]);
        let mut used = 0;
        let mut close = false;
        loop {
            match resp::parse_command(&buffer[used..], &limits.resp) {
                Ok(None) => break,
                Ok(Some((args, len))) => {
                    used += len;
                    let reply = match command::parse(&args, &limits.command) {
                        Ok(Request::Consistency { r, w }) => {
                            session.r = r.or(session.r);
                            session.w = w.or(session.w);
                            Reply::ok()
                        }
                        Ok(Request::Ping { message: None }) => Reply::Simple("PONG".into()),
                        Ok(Request::Ping { message: Some(m) }) => Reply::Bulk(Some(m)),
                        Ok(Request::Introspection) => Reply::Array(Vec::new()),
                        Ok(request) => handler.handle(&session, request).await,
                        Err(error) => Reply::error(error),
                    };
                    reply.encode(&mut out);
                }
                Err(error) => {
                    // Where the next command would start is unknown: say
                    // why, then close.
                    Reply::error(format!("ERR {error}")).encode(&mut out);
                    close = true;
                    break;
                }
            }
        }
        buffer.drain(..used);
        if !out.is_empty() {
            stream.write_all(&out).await?;
            stream.flush().await?;
            out.clear();
        }
        if close {
            let _ = stream.shutdown().await;
            return Ok(());
        }
    }
}
