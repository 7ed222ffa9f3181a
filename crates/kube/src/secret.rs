//! `kubectl create secret docker-registry`, byte for byte.
//!
//! Field order, escaping and error texts follow kubectl v1.32: the `.dockerconfigjson` value is
//! compact Go JSON (`username`, `password`, `email`, `auth`, empty ones omitted), `auth` is the
//! padded base64 of `username:password`, `--from-file` content is stored verbatim (each source
//! checked in kubectl's order), and the `-o yaml` / `-o json` documents are laid out as kubectl
//! prints them — the YAML one after kubectl's detour through JSON ([`yaml::through_json`]).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use crate::gojson::{quote, strconv_quote};
use crate::yaml;

/// The secret type kubectl uses, whatever the source of the data.
pub const SECRET_TYPE: &str = "kubernetes.io/dockerconfigjson";
/// The data key of a `kubernetes.io/dockerconfigjson` secret.
pub const DOCKER_CONFIG_JSON_KEY: &str = ".dockerconfigjson";
/// kubectl's default `--docker-server`.
pub const DEFAULT_SERVER: &str = "https://index.docker.io/v1/";

/// Why a secret cannot be built; the messages are kubectl's.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// An empty NAME.
    #[error("name must be specified")]
    NameRequired,
    /// Neither `--from-file` nor the full set of `--docker-*` flags.
    #[error(
        "either --from-file or the combination of --docker-username, --docker-password and --docker-server is required"
    )]
    MissingCredentials,
    /// A `--from-file` source that is not `[key=]path`.
    #[error("{0}")]
    BadFileSource(String),
    /// A `--from-file` path that cannot be examined (Go's `os.Stat` error, as kubectl words it).
    #[error("error reading {path}: {reason}")]
    Unreadable {
        /// The path as given.
        path: String,
        /// Go's text of the system error.
        reason: String,
    },
    /// A `--from-file` file that exists but cannot be opened (Go's `os.ReadFile` error).
    #[error("open {path}: {reason}")]
    CannotOpen {
        /// The path as given.
        path: String,
        /// Go's text of the system error.
        reason: String,
    },
    /// A `--from-file` path that is a directory (kubectl always has a key name here).
    #[error("cannot give a key name for a directory path")]
    Directory,
    /// A data key that is not a valid config key (`[-._a-zA-Z0-9]+`, at most 253 characters,
    /// not `.`, `..` or `..`-prefixed); the reasons are joined with `;`.
    #[error("{} is not valid key name for a Secret {reasons}", strconv_quote(.key))]
    InvalidKey {
        /// The key.
        key: String,
        /// What is wrong with it.
        reasons: String,
    },
    /// Two sources for one key.
    #[error("cannot add key {0}, another key by that name already exists")]
    DuplicateKey(String),
    /// A name or namespace the YAML conversion refuses (`-o yaml` only).
    #[error(transparent)]
    Yaml(#[from] yaml::JsonToYamlError),
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
    /// `--from-file` sources (`[key=]path`), in order; files are read when the secret is built.
    pub from_file: Vec<String>,
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

/// Why `key` is not a valid config key (kubectl's `IsConfigMapKey`), or `None`.
fn invalid_key_reasons(key: &str) -> Option<String> {
    let mut reasons = Vec::new();
    if key.len() > 253 {
        reasons.push("must be no more than 253 characters");
    }
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        reasons.push(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
        );
    }
    match key {
        "." => reasons.push("must not be '.'"),
        ".." => reasons.push("must not be '..'"),
        _ if key.starts_with("..") => reasons.push("must not start with '..'"),
        _ => {}
    }
    (!reasons.is_empty()).then(|| reasons.join(";"))
}

/// Go's text for the system error behind `error` (`no such file or directory`).
fn go_error_text(error: &std::io::Error) -> String {
    let text = error.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_lowercase().chain(chars).collect()
    })
}

