//! A minimal OCI distribution client: exactly the requests the loader and workloads send.

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use reqwest::{Method, RequestBuilder, StatusCode, header};
use sha2::{Digest as _, Sha256};

/// Media type of the OCI image manifest pushed and requested.
pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// An HTTP client for loopback benchmarking: no proxy, bounded timeouts.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(300))
        .pool_max_idle_per_host(64)
        .build()
        .context("building the HTTP client")
}

/// One registry endpoint, with the `Authorization` value its requests carry, if any.
#[derive(Clone)]
pub struct Registry {
    http: reqwest::Client,
    base: String,
    single_post: bool,
    authorization: Option<String>,
}

impl Registry {
    /// A client for the registry at `base` (e.g. `http://127.0.0.1:5000`). Monolithic pushes
    /// use `POST ?digest=` until [`Registry::probe_single_post`] says otherwise.
    pub fn new(http: reqwest::Client, base: &str) -> Registry {
        Registry {
            http,
            base: base.to_owned(),
            single_post: true,
            authorization: None,
        }
    }

    /// The same registry with `value` (e.g. `Bearer <token>`) as the `Authorization` header of
    /// every request.
    pub fn with_authorization(mut self, value: String) -> Registry {
        self.authorization = Some(value);
        self
    }

    /// The headers every request carries, as `Name: value` lines for wrk and the HEAD load.
    pub fn header_lines(&self) -> Vec<String> {
        self.authorization
            .iter()
            .map(|value| format!("{}: {value}", header::AUTHORIZATION))
            .collect()
    }

    /// The HTTP client shared by this registry's requests.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A request to `url` carrying the registry's `Authorization` header, if any.
    fn request(&self, method: Method, url: impl reqwest::IntoUrl) -> RequestBuilder {
        let request = self.http.request(method, url);
        match &self.authorization {
            Some(value) => request.header(header::AUTHORIZATION, value),
            None => request,
        }
    }

    /// Base URL of the registry.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Whether a monolithic push is a single `POST ?digest=` (else `POST` then `PUT ?digest=`).
    pub fn single_post(&self) -> bool {
        self.single_post
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Absolute form of a `Location` or `Link` target (registries send either form).
    fn resolve(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else {
            self.url(location)
        }
    }

    /// Pushes a tiny blob with `POST ?digest=`; a registry that answers 202 (Distribution 2.x
    /// ignores the parameter) gets `POST` + `PUT ?digest=` for every monolithic push.
    pub async fn probe_single_post(&mut self, repo: &str) -> anyhow::Result<()> {
        let data = Bytes::from_static(b"minato-bench probe");
        let digest = sha256(&data);
        let response = self
            .request(
                Method::POST,
                self.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")),
            )
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(data.clone())
            .send()
            .await?;
        match response.status() {
            StatusCode::CREATED => self.single_post = true,
            StatusCode::ACCEPTED => {
                self.single_post = false;
                let location = location_of(&response)?;
                self.put_upload(&location, &digest, data).await?;
            }
            status => bail!("probe push to {}: unexpected {status}", self.base),
        }
        Ok(())
    }

    /// Monolithic push of `data` (whose digest is `digest`) into `repo`.
    pub async fn push_blob(&self, repo: &str, digest: &str, data: Bytes) -> anyhow::Result<()> {
        if self.single_post {
            let response = self
                .request(
                    Method::POST,
                    self.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")),
                )
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .body(data)
                .send()
                .await?;
            expect(response, StatusCode::CREATED, "monolithic POST").await?;
            return Ok(());
        }
        let location = self.start_upload(repo).await?;
        self.put_upload(&location, digest, data).await
    }

    /// Chunked push: `POST`, one `PATCH` with `Content-Range` per `chunk` bytes, then
    /// `PUT ?digest=` without a body.
    pub async fn push_chunked(
        &self,
        repo: &str,
        digest: &str,
        data: &Bytes,
        chunk: usize,
    ) -> anyhow::Result<()> {
        ensure!(chunk > 0, "chunk size must be positive");
        let mut location = self.start_upload(repo).await?;
        let mut offset = 0;
        while offset < data.len() {
            let end = (offset + chunk).min(data.len());
            let response = self
                .request(Method::PATCH, &location)
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(header::CONTENT_RANGE, format!("{offset}-{}", end - 1))
                .body(data.slice(offset..end))
                .send()
                .await?;
            let response = expect(response, StatusCode::ACCEPTED, "PATCH").await?;
            location = self.resolve(&location_of(&response)?);
            offset = end;
        }
        self.put_upload(&location, digest, Bytes::new()).await
    }

    /// `POST /v2/<repo>/blobs/uploads/`: the absolute URL of the new session.
    async fn start_upload(&self, repo: &str) -> anyhow::Result<String> {
        let response = self
            .request(
                Method::POST,
                self.url(&format!("/v2/{repo}/blobs/uploads/")),
            )
            .send()
            .await?;
        let response = expect(response, StatusCode::ACCEPTED, "upload POST").await?;
        Ok(self.resolve(&location_of(&response)?))
    }

    /// `PUT <session>?digest=` with `data` as the last (or only) chunk.
    async fn put_upload(&self, location: &str, digest: &str, data: Bytes) -> anyhow::Result<()> {
        let location = self.resolve(location);
        let separator = if location.contains('?') { '&' } else { '?' };
        let response = self
            .request(Method::PUT, format!("{location}{separator}digest={digest}"))
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(data)
            .send()
            .await?;
        expect(response, StatusCode::CREATED, "upload PUT").await?;
        Ok(())
    }

    /// `PUT /v2/<repo>/manifests/<reference>` of an OCI image manifest.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        manifest: Bytes,
    ) -> anyhow::Result<()> {
        let response = self
            .request(
                Method::PUT,
                self.url(&format!("/v2/{repo}/manifests/{reference}")),
            )
            .header(header::CONTENT_TYPE, MANIFEST_TYPE)
            .body(manifest)
            .send()
            .await?;
        expect(response, StatusCode::CREATED, "manifest PUT").await?;
        Ok(())
    }

