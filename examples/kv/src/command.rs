//! The commands of the data port, from a parsed RESP command to a typed
//! request, with every limit and arity error worded as Redis words them.
//!
//! | command | what it does |
//! |---|---|
//! | `GET key [R n]` | the value, read from `R` replicas (this request only) |
//! | `SET key value [W n]` | writes, acknowledged by `W` replicas |
//! | `DEL key [key ...]` | deletes (tombstones), the count of keys that existed |
//! | `EXISTS key [key ...]` | how many of the keys exist |
//! | `CONSISTENCY [R n] [W n]` | this connection's default `R` and `W` |
//! | `PING [message]` | `PONG`, or the message |
//! | `CONFIG GET ...`, `COMMAND ...` | empty answers, for clients that ask at connect |
//!
//! ```
//! use sysblocks_kv::command::{Limits, Request, parse};
//!
//! let args = vec![b"GET".to_vec(), b"user:1".to_vec(), b"R".to_vec(), b"3".to_vec()];
//! let request = parse(&args, &Limits::default())?;
//! assert_eq!(request, Request::Get { key: b"user:1".to_vec(), r: Some(3) });
//! # Ok::<(), sysblocks_kv::command::CommandError>(())
//! ```

use std::fmt;

/// Limits on what a request may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest key, in bytes.
    pub max_key_bytes: usize,
    /// The longest value, in bytes.
    pub max_value_bytes: usize,
    /// The most keys of one `DEL` or `EXISTS`.
    pub max_keys: usize,
}

impl Default for Limits {
    /// Keys up to 1 KiB, values up to 512 KiB, 64 keys per command.
    fn default() -> Self {
        Limits { max_key_bytes: 1024, max_value_bytes: 512 << 10, max_keys: 64 }
    }
}

/// A request of the data port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `GET key [R n]`.
    Get {
        /// The key.
        key: Vec<u8>,
        /// Replies to wait for, this request only.
        r: Option<usize>,
    },
    /// `SET key value [W n]`.
    Set {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
        /// Acknowledgements to wait for, this request only.
        w: Option<usize>,
    },
    /// `DEL key [key ...]`.
    Del {
        /// The keys.
        keys: Vec<Vec<u8>>,
    },
    /// `EXISTS key [key ...]`.
    Exists {
        /// The keys.
        keys: Vec<Vec<u8>>,
    },
    /// `CONSISTENCY [R n] [W n]`: the connection's defaults.
    Consistency {
        /// The new default R, if given.
        r: Option<usize>,
        /// The new default W, if given.
        w: Option<usize>,
    },
    /// `PING [message]`.
    Ping {
        /// The message to echo.
        message: Option<Vec<u8>>,
    },
    /// `CONFIG GET ...` or `COMMAND ...`: answered with an empty array.
    Introspection,
}

/// Why a command is refused; its `Display` is the error line sent back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// A command this node does not know.
    Unknown {
        /// Its name, as sent.
        name: String,
    },
    /// The wrong number of arguments.
    Arity {
        /// The command, lower case.
        name: &'static str,
    },
    /// A syntax error in the options.
    Syntax,
    /// A quorum that is not a positive integer.
    BadQuorum,
    /// A key or value over its limit, or too many keys.
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Unknown { name } => write!(f, "ERR unknown command '{name}'"),
            CommandError::Arity { name } => {
                write!(f, "ERR wrong number of arguments for '{name}' command")
            }
            CommandError::Syntax => write!(f, "ERR syntax error"),
            CommandError::BadQuorum => write!(f, "ERR R and W must be positive integers"),
            CommandError::TooLarge { what, size, limit } => {
                write!(f, "ERR {what} of {size} bytes is over the limit of {limit}")
            }
        }
    }
}

impl std::error::Error for CommandError {}

/// The typed request of a parsed command (`args[0]` is its name, in any
/// case).
///
/// # Errors
/// A [`CommandError`], whose text is the reply to send.
pub fn parse(args: &[Vec<u8>], limits: &Limits) -> Result<Request, CommandError> {
    let Some((name, rest)) = args.split_first() else {
        return Err(CommandError::Syntax);
    };
    let upper = name.to_ascii_uppercase();
    match upper.as_slice() {
        b"GET" => {
            let (key, options) = rest.split_first().ok_or(CommandError::Arity { name: "get" })?;
            let (r, w) = quorum_options(options)?;
            if w.is_some() {
                return Err(CommandError::Syntax);
            }
            Ok(Request::Get { key: checked_key(key, limits)?, r })
        }
        b"SET" => {
            let [key, value, options @ ..] = rest else {
                return Err(CommandError::Arity { name: "set" });
            };
            let (r, w) = quorum_options(options)?;
            if r.is_some() {
                return Err(CommandError::Syntax);
            }
            if value.len() > limits.max_value_bytes {
                return Err(CommandError::TooLarge {
                    what: "a value",
                    size: value.len(),
                    limit: limits.max_value_bytes,
                });
            }
            Ok(Request::Set { key: checked_key(key, limits)?, value: value.clone(), w })
        }
        b"DEL" => Ok(Request::Del { keys: checked_keys(rest, "del", limits)? }),
        b"EXISTS" => Ok(Request::Exists { keys: checked_keys(rest, "exists", limits)? }),
        b"CONSISTENCY" => {
            let (r, w) = quorum_options(rest)?;
            Ok(Request::Consistency { r, w })
        }
        b"PING" => match rest {
            [] => Ok(Request::Ping { message: None }),
            [message] => Ok(Request::Ping { message: Some(message.clone()) }),
            _ => Err(CommandError::Arity { name: "ping" }),
        },
        b"CONFIG" | b"COMMAND" => Ok(Request::Introspection),
        _ => Err(CommandError::Unknown { name: String::from_utf8_lossy(name).into_owned() }),
    }
}

