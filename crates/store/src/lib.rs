//! Durable registry state.
//!
//! Two parts with one rule between them: the [`blobs`] directory holds immutable,
//! content-addressed bytes, and the [`meta`] database decides what is visible. Bytes are always
//! made durable before the row that makes them visible is committed, so a crash at any instant
//! leaves at worst an unreferenced file, never a visible row without its bytes.
//!
//! [`Store`] is the only entry point the registry uses; it combines both parts with the
//! in-memory caches that keep reads off the database.

pub mod blobs;
mod cache;
mod locks;
pub mod meta;
mod schema;
mod store;
mod writer;

pub use store::{
    BlobLocation, ManifestInfo, PutManifest, Referrer, Store, StoreError, StoreOptions,
    StoredManifest, TagPage, UploadStatus,
};
