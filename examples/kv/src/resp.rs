//! RESP2, the Redis protocol, as far as a key-value node needs it: commands
//! come in as arrays of bulk strings (what every client library and
//! `redis-benchmark` send) or as inline commands (what a person types into
//! `telnet`), and replies go out as simple strings, errors, integers, bulk
//! strings and arrays.
//!
//! The parser works on a buffer that may hold part of a command: it returns
//! `Ok(None)` until the whole command is there. Everything a client declares
//! (element counts, string lengths) is checked against [`Limits`] before any
//! memory is set aside for it, so a hostile client cannot make the node
//! allocate what it never sends.
//!
//! ```
//! use sysblocks_kv::resp::{Limits, Reply, parse_command};
//!
//! let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
//! let (command, used) = parse_command(input, &Limits::default())?.expect("a whole command");
//! assert_eq!(command, [b"SET".to_vec(), b"k".to_vec(), b"hello".to_vec()]);
//! assert_eq!(used, input.len());
//!
//! // Half a command: nothing yet.
//! assert!(parse_command(&input[..10], &Limits::default())?.is_none());
//!
//! let mut out = Vec::new();
//! Reply::Bulk(Some(b"hello".to_vec())).encode(&mut out);
//! assert_eq!(out, b"$5\r\nhello\r\n");
//! # Ok::<(), sysblocks_kv::resp::RespError>(())
//! ```

use std::fmt;

/// How much a command may declare and carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most arguments of one command (its array length).
    pub max_args: usize,
    /// The most bytes of one argument (a bulk string).
    pub max_arg_bytes: usize,
    /// The most bytes of an inline command line.
    pub max_inline_bytes: usize,
}

impl Default for Limits {
    /// 1,024 arguments, 1 MiB per argument, 64 KiB inline lines.
    fn default() -> Self {
        Limits { max_args: 1024, max_arg_bytes: 1 << 20, max_inline_bytes: 64 << 10 }
    }
}

/// Why input is not a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespError {
    /// The bytes break the protocol (a bad length, a missing CRLF, a type
    /// that a command cannot have). The connection cannot be resynchronised
    /// and should be closed after the error is sent.
    Protocol(String),
    /// A declared or actual size above the limits.
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// The size declared or seen.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespError::Protocol(why) => write!(f, "Protocol error: {why}"),
            RespError::TooLarge { what, size, limit } => {
                write!(f, "Protocol error: {what} of {size} is over the limit of {limit}")
            }
        }
    }
}

impl std::error::Error for RespError {}

/// A command: its arguments, the name first.
pub type Command = Vec<Vec<u8>>;

/// Parses one command from the start of `buf`: `Ok(Some((command,
/// bytes_used)))`, or `Ok(None)` when `buf` holds only part of one.
///
/// # Errors
/// [`RespError::Protocol`] for bytes that are not a command (the connection
/// should then be closed: where the next command starts is unknown), and
/// [`RespError::TooLarge`] for sizes above `limits`.
pub fn parse_command(buf: &[u8], limits: &Limits) -> Result<Option<(Command, usize)>, RespError> {
    match buf.first() {
        None => Ok(None),
        Some(b'*') => parse_array(buf, limits),
        Some(_) => parse_inline(buf, limits),
    }
}

/// The position of the CRLF that ends the line starting at `from`, if the
/// buffer holds it; a bare LF is a protocol error.
fn line_end(buf: &[u8], from: usize, limit: usize) -> Result<Option<usize>, RespError> {
    let window = &buf[from..buf.len().min(from.saturating_add(limit).saturating_add(2))];
    match window.iter().position(|&b| b == b'\n') {
        Some(0) => Err(RespError::Protocol("a line starts with LF".into())),
        Some(i) if window[i - 1] == b'\r' => Ok(Some(from + i - 1)),
        Some(_) => Err(RespError::Protocol("a line ends with LF, not CRLF".into())),
        None if window.len() >= limit.saturating_add(2) => {
            Err(RespError::TooLarge { what: "a line", size: window.len(), limit })
        }
        None => Ok(None),
    }
}

/// The end of a header line (`*3`, `$5`): 20 digits at most.
fn header_end(buf: &[u8], from: usize) -> Result<Option<usize>, RespError> {
    line_end(buf, from, 20).map_err(|e| match e {
        RespError::TooLarge { .. } => RespError::Protocol("a length of more than 20 digits".into()),
        other => other,
    })
}