/// Reads the `--from-file` sources into secret data, source by source in kubectl's order of
/// checks: the `[key=]path` syntax, the path, the file, then the key.
fn read_file_sources(sources: &[String]) -> Result<BTreeMap<String, Vec<u8>>, SecretError> {
    let mut data = BTreeMap::new();
    for text in sources {
        let source = FileSource::parse(text)?;
        let metadata = std::fs::metadata(&source.path).map_err(|e| SecretError::Unreadable {
            path: source.path.clone(),
            reason: go_error_text(&e),
        })?;
        if metadata.is_dir() {
            return Err(SecretError::Directory);
        }
        let content = std::fs::read(&source.path).map_err(|e| SecretError::CannotOpen {
            path: source.path.clone(),
            reason: go_error_text(&e),
        })?;
        if let Some(reasons) = invalid_key_reasons(&source.key) {
            return Err(SecretError::InvalidKey {
                key: source.key,
                reasons,
            });
        }
        if data.contains_key(&source.key) {
            return Err(SecretError::DuplicateKey(source.key));
        }
        data.insert(source.key, content);
    }
    Ok(data)
}

impl Secret {
    /// Builds the secret kubectl would print for these options: its validation first (name,
    /// credentials), then the data (the `--from-file` files, or the credentials).
    pub fn docker_registry(options: DockerRegistryOptions) -> Result<Secret, SecretError> {
        if options.name.is_empty() {
            return Err(SecretError::NameRequired);
        }
        let data = if options.from_file.is_empty() {
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
            BTreeMap::from([(DOCKER_CONFIG_JSON_KEY.to_owned(), config.into_bytes())])
        } else {
            read_file_sources(&options.from_file)?
        };
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

    /// The document `-o yaml` prints (keys in the YAML emitter's order, the name and namespace
    /// as they come back from kubectl's detour through JSON).
    pub fn to_yaml(&self) -> Result<String, SecretError> {
        let mut out = String::from("apiVersion: v1\ndata:\n");
        let mut keys: Vec<&str> = self.data.keys().map(String::as_str).collect();
        yaml::sort_keys(&mut keys);
        for key in keys {
            out.push_str(&yaml::entry(2, key, &STANDARD.encode(&self.data[key])));
        }
        out.push_str("kind: Secret\nmetadata:\n  creationTimestamp: null\n");
        let mut metadata = vec![self.name.as_str()];
        metadata.extend(self.namespace.as_deref());
        let metadata = yaml::through_json(&metadata)?;
        out.push_str(&yaml::entry(2, "name", &metadata[0]));
        if let Some(namespace) = metadata.get(1) {
            out.push_str(&yaml::entry(2, "namespace", namespace));
        }
        out.push_str(&format!("type: {SECRET_TYPE}\n"));
        Ok(out)
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
            secret.to_yaml().unwrap(),
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

    #[test]
    fn file_sources_are_checked_in_kubectl_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        std::fs::write(&file, "not json\n").unwrap();
        let path = file.display().to_string();
        let build = |sources: &[String]| {
            Secret::docker_registry(DockerRegistryOptions {
                name: "s".into(),
                from_file: sources.to_vec(),
                ..DockerRegistryOptions::default()
            })
        };
        let secret = build(&[path.clone(), format!("foo={path}")]).unwrap();
        assert_eq!(secret.data.len(), 2);
        assert_eq!(
            build(&[format!("bad key={path}"), "/nope".into()])
                .unwrap_err()
                .to_string(),
            "\"bad key\" is not valid key name for a Secret a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
        );
        assert_eq!(
            build(&[format!("..={path}")]).unwrap_err().to_string(),
            "\"..\" is not valid key name for a Secret must not be '..'"
        );
        assert_eq!(
            build(&[path.clone(), path.clone()]).unwrap_err(),
            SecretError::DuplicateKey(".dockerconfigjson".into())
        );
        assert_eq!(
            build(&["/nope".into()]).unwrap_err().to_string(),
            "error reading /nope: no such file or directory"
        );
        let directory = dir.path().display().to_string();
        assert_eq!(build(&[directory]).unwrap_err(), SecretError::Directory);
        let nameless = Secret::docker_registry(DockerRegistryOptions {
            from_file: vec![path],
            ..DockerRegistryOptions::default()
        });
        assert_eq!(nameless.unwrap_err(), SecretError::NameRequired);
    }
}
