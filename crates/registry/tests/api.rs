//! End-to-end tests of the OCI Distribution API (v1.1): an in-process registry on a loopback
//! port, driven over HTTP, checking every endpoint's statuses, headers and spec error codes.

mod support;

use futures_util::future::join_all;
use futures_util::stream;
use minato_registry::RegistryConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{
    DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST,
    Registry, assert_error, body, call, descriptor, has_header, header, json_body, next_link,
    sha256, sha512, to_bytes, with_query,
};

// ---------------------------------------------------------------------------------------------
// Helpers shared by several tests.

/// Asserts that GET and HEAD of a manifest return `content` with its type, length and digest.
async fn assert_manifest(
    registry: &Registry,
    repo: &str,
    reference: &str,
    media_type: &str,
    content: &[u8],
) {
    let path = format!("/v2/{repo}/manifests/{reference}");
    let digest = sha256(content);
    let length = content.len().to_string();
    let head = registry.head(&path).await;
    assert_eq!(head.status(), StatusCode::OK, "HEAD {path}");
    assert_eq!(header(&head, "content-type"), media_type);
    assert_eq!(header(&head, "content-length"), length);
    assert_eq!(header(&head, "docker-content-digest"), digest);
    assert!(body(head).await.is_empty(), "HEAD {path} has no body");
    let get = registry.get(&path).await;
    assert_eq!(get.status(), StatusCode::OK, "GET {path}");
    assert_eq!(header(&get, "content-type"), media_type);
    assert_eq!(header(&get, "content-length"), length);
    assert_eq!(header(&get, "docker-content-digest"), digest);
    assert_eq!(
        body(get).await,
        content,
        "GET {path} returns the pushed bytes"
    );
}

/// Asserts that GET of a blob in `repo` returns `content` with its length and digest.
async fn assert_blob(registry: &Registry, repo: &str, digest: &str, content: &[u8]) {
    let response = registry.get(&format!("/v2/{repo}/blobs/{digest}")).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "GET blob {digest} in {repo}"
    );
    assert_eq!(
        header(&response, "content-length"),
        content.len().to_string()
    );
    assert_eq!(header(&response, "docker-content-digest"), digest);
    assert_eq!(body(response).await, content);
}

/// Asserts that a blob is absent from `repo` (HEAD 404, GET 404 `BLOB_UNKNOWN`).
async fn assert_no_blob(registry: &Registry, repo: &str, digest: &str) {
    let path = format!("/v2/{repo}/blobs/{digest}");
    assert_eq!(registry.head(&path).await.status(), StatusCode::NOT_FOUND);
    assert_error(
        registry.get(&path).await,
        StatusCode::NOT_FOUND,
        "BLOB_UNKNOWN",
    )
    .await;
}

/// Asserts an upload answer: status, the session's `Location`, `Docker-Upload-UUID` and
/// `Range` (`0-<n-1>`, or `0-0` when empty). Returns the `Location` to continue with.
fn assert_upload_state(
    response: &reqwest::Response,
    status: StatusCode,
    repo: &str,
    received: usize,
) -> String {
    assert_eq!(response.status(), status, "{}", response.url());
    let location = header(response, "location");
    let uuid = header(response, "docker-upload-uuid");
    assert!(!uuid.is_empty());
    assert_eq!(location, format!("/v2/{repo}/blobs/uploads/{uuid}"));
    assert_eq!(
        header(response, "range"),
        format!("0-{}", received.saturating_sub(1))
    );
    location.to_owned()
}

/// The tags of `repo` as listed at `path` (e.g. with a query).
async fn tags_at(registry: &Registry, path: &str) -> Vec<String> {
    let response = registry.get(path).await;
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    let list = json_body(response).await;
    serde_json::from_value(list["tags"].clone()).expect("tags is a list of strings")
}

/// Pushes the same small image to `repo` under each tag and returns the manifest digest.
async fn tag_image(registry: &Registry, repo: &str, tags: &[&str]) -> String {
    let manifest = registry.image(repo, "tagged").await;
    let mut digest = String::new();
    for tag in tags {
        digest = registry.push_manifest(repo, tag, &manifest).await.1;
    }
    digest
}

/// An image manifest whose serialized form is exactly `size` bytes (padded with an annotation).
fn padded(mut manifest: Value, size: usize) -> Vec<u8> {
    manifest["annotations"] = json!({"pad": ""});
    let unpadded = to_bytes(&manifest).len();
    manifest["annotations"]["pad"] = Value::String("x".repeat(size - unpadded));
    let content = to_bytes(&manifest);
    assert_eq!(content.len(), size);
    content
}

/// A `subject` descriptor pointing at a manifest.
fn subject(content: &[u8]) -> Value {
    descriptor(OCI_MANIFEST, content)
}

// ---------------------------------------------------------------------------------------------
// Base endpoint.

