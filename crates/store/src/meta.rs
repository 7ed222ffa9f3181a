//! Metadata queries. Every function is one statement or one transaction; the single writer
//! connection serialises writes, the reader pool serves lookups concurrently (SQLite WAL).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use minato_oci::{Digest, ManifestReference, ParsedManifest};
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::{Sqlite, SqlitePool, Transaction};

/// Reader pool size: enough for the runtime's worker threads plus slow listings.
const READERS: u32 = 8;

/// Seconds since the epoch, the time unit of every timestamp column.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A manifest row as served to clients.
#[derive(Debug, Clone)]
pub struct ManifestRow {
    /// Canonical digest of `content`.
    pub digest: String,
    /// Served as `Content-Type`.
    pub media_type: String,
    /// The exact pushed bytes.
    pub content: Vec<u8>,
    /// Digest of the manifest this one refers to.
    pub subject: Option<String>,
}

/// One entry of a referrers listing.
#[derive(Debug, Clone)]
pub struct ReferrerRow {
    /// Digest of the referring manifest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Its size in bytes.
    pub size: i64,
    /// Its artifact type, if any.
    pub artifact_type: Option<String>,
    /// Its annotations as a JSON object text, if any.
    pub annotations: Option<String>,
}

/// Column tuple of a referrers query, in [`ReferrerRow`] field order.
type ReferrerTuple = (String, String, i64, Option<String>, Option<String>);

/// A pending upload session.
#[derive(Debug, Clone)]
pub struct UploadRow {
    /// Repository the session belongs to.
    pub repository: String,
    /// Digest algorithm being computed.
    pub algorithm: String,
    /// Acknowledged bytes.
    pub offset: i64,
    /// Hasher state after `offset` bytes.
    pub hash_state: Vec<u8>,
}

/// Why a manifest could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum PutManifestError {
    /// A referenced blob or child manifest is not in the repository.
    #[error("manifest references unknown {0}")]
    MissingReference(String),
    /// An immutable tag already points at another manifest.
    #[error("tag {0:?} is immutable")]
    TagImmutable(String),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Handle on the metadata database.
#[derive(Debug, Clone)]
pub struct Meta {
    read: SqlitePool,
    write: SqlitePool,
}

