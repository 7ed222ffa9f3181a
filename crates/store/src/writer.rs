//! Streams a request body into a staging file while hashing it, in one pass.
//!
//! The async side only moves buffers; hashing and file writes run on a blocking thread so a
//! large upload never stalls the runtime. The channel between them is bounded, so a slow disk
//! applies back-pressure to the client and an upload holds at most a few MiB of memory.

use std::fs::File;
use std::io::{self, Write};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use minato_oci::DigestHasher;

/// Bytes handed to the writer thread at once.
const CHUNK: usize = 256 * 1024;
/// Chunks that may wait for the writer thread.
const QUEUE: usize = 8;

/// How the body stream ended.
#[derive(Debug)]
pub enum StreamEnd {
    /// The client sent everything.
    Complete,
    /// The client failed or went silent; what arrived before that was written.
    Interrupted(io::Error),
}

/// Result of writing a body: the file and hasher after the last written byte.
pub struct Written {
    /// The staging file, positioned after the written bytes.
    pub file: File,
    /// Hasher state covering every byte of the file.
    pub hasher: DigestHasher,
    /// Bytes written by this call.
    pub bytes: u64,
    /// Whether the whole body arrived.
    pub end: StreamEnd,
}

/// Appends `body` to `file`, feeding `hasher`; stops with [`StreamEnd::Interrupted`] when the
/// body errors or no data arrives within `idle_timeout`. Disk errors are returned as `Err`.
pub async fn write_body<S>(
    file: File,
    hasher: DigestHasher,
    body: S,
    idle_timeout: Duration,
) -> io::Result<Written>
where
    S: Stream<Item = io::Result<Bytes>> + Send,
{
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Bytes>(QUEUE);
    let worker = tokio::task::spawn_blocking(move || -> io::Result<(File, DigestHasher, u64)> {
        let (mut file, mut hasher, mut bytes) = (file, hasher, 0u64);
        while let Some(chunk) = receiver.blocking_recv() {
            hasher.update(&chunk);
            file.write_all(&chunk)?;
            bytes += chunk.len() as u64;
        }
        Ok((file, hasher, bytes))
    });

    let end = pump(body, &sender, idle_timeout).await;
    drop(sender);
    let (file, hasher, bytes) = worker
        .await
        .map_err(|e| io::Error::other(format!("blob writer thread failed: {e}")))??;
    Ok(Written {
        file,
        hasher,
        bytes,
        end,
    })
}

async fn pump<S>(
    body: S,
    sender: &tokio::sync::mpsc::Sender<Bytes>,
    idle_timeout: Duration,
) -> StreamEnd
where
    S: Stream<Item = io::Result<Bytes>> + Send,
{
    let mut body = std::pin::pin!(body);
    let mut pending = BytesMut::new();
    loop {
        let next = match tokio::time::timeout(idle_timeout, body.next()).await {
            Ok(next) => next,
            Err(_) => {
                let _ = flush(&mut pending, sender).await;
                return StreamEnd::Interrupted(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no upload data received within the idle timeout",
                ));
            }
        };
        match next {
            None => {
                return match flush(&mut pending, sender).await {
                    Ok(()) => StreamEnd::Complete,
                    Err(e) => StreamEnd::Interrupted(e),
                };
            }
            Some(Err(e)) => {
                let _ = flush(&mut pending, sender).await;
                return StreamEnd::Interrupted(e);
            }
            Some(Ok(frame)) if frame.len() >= CHUNK && pending.is_empty() => {
                if sender.send(frame).await.is_err() {
                    return StreamEnd::Interrupted(writer_gone());
                }
            }
            Some(Ok(frame)) => {
                pending.extend_from_slice(&frame);
                if pending.len() >= CHUNK && flush(&mut pending, sender).await.is_err() {
                    return StreamEnd::Interrupted(writer_gone());
                }
            }
        }
    }
}

async fn flush(
    pending: &mut BytesMut,
    sender: &tokio::sync::mpsc::Sender<Bytes>,
) -> io::Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    sender
        .send(pending.split().freeze())
        .await
        .map_err(|_| writer_gone())
}

fn writer_gone() -> io::Error {
    io::Error::other("blob writer stopped")
}
