//! Pure OCI rules shared by every minato crate: digests, repository names and tags, media types
//! and manifest validation. Nothing here performs I/O, so the rules can be unit-tested and fuzzed
//! in isolation and reused by both the registry server and the client-side pull path.

pub mod digest;
pub mod manifest;
pub mod media_type;
pub mod name;

pub use digest::{Algorithm, Digest, DigestError, DigestHasher};
pub use manifest::{ManifestError, ParsedManifest, Reference as ManifestReference};
pub use name::{NameError, RepositoryName, Tag};