impl Meta {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self, sqlx::Error> {
        let options = minato_db::connect_options(path);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        crate::schema::migrate(&write).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(READERS)
            .min_connections(1)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Meta { read, write })
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.read)
            .await
            .map(|_| ())
    }

    /// Size of `digest` if it is linked into `repository`.
    pub async fn linked_blob_size(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT b.size FROM repository_blobs rb
             JOIN repositories r ON r.id = rb.repository_id
             JOIN blobs b ON b.digest = rb.digest
             WHERE r.name = ? AND rb.digest = ?",
        )
        .bind(repository)
        .bind(digest)
        .fetch_optional(&self.read)
        .await
    }

    /// Records durable blob bytes, links them into `repository`, and ends the upload session
    /// that produced them, in one transaction.
    pub async fn commit_blob(
        &self,
        repository: &str,
        digest: &str,
        size: i64,
        upload_id: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.write.begin().await?;
        let now = now();
        sqlx::query(
            "INSERT INTO blobs (digest, size, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(digest)
        .bind(size)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let repository_id = ensure_repository(&mut tx, repository).await?;
        link(&mut tx, repository_id, digest, now).await?;
        if let Some(id) = upload_id {
            sqlx::query("DELETE FROM uploads WHERE id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    /// Links a blob already linked in `from` into `to`; returns its size, or `None` when `from`
    /// does not hold it.
    pub async fn mount_blob(
        &self,
        from: &str,
        to: &str,
        digest: &str,
    ) -> Result<Option<i64>, sqlx::Error> {
        let mut tx = self.write.begin().await?;
        let size: Option<i64> = sqlx::query_scalar(
            "SELECT b.size FROM repository_blobs rb
             JOIN repositories r ON r.id = rb.repository_id
             JOIN blobs b ON b.digest = rb.digest
             WHERE r.name = ? AND rb.digest = ?",
        )
        .bind(from)
        .bind(digest)
        .fetch_optional(&mut *tx)
        .await?;
        if size.is_some() {
            let repository_id = ensure_repository(&mut tx, to).await?;
            link(&mut tx, repository_id, digest, now()).await?;
            tx.commit().await?;
        }
        Ok(size)
    }

    /// Removes a blob from a repository; the bytes stay until garbage collection.
    pub async fn unlink_blob(&self, repository: &str, digest: &str) -> Result<bool, sqlx::Error> {
        let result = sqlx::query(
            "DELETE FROM repository_blobs
             WHERE digest = ? AND repository_id = (SELECT id FROM repositories WHERE name = ?)",
        )
        .bind(digest)
        .bind(repository)
        .execute(&self.write)
        .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Creates an upload session row.
    pub async fn insert_upload(
        &self,
        id: &str,
        repository: &str,
        algorithm: &str,
        hash_state: &[u8],
    ) -> Result<(), sqlx::Error> {
        let now = now();
        sqlx::query(
            "INSERT INTO uploads (id, repository, algorithm, offset, hash_state, created_at, updated_at)
             VALUES (?, ?, ?, 0, ?, ?, ?)",
        )
        .bind(id)
        .bind(repository)
        .bind(algorithm)
        .bind(hash_state)
        .bind(now)
        .bind(now)
        .execute(&self.write)
        .await
        .map(|_| ())
    }

    /// Reads an upload session.
    pub async fn upload(&self, id: &str) -> Result<Option<UploadRow>, sqlx::Error> {
        let row: Option<(String, String, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT repository, algorithm, offset, hash_state FROM uploads WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.write)
        .await?;
        Ok(
            row.map(|(repository, algorithm, offset, hash_state)| UploadRow {
                repository,
                algorithm,
                offset,
                hash_state,
            }),
        )
    }

    /// Acknowledges more bytes of an upload session.
    pub async fn advance_upload(
        &self,
        id: &str,
        offset: i64,
        hash_state: &[u8],
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE uploads SET offset = ?, hash_state = ?, updated_at = ? WHERE id = ?")
            .bind(offset)
            .bind(hash_state)
            .bind(now())
            .bind(id)
            .execute(&self.write)
            .await
            .map(|_| ())
    }

    /// Ends an upload session without committing anything.
    pub async fn delete_upload(&self, id: &str) -> Result<bool, sqlx::Error> {
        let result = sqlx::query("DELETE FROM uploads WHERE id = ?")
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Sessions untouched since `before`.
    pub async fn stale_uploads(&self, before: i64) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT id FROM uploads WHERE updated_at < ?")
            .bind(before)
            .fetch_all(&self.write)
            .await
    }

    /// Ids of every session, to tell staging files with a session from orphans.
    pub async fn upload_ids(&self) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT id FROM uploads")
            .fetch_all(&self.write)
            .await
    }

    /// Records a manifest, its references and tags in one transaction, after checking that
    /// everything it references is present in the repository.
    pub async fn put_manifest(
        &self,
        repository: &str,
        digest: &str,
        content: &[u8],
        parsed: &ParsedManifest,
        tags: &[&str],
        immutable_tags: bool,
    ) -> Result<(), PutManifestError> {
        let mut tx = self.write.begin().await?;
        let repository_id = ensure_repository(&mut tx, repository).await?;
        if immutable_tags {
            for tag in tags {
                let current: Option<String> = sqlx::query_scalar(
                    "SELECT m.digest FROM tags t JOIN manifests m ON m.id = t.manifest_id
                     WHERE t.repository_id = ? AND t.name = ?",
                )
                .bind(repository_id)
                .bind(tag)
                .fetch_optional(&mut *tx)
                .await?;
                if current.is_some_and(|d| d != digest) {
                    return Err(PutManifestError::TagImmutable((*tag).to_owned()));
                }
            }
        }
        for reference in &parsed.references {
            let (kind, child) = reference_parts(reference);
            let sql = if kind == BLOB_REFERENCE {
                "SELECT 1 FROM repository_blobs WHERE repository_id = ? AND digest = ?"
            } else {
                "SELECT 1 FROM manifests WHERE repository_id = ? AND digest = ?"
            };
            let present: Option<i64> = sqlx::query_scalar(sql)
                .bind(repository_id)
                .bind(child.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            if present.is_none() {
                return Err(PutManifestError::MissingReference(child.to_string()));
            }
        }
        let now = now();
        let annotations = parsed
            .annotations
            .as_ref()
            .map(|a| serde_json::to_string(a).expect("string maps always serialize"));
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO manifests
               (repository_id, digest, media_type, artifact_type, subject, annotations, size, content, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (repository_id, digest) DO NOTHING
             RETURNING id",
        )
        .bind(repository_id)
        .bind(digest)
        .bind(&parsed.media_type)
        .bind(&parsed.artifact_type)
        .bind(parsed.subject.as_ref().map(Digest::as_str))
        .bind(annotations)
        .bind(content.len() as i64)
        .bind(content)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let manifest_id = match inserted {
            Some(id) => {
                for reference in &parsed.references {
                    let (kind, child) = reference_parts(reference);
                    sqlx::query(
                        "INSERT INTO manifest_references (manifest_id, kind, digest) VALUES (?, ?, ?)
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(id)
                    .bind(kind)
                    .bind(child.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
                id
            }
            None => {
                sqlx::query_scalar(
                    "SELECT id FROM manifests WHERE repository_id = ? AND digest = ?",
                )
                .bind(repository_id)
                .bind(digest)
                .fetch_one(&mut *tx)
                .await?
            }
        };
        for tag in tags {
            sqlx::query(
                "INSERT INTO tags (repository_id, name, manifest_id, updated_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (repository_id, name) DO UPDATE SET manifest_id = excluded.manifest_id, updated_at = excluded.updated_at",
            )
            .bind(repository_id)
            .bind(tag)
            .bind(manifest_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A manifest of `repository` by digest.
    pub async fn manifest(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Option<ManifestRow>, sqlx::Error> {
        let row: Option<(String, String, Vec<u8>, Option<String>)> = sqlx::query_as(
            "SELECT m.digest, m.media_type, m.content, m.subject FROM manifests m
             JOIN repositories r ON r.id = m.repository_id
             WHERE r.name = ? AND m.digest = ?",
        )
        .bind(repository)
        .bind(digest)
        .fetch_optional(&self.read)
        .await?;
        Ok(
            row.map(|(digest, media_type, content, subject)| ManifestRow {
                digest,
                media_type,
                content,
                subject,
            }),
        )
    }

    /// The digest a tag points at.
    pub async fn tag_target(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT m.digest FROM tags t
             JOIN repositories r ON r.id = t.repository_id
             JOIN manifests m ON m.id = t.manifest_id
             WHERE r.name = ? AND t.name = ?",
        )
        .bind(repository)
        .bind(tag)
        .fetch_optional(&self.read)
        .await
    }

    /// Deletes a manifest with its tags and references; returns the removed tag names, or
    /// `None` if the manifest did not exist.
    pub async fn delete_manifest(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Option<Vec<String>>, sqlx::Error> {
        let mut tx = self.write.begin().await?;
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT m.id FROM manifests m JOIN repositories r ON r.id = m.repository_id
             WHERE r.name = ? AND m.digest = ?",
        )
        .bind(repository)
        .bind(digest)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else {
            return Ok(None);
        };
        let tags: Vec<String> =
            sqlx::query_scalar("DELETE FROM tags WHERE manifest_id = ? RETURNING name")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        sqlx::query("DELETE FROM manifests WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(tags))
    }

    /// Removes one tag; the manifest stays.
    pub async fn delete_tag(&self, repository: &str, tag: &str) -> Result<bool, sqlx::Error> {
        let result = sqlx::query(
            "DELETE FROM tags WHERE name = ? AND repository_id = (SELECT id FROM repositories WHERE name = ?)",
        )
        .bind(tag)
        .bind(repository)
        .execute(&self.write)
        .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Up to `limit` tags after `last` in byte order, or `None` for an unknown repository.
    pub async fn tags(
        &self,
        repository: &str,
        last: Option<&str>,
        limit: i64,
    ) -> Result<Option<Vec<String>>, sqlx::Error> {
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM repositories WHERE name = ?")
            .bind(repository)
            .fetch_optional(&self.read)
            .await?;
        let Some(id) = id else {
            return Ok(None);
        };
        sqlx::query_scalar(
            "SELECT name FROM tags WHERE repository_id = ? AND name > ? ORDER BY name LIMIT ?",
        )
        .bind(id)
        .bind(last.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.read)
        .await
        .map(Some)
    }

    /// Up to `limit` repository names after `last` in byte order.
    pub async fn repositories(
        &self,
        last: Option<&str>,
        limit: i64,
    ) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT name FROM repositories WHERE name > ? ORDER BY name LIMIT ?")
            .bind(last.unwrap_or(""))
            .bind(limit)
            .fetch_all(&self.read)
            .await
    }

    /// Manifests of `repository` whose subject is `subject`.
    pub async fn referrers(
        &self,
        repository: &str,
        subject: &str,
        artifact_type: Option<&str>,
    ) -> Result<Vec<ReferrerRow>, sqlx::Error> {
        let rows: Vec<ReferrerTuple> = sqlx::query_as(
            "SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations FROM manifests m
             JOIN repositories r ON r.id = m.repository_id
             WHERE r.name = ? AND m.subject = ? AND (? IS NULL OR m.artifact_type = ?)
             ORDER BY m.created_at, m.digest",
        )
        .bind(repository)
        .bind(subject)
        .bind(artifact_type)
        .bind(artifact_type)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(digest, media_type, size, artifact_type, annotations)| ReferrerRow {
                    digest,
                    media_type,
                    size,
                    artifact_type,
                    annotations,
                },
            )
            .collect())
    }
}

/// `manifest_references.kind` of a config or layer blob.
const BLOB_REFERENCE: i64 = 0;
/// `manifest_references.kind` of a child manifest.
const MANIFEST_REFERENCE: i64 = 1;

fn reference_parts(reference: &ManifestReference) -> (i64, &Digest) {
    match reference {
        ManifestReference::Blob(d) => (BLOB_REFERENCE, d),
        ManifestReference::Manifest(d) => (MANIFEST_REFERENCE, d),
    }
}

async fn ensure_repository(
    tx: &mut Transaction<'_, Sqlite>,
    name: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query("INSERT INTO repositories (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING")
        .bind(name)
        .bind(now())
        .execute(&mut **tx)
        .await?;
    sqlx::query_scalar("SELECT id FROM repositories WHERE name = ?")
        .bind(name)
        .fetch_one(&mut **tx)
        .await
}

async fn link(
    tx: &mut Transaction<'_, Sqlite>,
    repository_id: i64,
    digest: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES (?, ?, ?)
         ON CONFLICT (repository_id, digest) DO UPDATE SET linked_at = excluded.linked_at",
    )
    .bind(repository_id)
    .bind(digest)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map(|_| ())
}