/// A decimal length after a type byte: digits only, or `-1`.
fn parse_len(digits: &[u8]) -> Result<i64, RespError> {
    let text = std::str::from_utf8(digits)
        .map_err(|_| RespError::Protocol("a length that is not ASCII".into()))?;
    let valid = !text.is_empty()
        && (text == "-1" || text.bytes().all(|b| b.is_ascii_digit()))
        && text.len() <= 19;
    if !valid {
        return Err(RespError::Protocol(format!("invalid length {text:?}")));
    }
    text.parse::<i64>().map_err(|_| RespError::Protocol(format!("invalid length {text:?}")))
}

fn parse_array(buf: &[u8], limits: &Limits) -> Result<Option<(Command, usize)>, RespError> {
    let Some(end) = header_end(buf, 1)? else { return Ok(None) };
    let count = parse_len(&buf[1..end])?;
    if count < 1 {
        return Err(RespError::Protocol("a command must have at least one argument".into()));
    }
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    if count > limits.max_args {
        return Err(RespError::TooLarge {
            what: "an argument count",
            size: count,
            limit: limits.max_args,
        });
    }
    let mut at = end + 2;
    let mut args = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        match buf.get(at) {
            None => return Ok(None),
            Some(b'$') => {}
            Some(&other) => {
                return Err(RespError::Protocol(format!(
                    "expected a bulk string ('$'), got {:?}",
                    char::from(other)
                )));
            }
        }
        let Some(end) = header_end(buf, at + 1)? else { return Ok(None) };
        let len = parse_len(&buf[at + 1..end])?;
        let len = usize::try_from(len)
            .map_err(|_| RespError::Protocol("a null argument in a command".into()))?;
        if len > limits.max_arg_bytes {
            return Err(RespError::TooLarge {
                what: "an argument",
                size: len,
                limit: limits.max_arg_bytes,
            });
        }
        let start = end + 2;
        let Some(stop) = start.checked_add(len) else {
            return Err(RespError::Protocol("a length past the end of memory".into()));
        };
        if buf.len() < stop + 2 {
            return Ok(None);
        }
        if &buf[stop..stop + 2] != b"\r\n" {
            return Err(RespError::Protocol("a bulk string not followed by CRLF".into()));
        }
        args.push(buf[start..stop].to_vec());
        at = stop + 2;
    }
    Ok(Some((args, at)))
}

fn parse_inline(buf: &[u8], limits: &Limits) -> Result<Option<(Command, usize)>, RespError> {
    let Some(end) = line_end(buf, 0, limits.max_inline_bytes)? else { return Ok(None) };
    let args: Command = buf[..end]
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    if args.is_empty() {
        return Err(RespError::Protocol("an empty inline command".into()));
    }
    if args.len() > limits.max_args {
        return Err(RespError::TooLarge {
            what: "an argument count",
            size: args.len(),
            limit: limits.max_args,
        });
    }
    Ok(Some((args, end + 2)))
}

/// A reply to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`: a status line (no CR or LF inside).
    Simple(String),
    /// `-ERR ...`: an error line (no CR or LF inside).
    Error(String),
    /// `:42`.
    Integer(i64),
    /// `$5 hello`, or the null bulk string (`None`: no such key).
    Bulk(Option<Vec<u8>>),
    /// `*2 ...`.
    Array(Vec<Reply>),
}

impl Reply {
    /// `+OK`.
    pub fn ok() -> Self {
        Reply::Simple("OK".into())
    }

    /// An error reply; CR and LF in `message` become spaces, so that an
    /// error can never break the framing.
    pub fn error(message: impl fmt::Display) -> Self {
        Reply::Error(message.to_string().replace(['\r', '\n'], " "))
    }

    /// Appends the reply's bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Simple(s) => line(out, b'+', s.replace(['\r', '\n'], " ").as_bytes()),
            Reply::Error(s) => line(out, b'-', s.replace(['\r', '\n'], " ").as_bytes()),
            Reply::Integer(n) => line(out, b':', n.to_string().as_bytes()),
            Reply::Bulk(None) => out.extend_from_slice(b"$-1\r\n"),
            Reply::Bulk(Some(bytes)) => {
                line(out, b'$', bytes.len().to_string().as_bytes());
                out.extend_from_slice(bytes);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Array(items) => {
                line(out, b'*', items.len().to_string().as_bytes());
                for item in items {
                    item.encode(out);
                }
            }
        }
    }
}

