//! The content-addressed blob directory.
//!
//! Layout: `<root>/blobs/<algorithm>/<first two hex>/<hex>` for committed blobs and
//! `<root>/uploads/<id>` for bytes still being received. A blob file is created only by an
//! atomic hard link of a fully written, fsynced and verified staging file, and is never modified
//! afterwards, so readers may map it without locking.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use minato_oci::Digest;

/// Owns the on-disk directories of blob bytes.
#[derive(Debug, Clone)]
pub struct BlobDir {
    root: PathBuf,
}

impl BlobDir {
    /// Creates the directory layout under `root` if needed.
    pub fn open(root: &Path) -> io::Result<Self> {
        fs::create_dir_all(root.join("blobs"))?;
        fs::create_dir_all(root.join("uploads"))?;
        Ok(BlobDir {
            root: root.to_owned(),
        })
    }

    /// Where the committed bytes of `digest` live.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(&hex[..2])
            .join(hex)
    }

    /// Where the bytes of upload `id` are staged.
    pub fn upload_path(&self, id: &str) -> PathBuf {
        self.root.join("uploads").join(id)
    }

    /// The staging directory, for start-up cleanup of orphaned files.
    pub fn uploads_dir(&self) -> PathBuf {
        self.root.join("uploads")
    }

    /// Opens committed blob bytes for reading.
    pub fn open_blob(&self, digest: &Digest) -> io::Result<File> {
        File::open(self.blob_path(digest))
    }

    /// Makes a fully written and verified staging file the durable copy of `digest`.
    ///
    /// The staging file is fsynced, hard-linked into place, and the parent directory fsynced so
    /// the link survives a crash. The staging path itself is left for the caller to remove once
    /// the metadata row is committed. If the blob already exists nothing is done (identical
    /// content by construction: every blob file was verified before it was linked, and a
    /// linked file is never written again).
    pub fn commit(&self, staged: File, staged_path: &Path, digest: &Digest) -> io::Result<()> {
        let target = self.blob_path(digest);
        if target.exists() {
            return Ok(());
        }
        staged.sync_all()?;
        drop(staged);
        let parent = target.parent().expect("blob paths always have a parent");
        fs::create_dir_all(parent)?;
        // A link, not a rename: the staging file stays until the caller has committed the row
        // that ends its session, so a crash in between leaves the session resumable.
        match fs::hard_link(staged_path, &target) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
            other => other?,
        }
        File::open(parent)?.sync_all()
    }
}

/// Removes a file, treating "already gone" as success.
pub fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
