//! A sync session over any byte stream (a TCP connection), on tokio.
//!
//! Framing: each message is a 4-byte big-endian length and the message; a
//! length of 0 means "nothing to say". The side that receives "nothing" with
//! nothing queued ends the session with a final "nothing"; a side that said
//! "nothing" and hears "nothing" back ends too. So both sides stop after the
//! same exchange, and neither writes to a closed connection.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::MerkleError;
use crate::reconcile::{Reconciler, SyncConfig, SyncStats};
use crate::sync_store::SyncStore;

/// Writes one frame: a 4-byte big-endian length, then `message` (an empty
/// message is the "nothing to say" frame). For services that drive a
/// [`Reconciler`] themselves and want [`sync_stream`]'s framing.
///
/// # Errors
/// The transport failed, or the message is over 4 GiB.
pub async fn write_frame<S: AsyncWrite + Unpin>(
    stream: &mut S,
    message: &[u8],
) -> Result<(), MerkleError> {
    let len = u32::try_from(message.len())
        .map_err(|_| MerkleError::MessageTooLarge { len: message.len(), max: u32::MAX as usize })?;
    stream.write_all(&len.to_be_bytes()).await?;
    stream.write_all(message).await?;
    stream.flush().await?;
    Ok(())
}

/// Reads one frame written by [`write_frame`], refusing one longer than
/// `max` before reading it.
///
/// # Errors
/// The transport failed, or [`MerkleError::MessageTooLarge`].
pub async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    max: usize,
) -> Result<Vec<u8>, MerkleError> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(MerkleError::MessageTooLarge { len, max });
    }
    let mut message = vec![0u8; len];
    stream.read_exact(&mut message).await?;
    Ok(message)
}

/// Runs one side of a sync session over `stream` (one side passes
/// `initiate: true`) and returns this side's stats. Both sides must use the
/// same `config`.
///
/// ```no_run
/// # #![allow(dead_code)]
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use sysblocks_merkle::{MerkleStore, SyncConfig, sync_stream};
///
/// let mut store: MerkleStore<Vec<u8>, Vec<u8>> = MerkleStore::new();
/// let mut stream = tokio::net::TcpStream::connect("127.0.0.1:7000").await?;
/// let stats = sync_stream(&mut stream, &mut store, SyncConfig::default(), true).await?;
/// println!("repaired {} keys", stats.keys_repaired);
/// # Ok(()) }
/// ```
///
/// # Errors
/// A transport error, or any error of [`Reconciler::new`],
/// [`Reconciler::initiate`] or [`Reconciler::receive`].
pub async fn sync_stream<S, T>(
    stream: &mut S,
    store: &mut T,
    config: SyncConfig,
    initiate: bool,
) -> Result<SyncStats, MerkleError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: SyncStore + ?Sized,
{
    let mut side = Reconciler::new(config)?;
    let mut said_nothing = false;
    if initiate {
        write_frame(stream, &side.initiate(store)?).await?;
    }
    loop {
        let message = read_frame(stream, config.max_message).await?;
        if message.is_empty() {
            if said_nothing {
                return Ok(side.stats());
            }
            match side.next_message()? {
                Some(m) => {
                    write_frame(stream, &m).await?;
                    said_nothing = false;
                }
                None => {
                    write_frame(stream, &[]).await?;
                    return Ok(side.stats());
                }
            }
            continue;
        }
        match side.receive(store, &message)? {
            Some(reply) => {
                write_frame(stream, &reply).await?;
                said_nothing = false;
            }
            None => {
                write_frame(stream, &[]).await?;
                said_nothing = true;
            }
        }
    }
}