fn line(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
    out.push(kind);
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &[u8]) -> Result<Option<(Command, usize)>, RespError> {
        parse_command(input, &Limits::default())
    }

    #[test]
    fn commands_parse_whole_or_not_at_all() {
        let input = b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n*1\r\n$4\r\nPING\r\n";
        let (first, used) = parse(input).unwrap().unwrap();
        assert_eq!(first, [b"GET".to_vec(), b"key".to_vec()]);
        let (second, rest) = parse(&input[used..]).unwrap().unwrap();
        assert_eq!(second, [b"PING".to_vec()]);
        assert_eq!(used + rest, input.len());
        // Every strict prefix of a command is incomplete, never an error.
        for cut in 0..used {
            assert_eq!(parse(&input[..cut]).unwrap(), None, "prefix of {cut} bytes");
        }
        // Binary-safe values, CRLF inside included.
        let (bin, _) = parse(b"*2\r\n$3\r\nSET\r\n$4\r\na\r\nb\r\n").unwrap().unwrap();
        assert_eq!(bin[1], b"a\r\nb");
        let (empty, _) = parse(b"*2\r\n$3\r\nGET\r\n$0\r\n\r\n").unwrap().unwrap();
        assert_eq!(empty[1], b"");
    }

    #[test]
    fn inline_commands_split_on_whitespace() {
        let (cmd, used) = parse(b"SET  k   v\r\nGET k\r\n").unwrap().unwrap();
        assert_eq!(cmd, [b"SET".to_vec(), b"k".to_vec(), b"v".to_vec()]);
        assert_eq!(used, 12);
        assert_eq!(parse(b"PING").unwrap(), None);
        assert!(matches!(parse(b"   \r\n"), Err(RespError::Protocol(_))));
    }

    #[test]
    fn malformed_input_is_a_protocol_error() {
        for bad in [
            &b"*x\r\n"[..],
            b"*-1\r\n",
            b"*0\r\n",
            b"*1\r\n:5\r\n",
            b"*1\r\n$-1\r\n",
            b"*1\r\n$3\r\nGETX\r\n",
            b"*1\n",
            b"*1\r\n$+3\r\nGET\r\n",
            b"*99999999999999999999999\r\n",
            b"PING\n",
        ] {
            assert!(matches!(parse(bad), Err(RespError::Protocol(_))), "{bad:?}");
        }
    }

    #[test]
    fn declared_sizes_are_checked_before_anything_is_read() {
        let limits = Limits { max_args: 3, max_arg_bytes: 10, max_inline_bytes: 16 };
        let too_many = parse_command(b"*4\r\n", &limits);
        assert!(matches!(too_many, Err(RespError::TooLarge { what: "an argument count", .. })));
        // A huge declared argument is refused from its header alone.
        let huge = parse_command(b"*1\r\n$1000000000\r\n", &limits);
        assert!(matches!(huge, Err(RespError::TooLarge { what: "an argument", .. })));
        let long_line = parse_command(&[b'a'; 40], &limits);
        assert!(matches!(long_line, Err(RespError::TooLarge { what: "a line", .. })));
        let error = RespError::TooLarge { what: "an argument", size: 11, limit: 10 };
        assert_eq!(error.to_string(), "Protocol error: an argument of 11 is over the limit of 10");
    }

    #[test]
    fn replies_encode_as_redis_does() {
        let mut out = Vec::new();
        for reply in [
            Reply::ok(),
            Reply::error("ERR bad\r\nthing"),
            Reply::Integer(-3),
            Reply::Bulk(None),
            Reply::Array(vec![Reply::Bulk(Some(b"a".to_vec())), Reply::Integer(1)]),
        ] {
            reply.encode(&mut out);
        }
        assert_eq!(out, b"+OK\r\n-ERR bad  thing\r\n:-3\r\n$-1\r\n*2\r\n$1\r\na\r\n:1\r\n");
    }

    proptest::proptest! {
        /// Any arguments encode as an array of bulk strings and parse back
        /// as themselves; arbitrary bytes never panic the parser.
        #[test]
        fn round_trip_and_no_panics(
            args in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), 1..6),
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            let mut input = format!("*{}\r\n", args.len()).into_bytes();
            for a in &args {
                input.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                input.extend_from_slice(a);
                input.extend_from_slice(b"\r\n");
            }
            let (parsed, used) = parse(&input).unwrap().unwrap();
            proptest::prop_assert_eq!(parsed, args);
            proptest::prop_assert_eq!(used, input.len());
            let _ = parse(&noise);
        }
    }
}