fn checked_key(key: &[u8], limits: &Limits) -> Result<Vec<u8>, CommandError> {
    if key.len() > limits.max_key_bytes {
        return Err(CommandError::TooLarge {
            what: "a key",
            size: key.len(),
            limit: limits.max_key_bytes,
        });
    }
    Ok(key.to_vec())
}

fn checked_keys(
    keys: &[Vec<u8>],
    name: &'static str,
    limits: &Limits,
) -> Result<Vec<Vec<u8>>, CommandError> {
    if keys.is_empty() {
        return Err(CommandError::Arity { name });
    }
    if keys.len() > limits.max_keys {
        return Err(CommandError::TooLarge {
            what: "a key list",
            size: keys.len(),
            limit: limits.max_keys,
        });
    }
    keys.iter().map(|k| checked_key(k, limits)).collect()
}

/// `[R n] [W n]` in any order, each at most once.
fn quorum_options(options: &[Vec<u8>]) -> Result<(Option<usize>, Option<usize>), CommandError> {
    let (mut r, mut w) = (None, None);
    let mut it = options.iter();
    while let Some(option) = it.next() {
        let value = it.next().ok_or(CommandError::Syntax)?;
        let n = std::str::from_utf8(value)
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .ok_or(CommandError::BadQuorum)?;
        let slot = match option.to_ascii_uppercase().as_slice() {
            b"R" => &mut r,
            b"W" => &mut w,
            _ => return Err(CommandError::Syntax),
        };
        if slot.replace(n).is_some() {
            return Err(CommandError::Syntax);
        }
    }
    Ok((r, w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    fn parse_words(words: &[&str]) -> Result<Request, CommandError> {
        parse(&args(words), &Limits::default())
    }

    #[test]
    fn commands_parse_in_any_case_with_their_options() {
        assert_eq!(parse_words(&["get", "k"]), Ok(Request::Get { key: b"k".to_vec(), r: None }));
        assert_eq!(
            parse_words(&["SET", "k", "v", "w", "3"]),
            Ok(Request::Set { key: b"k".to_vec(), value: b"v".to_vec(), w: Some(3) })
        );
        assert_eq!(parse_words(&["Del", "a", "b"]), Ok(Request::Del { keys: args(&["a", "b"]) }));
        assert_eq!(parse_words(&["EXISTS", "a"]), Ok(Request::Exists { keys: args(&["a"]) }));
        assert_eq!(
            parse_words(&["CONSISTENCY", "W", "3", "R", "1"]),
            Ok(Request::Consistency { r: Some(1), w: Some(3) })
        );
        assert_eq!(parse_words(&["PING"]), Ok(Request::Ping { message: None }));
        assert_eq!(
            parse_words(&["ping", "hi"]),
            Ok(Request::Ping { message: Some(b"hi".to_vec()) })
        );
        assert_eq!(parse_words(&["CONFIG", "GET", "save"]), Ok(Request::Introspection));
    }

    #[test]
    fn bad_commands_get_redis_worded_errors() {
        let cases: [(&[&str], &str); 11] = [
            (&["FLUSHALL"], "ERR unknown command 'FLUSHALL'"),
            (&["GET"], "ERR wrong number of arguments for 'get' command"),
            (&["SET", "k"], "ERR wrong number of arguments for 'set' command"),
            (&["DEL"], "ERR wrong number of arguments for 'del' command"),
            (&["PING", "a", "b"], "ERR wrong number of arguments for 'ping' command"),
            (&["GET", "k", "W", "2"], "ERR syntax error"),
            (&["SET", "k", "v", "R", "2"], "ERR syntax error"),
            (&["SET", "k", "v", "W"], "ERR syntax error"),
            (&["SET", "k", "v", "W", "0"], "ERR R and W must be positive integers"),
            (&["SET", "k", "v", "W", "2", "W", "3"], "ERR syntax error"),
            (&["CONSISTENCY", "X", "1"], "ERR syntax error"),
        ];
        for (words, message) in cases {
            assert_eq!(parse_words(words).unwrap_err().to_string(), message, "{words:?}");
        }
        assert_eq!(parse(&[], &Limits::default()), Err(CommandError::Syntax));
    }

    #[test]
    fn oversized_keys_values_and_key_lists_are_refused() {
        let limits = Limits { max_key_bytes: 4, max_value_bytes: 8, max_keys: 2 };
        let long_key = parse(&args(&["GET", "12345"]), &limits).unwrap_err();
        assert_eq!(long_key.to_string(), "ERR a key of 5 bytes is over the limit of 4");
        let long_value = parse(&args(&["SET", "k", "123456789"]), &limits).unwrap_err();
        assert!(matches!(long_value, CommandError::TooLarge { what: "a value", size: 9, .. }));
        let many = parse(&args(&["DEL", "a", "b", "c"]), &limits).unwrap_err();
        assert!(matches!(many, CommandError::TooLarge { what: "a key list", .. }));
        let one_long = parse(&args(&["EXISTS", "a", "12345"]), &limits).unwrap_err();
        assert!(matches!(one_long, CommandError::TooLarge { what: "a key", .. }));
    }
}
