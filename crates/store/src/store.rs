//! The store facade: blob, upload and manifest operations with their durability ordering.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use minato_oci::{Algorithm, Digest, DigestHasher, ParsedManifest, RepositoryName};

use crate::blobs::{BlobDir, remove_if_present};
use crate::cache::{Caches, key};
use crate::locks::KeyedLocks;
use crate::meta::{Meta, PutManifestError, ReferrerRow};
use crate::writer::{StreamEnd, write_body};

/// Tunables of the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// An upload request that sends nothing for this long is cut off (its bytes so far are kept).
    pub upload_idle_timeout: Duration,
    /// Upload sessions untouched for this long are removed.
    pub upload_ttl: Duration,
    /// Budget for cached manifest bytes.
    pub manifest_cache_bytes: u64,
    /// Entries in the tag and blob-link caches.
    pub cache_entries: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            upload_idle_timeout: Duration::from_secs(60),
            upload_ttl: Duration::from_secs(24 * 3600),
            manifest_cache_bytes: 8 * 1024 * 1024,
            cache_entries: 16 * 1024,
        }
    }
}

/// Everything that can go wrong in a store operation, in terms the HTTP layer can map to
/// protocol errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such upload session in this repository.
    #[error("upload session unknown")]
    UploadUnknown,
    /// A chunk did not start where the session ends.
    #[error("chunk starts at {start}, upload is at {offset}")]
    RangeMismatch {
        /// Where the rejected chunk started.
        start: u64,
        /// Acknowledged bytes of the session.
        offset: u64,
    },
    /// The uploaded bytes do not hash to the claimed digest.
    #[error("uploaded content has digest {actual}, not {expected}")]
    DigestMismatch {
        /// Digest the client claimed.
        expected: Digest,
        /// Digest of the bytes received.
        actual: Digest,
    },
    /// The client stopped sending; progress up to that point is kept for resumable sessions.
    #[error("upload interrupted: {0}")]
    Interrupted(io::Error),
    /// A manifest references a blob or manifest missing from the repository.
    #[error("manifest references unknown {0}")]
    ManifestReferenceUnknown(String),
    /// The push would move a tag of a repository whose tags are immutable.
    #[error("tag {0:?} already exists and the repository's tags are immutable")]
    TagImmutable(String),
    /// The session's bytes are already committed as a blob (a crash hit between the blob file
    /// and its row); it can only be finished, not extended.
    #[error("upload already holds all of its {offset} bytes; finish it with PUT")]
    UploadComplete {
        /// Acknowledged bytes of the session.
        offset: u64,
    },
    /// An upload session's saved state is unusable.
    #[error("upload session state is corrupt")]
    CorruptSession,
    /// Disk failure.
    #[error("storage I/O: {0}")]
    Io(#[from] io::Error),
    /// Database failure.
    #[error("metadata database: {0}")]
    Database(#[from] sqlx::Error),
}

/// A manifest as served.
#[derive(Debug)]
pub struct StoredManifest {
    /// Canonical digest.
    pub digest: Digest,
    /// `Content-Type` to serve.
    pub media_type: String,
    /// The exact pushed bytes.
    pub content: Bytes,
    /// Subject digest, for the `OCI-Subject` header.
    pub subject: Option<String>,
}

/// Where to read a blob from.
#[derive(Debug, Clone)]
pub struct BlobLocation {
    /// Path of the immutable blob file.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
}

/// Acknowledged state of an upload session.
#[derive(Debug, Clone, Copy)]
pub struct UploadStatus {
    /// Bytes received and durable.
    pub offset: u64,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct TagPage {
    /// Names in byte order.
    pub items: Vec<String>,
    /// Whether more names follow.
    pub more: bool,
}

/// A manifest push.
#[derive(Debug)]
pub struct PutManifest<'a> {
    /// Digest the manifest is stored under.
    pub digest: &'a Digest,
    /// The pushed bytes.
    pub content: Bytes,
    /// What validation found in them.
    pub parsed: &'a ParsedManifest,
    /// Tags to point at it.
    pub tags: &'a [&'a str],
    /// Refuse to move a tag that already points at another manifest.
    pub immutable_tags: bool,
}

/// Summary of a stored manifest for the caller (e.g. to emit `OCI-Subject`).
#[derive(Debug, Clone)]
pub struct ManifestInfo {
    /// Digest it is stored under.
    pub digest: Digest,
}

/// A referrers entry.
pub type Referrer = ReferrerRow;

