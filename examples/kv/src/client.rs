//! A small client of the data port (any Redis client works too): commands
//! pipelined over one connection, replies parsed as RESP2. The demo and
//! the benchmarks drive the cluster with it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sysblocks_kv::client::ClientError> {
//! use sysblocks_kv::client::Client;
//!
//! let mut client = Client::connect("127.0.0.1:7001".parse().unwrap()).await?;
//! client.set(b"user:1", b"ada").await?;
//! assert_eq!(client.get(b"user:1").await?, Some(b"ada".to_vec()));
//! // Many commands, one round trip.
//! let replies = client.pipeline(&[vec![b"GET".to_vec(), b"user:1".to_vec()]]).await?;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::resp::Reply;

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// The connection failed or closed.
    Io(String),
    /// The server answered with an error line.
    Server(String),
    /// The server's bytes are not RESP2.
    Protocol(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "connection: {e}"),
            ClientError::Server(e) => write!(f, "server: {e}"),
            ClientError::Protocol(e) => write!(f, "protocol: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// One connection to a data port.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Client {
    /// Connects.
    ///
    /// # Errors
    /// [`ClientError::Io`].
    pub async fn connect(addr: SocketAddr) -> Result<Client, ClientError> {
        let stream = TcpStream::connect(addr).await.map_err(|e| ClientError::Io(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        Ok(Client { stream, buffer: Vec::with_capacity(4096) })
    }

    /// `SET key value`.
    ///
    /// # Errors
    /// The server's error (`NOQUORUM ...`), or the connection's.
    pub async fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), ClientError> {
        let reply = self.command(&[b"SET".to_vec(), key.to_vec(), value.to_vec()]).await?;
        match reply {
            Reply::Simple(_) => Ok(()),
            other => Err(ClientError::Protocol(format!("SET answered {other:?}"))),
        }
    }

    /// `GET key`.
    ///
    /// # Errors
    /// The server's error, or the connection's.
    pub async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
        match self.command(&[b"GET".to_vec(), key.to_vec()]).await? {
            Reply::Bulk(value) => Ok(value),
            other => Err(ClientError::Protocol(format!("GET answered {other:?}"))),
        }
    }

    /// One command; an error reply is an `Err`.
    ///
    /// # Errors
    /// The server's error, or the connection's.
    pub async fn command(&mut self, args: &[Vec<u8>]) -> Result<Reply, ClientError> {
        let mut replies = self.pipeline(std::slice::from_ref(&args.to_vec())).await?;
        match replies.pop() {
            Some(Reply::Error(e)) => Err(ClientError::Server(e)),
            Some(reply) => Ok(reply),
            None => Err(ClientError::Protocol("no reply".into())),
        }
    }

    /// Sends every command, then reads one reply per command, in order
    /// (error replies included, as [`Reply::Error`]).
    ///
    /// # Errors
    /// The connection's, or bytes that are not RESP2.
    pub async fn pipeline(&mut self, commands: &[Vec<Vec<u8>>]) -> Result<Vec<Reply>, ClientError> {
        let mut out = Vec::new();
        for args in commands {
            out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
            for a in args {
                out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                out.extend_from_slice(a);
                out.extend_from_slice(b"\r\n");
            }
        }
        self.stream.write_all(&out).await.map_err(|e| ClientError::Io(e.to_string()))?;
        let mut replies = Vec::with_capacity(commands.len());
        while replies.len() < commands.len() {
            match parse_reply(&self.buffer)? {
                Some((reply, used)) => {
                    self.buffer.drain(..used);
                    replies.push(reply);
                }
                None => {
                    let mut chunk = [0u8; 16 * 1024];
                    let n = self
                        .stream
                        .read(&mut chunk)
                        .await
                        .map_err(|e| ClientError::Io(e.to_string()))?;
                    if n == 0 {
                        return Err(ClientError::Io("the server closed the connection".into()));
                    }
                    self.buffer.extend_from_slice(&chunk[..n]);
                }
            }
        }
        Ok(replies)
    }
}

/// Parses one reply from the front of `bytes`: the reply and its length,
/// or `None` if more bytes are needed.
///
/// # Errors
/// [`ClientError::Protocol`] for bytes that are not a RESP2 reply.
pub fn parse_reply(bytes: &[u8]) -> Result<Option<(Reply, usize)>, ClientError> {
    let Some(end) = bytes.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let Some((&kind, line)) = bytes[..end].split_first() else {
        return Err(ClientError::Protocol("an empty line".into()));
    };
    let text = || String::from_utf8_lossy(line).into_owned();
    let number = || -> Result<i64, ClientError> {
        text().parse().map_err(|_| ClientError::Protocol(format!("not a number: {:?}", text())))
    };
    let head = end + 2;
    match kind {
        b'+' => Ok(Some((Reply::Simple(text()), head))),
        b'-' => Ok(Some((Reply::Error(text()), head))),
        b':' => Ok(Some((Reply::Integer(number()?), head))),
        b'$' => {
            let n = number()?;
            if n < 0 {
                return Ok(Some((Reply::Bulk(None), head)));
            }
            let n = usize::try_from(n).map_err(|_| ClientError::Protocol("a huge bulk".into()))?;
            if bytes.len() < head + n + 2 {
                return Ok(None);
            }
            Ok(Some((Reply::Bulk(Some(bytes[head..head + n].to_vec())), head + n + 2)))
        }
        b'*' => {
            let n = number()?;
            let mut used = head;
            let mut items = Vec::new();
            for _ in 0..n.max(0) {
                match parse_reply(&bytes[used..])? {
                    Some((item, len)) => {
                        items.push(item);
                        used += len;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Reply::Array(items), used)))
        }
        other => Err(ClientError::Protocol(format!("unknown reply type {:?}", other as char))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_whole_or_wait_for_more() {
        let mut all = Vec::new();
        for reply in [
            Reply::ok(),
            Reply::Error("ERR no".into()),
            Reply::Integer(-3),
            Reply::Bulk(Some(b"v\r\nw".to_vec())),
            Reply::Bulk(None),
            Reply::Array(vec![Reply::Integer(1), Reply::Bulk(Some(b"x".to_vec()))]),
        ] {
            let mut bytes = Vec::new();
            reply.encode(&mut bytes);
            for cut in 0..bytes.len() {
                assert_eq!(parse_reply(&bytes[..cut]).unwrap(), None, "{reply:?} cut at {cut}");
            }
            assert_eq!(parse_reply(&bytes).unwrap(), Some((reply, bytes.len())));
            all.extend(bytes);
        }
        assert!(parse_reply(b"?what\r\n").is_err());
        assert!(parse_reply(b":abc\r\n").is_err());
    }
}
