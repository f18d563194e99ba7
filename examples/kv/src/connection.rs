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
pub async fn serve<S, H>(
    mut stream: S,
    handler: &H,
    limits: ConnectionLimits,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    let mut session = Session::default();
    let mut buffer: Vec<u8> = Vec::with_capacity(4096);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A map behind the handler, to exercise the connection loop.
    #[derive(Default)]
    struct Map(Mutex<HashMap<Vec<u8>, Vec<u8>>>);

    impl Handler for Map {
        async fn handle(&self, session: &Session, request: Request) -> Reply {
            let mut map = self.0.lock().unwrap();
            match request {
                Request::Get { key, r } => {
                    if r.or(session.r) == Some(9) {
                        return Reply::error("ERR asked for R 9");
                    }
                    Reply::Bulk(map.get(&key).cloned())
                }
                Request::Set { key, value, .. } => {
                    map.insert(key, value);
                    Reply::ok()
                }
                Request::Del { keys } => {
                    Reply::Integer(keys.iter().filter(|k| map.remove(*k).is_some()).count() as i64)
                }
                Request::Exists { keys } => {
                    Reply::Integer(keys.iter().filter(|k| map.contains_key(*k)).count() as i64)
                }
                other => Reply::error(format!("ERR unexpected {other:?}")),
            }
        }
    }

    async fn exchange(input: &[u8]) -> (Vec<u8>, Map) {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let map = Map::default();
        let served = async {
            serve(server, &map, ConnectionLimits::default()).await.unwrap();
        };
        let talk = async {
            client.write_all(input).await.unwrap();
            client.shutdown().await.unwrap();
            let mut out = Vec::new();
            client.read_to_end(&mut out).await.unwrap();
            out
        };
        let ((), out) = tokio::join!(served, talk);
        (out, map)
    }

    #[tokio::test]
    async fn pipelined_commands_are_answered_in_order() {
        let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\nEXISTS k nope\r\nPING\r\n*2\r\n$3\r\nDEL\r\n$1\r\nk\r\nGET k\r\n";
        let (out, _) = exchange(input).await;
        assert_eq!(out, b"+OK\r\n$1\r\nv\r\n:1\r\n+PONG\r\n:1\r\n$-1\r\n".as_slice());
    }

    #[tokio::test]
    async fn the_session_keeps_its_consistency_and_errors_do_not_close() {
        let input = b"CONSISTENCY R 9\r\nGET k\r\nGET k R 1\r\nFLUSHALL\r\nPING\r\n";
        let (out, _) = exchange(input).await;
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "+OK\r\n-ERR asked for R 9\r\n$-1\r\n-ERR unknown command 'FLUSHALL'\r\n+PONG\r\n"
        );
    }

    #[tokio::test]
    async fn a_protocol_error_is_answered_then_the_connection_closes() {
        let (out, map) = exchange(b"SET a 1\r\n*1\r\n$x\r\nSET b 2\r\n").await;
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("+OK\r\n-ERR Protocol error: invalid length"), "{text}");
        assert!(!text.contains("OK\r\n+OK"), "nothing after the error is run");
        let map = map.0.lock().unwrap();
        assert!(map.contains_key(b"a".as_slice()) && !map.contains_key(b"b".as_slice()));
    }

    #[tokio::test]
    async fn a_client_gone_mid_command_leaves_nothing_half_written() {
        // The value's bytes never all arrive.
        let (out, map) = exchange(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nonly").await;
        assert!(out.is_empty());
        assert!(map.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn oversized_values_are_refused_with_a_clear_error() {
        let big = vec![b'x'; (512 << 10) + 1];
        let mut input = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n", big.len()).into_bytes();
        input.extend_from_slice(&big);
        input.extend_from_slice(b"\r\nGET k\r\n");
        let (out, _) = exchange(&input).await;
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("-ERR a value of 524289 bytes is over the limit of 524288\r\n"),
            "{text}"
        );
        assert!(text.ends_with("$-1\r\n"), "the connection goes on: {text}");
    }
}