/// Durable registry state.
pub struct Store {
    dir: BlobDir,
    meta: Meta,
    caches: Caches,
    sessions: KeyedLocks,
    digests: KeyedLocks,
    options: StoreOptions,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io::Error::other(format!("blocking task failed: {e}")))?
}

impl Store {
    /// Opens the store in `root` (created if missing) and removes staging files that belong
    /// to no session (left by a crash during a monolithic upload).
    pub async fn open(root: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        let dir = {
            let root = root.to_owned();
            blocking(move || BlobDir::open(&root)).await?
        };
        let meta = Meta::open(&root.join("metadata.db")).await?;
        let store = Store {
            dir,
            meta,
            caches: Caches::new(options.manifest_cache_bytes, options.cache_entries),
            sessions: KeyedLocks::default(),
            digests: KeyedLocks::default(),
            options,
        };
        store.remove_orphan_staging_files().await?;
        Ok(store)
    }

    async fn remove_orphan_staging_files(&self) -> Result<(), StoreError> {
        let live: std::collections::HashSet<String> =
            self.meta.upload_ids().await?.into_iter().collect();
        let uploads = self.dir.uploads_dir();
        let removed = blocking(move || {
            let mut removed = 0;
            for entry in std::fs::read_dir(&uploads)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if !live.contains(&name) {
                    remove_if_present(&entry.path())?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await?;
        if removed > 0 {
            tracing::info!(removed, "removed orphaned upload staging files");
        }
        Ok(())
    }

    /// Whether the metadata database answers (readiness).
    pub async fn ready(&self) -> bool {
        self.meta.ping().await.is_ok()
    }

    /// Where to read `digest` from, if it is linked into `repository`.
    pub async fn blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<BlobLocation>, StoreError> {
        let cache_key = key(repository.as_str(), digest.as_str());
        let size = match self.caches.blobs.get(&cache_key) {
            Some(size) => Some(size),
            None => {
                let size = self
                    .meta
                    .linked_blob_size(repository.as_str(), digest.as_str())
                    .await?
                    .map(|s| s as u64);
                if let Some(size) = size {
                    self.caches.blobs.insert(cache_key, size);
                }
                size
            }
        };
        Ok(size.map(|size| BlobLocation {
            path: self.dir.blob_path(digest),
            size,
        }))
    }

    /// Removes `digest` from `repository`; false if it was not there.
    pub async fn unlink_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<bool, StoreError> {
        let removed = self
            .meta
            .unlink_blob(repository.as_str(), digest.as_str())
            .await?;
        self.caches
            .blobs
            .remove(&key(repository.as_str(), digest.as_str()));
        Ok(removed)
    }

    /// Links a blob of `from` into `to` without copying; `None` when `from` lacks it.
    pub async fn mount_blob(
        &self,
        from: &RepositoryName,
        to: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<u64>, StoreError> {
        Ok(self
            .meta
            .mount_blob(from.as_str(), to.as_str(), digest.as_str())
            .await?
            .map(|s| s as u64))
    }

    /// Stores a whole blob sent in one request, verifying it against `expected`.
    pub async fn put_blob<S>(
        &self,
        repository: &RepositoryName,
        expected: &Digest,
        body: S,
    ) -> Result<u64, StoreError>
    where
        S: Stream<Item = io::Result<Bytes>> + Send,
    {
        let staging = self
            .dir
            .upload_path(&format!("{}.put", uuid::Uuid::new_v4()));
        let file = {
            let path = staging.clone();
            blocking(move || File::create(path)).await?
        };
        let written = match write_body(
            file,
            DigestHasher::new(expected.algorithm()),
            body,
            self.options.upload_idle_timeout,
        )
        .await
        {
            Ok(written) => written,
            Err(e) => {
                let _ = remove_if_present(&staging);
                return Err(e.into());
            }
        };
        if let StreamEnd::Interrupted(e) = written.end {
            remove_if_present(&staging)?;
            return Err(StoreError::Interrupted(e));
        }
        let actual = written.hasher.finalize();
        if &actual != expected {
            remove_if_present(&staging)?;
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        self.commit_blob(
            repository,
            written.file,
            staging,
            expected,
            written.bytes,
            None,
        )
        .await?;
        Ok(written.bytes)
    }

    async fn commit_blob(
        &self,
        repository: &RepositoryName,
        file: File,
        staging: PathBuf,
        digest: &Digest,
        size: u64,
        upload_id: Option<&str>,
    ) -> Result<(), StoreError> {
        // Held from the existence check in `BlobDir::commit` until the row is committed, so a
        // collector taking the same lock sees either no file or file and row together.
        let _digest = self.digests.lock(digest.as_str()).await;
        let (dir, target) = (self.dir.clone(), digest.clone());
        let staged = staging.clone();
        blocking(move || dir.commit(file, &staged, &target)).await?;
        self.meta
            .commit_blob(repository.as_str(), digest.as_str(), size as i64, upload_id)
            .await?;
        // Only now: a crash before this point leaves a session row whose bytes still exist,
        // after it a staging file without a session, removed at the next start.
        remove_if_present(&staging)?;
        self.caches
            .blobs
            .insert(key(repository.as_str(), digest.as_str()), size);
        Ok(())
    }

    /// Opens a resumable upload session and returns its id.
    pub async fn start_upload(
        &self,
        repository: &RepositoryName,
        algorithm: Algorithm,
    ) -> Result<String, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let path = self.dir.upload_path(&id);
        blocking(move || File::create(path).map(drop)).await?;
        self.meta
            .insert_upload(
                &id,
                repository.as_str(),
                algorithm.as_str(),
                &DigestHasher::new(algorithm).save_state(),
            )
            .await?;
        Ok(id)
    }

    async fn session(
        &self,
        repository: &RepositoryName,
        id: &str,
    ) -> Result<(DigestHasher, u64), StoreError> {
        let row = self
            .meta
            .upload(id)
            .await?
            .filter(|row| row.repository == repository.as_str())
            .ok_or(StoreError::UploadUnknown)?;
        let algorithm: Algorithm = row
            .algorithm
            .parse()
            .map_err(|_| StoreError::CorruptSession)?;
        let hasher = DigestHasher::restore(algorithm, &row.hash_state)
            .map_err(|_| StoreError::CorruptSession)?;
        Ok((hasher, row.offset as u64))
    }

    /// Acknowledged progress of an upload session.
    pub async fn upload_status(
        &self,
        repository: &RepositoryName,
        id: &str,
    ) -> Result<UploadStatus, StoreError> {
        let (_, offset) = self.session(repository, id).await?;
        Ok(UploadStatus { offset })
    }

    /// Appends `body` to upload `id`. `start`, when given, must equal the session's offset.
    /// Bytes received before an interruption are kept and acknowledged.
    pub async fn append_upload<S>(
        &self,
        repository: &RepositoryName,
        id: &str,
        start: Option<u64>,
        body: S,
    ) -> Result<UploadStatus, StoreError>
    where
        S: Stream<Item = io::Result<Bytes>> + Send,
    {
        let _guard = self.sessions.lock(id).await;
        let (file, hasher, offset, end) = self.append_locked(repository, id, start, body).await?;
        drop(file);
        drop(hasher);
        match end {
            StreamEnd::Complete => Ok(UploadStatus { offset }),
            StreamEnd::Interrupted(e) => Err(StoreError::Interrupted(e)),
        }
    }

    /// Writes `body` at the session's acknowledged offset and acknowledges what was written.
    async fn append_locked<S>(
        &self,
        repository: &RepositoryName,
        id: &str,
        start: Option<u64>,
        body: S,
    ) -> Result<(File, DigestHasher, u64, StreamEnd), StoreError>
    where
        S: Stream<Item = io::Result<Bytes>> + Send,
    {
        let (hasher, offset) = self.session(repository, id).await?;
        if let Some(start) = start
            && start != offset
        {
            return Err(StoreError::RangeMismatch { start, offset });
        }
        let path = self.dir.upload_path(id);
        let opened = blocking(move || {
            let mut file = OpenOptions::new().write(true).open(path)?;
            let metadata = file.metadata()?;
            if metadata.len() < offset {
                // Acknowledged bytes are gone (the machine lost power before they reached the
                // disk): the session cannot produce a correct digest any more.
                return Ok(Staging::Lost);
            }
            if metadata.nlink() > 1 {
                // Already linked into the blob directory by a commit that crashed before its
                // row: the bytes are final and shared with the blob file, never write them.
                return Ok(Staging::Committed(file));
            }
            // Bytes past the acknowledged offset come from a request that never completed.
            file.set_len(offset)?;
            file.seek(SeekFrom::Start(offset))?;
            Ok(Staging::Open(file))
        })
        .await;
        let file = match opened {
            Ok(Staging::Open(file)) => file,
            Ok(Staging::Committed(file)) => {
                if body_has_data(body).await? {
                    return Err(StoreError::UploadComplete { offset });
                }
                return Ok((file, hasher, offset, StreamEnd::Complete));
            }
            Ok(Staging::Lost) => {
                tracing::warn!(
                    id,
                    offset,
                    "upload staging file shorter than acknowledged; discarding session"
                );
                self.discard_upload(id).await?;
                return Err(StoreError::UploadUnknown);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.meta.delete_upload(id).await?;
                return Err(StoreError::UploadUnknown);
            }
            Err(e) => return Err(e.into()),
        };
        let written = write_body(file, hasher, body, self.options.upload_idle_timeout).await?;
        let new_offset = offset + written.bytes;
        if written.bytes > 0 {
            // Not fsynced here: a process crash keeps the bytes (page cache), and after a power
            // loss a short file is detected above and the session discarded. The blob itself is
            // fsynced before it becomes visible.
            self.meta
                .advance_upload(id, new_offset as i64, &written.hasher.save_state())
                .await?;
        }
        let file = written.file;
        Ok((file, written.hasher, new_offset, written.end))
    }

    /// Completes upload `id` with an optional last chunk, verifies the digest and commits the
    /// blob. On a digest mismatch the session is discarded and nothing is stored.
    pub async fn finish_upload<S>(
        &self,
        repository: &RepositoryName,
        id: &str,
        expected: &Digest,
        start: Option<u64>,
        body: S,
    ) -> Result<u64, StoreError>
    where
        S: Stream<Item = io::Result<Bytes>> + Send,
    {
        let _guard = self.sessions.lock(id).await;
        let (file, hasher, size, end) = self.append_locked(repository, id, start, body).await?;
        if let StreamEnd::Interrupted(e) = end {
            return Err(StoreError::Interrupted(e));
        }
        let staging = self.dir.upload_path(id);
        let actual = if hasher.algorithm() == expected.algorithm() {
            hasher.finalize()
        } else {
            // The session hashed with another algorithm than the final digest names (the
            // client did not announce it with `digest-algorithm`): hash the staged bytes once.
            let (path, algorithm) = (staging.clone(), expected.algorithm());
            blocking(move || rehash(&path, algorithm)).await?
        };
        if &actual != expected {
            self.discard_upload(id).await?;
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        self.commit_blob(repository, file, staging, expected, size, Some(id))
            .await?;
        Ok(size)
    }

    /// Abandons upload `id`.
    pub async fn cancel_upload(
        &self,
        repository: &RepositoryName,
        id: &str,
    ) -> Result<(), StoreError> {
        let _guard = self.sessions.lock(id).await;
        self.session(repository, id).await?;
        self.discard_upload(id).await
    }

    async fn discard_upload(&self, id: &str) -> Result<(), StoreError> {
        self.meta.delete_upload(id).await?;
        remove_if_present(&self.dir.upload_path(id))?;
        Ok(())
    }

    /// Removes upload sessions idle for longer than the configured TTL; returns how many.
    pub async fn expire_uploads(&self) -> Result<usize, StoreError> {
        let before = crate::meta::now() - self.options.upload_ttl.as_secs() as i64;
        let stale = self.meta.stale_uploads(before).await?;
        for id in &stale {
            let _guard = self.sessions.lock(id).await;
            self.discard_upload(id).await?;
        }
        Ok(stale.len())
    }

    /// Records a manifest and moves `tags` to it, in one transaction.
    pub async fn put_manifest(
        &self,
        repository: &RepositoryName,
        put: PutManifest<'_>,
    ) -> Result<ManifestInfo, StoreError> {
        self.meta
            .put_manifest(
                repository.as_str(),
                put.digest.as_str(),
                &put.content,
                put.parsed,
                put.tags,
                put.immutable_tags,
            )
            .await
            .map_err(|e| match e {
                PutManifestError::MissingReference(d) => StoreError::ManifestReferenceUnknown(d),
                PutManifestError::TagImmutable(tag) => StoreError::TagImmutable(tag),
                PutManifestError::Database(e) => StoreError::Database(e),
            })?;
        for tag in put.tags {
            self.caches.tags.insert(
                key(repository.as_str(), tag),
                put.digest.as_str().to_owned(),
            );
        }
        Ok(ManifestInfo {
            digest: put.digest.clone(),
        })
    }

    /// A manifest by digest.
    pub async fn manifest_by_digest(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<Arc<StoredManifest>>, StoreError> {
        let cache_key = key(repository.as_str(), digest.as_str());
        if let Some(hit) = self.caches.manifests.get(&cache_key) {
            return Ok(Some(hit));
        }
        let Some(row) = self
            .meta
            .manifest(repository.as_str(), digest.as_str())
            .await?
        else {
            return Ok(None);
        };
        let manifest = Arc::new(StoredManifest {
            digest: digest.clone(),
            media_type: row.media_type,
            content: Bytes::from(row.content),
            subject: row.subject,
        });
        self.caches.manifests.insert(cache_key, manifest.clone());
        Ok(Some(manifest))
    }

    /// A manifest by tag.
    pub async fn manifest_by_tag(
        &self,
        repository: &RepositoryName,
        tag: &str,
    ) -> Result<Option<Arc<StoredManifest>>, StoreError> {
        let cache_key = key(repository.as_str(), tag);
        let target = match self.caches.tags.get(&cache_key) {
            Some(target) => target,
            None => match self.meta.tag_target(repository.as_str(), tag).await? {
                Some(target) => {
                    self.caches.tags.insert(cache_key, target.clone());
                    target
                }
                None => return Ok(None),
            },
        };
        let digest: Digest = target
            .parse()
            .map_err(|_| StoreError::Io(io::Error::other("stored digest is invalid")))?;
        self.manifest_by_digest(repository, &digest).await
    }

    /// Deletes a manifest and the tags pointing at it; false when it did not exist.
    pub async fn delete_manifest(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<bool, StoreError> {
        let removed = self
            .meta
            .delete_manifest(repository.as_str(), digest.as_str())
            .await?;
        let Some(tags) = removed else {
            return Ok(false);
        };
        for tag in tags {
            self.caches.tags.remove(&key(repository.as_str(), &tag));
        }
        self.caches
            .manifests
            .remove(&key(repository.as_str(), digest.as_str()));
        Ok(true)
    }

    /// Deletes one tag; false when it did not exist.
    pub async fn delete_tag(
        &self,
        repository: &RepositoryName,
        tag: &str,
    ) -> Result<bool, StoreError> {
        let removed = self.meta.delete_tag(repository.as_str(), tag).await?;
        self.caches.tags.remove(&key(repository.as_str(), tag));
        Ok(removed)
    }

    /// One page of tags after `last`, or `None` for an unknown repository.
    pub async fn tags(
        &self,
        repository: &RepositoryName,
        limit: usize,
        last: Option<&str>,
    ) -> Result<Option<TagPage>, StoreError> {
        let rows = self
            .meta
            .tags(repository.as_str(), last, limit as i64 + 1)
            .await?;
        Ok(rows.map(|rows| page(rows, limit)))
    }

    /// One page of repository names after `last`.
    pub async fn repositories(
        &self,
        limit: usize,
        last: Option<&str>,
    ) -> Result<TagPage, StoreError> {
        let rows = self.meta.repositories(last, limit as i64 + 1).await?;
        Ok(page(rows, limit))
    }

    /// Manifests in `repository` whose subject is `subject`, optionally of one artifact type.
    pub async fn referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>, StoreError> {
        Ok(self
            .meta
            .referrers(repository.as_str(), subject.as_str(), artifact_type)
            .await?)
    }
}

/// What `append_locked` found at a session's staging path.
enum Staging {
    /// Writable, positioned at the acknowledged offset.
    Open(File),
    /// Already linked as a committed blob: read-only from now on.
    Committed(File),
    /// Shorter than the acknowledged offset.
    Lost,
}

/// Whether a request body carries any byte (consuming it).
async fn body_has_data<S>(body: S) -> Result<bool, StoreError>
where
    S: Stream<Item = io::Result<Bytes>> + Send,
{
    use futures_util::StreamExt;
    let mut body = std::pin::pin!(body);
    while let Some(frame) = body.next().await {
        if !frame.map_err(StoreError::Interrupted)?.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

fn page(mut rows: Vec<String>, limit: usize) -> TagPage {
    let more = rows.len() > limit;
    rows.truncate(limit);
    TagPage { items: rows, more }
}

fn rehash(path: &Path, algorithm: Algorithm) -> io::Result<Digest> {
    use std::io::Read;
    let mut file = File::open(path)?;
    let mut hasher = DigestHasher::new(algorithm);
    let mut buffer = vec![0u8; 1024 * 1024];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(hasher.finalize());
        }
        hasher.update(&buffer[..n]);
    }
}
