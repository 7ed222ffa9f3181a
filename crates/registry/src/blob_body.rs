//! Streams blob bytes to the client from memory-mapped windows of the blob file.
//!
//! Mapping avoids copying file data into user-space buffers (the socket write is the only
//! copy); mapping one window at a time keeps resident memory bounded by a few windows per
//! download, whatever the blob size. Windows are mapped with `MAP_POPULATE` on a blocking
//! thread so page-cache misses never stall the async runtime.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use futures_util::stream;
use memmap2::{Mmap, MmapOptions};

/// Bytes mapped (and handed to the connection) at a time.
const WINDOW: u64 = 2 * 1024 * 1024;

/// Maps `len` bytes of `file` at `offset`.
fn map_window(file: &File, offset: u64, len: usize) -> io::Result<Mmap> {
    // SAFETY: blob files are created by an atomic rename of a complete, fsynced file and are
    // never written or truncated afterwards (deletion unlinks, which keeps existing mappings
    // valid), so the mapped bytes cannot change or disappear while the mapping lives.
    #[allow(unsafe_code)]
    let map = unsafe {
        MmapOptions::new()
            .offset(offset)
            .len(len)
            .populate()
            .map(file)
    }?;
    Ok(map)
}

/// A body streaming bytes `[start, start + len)` of the blob file at `path`.
pub async fn blob_body(path: PathBuf, start: u64, len: u64) -> io::Result<Body> {
    if len == 0 {
        return Ok(Body::empty());
    }
    let file = Arc::new(
        tokio::task::spawn_blocking(move || File::open(path))
            .await
            .map_err(io::Error::other)??,
    );
    let end = start + len;
    let windows = stream::try_unfold(start, move |offset| {
        let file = file.clone();
        async move {
            if offset >= end {
                return Ok(None);
            }
            let size = WINDOW.min(end - offset);
            let map = tokio::task::spawn_blocking(move || map_window(&file, offset, size as usize))
                .await
                .map_err(io::Error::other)??;
            Ok::<_, io::Error>(Some((Bytes::from_owner(map), offset + size)))
        }
    });
    Ok(Body::from_stream(windows))
}
