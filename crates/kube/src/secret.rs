//! `kubectl create secret docker-registry`, byte for byte.
//!
//! Field order, escaping and error texts follow kubectl v1.32: the `.dockerconfigjson` value is
//! compact Go JSON (`username`, `password`, `email`, `auth`, empty ones omitted), `auth` is the
//! padded base64 of `username:password`, `--from-file` content is stored verbatim, and the
//! `-o yaml` / `-o json` documents are laid out as kubectl prints them.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use crate::gojson::quote;
use crate::yaml::scalar;

/// The secret type kubectl uses, whatever the source of the data.
pub const SECRET_TYPE: &str = "kubernetes.io/dockerconfigjson";
/// The data key of a `kubernetes.io/dockerconfigjson` secret.
pub const DOCKER_CONFIG_JSON_KEY: &str = ".dockerconfigjson";
/// kubectl's default `--docker-server`.
pub const DEFAULT_SERVER: &str = "https://index.docker.io/v1/";

/// Why a secret cannot be built; the messages are kubectl's.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// Neither `--from-file` nor the full set of `--docker-*` flags.
    #[error(
        "either --from-file or the combination of --docker-username, --docker-password and --docker-server is required"
    )]
    MissingCredentials,
    /// A `--from-file` source that is not `[key=]path`.
    #[error("{0}")]
    BadFileSource(String),
    /// A data key outside `[-._a-zA-Z0-9]+`.
    #[error(
        "{0:?} is not a valid key name for a Secret: a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
    )]
    InvalidKey(String),
    /// Two sources for one key.
    #[error(
        "cannot add key {key}, another key by that name already exists in Data for Secret {name:?}"
    )]
    DuplicateKey {
        /// The repeated key.
        key: String,
        /// The secret's name.
        name: String,
    },
}

/// The inputs of `create secret docker-registry`.
#[derive(Debug, Clone, Default)]
pub struct DockerRegistryOptions {
    /// Secret name.
    pub name: String,
    /// `-n`, emitted only when given.
    pub namespace: Option<String>,
    /// `--docker-server`, written verbatim as the `auths` key.
    pub server: String,
    /// `--docker-username`.
    pub username: String,
    /// `--docker-password`.
    pub password: String,
    /// `--docker-email` (omitted when empty).
    pub email: String,
    /// `--from-file` sources already read: (source text, file bytes).
    pub files: Vec<(FileSource, Vec<u8>)>,
    /// `--append-hash`.
    pub append_hash: bool,
}

/// A parsed `--from-file` source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSource {
    /// Data key.
    pub key: String,
    /// File to read.
    pub path: String,
}

impl FileSource {
    /// Parses `[key=]path`; without a key, kubectl uses `.dockerconfigjson`.
    pub fn parse(source: &str) -> Result<FileSource, SecretError> {
        let with_key = if source.contains('=') {
            source.to_owned()
        } else {
            format!("{DOCKER_CONFIG_JSON_KEY}={source}")
        };
        let separators = with_key.matches('=').count();
        if separators > 1 {
            return Err(SecretError::BadFileSource(
                "key names or file paths cannot contain '='".to_owned(),
            ));
        }
        let (key, path) = with_key.split_once('=').expect("one separator");
        if key.is_empty() {
            return Err(SecretError::BadFileSource(format!(
                "key name for file path {path} missing"
            )));
        }
        if path.is_empty() {
            return Err(SecretError::BadFileSource(format!(
                "file path for key name {key} missing"
            )));
        }
        Ok(FileSource {
            key: key.to_owned(),
            path: path.to_owned(),
        })
    }
}

/// A Secret ready to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    /// Name (with the hash suffix when requested).
    pub name: String,
    /// Namespace, when given explicitly.
    pub namespace: Option<String>,
    /// Data by key.
    pub data: BTreeMap<String, Vec<u8>>,
}

