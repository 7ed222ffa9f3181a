//! In-memory caches that keep hot reads (manifest GET, blob HEAD) off the database.
//!
//! They are exact, not eventually consistent: every write path in [`crate::Store`] updates or
//! invalidates the entries it affects after its transaction commits. This holds because one
//! process owns the database; a shared database (several registry processes) will need
//! invalidation messages or short TTLs.

use std::sync::Arc;

use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::StoredManifest;

type Key = (String, String);

/// Weighs cached manifests by their size so the cache holds a byte budget.
#[derive(Clone)]
pub struct ManifestWeight;

impl Weighter<Key, Arc<StoredManifest>> for ManifestWeight {
    fn weight(&self, key: &Key, value: &Arc<StoredManifest>) -> u64 {
        (key.0.len() + key.1.len() + value.content.len() + 128) as u64
    }
}

/// The caches of one store.
pub struct Caches {
    /// (repository, digest) → manifest.
    pub manifests: Cache<Key, Arc<StoredManifest>, ManifestWeight>,
    /// (repository, tag) → digest.
    pub tags: Cache<Key, String>,
    /// (repository, digest) → blob size, for blobs linked into the repository.
    pub blobs: Cache<Key, u64>,
}

impl Caches {
    /// Caches bounded to about `manifest_bytes` of manifest content and `entries` tags/blobs.
    pub fn new(manifest_bytes: u64, entries: usize) -> Self {
        Caches {
            manifests: Cache::with_weighter(entries, manifest_bytes, ManifestWeight),
            tags: Cache::new(entries),
            blobs: Cache::new(entries),
        }
    }
}

/// Builds a cache key without exposing the tuple shape to callers.
pub fn key(repository: &str, item: &str) -> Key {
    (repository.to_owned(), item.to_owned())
}
