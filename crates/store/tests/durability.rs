//! Store-level guarantees: resumable sessions survive a reopen, unacknowledged bytes are
//! dropped, bad content never becomes visible, stale state is cleaned up.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use minato_oci::{Algorithm, Digest, RepositoryName};
use minato_store::{PutManifest, Store, StoreError, StoreOptions};

fn body(chunks: &[&[u8]]) -> impl futures_util::Stream<Item = io::Result<Bytes>> + Send + use<> {
    let owned: Vec<io::Result<Bytes>> = chunks
        .iter()
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream::iter(owned)
}

fn repo(name: &str) -> RepositoryName {
    RepositoryName::parse(name).unwrap()
}

async fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, StoreOptions::default()).await.unwrap()
}

#[tokio::test]
async fn upload_session_resumes_after_reopen_with_a_one_pass_digest() {
    let dir = tempfile::tempdir().unwrap();
    let name = repo("ns/app");
    let id = {
        let store = open(dir.path()).await;
        let id = store.start_upload(&name, Algorithm::Sha256).await.unwrap();
        let status = store
            .append_upload(&name, &id, Some(0), body(&[b"hello, "]))
            .await
            .unwrap();
        assert_eq!(status.offset, 7);
        id
    };
    let store = open(dir.path()).await;
    assert_eq!(store.upload_status(&name, &id).await.unwrap().offset, 7);
    let expected = Digest::of(Algorithm::Sha256, b"hello, world");
    let size = store
        .finish_upload(&name, &id, &expected, Some(7), body(&[b"world"]))
        .await
        .unwrap();
    assert_eq!(size, 12);
    let blob = store.blob(&name, &expected).await.unwrap().unwrap();
    assert_eq!(std::fs::read(blob.path).unwrap(), b"hello, world");
    assert!(matches!(
        store.upload_status(&name, &id).await,
        Err(StoreError::UploadUnknown)
    ));
}

#[tokio::test]
async fn bytes_past_the_acknowledged_offset_are_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let name = repo("a");
    let store = open(dir.path()).await;
    let id = store.start_upload(&name, Algorithm::Sha256).await.unwrap();
    store
        .append_upload(&name, &id, None, body(&[b"abc"]))
        .await
        .unwrap();
    // What a request killed mid-body leaves behind: bytes on disk the session never acknowledged.
    let staging = dir.path().join("uploads").join(&id);
    let mut partial = std::fs::read(&staging).unwrap();
    partial.extend_from_slice(b"GARBAGE");
    std::fs::write(&staging, partial).unwrap();
    let expected = Digest::of(Algorithm::Sha256, b"abcdef");
    store
        .finish_upload(&name, &id, &expected, None, body(&[b"def"]))
        .await
        .unwrap();
}

#[tokio::test]
async fn out_of_order_chunk_is_refused_with_the_current_offset() {
    let dir = tempfile::tempdir().unwrap();
    let name = repo("a");
    let store = open(dir.path()).await;
    let id = store.start_upload(&name, Algorithm::Sha256).await.unwrap();
    store
        .append_upload(&name, &id, Some(0), body(&[b"abc"]))
        .await
        .unwrap();
    let err = store
        .append_upload(&name, &id, Some(10), body(&[b"x"]))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::RangeMismatch {
            start: 10,
            offset: 3
        }
    ));
}