/// The compact `.dockerconfigjson` document kubectl writes for one registry.
pub fn docker_config_json(server: &str, username: &str, password: &str, email: &str) -> String {
    let auth = STANDARD.encode(format!("{username}:{password}"));
    let mut entry = Vec::new();
    for (field, value) in [
        ("username", username),
        ("password", password),
        ("email", email),
        ("auth", auth.as_str()),
    ] {
        if !value.is_empty() {
            entry.push(format!("{}:{}", quote(field), quote(value)));
        }
    }
    format!(
        "{{\"auths\":{{{}:{{{}}}}}}}",
        quote(server),
        entry.join(",")
    )
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl Secret {
    /// Builds the secret kubectl would print for these options.
    pub fn docker_registry(options: DockerRegistryOptions) -> Result<Secret, SecretError> {
        let mut data = BTreeMap::new();
        if options.files.is_empty() {
            if options.username.is_empty()
                || options.password.is_empty()
                || options.server.is_empty()
            {
                return Err(SecretError::MissingCredentials);
            }
            let config = docker_config_json(
                &options.server,
                &options.username,
                &options.password,
                &options.email,
            );
            data.insert(DOCKER_CONFIG_JSON_KEY.to_owned(), config.into_bytes());
        }
        for (source, content) in options.files {
            if !valid_key(&source.key) {
                return Err(SecretError::InvalidKey(source.key));
            }
            if data.contains_key(&source.key) {
                return Err(SecretError::DuplicateKey {
                    key: source.key,
                    name: options.name,
                });
            }
            data.insert(source.key, content);
        }
        let mut secret = Secret {
            name: options.name,
            namespace: options.namespace,
            data,
        };
        if options.append_hash {
            secret.name = format!("{}-{}", secret.name, secret.content_hash());
        }
        Ok(secret)
    }

    /// kubectl's `--append-hash` suffix: the first ten hex digits of the SHA-256 of
    /// `{"data":…,"kind":"Secret","name":…,"type":…}`, with `0 1 3 a e` spelled `g h k m t` so
    /// the suffix never looks like a number or a word.
    fn content_hash(&self) -> String {
        let encoded = format!(
            "{{\"data\":{{{}}},\"kind\":\"Secret\",\"name\":{},\"type\":{}}}",
            self.data_entries(","),
            quote(&self.name),
            quote(SECRET_TYPE)
        );
        let hex = hex::encode(Sha256::digest(encoded.as_bytes()));
        hex[..10]
            .chars()
            .map(|c| match c {
                '0' => 'g',
                '1' => 'h',
                '3' => 'k',
                'a' => 'm',
                'e' => 't',
                other => other,
            })
            .collect()
    }

    fn data_entries(&self, separator: &str) -> String {
        self.data
            .iter()
            .map(|(k, v)| format!("{}:{}", quote(k), quote(&STANDARD.encode(v))))
            .collect::<Vec<_>>()
            .join(separator)
    }

    /// The document `-o yaml` prints.
    pub fn to_yaml(&self) -> String {
        let mut out = String::from("apiVersion: v1\ndata:\n");
        for (key, value) in &self.data {
            out.push_str(&format!(
                "  {}: {}\n",
                scalar(key),
                scalar(&STANDARD.encode(value))
            ));
        }
        out.push_str("kind: Secret\nmetadata:\n  creationTimestamp: null\n");
        out.push_str(&format!("  name: {}\n", scalar(&self.name)));
        if let Some(namespace) = &self.namespace {
            out.push_str(&format!("  namespace: {}\n", scalar(namespace)));
        }
        out.push_str(&format!("type: {SECRET_TYPE}\n"));
        out
    }

    /// The document `-o json` prints (four-space indentation, kubectl's key order).
    pub fn to_json(&self) -> String {
        let mut metadata = vec![format!("        \"name\": {}", quote(&self.name))];
        if let Some(namespace) = &self.namespace {
            metadata.push(format!("        \"namespace\": {}", quote(namespace)));
        }
        metadata.push("        \"creationTimestamp\": null".to_owned());
        let data = self
            .data
            .iter()
            .map(|(k, v)| format!("        {}: {}", quote(k), quote(&STANDARD.encode(v))))
            .collect::<Vec<_>>();
        let data = if data.is_empty() {
            "{}".to_owned()
        } else {
            format!("{{\n{}\n    }}", data.join(",\n"))
        };
        format!(
            "{{\n    \"kind\": \"Secret\",\n    \"apiVersion\": \"v1\",\n    \"metadata\": {{\n{}\n    }},\n    \"data\": {data},\n    \"type\": {}\n}}\n",
            metadata.join(",\n"),
            quote(SECRET_TYPE)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference_options() -> DockerRegistryOptions {
        DockerRegistryOptions {
            name: "ocirsecret".into(),
            server: "phx.ocir.io".into(),
            username: "ansh81vru1zp/jdoe@acme.com".into(),
            password: "k]j64r{1sJSSF-;)K8".into(),
            email: "jdoe@acme.com".into(),
            ..DockerRegistryOptions::default()
        }
    }

    #[test]
    fn reference_example_matches_kubectl_yaml() {
        let secret = Secret::docker_registry(reference_options()).unwrap();
        assert_eq!(
            secret.to_yaml(),
            "apiVersion: v1\ndata:\n  .dockerconfigjson: eyJhdXRocyI6eyJwaHgub2Npci5pbyI6eyJ1c2VybmFtZSI6ImFuc2g4MXZydTF6cC9qZG9lQGFjbWUuY29tIiwicGFzc3dvcmQiOiJrXWo2NHJ7MXNKU1NGLTspSzgiLCJlbWFpbCI6Impkb2VAYWNtZS5jb20iLCJhdXRoIjoiWVc1emFEZ3hkbkoxTVhwd0wycGtiMlZBWVdOdFpTNWpiMjA2YTExcU5qUnllekZ6U2xOVFJpMDdLVXM0In19fQ==\nkind: Secret\nmetadata:\n  creationTimestamp: null\n  name: ocirsecret\ntype: kubernetes.io/dockerconfigjson\n"
        );
    }

    #[test]
    fn reference_example_matches_kubectl_json() {
        let secret = Secret::docker_registry(reference_options()).unwrap();
        assert_eq!(
            secret.to_json(),
            "{\n    \"kind\": \"Secret\",\n    \"apiVersion\": \"v1\",\n    \"metadata\": {\n        \"name\": \"ocirsecret\",\n        \"creationTimestamp\": null\n    },\n    \"data\": {\n        \".dockerconfigjson\": \"eyJhdXRocyI6eyJwaHgub2Npci5pbyI6eyJ1c2VybmFtZSI6ImFuc2g4MXZydTF6cC9qZG9lQGFjbWUuY29tIiwicGFzc3dvcmQiOiJrXWo2NHJ7MXNKU1NGLTspSzgiLCJlbWFpbCI6Impkb2VAYWNtZS5jb20iLCJhdXRoIjoiWVc1emFEZ3hkbkoxTVhwd0wycGtiMlZBWVdOdFpTNWpiMjA2YTExcU5qUnllekZ6U2xOVFJpMDdLVXM0In19fQ==\"\n    },\n    \"type\": \"kubernetes.io/dockerconfigjson\"\n}\n"
        );
    }

    #[test]
    fn config_json_escapes_like_go_and_omits_empty_fields() {
        assert_eq!(
            docker_config_json("phx.ocir.io", "u", "p", ""),
            r#"{"auths":{"phx.ocir.io":{"username":"u","password":"p","auth":"dTpw"}}}"#
        );
        assert_eq!(
            docker_config_json("r", "ns/u", "a<b>&c\"d\\e", ""),
            r#"{"auths":{"r":{"username":"ns/u","password":"a\u003cb\u003e\u0026c\"d\\e","auth":"bnMvdTphPGI+JmMiZFxl"}}}"#
        );
    }

    #[test]
    fn append_hash_matches_kubectl() {
        let secret = Secret::docker_registry(DockerRegistryOptions {
            name: "s1".into(),
            namespace: Some("team-a".into()),
            server: DEFAULT_SERVER.into(),
            username: "u".into(),
            password: "p".into(),
            append_hash: true,
            ..DockerRegistryOptions::default()
        })
        .unwrap();
        assert_eq!(secret.name, "s1-h2g25kfb7b");
    }

    #[test]
    fn missing_flags_and_bad_sources_use_kubectl_messages() {
        let err = Secret::docker_registry(DockerRegistryOptions {
            name: "s".into(),
            server: DEFAULT_SERVER.into(),
            username: "u".into(),
            ..DockerRegistryOptions::default()
        })
        .unwrap_err();
        assert_eq!(err, SecretError::MissingCredentials);
        assert_eq!(
            FileSource::parse("/tmp/c.json").unwrap().key,
            ".dockerconfigjson"
        );
        assert_eq!(FileSource::parse("foo=/tmp/c.json").unwrap().key, "foo");
        assert!(FileSource::parse("a=b=c").is_err());
        assert_eq!(
            FileSource::parse("=x").unwrap_err().to_string(),
            "key name for file path x missing"
        );
    }
}