#[tokio::test]
async fn base_endpoint_answers_200_with_api_version_header() {
    let registry = Registry::start().await;
    for path in ["/v2/", "/v2"] {
        let response = registry.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header(&response, "docker-distribution-api-version"),
            "registry/2.0"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Blobs.

#[tokio::test]
async fn monolithic_blob_upload_answers_201_with_location_and_digest() {
    let registry = Registry::start().await;
    let content = b"a monolithic blob";
    let digest = sha256(content);
    let response = call(
        registry
            .request(
                Method::POST,
                &format!("/v2/repo/blobs/uploads/?digest={digest}"),
            )
            .header("content-type", "application/octet-stream")
            .body(content.to_vec()),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        header(&response, "location"),
        format!("/v2/repo/blobs/{digest}")
    );
    assert_eq!(header(&response, "docker-content-digest"), digest);
    assert_blob(&registry, "repo", &digest, content).await;
}

#[tokio::test]
async fn blob_get_and_head_return_length_and_digest() {
    let registry = Registry::start().await;
    let content = b"blob served by GET and HEAD";
    let digest = registry.push_blob("repo", content).await;
    assert_blob(&registry, "repo", &digest, content).await;
    let head = registry.head(&format!("/v2/repo/blobs/{digest}")).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(header(&head, "content-length"), content.len().to_string());
    assert_eq!(header(&head, "docker-content-digest"), digest);
    assert!(body(head).await.is_empty());
}

#[tokio::test]
async fn blob_range_requests_answer_206_with_content_range() {
    let registry = Registry::start().await;
    let content = b"0123456789";
    let digest = registry.push_blob("repo", content).await;
    for (range, part, content_range) in [
        ("bytes=2-5", "2345", "bytes 2-5/10"),
        ("bytes=0-0", "0", "bytes 0-0/10"),
        ("bytes=7-", "789", "bytes 7-9/10"),
        ("bytes=-3", "789", "bytes 7-9/10"),
        ("bytes=8-100", "89", "bytes 8-9/10"),
        ("bytes=-30", "0123456789", "bytes 0-9/10"),
    ] {
        let response = call(
            registry
                .request(Method::GET, &format!("/v2/repo/blobs/{digest}"))
                .header("range", range),
        )
        .await;
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(header(&response, "content-range"), content_range, "{range}");
        assert_eq!(header(&response, "content-length"), part.len().to_string());
        assert_eq!(body(response).await, part.as_bytes(), "{range}");
    }
}

#[tokio::test]
async fn large_blob_ranges_cross_mapped_window_boundaries() {
    let registry = Registry::start().await;
    let content: Vec<u8> = (0..5 * 1024 * 1024 + 123)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let digest = registry.push_blob("repo", &content).await;
    assert_blob(&registry, "repo", &digest, &content).await;
    let (start, end) = (2 * 1024 * 1024 - 7, 4 * 1024 * 1024 + 9);
    let response = call(
        registry
            .request(Method::GET, &format!("/v2/repo/blobs/{digest}"))
            .header("range", format!("bytes={start}-{end}")),
    )
    .await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        header(&response, "content-range"),
        format!("bytes {start}-{end}/{}", content.len())
    );
    assert_eq!(body(response).await, &content[start..=end]);
}

#[tokio::test]
async fn unsatisfiable_or_malformed_ranges_answer_416_with_blob_size() {
    let registry = Registry::start().await;
    let digest = registry.push_blob("repo", b"0123456789").await;
    for range in [
        "bytes=10-",
        "bytes=10-20",
        "bytes=5-2",
        "bytes=-0",
        "bytes=a-b",
        "bytes=",
        "bytes=3",
        "items=0-1",
        "bytes=99999999999999999999999-",
    ] {
        let response = call(
            registry
                .request(Method::GET, &format!("/v2/repo/blobs/{digest}"))
                .header("range", range),
        )
        .await;
        assert_eq!(header(&response, "content-range"), "bytes */10", "{range}");
        assert_error(response, StatusCode::RANGE_NOT_SATISFIABLE, "RANGE_INVALID").await;
    }
}

#[tokio::test]
async fn blob_of_another_repository_is_not_visible() {
    let registry = Registry::start().await;
    let content = b"tenant a's secret layer";
    let digest = registry.push_blob("tenant-a/app", content).await;
    assert_no_blob(&registry, "tenant-b/app", &digest).await;
    assert_error(
        registry
            .delete(&format!("/v2/tenant-b/app/blobs/{digest}"))
            .await,
        StatusCode::NOT_FOUND,
        "BLOB_UNKNOWN",
    )
    .await;
    assert_blob(&registry, "tenant-a/app", &digest, content).await;
}

#[tokio::test]
async fn deleted_blob_answers_404_until_pushed_again() {
    let registry = Registry::start().await;
    let content = b"short-lived blob";
    let digest = registry.push_blob("repo", content).await;
    let path = format!("/v2/repo/blobs/{digest}");
    assert_eq!(registry.delete(&path).await.status(), StatusCode::ACCEPTED);
    assert_no_blob(&registry, "repo", &digest).await;
    assert_error(
        registry.delete(&path).await,
        StatusCode::NOT_FOUND,
        "BLOB_UNKNOWN",
    )
    .await;
    registry.push_blob("repo", content).await;
    assert_blob(&registry, "repo", &digest, content).await;
}

#[tokio::test]
async fn invalid_blob_digests_answer_400_digest_invalid() {
    let registry = Registry::start().await;
    let upper = format!("sha256:{}", "A".repeat(64));
    let non_hex = format!("sha256:{}", "g".repeat(64));
    for digest in [
        "sha256:abc",
        upper.as_str(),
        non_hex.as_str(),
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "not-a-digest",
    ] {
        let path = format!("/v2/repo/blobs/{digest}");
        assert_error(
            registry.get(&path).await,
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        )
        .await;
        assert_eq!(registry.head(&path).await.status(), StatusCode::BAD_REQUEST);
        assert_error(
            registry.delete(&path).await,
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        )
        .await;
        let push = call(
            registry
                .request(
                    Method::POST,
                    &format!("/v2/repo/blobs/uploads/?digest={digest}"),
                )
                .body("content"),
        )
        .await;
        assert_error(push, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    }
}

#[tokio::test]
async fn monolithic_upload_with_wrong_digest_stores_nothing() {
    let registry = Registry::start().await;
    let claimed = sha256(b"what the client claims");
    let response = call(
        registry
            .request(
                Method::POST,
                &format!("/v2/repo/blobs/uploads/?digest={claimed}"),
            )
            .body("what the client sends"),
    )
    .await;
    assert_error(response, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    assert_no_blob(&registry, "repo", &claimed).await;
    assert_no_blob(&registry, "repo", &sha256(b"what the client sends")).await;
}

#[tokio::test]
async fn zero_byte_blob_is_stored_and_served() {
    let registry = Registry::start().await;
    let digest = registry.push_blob("monolithic", b"").await;
    assert_eq!(digest, sha256(b""));
    assert_blob(&registry, "monolithic", &digest, b"").await;
    let location = registry.start_upload("session").await;
    let finished = registry.finish_upload(&location, &digest, b"").await;
    assert_eq!(finished.status(), StatusCode::CREATED);
    assert_blob(&registry, "session", &digest, b"").await;
    let head = registry.head(&format!("/v2/session/blobs/{digest}")).await;
    assert_eq!(header(&head, "content-length"), "0");
}

#[tokio::test]
async fn sha512_blob_is_accepted_monolithically() {
    let registry = Registry::start().await;
    let content = b"a blob addressed by sha512";
    let digest = sha512(content);
    let response = call(
        registry
            .request(
                Method::POST,
                &format!("/v2/repo/blobs/uploads/?digest={digest}"),
            )
            .body(content.to_vec()),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(header(&response, "docker-content-digest"), digest);
    assert_blob(&registry, "repo", &digest, content).await;
}

#[tokio::test]
async fn sha512_session_announced_with_digest_algorithm_completes() {
    let registry = Registry::start().await;
    let response = registry
        .send(
            Method::POST,
            "/v2/repo/blobs/uploads/?digest-algorithm=sha512",
        )
        .await;
    let location = assert_upload_state(&response, StatusCode::ACCEPTED, "repo", 0);
    let content = b"first half, second half";
    let patched = registry.patch_chunk(&location, 0, &content[..11]).await;
    let location = assert_upload_state(&patched, StatusCode::ACCEPTED, "repo", 11);
    let digest = sha512(content);
    let finished = registry
        .finish_upload(&location, &digest, &content[11..])
        .await;
    assert_eq!(finished.status(), StatusCode::CREATED);
    assert_eq!(header(&finished, "docker-content-digest"), digest);
    assert_blob(&registry, "repo", &digest, content).await;
}

#[tokio::test]
async fn sha512_digest_completes_a_sha256_session() {
    let registry = Registry::start().await;
    let location = registry.start_upload("repo").await;
    let content = b"hashed with sha256 while streaming";
    let patched = registry.patch_chunk(&location, 0, content).await;
    let location = assert_upload_state(&patched, StatusCode::ACCEPTED, "repo", content.len());
    let digest = sha512(content);
    let finished = registry.finish_upload(&location, &digest, b"").await;
    assert_eq!(finished.status(), StatusCode::CREATED);
    assert_blob(&registry, "repo", &digest, content).await;
}

#[tokio::test]
async fn unsupported_digest_algorithm_is_refused() {
    let registry = Registry::start().await;
    let response = registry
        .send(Method::POST, "/v2/repo/blobs/uploads/?digest-algorithm=md5")
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushes_of_one_blob_all_succeed() {
    let registry = Registry::start().await;
    let content: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let repos: Vec<String> = (0..12).map(|i| format!("repo{}", i % 3)).collect();
    let digests = join_all(repos.iter().map(|repo| registry.push_blob(repo, &content))).await;
    assert!(digests.iter().all(|d| *d == sha256(&content)));
    for repo in ["repo0", "repo1", "repo2"] {
        assert_blob(&registry, repo, &digests[0], &content).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Upload sessions.

#[tokio::test]
async fn upload_session_starts_with_202_location_uuid_and_empty_range() {
    let registry = Registry::start().await;
    for path in ["/v2/repo/blobs/uploads/", "/v2/repo/blobs/uploads"] {
        let response = registry.send(Method::POST, path).await;
        assert_upload_state(&response, StatusCode::ACCEPTED, "repo", 0);
        assert_eq!(header(&response, "content-length"), "0");
    }
}

#[tokio::test]
async fn chunked_upload_acknowledges_each_chunk() {
    let registry = Registry::start().await;
    let location = registry.start_upload("repo").await;
    let first = registry.patch_chunk(&location, 0, b"hello").await;
    let location = assert_upload_state(&first, StatusCode::ACCEPTED, "repo", 5);
    let second = registry.patch_chunk(&location, 5, b", world").await;
    let location = assert_upload_state(&second, StatusCode::ACCEPTED, "repo", 12);
    let digest = sha256(b"hello, world");
    let finished = registry.finish_upload(&location, &digest, b"").await;
    assert_eq!(finished.status(), StatusCode::CREATED);
    assert_eq!(
        header(&finished, "location"),
        format!("/v2/repo/blobs/{digest}")
    );
    assert_eq!(header(&finished, "docker-content-digest"), digest);
    assert_blob(&registry, "repo", &digest, b"hello, world").await;
}

#[tokio::test]
async fn chunk_in_rfc_content_range_form_is_accepted() {
    let registry = Registry::start().await;
    let location = registry.start_upload("repo").await;
    let response = call(
        registry
            .request(Method::PATCH, &location)
            .header("content-range", "bytes 0-3/*")
            .body("data"),
    )
    .await;
    assert_upload_state(&response, StatusCode::ACCEPTED, "repo", 4);
}

#[tokio::test]
async fn out_of_order_chunk_answers_416_with_current_range() {
    let registry = Registry::start().await;
    let location = registry.start_upload("repo").await;
    let first = registry.patch_chunk(&location, 0, b"01234").await;
    let location = assert_upload_state(&first, StatusCode::ACCEPTED, "repo", 5);
    for start in [10, 0, 4] {
        let response = registry.patch_chunk(&location, start, b"abcde").await;
        assert_eq!(header(&response, "range"), "0-4", "chunk at {start}");
        assert_error(
            response,
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UPLOAD_INVALID",
        )
        .await;
    }
    let status = registry.get(&location).await;
    assert_upload_state(&status, StatusCode::NO_CONTENT, "repo", 5);
    let second = registry.patch_chunk(&location, 5, b"56789").await;
    let location = assert_upload_state(&second, StatusCode::ACCEPTED, "repo", 10);
    let digest = sha256(b"0123456789");
    let finished = registry.finish_upload(&location, &digest, b"").await;
    assert_eq!(finished.status(), StatusCode::CREATED);
    assert_blob(&registry, "repo", &digest, b"0123456789").await;
}

#[tokio::test]
async fn chunk_whose_length_contradicts_content_range_answers_416() {
    let registry = Registry::start().await;
    let location = registry.start_upload("repo").await;
    let response = call(
        registry
            .request(Method::PATCH, &location)
            .header("content-range", "0-9")
            .body("short"),
    )
    .await;
    assert_error(
        response,
        StatusCode::RANGE_NOT_SATISFIABLE,
        "BLOB_UPLOAD_INVALID",
    )
    .await;
    let status = registry.get(&location).await;
    assert_upload_state(&status, StatusCode::NO_CONTENT, "repo", 0);
}

#[tokio::test]
async fn streamed_patch_without_content_range_appends_the_body() {
    let registry = Registry::start().await;
    let location = registry.start_upload("repo").await;
    let parts: Vec<Vec<u8>> = vec![vec![1; 300 * 1024], vec![2; 17], vec![3; 100 * 1024]];
    let content = parts.concat();
    let streamed =
        reqwest::Body::wrap_stream(stream::iter(parts.into_iter().map(Ok::<_, std::io::Error>)));
    let response = call(registry.request(Method::PATCH, &location).body(streamed)).await;
    let location = assert_upload_state(&response, StatusCode::ACCEPTED, "repo", content.len());
    let more = call(registry.request(Method::PATCH, &location).body("tail")).await;
    let location = assert_upload_state(&more, StatusCode::ACCEPTED, "repo", content.len() + 4);
    let content = [content.as_slice(), b"tail"].concat();
    let digest = sha256(&content);
    let finished = registry.finish_upload(&location, &digest, b"").await;
    assert_eq!(finished.status(), StatusCode::CREATED);
    assert_blob(&registry, "repo", &digest, &content).await;
}

#[tokio::test]
async fn interrupted_patch_keeps_received_bytes_for_resumption() {
    let registry = Registry::start().await;
    let location = registry.start_upload("repo").await;
    let content: Vec<u8> = (0..100u8).collect();
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: 100\r\n\r\n"
    );
    registry
        .send_and_hang_up(&[head.as_bytes(), &content[..50]].concat())
        .await;
    let mut range = String::new();
    for _ in 0..100 {
        range = header(&registry.get(&location).await, "range").to_owned();
        if range == "0-49" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        range, "0-49",
        "the bytes received before the hang-up are kept"
    );
    let resumed = registry.patch_chunk(&location, 50, &content[50..]).await;
    let location = assert_upload_state(&resumed, StatusCode::ACCEPTED, "repo", 100);
    let digest = sha256(&content);
    let finished = registry.finish_upload(&location, &digest, b"").await;
    assert_eq!(finished.status(), StatusCode::CREATED);
    assert_blob(&registry, "repo", &digest, &content).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_chunks_at_one_offset_are_serialized() {
    let registry = Registry::start().await;
    let location = registry.start_upload("repo").await;
    let chunks: Vec<[u8; 5]> = (0..8).map(|i| [i; 5]).collect();
    let attempts = join_all(
        chunks
            .iter()
            .map(|chunk| registry.patch_chunk(&location, 0, chunk)),
    )
    .await;
    let accepted: Vec<_> = attempts
        .iter()
        .filter(|r| r.status() == StatusCode::ACCEPTED)
        .collect();
    assert_eq!(accepted.len(), 1, "exactly one chunk claims offset 0");
    assert!(
        attempts.iter().all(|r| r.status() == StatusCode::ACCEPTED
            || r.status() == StatusCode::RANGE_NOT_SATISFIABLE)
    );
    let status = registry.get(&location).await;
    assert_upload_state(&status, StatusCode::NO_CONTENT, "repo", 5);
}

#[tokio::test]
async fn upload_status_answers_204_with_range() {
    let registry = Registry::start().await;
    let location = registry.start_upload("repo").await;
    let empty = registry.get(&location).await;
    assert_upload_state(&empty, StatusCode::NO_CONTENT, "repo", 0);
    registry.patch_chunk(&location, 0, b"abc").await;
    let status = registry.get(&location).await;
    assert_upload_state(&status, StatusCode::NO_CONTENT, "repo", 3);
}

#[tokio::test]
async fn put_with_final_chunk_completes_upload() {
    let registry = Registry::start().await;
    let location = registry.start_upload("repo").await;
    let patched = registry.patch_chunk(&location, 0, b"first ").await;
    let location = assert_upload_state(&patched, StatusCode::ACCEPTED, "repo", 6);
    let digest = sha256(b"first last");
    let finished = call(
        registry
            .request(
                Method::PUT,
                &with_query(&location, &format!("digest={digest}")),
            )
            .header("content-range", "6-9")
            .body("last"),
    )
    .await;
    assert_eq!(finished.status(), StatusCode::CREATED);
    assert_blob(&registry, "repo", &digest, b"first last").await;
}

#[tokio::test]
async fn put_of_whole_body_on_new_session_completes_upload() {
    let registry = Registry::start().await;
    let location = registry.start_upload("repo").await;
    let content = b"POST then a single PUT";
    let digest = sha256(content);
    let finished = registry.finish_upload(&location, &digest, content).await;
    assert_eq!(finished.status(), StatusCode::CREATED);
    assert_eq!(header(&finished, "docker-content-digest"), digest);
    assert_blob(&registry, "repo", &digest, content).await;
}

#[tokio::test]
async fn put_without_body_completes_upload() {
    let registry = Registry::start().await;
    let location = registry.start_upload("repo").await;
    let patched = registry.patch_chunk(&location, 0, b"everything").await;
    let location = assert_upload_state(&patched, StatusCode::ACCEPTED, "repo", 10);
    let digest = sha256(b"everything");
    let finished = registry.finish_upload(&location, &digest, b"").await;
    assert_eq!(finished.status(), StatusCode::CREATED);
    assert_blob(&registry, "repo", &digest, b"everything").await;
    assert_error(
        registry.get(&location).await,
        StatusCode::NOT_FOUND,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
}

#[tokio::test]
async fn upload_with_wrong_digest_answers_400_and_stores_nothing() {
    let registry = Registry::start().await;
    let location = registry.start_upload("repo").await;
    let patched = registry.patch_chunk(&location, 0, b"actual bytes").await;
    let location = assert_upload_state(&patched, StatusCode::ACCEPTED, "repo", 12);
    let claimed = sha256(b"claimed bytes");
    assert_error(
        registry.finish_upload(&location, &claimed, b"").await,
        StatusCode::BAD_REQUEST,
        "DIGEST_INVALID",
    )
    .await;
    assert_no_blob(&registry, "repo", &claimed).await;
    assert_no_blob(&registry, "repo", &sha256(b"actual bytes")).await;
    assert_error(
        registry.get(&location).await,
        StatusCode::NOT_FOUND,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    assert_error(
        registry
            .finish_upload(&location, &sha256(b"actual bytes"), b"")
            .await,
        StatusCode::NOT_FOUND,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
}

#[tokio::test]
async fn cancelled_upload_session_is_unknown() {
    let registry = Registry::start().await;
    let location = registry.start_upload("repo").await;
    registry.patch_chunk(&location, 0, b"abandoned").await;
    let cancelled = registry.delete(&location).await;
    assert_eq!(cancelled.status(), StatusCode::NO_CONTENT);
    assert_error(
        registry.get(&location).await,
        StatusCode::NOT_FOUND,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    assert_error(
        registry.patch_chunk(&location, 0, b"more").await,
        StatusCode::NOT_FOUND,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    assert_error(
        registry.delete(&location).await,
        StatusCode::NOT_FOUND,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
}

#[tokio::test]
async fn upload_session_is_bound_to_its_repository() {
    let registry = Registry::start().await;
    let location = registry.start_upload("one").await;
    let elsewhere = location.replace("/v2/one/", "/v2/two/");
    let digest = sha256(b"");
    assert_error(
        registry.get(&elsewhere).await,
        StatusCode::NOT_FOUND,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    assert_error(
        registry.patch_chunk(&elsewhere, 0, b"x").await,
        StatusCode::NOT_FOUND,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    assert_error(
        registry.finish_upload(&elsewhere, &digest, b"").await,
        StatusCode::NOT_FOUND,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    assert_error(
        registry.delete(&elsewhere).await,
        StatusCode::NOT_FOUND,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    assert_no_blob(&registry, "two", &digest).await;
    let status = registry.get(&location).await;
    assert_upload_state(&status, StatusCode::NO_CONTENT, "one", 0);
}

#[tokio::test]
async fn unknown_upload_session_answers_404() {
    let registry = Registry::start().await;
    let location = "/v2/repo/blobs/uploads/no-such-session";
    let digest = sha256(b"");
    for response in [
        registry.get(location).await,
        registry.patch_chunk(location, 0, b"x").await,
        registry.finish_upload(location, &digest, b"").await,
        registry.delete(location).await,
    ] {
        assert_error(response, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    }
}

#[tokio::test]
async fn finishing_upload_without_valid_digest_answers_400() {
    let registry = Registry::start().await;
    let location = registry.start_upload("repo").await;
    let missing = call(registry.request(Method::PUT, &location).body("bytes")).await;
    assert_error(missing, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    let malformed = registry
        .finish_upload(&location, "sha256:123", b"bytes")
        .await;
    assert_error(malformed, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    let status = registry.get(&location).await;
    assert_upload_state(&status, StatusCode::NO_CONTENT, "repo", 0);
}

// ---------------------------------------------------------------------------------------------
// Cross-repository mounts.

#[tokio::test]
async fn mount_from_repository_holding_blob_answers_201() {
    let registry = Registry::start().await;
    let content = b"shared base layer";
    let digest = registry.push_blob("source", content).await;
    let response = registry
        .send(
            Method::POST,
            &format!("/v2/target/blobs/uploads/?mount={digest}&from=source"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        header(&response, "location"),
        format!("/v2/target/blobs/{digest}")
    );
    assert_eq!(header(&response, "docker-content-digest"), digest);
    assert_blob(&registry, "target", &digest, content).await;
}

#[tokio::test]
async fn mount_of_absent_blob_falls_back_to_upload_session() {
    let registry = Registry::start().await;
    let content = b"not in the source repository";
    let digest = sha256(content);
    registry.push_blob("source", b"something else").await;
    for from in ["source", "no-such-repo"] {
        let response = registry
            .send(
                Method::POST,
                &format!("/v2/target/blobs/uploads/?mount={digest}&from={from}"),
            )
            .await;
        assert_upload_state(&response, StatusCode::ACCEPTED, "target", 0);
    }
    assert_no_blob(&registry, "target", &digest).await;
    let response = registry
        .send(
            Method::POST,
            &format!("/v2/target/blobs/uploads/?mount={digest}&from=source"),
        )
        .await;
    let location = assert_upload_state(&response, StatusCode::ACCEPTED, "target", 0);
    let finished = registry.finish_upload(&location, &digest, content).await;
    assert_eq!(finished.status(), StatusCode::CREATED);
    assert_blob(&registry, "target", &digest, content).await;
}

#[tokio::test]
async fn mount_without_from_starts_upload_session() {
    let registry = Registry::start().await;
    let digest = registry.push_blob("source", b"present elsewhere").await;
    let response = registry
        .send(
            Method::POST,
            &format!("/v2/target/blobs/uploads/?mount={digest}"),
        )
        .await;
    assert_upload_state(&response, StatusCode::ACCEPTED, "target", 0);
    assert_no_blob(&registry, "target", &digest).await;
}

// ---------------------------------------------------------------------------------------------
// Manifests.

#[tokio::test]
async fn oci_image_manifest_round_trips_by_tag_and_digest() {
    let registry = Registry::start().await;
    let manifest = registry.image("repo", "v1").await;
    let content = to_bytes(&manifest);
    let digest = sha256(&content);
    let response = registry.put_manifest("repo", "v1", &manifest).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        header(&response, "location"),
        format!("/v2/repo/manifests/{digest}")
    );
    assert_eq!(header(&response, "docker-content-digest"), digest);
    assert!(!has_header(&response, "oci-subject"));
    assert!(!has_header(&response, "oci-tag"));
    for reference in ["v1", digest.as_str()] {
        assert_manifest(&registry, "repo", reference, OCI_MANIFEST, &content).await;
    }
}

#[tokio::test]
async fn manifest_without_media_type_field_is_served_with_its_content_type() {
    let registry = Registry::start().await;
    let mut manifest = registry.image("repo", "implicit").await;
    manifest
        .as_object_mut()
        .expect("manifest is an object")
        .remove("mediaType");
    let content = to_bytes(&manifest);
    let response = registry
        .put_manifest_bytes(
            "repo",
            "implicit",
            &format!("{OCI_MANIFEST}; charset=utf-8"),
            &content,
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_manifest(&registry, "repo", "implicit", OCI_MANIFEST, &content).await;
}

#[tokio::test]
async fn manifest_put_by_digest_answers_201_without_tagging() {
    let registry = Registry::start().await;
    let manifest = registry.image("repo", "untagged").await;
    let content = to_bytes(&manifest);
    let digest = sha256(&content);
    let response = registry.put_manifest("repo", &digest, &manifest).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        header(&response, "location"),
        format!("/v2/repo/manifests/{digest}")
    );
    assert_eq!(header(&response, "docker-content-digest"), digest);
    assert_manifest(&registry, "repo", &digest, OCI_MANIFEST, &content).await;
    assert!(tags_at(&registry, "/v2/repo/tags/list").await.is_empty());
}

#[tokio::test]
async fn manifest_put_by_sha512_digest_is_stored_under_it() {
    let registry = Registry::start().await;
    let manifest = registry.image("repo", "sha512").await;
    let content = to_bytes(&manifest);
    let digest = sha512(&content);
    let response = registry.put_manifest("repo", &digest, &manifest).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(header(&response, "docker-content-digest"), digest);
    let fetched = registry.get(&format!("/v2/repo/manifests/{digest}")).await;
    assert_eq!(fetched.status(), StatusCode::OK);
    assert_eq!(header(&fetched, "docker-content-digest"), digest);
    assert_eq!(body(fetched).await, content);
}

#[tokio::test]
async fn oci_index_requires_its_child_manifests() {
    let registry = Registry::start().await;
    let child = registry.image("repo", "amd64").await;
    let child_content = to_bytes(&child);
    let mut entry = descriptor(OCI_MANIFEST, &child_content);
    entry["platform"] = json!({"architecture": "amd64", "os": "linux"});
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]});
    assert_error(
        registry.put_manifest("repo", "multi", &index).await,
        StatusCode::BAD_REQUEST,
        "MANIFEST_BLOB_UNKNOWN",
    )
    .await;
    registry
        .push_manifest("repo", &sha256(&child_content), &child)
        .await;
    let (content, _) = registry.push_manifest("repo", "multi", &index).await;
    assert_manifest(&registry, "repo", "multi", OCI_INDEX, &content).await;
}

#[tokio::test]
async fn docker_schema2_manifest_and_manifest_list_round_trip() {
    let registry = Registry::start().await;
    let config = br#"{"architecture":"arm64","os":"linux"}"#;
    let layer = b"docker layer";
    registry.push_blob("docker", config).await;
    registry.push_blob("docker", layer).await;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor("application/vnd.docker.container.image.v1+json", config),
        "layers": [descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", layer)],
    });
    let (content, digest) = registry.push_manifest("docker", "arm64", &manifest).await;
    assert_manifest(&registry, "docker", "arm64", DOCKER_MANIFEST, &content).await;
    let mut entry = descriptor(DOCKER_MANIFEST, &content);
    entry["platform"] = json!({"architecture": "arm64", "os": "linux"});
    let list = json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_LIST,
        "manifests": [entry],
    });
    let (list_content, list_digest) = registry.push_manifest("docker", "latest", &list).await;
    assert_ne!(digest, list_digest);
    assert_manifest(
        &registry,
        "docker",
        "latest",
        DOCKER_MANIFEST_LIST,
        &list_content,
    )
    .await;
}

#[tokio::test]
async fn manifest_digest_mismatch_answers_400_digest_invalid() {
    let registry = Registry::start().await;
    let manifest = registry.image("repo", "mismatch").await;
    let wrong = sha256(b"some other manifest");
    assert_error(
        registry.put_manifest("repo", &wrong, &manifest).await,
        StatusCode::BAD_REQUEST,
        "DIGEST_INVALID",
    )
    .await;
    for digest in [wrong, sha256(&to_bytes(&manifest))] {
        assert_error(
            registry.get(&format!("/v2/repo/manifests/{digest}")).await,
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
        )
        .await;
    }
}

#[tokio::test]
async fn manifest_referencing_missing_blob_answers_400_manifest_blob_unknown() {
    let registry = Registry::start().await;
    let config = br#"{"os":"linux"}"#;
    let layer = b"never pushed";
    registry.push_blob("present", config).await;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [descriptor(OCI_LAYER, layer)],
    });
    assert_error(
        registry.put_manifest("present", "v1", &manifest).await,
        StatusCode::BAD_REQUEST,
        "MANIFEST_BLOB_UNKNOWN",
    )
    .await;
    // A blob present in another repository does not count, and the refused push does not
    // create the repository.
    registry.push_blob("present", layer).await;
    assert_error(
        registry.put_manifest("fresh", "v1", &manifest).await,
        StatusCode::BAD_REQUEST,
        "MANIFEST_BLOB_UNKNOWN",
    )
    .await;
    assert_error(
        registry.get("/v2/fresh/tags/list").await,
        StatusCode::NOT_FOUND,
        "NAME_UNKNOWN",
    )
    .await;
    registry.push_manifest("present", "v1", &manifest).await;
}

#[tokio::test]
async fn malformed_manifests_answer_400_manifest_invalid() {
    let registry = Registry::start().await;
    let image = to_bytes(&registry.image("repo", "valid").await);
    let schema1 = br#"{"schemaVersion":1,"name":"repo","tag":"v1","fsLayers":[],"history":[]}"#;
    let cases: [(&str, &str, &[u8]); 11] = [
        ("invalid JSON", OCI_MANIFEST, b"{not json"),
        ("empty body", OCI_MANIFEST, b""),
        ("JSON array", OCI_MANIFEST, b"[]"),
        ("schemaVersion 1", OCI_MANIFEST, schema1),
        (
            "schema 1 media type",
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            schema1,
        ),
        (
            "schemaVersion missing",
            OCI_MANIFEST,
            br#"{"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#,
        ),
        (
            "unknown mediaType",
            "application/x-unknown",
            br#"{"schemaVersion":2,"mediaType":"application/x-unknown"}"#,
        ),
        ("mediaType differs from Content-Type", OCI_INDEX, &image),
        (
            "config missing",
            OCI_MANIFEST,
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}"#,
        ),
        (
            "descriptor digest malformed",
            OCI_MANIFEST,
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:abc","size":2},"layers":[]}"#,
        ),
        (
            "kind unknowable",
            "application/octet-stream",
            br#"{"schemaVersion":2}"#,
        ),
    ];
    for (case, content_type, content) in cases {
        let response = registry
            .put_manifest_bytes("repo", "bad", content_type, content)
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{case}");
        assert_error(response, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;
    }
    assert_error(
        registry.get("/v2/repo/manifests/bad").await,
        StatusCode::NOT_FOUND,
        "MANIFEST_UNKNOWN",
    )
    .await;
}

#[tokio::test]
async fn manifest_larger_than_configured_limit_answers_413() {
    let registry = Registry::start_with(RegistryConfig {
        max_manifest_bytes: 2048,
        ..RegistryConfig::default()
    })
    .await;
    let manifest = registry.image("repo", "limits").await;
    let at_limit = padded(manifest.clone(), 2048);
    let response = registry
        .put_manifest_bytes("repo", "fits", OCI_MANIFEST, &at_limit)
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let over = padded(manifest, 2049);
    assert_error(
        registry
            .put_manifest_bytes("repo", "declared", OCI_MANIFEST, &over)
            .await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "SIZE_INVALID",
    )
    .await;
    let chunks: Vec<Vec<u8>> = over.chunks(500).map(<[u8]>::to_vec).collect();
    let streamed = reqwest::Body::wrap_stream(stream::iter(
        chunks.into_iter().map(Ok::<_, std::io::Error>),
    ));
    let response = call(
        registry
            .request(Method::PUT, "/v2/repo/manifests/streamed")
            .header("content-type", OCI_MANIFEST)
            .body(streamed),
    )
    .await;
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID").await;
    assert_eq!(tags_at(&registry, "/v2/repo/tags/list").await, ["fits"]);
}

#[tokio::test]
async fn four_mib_manifest_is_accepted_by_default() {
    let registry = Registry::start().await;
    let manifest = registry.image("repo", "big").await;
    let content = padded(manifest, 4 * 1024 * 1024);
    let response = registry
        .put_manifest_bytes("repo", "big", OCI_MANIFEST, &content)
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_manifest(&registry, "repo", "big", OCI_MANIFEST, &content).await;
}

#[tokio::test]
async fn manifest_subject_is_echoed_in_oci_subject_header() {
    let registry = Registry::start().await;
    let (target, target_digest) = registry
        .push_manifest("repo", "v1", &registry.image("repo", "target").await)
        .await;
    let mut referrer = registry.image("repo", "signature").await;
    referrer["subject"] = subject(&target);
    let response = registry.put_manifest("repo", "sig", &referrer).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(header(&response, "oci-subject"), target_digest);
    // The subject need not exist in the registry.
    let absent = sha256(b"a manifest pushed later");
    referrer["subject"]["digest"] = Value::String(absent.clone());
    let response = registry.put_manifest("repo", "early", &referrer).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(header(&response, "oci-subject"), absent);
}

#[tokio::test]
async fn put_by_digest_with_tag_parameters_sets_every_tag() {
    let registry = Registry::start().await;
    let manifest = registry.image("repo", "multi-tag").await;
    let content = to_bytes(&manifest);
    let digest = sha256(&content);
    let response = call(
        registry
            .request(
                Method::PUT,
                &format!("/v2/repo/manifests/{digest}?tag=a&tag=b"),
            )
            .header("content-type", OCI_MANIFEST)
            .body(content.clone()),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let tags: Vec<&str> = response
        .headers()
        .get_all("oci-tag")
        .iter()
        .map(|v| v.to_str().expect("tag header is text"))
        .collect();
    assert_eq!(tags, ["a", "b"]);
    for tag in ["a", "b"] {
        assert_manifest(&registry, "repo", tag, OCI_MANIFEST, &content).await;
    }
    assert_eq!(tags_at(&registry, "/v2/repo/tags/list").await, ["a", "b"]);
}

#[tokio::test]
async fn invalid_tags_answer_400_tag_invalid() {
    let registry = Registry::start().await;
    let manifest = registry.image("repo", "tags").await;
    let digest = sha256(&to_bytes(&manifest));
    let long = "t".repeat(129);
    for reference in ["-leading-dash", ".dot", long.as_str()] {
        assert_error(
            registry.put_manifest("repo", reference, &manifest).await,
            StatusCode::BAD_REQUEST,
            "TAG_INVALID",
        )
        .await;
    }
    let query = call(
        registry
            .request(
                Method::PUT,
                &format!("/v2/repo/manifests/{digest}?tag=ok&tag=-bad"),
            )
            .header("content-type", OCI_MANIFEST)
            .body(to_bytes(&manifest)),
    )
    .await;
    assert_error(query, StatusCode::BAD_REQUEST, "TAG_INVALID").await;
    assert!(tags_at(&registry, "/v2/repo/tags/list").await.is_empty());
}

#[tokio::test]
async fn pushing_an_existing_tag_moves_it() {
    let registry = Registry::start().await;
    let (old, old_digest) = registry
        .push_manifest("repo", "latest", &registry.image("repo", "old").await)
        .await;
    assert_manifest(&registry, "repo", "latest", OCI_MANIFEST, &old).await;
    let (new, _) = registry
        .push_manifest("repo", "latest", &registry.image("repo", "new").await)
        .await;
    assert_manifest(&registry, "repo", "latest", OCI_MANIFEST, &new).await;
    assert_manifest(&registry, "repo", &old_digest, OCI_MANIFEST, &old).await;
    assert_eq!(tags_at(&registry, "/v2/repo/tags/list").await, ["latest"]);
}

#[tokio::test]
async fn deleting_a_tag_keeps_the_manifest() {
    let registry = Registry::start().await;
    let manifest = registry.image("repo", "keep").await;
    registry.push_manifest("repo", "v1", &manifest).await;
    let (content, digest) = registry.push_manifest("repo", "v2", &manifest).await;
    let deleted = registry.delete("/v2/repo/manifests/v1").await;
    assert_eq!(deleted.status(), StatusCode::ACCEPTED);
    assert_error(
        registry.get("/v2/repo/manifests/v1").await,
        StatusCode::NOT_FOUND,
        "MANIFEST_UNKNOWN",
    )
    .await;
    assert_manifest(&registry, "repo", &digest, OCI_MANIFEST, &content).await;
    assert_manifest(&registry, "repo", "v2", OCI_MANIFEST, &content).await;
    assert_eq!(tags_at(&registry, "/v2/repo/tags/list").await, ["v2"]);
    assert_error(
        registry.delete("/v2/repo/manifests/v1").await,
        StatusCode::NOT_FOUND,
        "MANIFEST_UNKNOWN",
    )
    .await;
}

#[tokio::test]
async fn deleting_a_manifest_by_digest_removes_it_and_its_tags() {
    let registry = Registry::start().await;
    let manifest = registry.image("repo", "doomed").await;
    registry.push_manifest("repo", "a", &manifest).await;
    let (_, digest) = registry.push_manifest("repo", "b", &manifest).await;
    let path = format!("/v2/repo/manifests/{digest}");
    assert_eq!(registry.delete(&path).await.status(), StatusCode::ACCEPTED);
    for reference in [digest.as_str(), "a", "b"] {
        let path = format!("/v2/repo/manifests/{reference}");
        assert_eq!(registry.head(&path).await.status(), StatusCode::NOT_FOUND);
        assert_error(
            registry.get(&path).await,
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
        )
        .await;
    }
    assert!(tags_at(&registry, "/v2/repo/tags/list").await.is_empty());
    assert_error(
        registry.delete(&path).await,
        StatusCode::NOT_FOUND,
        "MANIFEST_UNKNOWN",
    )
    .await;
    registry.push_manifest("repo", "again", &manifest).await;
}

#[tokio::test]
async fn unknown_manifest_answers_404_manifest_unknown() {
    let registry = Registry::start().await;
    registry
        .push_blob("repo", b"makes the repository exist")
        .await;
    let digest = sha256(b"no such manifest");
    for path in [
        "/v2/repo/manifests/missing".to_owned(),
        format!("/v2/repo/manifests/{digest}"),
        "/v2/no/such/repo/manifests/latest".to_owned(),
    ] {
        assert_eq!(registry.head(&path).await.status(), StatusCode::NOT_FOUND);
        assert_error(
            registry.get(&path).await,
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
        )
        .await;
        assert_error(
            registry.delete(&path).await,
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
        )
        .await;
    }
}

#[tokio::test]
async fn invalid_manifest_digest_reference_answers_400_digest_invalid() {
    let registry = Registry::start().await;
    for reference in ["sha256:abc", "md5:d41d8cd98f00b204e9800998ecf8427e", "a:b"] {
        assert_error(
            registry
                .get(&format!("/v2/repo/manifests/{reference}"))
                .await,
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        )
        .await;
    }
}

#[tokio::test]
async fn non_distributable_layers_need_not_exist() {
    let registry = Registry::start().await;
    let mut manifest = registry.image("repo", "foreign").await;
    let foreign = b"fetched from elsewhere";
    for media_type in [
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    ] {
        let mut layer = descriptor(media_type, foreign);
        layer["urls"] = json!(["https://example.invalid/layer.tar.gz"]);
        manifest["layers"]
            .as_array_mut()
            .expect("layers")
            .push(layer);
    }
    let (content, _) = registry.push_manifest("repo", "foreign", &manifest).await;
    assert_manifest(&registry, "repo", "foreign", OCI_MANIFEST, &content).await;
}

#[tokio::test]
async fn manifest_with_unknown_fields_round_trips_byte_exact() {
    let registry = Registry::start().await;
    let manifest = registry.image("repo", "exotic").await;
    let content = format!(
        "{{\n  \"x-vendor\" : {{\"nested\": [1, 2.50, null, \"\\u00e9\"]}},\n  \"schemaVersion\":2,\n\t\"mediaType\": \"{OCI_MANIFEST}\",\n  \"config\": {config},\n  \"layers\": [ {layer} ],\n  \"annotations\": {{\"z\": \"last\", \"a\": \"first\"}},\n  \"unknownTopLevel\": true\n}}\n",
        config = manifest["config"],
        layer = manifest["layers"][0],
    )
    .replace("\"size\":", "\"size\" :  ")
    .replace("\"digest\"", "\"x-extra\":{},\"digest\"");
    let response = registry
        .put_manifest_bytes("repo", "exotic", OCI_MANIFEST, content.as_bytes())
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        header(&response, "docker-content-digest"),
        sha256(content.as_bytes())
    );
    assert_manifest(
        &registry,
        "repo",
        "exotic",
        OCI_MANIFEST,
        content.as_bytes(),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Tag listing.

#[tokio::test]
async fn tags_are_listed_in_lexical_order() {
    let registry = Registry::start().await;
    tag_image(
        &registry,
        "repo",
        &["b2", "a", "Latest", "b10", "1.0", "_x"],
    )
    .await;
    let response = registry.get("/v2/repo/tags/list").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), "application/json");
    assert!(next_link(&response).is_none());
    assert_eq!(
        json_body(response).await,
        json!({"name": "repo", "tags": ["1.0", "Latest", "_x", "a", "b10", "b2"]})
    );
}

#[tokio::test]
async fn tags_list_paginates_with_n_last_and_link() {
    let registry = Registry::start().await;
    tag_image(&registry, "ns/repo", &["e", "d", "c", "b", "a"]).await;
    let mut path = "/v2/ns/repo/tags/list?n=2".to_owned();
    let mut pages = Vec::new();
    let mut links = Vec::new();
    loop {
        let response = registry.get(&path).await;
        assert_eq!(response.status(), StatusCode::OK);
        let next = next_link(&response);
        pages.push(json_body(response).await["tags"].clone());
        match next {
            Some(next) => {
                links.push(next.clone());
                path = next;
            }
            None => break,
        }
    }
    assert_eq!(pages, [json!(["a", "b"]), json!(["c", "d"]), json!(["e"])]);
    assert_eq!(
        links,
        [
            "/v2/ns/repo/tags/list?n=2&last=b",
            "/v2/ns/repo/tags/list?n=2&last=d"
        ]
    );
    assert_eq!(
        tags_at(&registry, "/v2/ns/repo/tags/list?last=b").await,
        ["c", "d", "e"]
    );
    let exact = registry.get("/v2/ns/repo/tags/list?n=5").await;
    assert!(next_link(&exact).is_none(), "a full last page has no Link");
    assert_eq!(
        tags_at(&registry, "/v2/ns/repo/tags/list?n=2&last=e").await,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn tags_list_with_n_zero_is_an_empty_page() {
    let registry = Registry::start().await;
    tag_image(&registry, "repo", &["a"]).await;
    let response = registry.get("/v2/repo/tags/list?n=0").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(next_link(&response).is_none());
    assert_eq!(json_body(response).await["tags"], json!([]));
}

#[tokio::test]
async fn page_size_is_capped_at_the_configured_maximum() {
    let registry = Registry::start_with(RegistryConfig {
        max_page: 2,
        ..RegistryConfig::default()
    })
    .await;
    tag_image(&registry, "repo", &["a", "b", "c"]).await;
    for path in ["/v2/repo/tags/list", "/v2/repo/tags/list?n=1000000"] {
        let response = registry.get(path).await;
        assert_eq!(
            next_link(&response).as_deref(),
            Some("/v2/repo/tags/list?n=2&last=b"),
            "{path}"
        );
        assert_eq!(json_body(response).await["tags"], json!(["a", "b"]));
    }
}

#[tokio::test]
async fn invalid_page_size_answers_400() {
    let registry = Registry::start().await;
    tag_image(&registry, "repo", &["a"]).await;
    for n in ["abc", "-1", "1.5", "", "99999999999999999999999999"] {
        for path in [
            format!("/v2/repo/tags/list?n={n}"),
            format!("/v2/_catalog?n={n}"),
        ] {
            assert_error(
                registry.get(&path).await,
                StatusCode::BAD_REQUEST,
                "PAGINATION_NUMBER_INVALID",
            )
            .await;
        }
    }
}

#[tokio::test]
async fn tags_of_unknown_repository_answer_404_name_unknown() {
    let registry = Registry::start().await;
    assert_error(
        registry.get("/v2/no/such/repo/tags/list").await,
        StatusCode::NOT_FOUND,
        "NAME_UNKNOWN",
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Catalog.

#[tokio::test]
async fn catalog_paginates_with_n_last_and_link() {
    let registry = Registry::start().await;
    for repo in ["c", "a/b", "z/y/x", "a"] {
        registry.push_blob(repo, repo.as_bytes()).await;
    }
    let all = registry.get("/v2/_catalog").await;
    assert_eq!(all.status(), StatusCode::OK);
    assert_eq!(header(&all, "content-type"), "application/json");
    assert!(next_link(&all).is_none());
    assert_eq!(
        json_body(all).await,
        json!({"repositories": ["a", "a/b", "c", "z/y/x"]})
    );
    let first = registry.get("/v2/_catalog?n=2").await;
    let next = next_link(&first).expect("a Link to the next page");
    assert_eq!(next, "/v2/_catalog?n=2&last=a%2Fb");
    assert_eq!(json_body(first).await["repositories"], json!(["a", "a/b"]));
    let second = registry.get(&next).await;
    assert!(next_link(&second).is_none());
    assert_eq!(
        json_body(second).await["repositories"],
        json!(["c", "z/y/x"])
    );
    let after = registry.get("/v2/_catalog?last=c").await;
    assert_eq!(json_body(after).await["repositories"], json!(["z/y/x"]));
    let empty = registry.get("/v2/_catalog?n=0").await;
    assert!(next_link(&empty).is_none());
    assert_eq!(json_body(empty).await["repositories"], json!([]));
}

// ---------------------------------------------------------------------------------------------
// Referrers.

#[tokio::test]
async fn referrers_of_unreferenced_digest_is_an_empty_index() {
    let registry = Registry::start().await;
    let (_, digest) = registry
        .push_manifest("repo", "v1", &registry.image("repo", "lonely").await)
        .await;
    for subject in [digest, sha256(b"never pushed")] {
        let response = registry.get(&format!("/v2/repo/referrers/{subject}")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "content-type"), OCI_INDEX);
        assert!(!has_header(&response, "oci-filters-applied"));
        assert_eq!(
            json_body(response).await,
            json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
        );
    }
}

/// Pushes a subject image and three referrers (explicit artifact type, config media type as
/// artifact type, an index) plus one unrelated manifest; returns the subject digest and the
/// expected referrer descriptors.
async fn push_referrers(registry: &Registry) -> (String, Vec<Value>) {
    let (target, target_digest) = registry
        .push_manifest("repo", "v1", &registry.image("repo", "subject").await)
        .await;
    let empty_config = b"{}";
    registry.push_blob("repo", empty_config).await;
    let sbom = registry.push_blob("repo", b"an sbom").await;
    let sbom_manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom",
        "config": descriptor("application/vnd.oci.empty.v1+json", empty_config),
        "layers": [{"mediaType": "application/json", "digest": sbom, "size": 7}],
        "subject": subject(&target),
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    });
    let signature_config = b"signature config";
    registry.push_blob("repo", signature_config).await;
    let signature_manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.example.signature.config+json", signature_config),
        "layers": [],
        "subject": subject(&target),
    });
    let bundle = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "artifactType": "application/vnd.example.bundle",
        "manifests": [],
        "subject": subject(&target),
        "annotations": {"purpose": "test"},
    });
    let unrelated = registry.image("repo", "unrelated").await;
    registry.push_manifest("repo", "other", &unrelated).await;
    let mut expected = Vec::new();
    for (manifest, artifact_type) in [
        (&sbom_manifest, "application/vnd.example.sbom"),
        (
            &signature_manifest,
            "application/vnd.example.signature.config+json",
        ),
        (&bundle, "application/vnd.example.bundle"),
    ] {
        let (content, digest) = registry.push_manifest("repo", "ref", manifest).await;
        let mut entry = json!({
            "mediaType": manifest["mediaType"],
            "digest": digest,
            "size": content.len(),
            "artifactType": artifact_type,
        });
        if let Some(annotations) = manifest.get("annotations") {
            entry["annotations"] = annotations.clone();
        }
        expected.push(entry);
    }
    (target_digest, expected)
}

/// The `manifests` of a referrers answer, sorted by digest.
async fn referrer_entries(response: reqwest::Response) -> Vec<Value> {
    let index = json_body(response).await;
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], OCI_INDEX);
    sorted_by_digest(index["manifests"].as_array().expect("manifests").clone())
}

/// Referrer descriptors in digest order, to compare listings whose order is unspecified.
fn sorted_by_digest(mut entries: Vec<Value>) -> Vec<Value> {
    entries.sort_by_key(|e| e["digest"].as_str().unwrap_or_default().to_owned());
    entries
}

#[tokio::test]
async fn referrers_are_listed_with_artifact_type_and_annotations() {
    let registry = Registry::start().await;
    let (subject_digest, expected) = push_referrers(&registry).await;
    let response = registry
        .get(&format!("/v2/repo/referrers/{subject_digest}"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), OCI_INDEX);
    assert!(!has_header(&response, "oci-filters-applied"));
    assert_eq!(
        referrer_entries(response).await,
        sorted_by_digest(expected.clone())
    );
    let other_repo = registry
        .get(&format!("/v2/elsewhere/referrers/{subject_digest}"))
        .await;
    assert!(referrer_entries(other_repo).await.is_empty());
    let sbom = expected[0]["digest"].as_str().expect("digest");
    let deleted = registry.delete(&format!("/v2/repo/manifests/{sbom}")).await;
    assert_eq!(deleted.status(), StatusCode::ACCEPTED);
    let response = registry
        .get(&format!("/v2/repo/referrers/{subject_digest}"))
        .await;
    assert_eq!(
        referrer_entries(response).await,
        sorted_by_digest(expected[1..].to_vec())
    );
}

#[tokio::test]
async fn referrers_filter_by_artifact_type() {
    let registry = Registry::start().await;
    let (subject_digest, expected) = push_referrers(&registry).await;
    let path = format!("/v2/repo/referrers/{subject_digest}");
    for (artifact_type, matches) in [
        ("application/vnd.example.sbom", vec![expected[0].clone()]),
        (
            "application/vnd.example.signature.config+json",
            vec![expected[1].clone()],
        ),
        ("application/vnd.example.none", vec![]),
    ] {
        let response = call(
            registry
                .request(Method::GET, &path)
                .query(&[("artifactType", artifact_type)]),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "oci-filters-applied"), "artifactType");
        assert_eq!(referrer_entries(response).await, matches, "{artifact_type}");
    }
}

#[tokio::test]
async fn referrers_with_invalid_digest_answer_400() {
    let registry = Registry::start().await;
    registry.push_blob("repo", b"exists").await;
    for digest in [
        "sha256:abc",
        "latest",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
    ] {
        assert_error(
            registry.get(&format!("/v2/repo/referrers/{digest}")).await,
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        )
        .await;
    }
}

// ---------------------------------------------------------------------------------------------
// Repository names and routing.

/// Pushes (chunked) blobs and a tagged manifest into `repo`, then pulls and lists them.
async fn assert_repository_works(registry: &Registry, repo: &str) {
    let location = registry.start_upload(repo).await;
    let patched = registry.patch_chunk(&location, 0, b"chunk").await;
    let location = assert_upload_state(&patched, StatusCode::ACCEPTED, repo, 5);
    let digest = sha256(b"chunk");
    let finished = registry.finish_upload(&location, &digest, b"").await;
    assert_eq!(finished.status(), StatusCode::CREATED, "{repo}");
    assert_blob(registry, repo, &digest, b"chunk").await;
    let (content, manifest_digest) = registry
        .push_manifest(repo, "latest", &registry.image(repo, repo).await)
        .await;
    assert_manifest(registry, repo, "latest", OCI_MANIFEST, &content).await;
    assert_eq!(
        tags_at(registry, &format!("/v2/{repo}/tags/list")).await,
        ["latest"]
    );
    let referrers = registry
        .get(&format!("/v2/{repo}/referrers/{manifest_digest}"))
        .await;
    assert_eq!(referrers.status(), StatusCode::OK, "{repo}");
}

#[tokio::test]
async fn repository_names_of_any_depth_work() {
    let registry = Registry::start().await;
    for repo in ["a", "org/team/project/group/sub/image", "1/2/3/4/5/6/7/8"] {
        assert_repository_works(&registry, repo).await;
    }
}

#[tokio::test]
async fn repository_names_may_contain_endpoint_words() {
    let registry = Registry::start().await;
    for repo in [
        "blobs",
        "manifests",
        "x/blobs/manifests",
        "tags/list",
        "a/blobs/uploads",
        "referrers/manifests/blobs",
    ] {
        assert_repository_works(&registry, repo).await;
    }
    let catalog = json_body(registry.get("/v2/_catalog").await).await;
    assert_eq!(
        catalog["repositories"],
        json!([
            "a/blobs/uploads",
            "blobs",
            "manifests",
            "referrers/manifests/blobs",
            "tags/list",
            "x/blobs/manifests"
        ])
    );
}

#[tokio::test]
async fn invalid_repository_names_answer_400_name_invalid() {
    let registry = Registry::start().await;
    let long = "a".repeat(256);
    for name in [
        "Upper",
        "a/B",
        "a//b",
        "-a",
        "a_",
        "a%2Fb",
        "a..b",
        long.as_str(),
    ] {
        for (method, path) in [
            (Method::GET, format!("/v2/{name}/tags/list")),
            (Method::GET, format!("/v2/{name}/manifests/latest")),
            (Method::POST, format!("/v2/{name}/blobs/uploads/")),
        ] {
            assert_error(
                registry.send(method, &path).await,
                StatusCode::BAD_REQUEST,
                "NAME_INVALID",
            )
            .await;
        }
    }
    let digest = registry.push_blob("valid", b"mountable").await;
    let mount = registry
        .send(
            Method::POST,
            &format!("/v2/valid/blobs/uploads/?mount={digest}&from=Invalid"),
        )
        .await;
    assert_error(mount, StatusCode::BAD_REQUEST, "NAME_INVALID").await;
}

#[tokio::test]
async fn unknown_paths_answer_404() {
    let registry = Registry::start().await;
    for path in [
        "/",
        "/v1/",
        "/v2x",
        "/v2/repo",
        "/v2/repo/unknown/thing",
        "/v2/repo/manifests/",
        "/v2/repo/tags",
        "/v2/_catalog/more",
    ] {
        assert_error(
            registry.get(path).await,
            StatusCode::NOT_FOUND,
            "UNSUPPORTED",
        )
        .await;
    }
}

#[tokio::test]
async fn unsupported_methods_answer_405() {
    let registry = Registry::start().await;
    let digest = sha256(b"any");
    let location = registry.start_upload("repo").await;
    for (method, path) in [
        (Method::POST, "/v2/".to_owned()),
        (Method::DELETE, "/v2/_catalog".to_owned()),
        (Method::PUT, "/v2/repo/tags/list".to_owned()),
        (Method::POST, "/v2/repo/manifests/latest".to_owned()),
        (Method::PATCH, "/v2/repo/manifests/latest".to_owned()),
        (Method::PUT, format!("/v2/repo/blobs/{digest}")),
        (Method::POST, format!("/v2/repo/blobs/{digest}")),
        (Method::GET, "/v2/repo/blobs/uploads/".to_owned()),
        (Method::PUT, "/v2/repo/blobs/uploads/".to_owned()),
        (Method::POST, location.clone()),
        (Method::DELETE, format!("/v2/repo/referrers/{digest}")),
        (Method::OPTIONS, "/v2/repo/manifests/latest".to_owned()),
    ] {
        assert_error(
            registry.send(method, &path).await,
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
        )
        .await;
    }
}

// ---------------------------------------------------------------------------------------------
// Robustness.

/// A request of the robustness table: method, path, one optional header, body.
type RawRequest<'a> = (Method, String, Option<(&'a str, &'a str)>, &'a str);

#[tokio::test]
async fn garbage_requests_get_client_errors_never_500() {
    let registry = Registry::start().await;
    let blob = format!(
        "/v2/repo/blobs/{}",
        registry.push_blob("repo", b"exists").await
    );
    let location = registry.start_upload("repo").await;
    let digest = sha256(b"hello");
    let put_upload = with_query(&location, &format!("digest={digest}"));
    let requests: Vec<RawRequest> = vec![
        (Method::GET, "/v2/repo/tags/list?n=%zz".into(), None, ""),
        (Method::GET, "/v2/_catalog?n=%".into(), None, ""),
        (
            Method::GET,
            "/v2/repo/tags/list?n=18446744073709551616".into(),
            None,
            "",
        ),
        (
            Method::POST,
            "/v2/repo/blobs/uploads/?digest=%ff%fe".into(),
            None,
            "x",
        ),
        (
            Method::POST,
            "/v2/repo/blobs/uploads/?digest=".into(),
            None,
            "",
        ),
        (
            Method::POST,
            "/v2/repo/blobs/uploads/?mount=%zz&from=repo".into(),
            None,
            "",
        ),
        (
            Method::POST,
            "/v2/repo/blobs/uploads/?digest-algorithm=%00".into(),
            None,
            "",
        ),
        (
            Method::POST,
            format!("/v2/repo/blobs/uploads/?digest={digest}"),
            None,
            "",
        ),
        (Method::GET, "/v2/repo/referrers/%zz".into(), None, ""),
        (Method::GET, "/v2/repo/manifests/%00".into(), None, ""),
        (Method::GET, "/v2/repo/manifests/a:b:c".into(), None, ""),
        (
            Method::DELETE,
            "/v2/repo/manifests/sha256:".into(),
            None,
            "",
        ),
        (Method::PUT, "/v2/repo/manifests/latest".into(), None, ""),
        (Method::PUT, "/v2/repo/manifests/latest".into(), None, "{"),
        (
            Method::PUT,
            "/v2/repo/manifests/latest?tag=%zz".into(),
            None,
            "{}",
        ),
        (
            Method::PUT,
            "/v2/repo/manifests/latest".into(),
            Some(("content-type", ";;garbage/")),
            "null",
        ),
        (Method::GET, blob.clone(), Some(("range", "bytes=--1")), ""),
        (Method::GET, blob, Some(("range", "bytes=1-2-3")), ""),
        (
            Method::PATCH,
            location.clone(),
            Some(("content-range", "abc")),
            "hello",
        ),
        (
            Method::PATCH,
            location.clone(),
            Some(("content-range", "5-3")),
            "hello",
        ),
        (
            Method::PATCH,
            location.clone(),
            Some(("content-range", "-5")),
            "hello",
        ),
        (
            Method::PATCH,
            location.clone(),
            Some(("content-range", "bytes */*")),
            "hello",
        ),
        (
            Method::PATCH,
            location.clone(),
            Some(("content-range", "18446744073709551616-1")),
            "hello",
        ),
        (
            Method::PATCH,
            location.clone(),
            Some(("content-range", "0-18446744073709551615")),
            "hello",
        ),
        (
            Method::PATCH,
            location.clone(),
            Some(("content-range", "18446744073709551615-18446744073709551615")),
            "h",
        ),
        (
            Method::PUT,
            put_upload.clone(),
            Some(("content-range", "x")),
            "hello",
        ),
        (
            Method::PUT,
            put_upload,
            Some(("content-range", "7-11")),
            "hello",
        ),
        (Method::PUT, location.clone(), None, "hello"),
    ];
    for (method, path, extra, content) in requests {
        let mut request = registry
            .request(method.clone(), &path)
            .body(content.to_owned());
        if let Some((name, value)) = extra {
            request = request.header(name, value);
        }
        let response = call(request).await;
        assert!(
            response.status().is_client_error(),
            "{method} {path} {extra:?} answered {}",
            response.status()
        );
    }
    let status = registry.get(&location).await;
    assert_upload_state(&status, StatusCode::NO_CONTENT, "repo", 0);
}