#[tokio::test]
async fn digest_mismatch_stores_nothing_and_ends_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let name = repo("a");
    let store = open(dir.path()).await;
    let claimed = Digest::of(Algorithm::Sha256, b"something else");
    let err = store
        .put_blob(&name, &claimed, body(&[b"data"]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }));
    assert!(store.blob(&name, &claimed).await.unwrap().is_none());

    let id = store.start_upload(&name, Algorithm::Sha256).await.unwrap();
    let err = store
        .finish_upload(&name, &id, &claimed, None, body(&[b"data"]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }));
    assert!(store.blob(&name, &claimed).await.unwrap().is_none());
    assert!(matches!(
        store.upload_status(&name, &id).await,
        Err(StoreError::UploadUnknown)
    ));
    assert_eq!(
        std::fs::read_dir(dir.path().join("uploads"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
async fn interrupted_monolithic_upload_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let name = repo("a");
    let store = open(dir.path()).await;
    let digest = Digest::of(Algorithm::Sha256, b"abcdef");
    let broken = stream::iter(vec![
        Ok(Bytes::from_static(b"abc")),
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ]);
    let err = store.put_blob(&name, &digest, broken).await.unwrap_err();
    assert!(matches!(err, StoreError::Interrupted(_)));
    assert!(store.blob(&name, &digest).await.unwrap().is_none());
    assert_eq!(
        std::fs::read_dir(dir.path().join("uploads"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
async fn orphan_staging_files_are_removed_at_open_and_sessions_kept() {
    let dir = tempfile::tempdir().unwrap();
    let name = repo("a");
    let id = {
        let store = open(dir.path()).await;
        store.start_upload(&name, Algorithm::Sha256).await.unwrap()
    };
    std::fs::write(dir.path().join("uploads").join("crashed.put"), b"half").unwrap();
    let store = open(dir.path()).await;
    let left: Vec<String> = std::fs::read_dir(dir.path().join("uploads"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec![id.clone()]);
    assert_eq!(store.upload_status(&name, &id).await.unwrap().offset, 0);
}

#[tokio::test]
async fn stale_sessions_expire() {
    let dir = tempfile::tempdir().unwrap();
    let name = repo("a");
    let options = StoreOptions {
        upload_ttl: Duration::ZERO,
        ..StoreOptions::default()
    };
    let store = Store::open(dir.path(), options).await.unwrap();
    let id = store.start_upload(&name, Algorithm::Sha256).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(store.expire_uploads().await.unwrap(), 1);
    assert!(matches!(
        store.upload_status(&name, &id).await,
        Err(StoreError::UploadUnknown)
    ));
    assert!(!dir.path().join("uploads").join(&id).exists());
}

#[tokio::test]
async fn manifest_with_a_missing_blob_is_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let name = repo("a");
    let store = open(dir.path()).await;
    let config = Digest::of(Algorithm::Sha256, b"{}");
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[]}}"#
    );
    let parsed = minato_oci::manifest::parse(manifest.as_bytes(), None).unwrap();
    let digest = Digest::of(Algorithm::Sha256, manifest.as_bytes());
    let put = || PutManifest {
        digest: &digest,
        content: Bytes::from(manifest.clone()),
        parsed: &parsed,
        tags: &["latest"],
        immutable_tags: false,
    };
    let err = store.put_manifest(&name, put()).await.unwrap_err();
    assert!(matches!(err, StoreError::ManifestReferenceUnknown(d) if d == config.as_str()));
    assert!(
        store
            .manifest_by_tag(&name, "latest")
            .await
            .unwrap()
            .is_none()
    );

    store
        .put_blob(&name, &config, body(&[b"{}"]))
        .await
        .unwrap();
    store.put_manifest(&name, put()).await.unwrap();
    let got = store
        .manifest_by_tag(&name, "latest")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.content, manifest.as_bytes());
    assert!(store.delete_manifest(&name, &digest).await.unwrap());
    assert!(
        store
            .manifest_by_tag(&name, "latest")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .manifest_by_digest(&name, &digest)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn session_whose_acknowledged_bytes_were_lost_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let name = repo("a");
    let store = open(dir.path()).await;
    let id = store.start_upload(&name, Algorithm::Sha256).await.unwrap();
    store
        .append_upload(&name, &id, None, body(&[b"abcdef"]))
        .await
        .unwrap();
    std::fs::write(dir.path().join("uploads").join(&id), b"ab").unwrap();
    let err = store
        .append_upload(&name, &id, None, body(&[b"more"]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UploadUnknown));
    assert!(matches!(
        store.upload_status(&name, &id).await,
        Err(StoreError::UploadUnknown)
    ));
}

#[tokio::test]
async fn session_cut_between_blob_file_and_row_can_only_be_finished() {
    let dir = tempfile::tempdir().unwrap();
    let name = repo("a");
    let store = open(dir.path()).await;
    let id = store.start_upload(&name, Algorithm::Sha256).await.unwrap();
    store
        .append_upload(&name, &id, None, body(&[b"payload"]))
        .await
        .unwrap();
    // The state a crash leaves after the blob file was linked but before its row committed.
    let digest = Digest::of(Algorithm::Sha256, b"payload");
    let blob = dir
        .path()
        .join("blobs/sha256")
        .join(&digest.hex()[..2])
        .join(digest.hex());
    std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
    std::fs::hard_link(dir.path().join("uploads").join(&id), &blob).unwrap();

    let err = store
        .append_upload(&name, &id, None, body(&[b"more"]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UploadComplete { offset: 7 }));
    assert_eq!(std::fs::read(&blob).unwrap(), b"payload");

    let size = store
        .finish_upload(&name, &id, &digest, None, body(&[]))
        .await
        .unwrap();
    assert_eq!(size, 7);
    assert_eq!(
        std::fs::read(store.blob(&name, &digest).await.unwrap().unwrap().path).unwrap(),
        b"payload"
    );
    assert!(!dir.path().join("uploads").join(&id).exists());
}