    /// `GET` of `path_or_url`, expecting 200: the body and the `next` link, if any.
    pub async fn get_page(&self, path_or_url: &str) -> anyhow::Result<(Bytes, Option<String>)> {
        let response = self
            .request(Method::GET, self.resolve(path_or_url))
            .send()
            .await?;
        let response = expect(response, StatusCode::OK, "GET").await?;
        let next = response
            .headers()
            .get(header::LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(next_link);
        Ok((response.bytes().await?, next))
    }

    /// One `method` request of `path` (with `Accept: accept`, if given) that must answer 200:
    /// the check before a load run, which reports the status and body a load tool only counts.
    pub async fn expect_ok(
        &self,
        method: Method,
        path: &str,
        accept: Option<&str>,
    ) -> anyhow::Result<()> {
        let what = method.to_string();
        let mut request = self.request(method, self.url(path));
        if let Some(accept) = accept {
            request = request.header(header::ACCEPT, accept);
        }
        expect(request.send().await?, StatusCode::OK, &what).await?;
        Ok(())
    }
}

/// The `Location` header of `response`.
fn location_of(response: &reqwest::Response) -> anyhow::Result<String> {
    Ok(response
        .headers()
        .get(header::LOCATION)
        .context("response without Location")?
        .to_str()
        .context("non-ASCII Location")?
        .to_owned())
}

/// Fails with the status and body unless `response` has status `want`.
async fn expect(
    response: reqwest::Response,
    want: StatusCode,
    what: &str,
) -> anyhow::Result<reqwest::Response> {
    if response.status() == want {
        return Ok(response);
    }
    let status = response.status();
    let url = response.url().clone();
    let body = response.text().await.unwrap_or_default();
    bail!(
        "{what} {url}: expected {want}, got {status}: {}",
        body.chars().take(300).collect::<String>()
    )
}

/// The target of a `Link: <url>; rel="next"` header value.
fn next_link(value: &str) -> Option<String> {
    value.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let rel_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        rel_next.then(|| target.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_parses_relative_and_absolute_targets() {
        assert_eq!(
            next_link("</v2/a/tags/list?n=2&last=b>; rel=\"next\"").as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(
            next_link("<http://h/v2/_catalog?last=x&n=1>; rel=\"next\"").as_deref(),
            Some("http://h/v2/_catalog?last=x&n=1")
        );
        assert_eq!(next_link("</x>; rel=\"prev\""), None);
    }

    #[test]
    fn sha256_of_empty_input() {
        assert_eq!(
            sha256(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
