//! The kubelet's credential keyring, reproduced so that a doctor can tell which credentials the
//! kubelet would hand to the container runtime for an image, and why a secret's entry does not
//! apply.
//!
//! The rules are those of `pkg/credentialprovider` (keyring, config) and
//! `pkg/credentialprovider/secrets` of Kubernetes (pull-path spec §2.5–§2.9):
//!
//! * a pull secret is read only for the pairs `kubernetes.io/dockerconfigjson` +
//!   `.dockerconfigjson` (an `{"auths": {...}}` document) and `kubernetes.io/dockercfg` +
//!   `.dockercfg` (the flat map); any other secret is silently ignored ([`SecretIgnored`]);
//! * each `auths` key is normalized the way `BasicDockerKeyring.Add` does (`https://` prepended,
//!   parsed like Go's `net/url`, a leading `/v2/` or `/v1/` dropped, key = host + path);
//! * a lookup walks the distinct keys in reverse lexicographic order and keeps every key that
//!   matches the repository (`URLsMatchStr`: same port, same number of host labels, path as a
//!   plain string prefix, each label a Go `filepath.Match` glob), falling back to the
//!   `index.docker.io` credentials for Docker Hub images;
//! * the keyring of a pod is the union of its secrets' keyring and the node's: lookups
//!   concatenate, pod secrets first ([`Keyring::pod`]).
//!
//! Go's JSON decoder is emulated where it decides the outcome: field names match
//! case-insensitively, the first type error is reported after the document is read, an error in
//! an entry's `auth` field aborts at once, invalid UTF-8 is replaced. Error texts follow Go's
//! wording; syntax errors carry `serde_json`'s text instead of Go's.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::cluster::SecretObject;
use crate::reference::{ImageReference, ReferenceError};
use crate::secret::{DOCKER_CONFIG_JSON_KEY, SECRET_TYPE};

/// The secret type whose `.dockerconfigjson` key the kubelet reads.
pub const DOCKER_CONFIG_JSON_TYPE: &str = SECRET_TYPE;
/// The legacy secret type whose `.dockercfg` key (a flat map) the kubelet reads.
pub const DOCKERCFG_TYPE: &str = "kubernetes.io/dockercfg";
/// The data key of a `kubernetes.io/dockercfg` secret.
pub const DOCKERCFG_KEY: &str = ".dockercfg";
/// The keyring key whose credentials serve Docker Hub images when no key matches (the
/// normalized form of `https://index.docker.io/v1/`).
pub const DEFAULT_REGISTRY_HOST: &str = "index.docker.io";
/// The kubelet's error for an `auth` field without a `:` once decoded.
pub const AUTH_FORMAT_ERROR: &str =
    "unable to parse auth field, must be formatted as base64(username:password)";

/// One username/password pair the kubelet would try, and where it came from.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The user name (possibly empty: an empty pair is a legal credential).
    pub username: String,
    /// The password or token; never printed by `Debug`.
    pub password: String,
    /// The secret or file, and the `auths` key as written there.
    pub source: CredentialSource,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &format_args!("<{} bytes>", self.password.len()))
            .field("source", &self.source)
            .finish()
    }
}

/// Where a credential was read, so a diagnosis can point at the secret and key to fix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CredentialSource {
    /// A pull secret.
    Secret {
        /// The secret's namespace.
        namespace: String,
        /// The secret's name.
        name: String,
        /// The `auths` key exactly as written in the secret.
        key: String,
    },
    /// A docker config file (the node's `config.json` or `.dockercfg`).
    DockerConfig {
        /// The file.
        path: PathBuf,
        /// The `auths` key exactly as written in the file.
        key: String,
    },
}

impl CredentialSource {
    /// The `auths` key as written.
    pub fn key(&self) -> &str {
        match self {
            CredentialSource::Secret { key, .. } | CredentialSource::DockerConfig { key, .. } => {
                key
            }
        }
    }

    /// The secret or file this came from, without the key.
    pub fn origin(&self) -> ConfigOrigin {
        match self {
            CredentialSource::Secret {
                namespace, name, ..
            } => ConfigOrigin::Secret {
                namespace: namespace.clone(),
                name: name.clone(),
            },
            CredentialSource::DockerConfig { path, .. } => {
                ConfigOrigin::DockerConfig { path: path.clone() }
            }
        }
    }
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, auths key {:?}", self.origin(), self.key())
    }
}

/// A secret or file a keyring was built from; names the culprit in errors and reports.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigOrigin {
    /// A pull secret.
    Secret {
        /// The secret's namespace.
        namespace: String,
        /// The secret's name.
        name: String,
    },
    /// A docker config file.
    DockerConfig {
        /// The file.
        path: PathBuf,
    },
}

impl fmt::Display for ConfigOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigOrigin::Secret { namespace, name } => write!(f, "secret {namespace}/{name}"),
            ConfigOrigin::DockerConfig { path } => write!(f, "{}", path.display()),
        }
    }
}

/// Why a keyring could not be built. The kubelet aborts the whole credential lookup with such
/// an error (the pull fails with its raw text, [`KeyringError::kubelet_message`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    /// The document is not JSON, or a field has the wrong JSON type.
    #[error("{origin}: {message}")]
    Json {
        /// The secret or file.
        origin: ConfigOrigin,
        /// Go's error text (syntax errors: `serde_json`'s).
        message: String,
    },
    /// An entry's `auth` field is not `base64(username:password)`.
    #[error("{origin}: auths key {key:?}: {message}")]
    Auth {
        /// The secret or file.
        origin: ConfigOrigin,
        /// The `auths` key as written.
        key: String,
        /// The kubelet's text: [`AUTH_FORMAT_ERROR`] or `illegal base64 data at input byte N`.
        message: String,
    },
}

impl KeyringError {
    /// The text the kubelet itself reports, without our context.
    pub fn kubelet_message(&self) -> &str {
        match self {
            KeyringError::Json { message, .. } | KeyringError::Auth { message, .. } => message,
        }
    }

    /// The secret or file at fault.
    pub fn origin(&self) -> &ConfigOrigin {
        match self {
            KeyringError::Json { origin, .. } | KeyringError::Auth { origin, .. } => origin,
        }
    }
}

/// The two layouts of a docker credentials document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFormat {
    /// `{"auths": {"<server>": {...}}}` (`config.json`, `.dockerconfigjson`).
    DockerConfigJson,
    /// `{"<server>": {...}}` (legacy `.dockercfg`).
    DockerCfg,
}

/// Why a secret contributes nothing although the kubelet fetched it: the kubelet says nothing
/// about it, so the doctor has to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretIgnored {
    /// The type is neither `kubernetes.io/dockerconfigjson` nor `kubernetes.io/dockercfg`
    /// (e.g. `Opaque` from `kubectl create secret generic`).
    WrongType {
        /// The secret's type.
        type_: String,
        /// The data keys it has (a `.dockerconfigjson` here is the tell-tale).
        keys: Vec<String>,
    },
    /// The type is right but the data key it needs is absent.
    MissingKey {
        /// The secret's type.
        type_: String,
        /// The key that type needs.
        expected: &'static str,
        /// The data keys it has.
        keys: Vec<String>,
    },
    /// The data key is present but empty.
    EmptyKey {
        /// The secret's type.
        type_: String,
        /// The empty key.
        key: &'static str,
    },
}

impl SecretIgnored {
    /// A stable identifier for reports (`secret-wrong-type`, `secret-missing-key`,
    /// `secret-empty-key`).
    pub fn code(&self) -> &'static str {
        match self {
            SecretIgnored::WrongType { .. } => "secret-wrong-type",
            SecretIgnored::MissingKey { .. } => "secret-missing-key",
            SecretIgnored::EmptyKey { .. } => "secret-empty-key",
        }
    }
}

impl fmt::Display for SecretIgnored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretIgnored::WrongType { type_, .. } => write!(
                f,
                "type {type_:?} is ignored by the kubelet (it reads only {DOCKER_CONFIG_JSON_TYPE} \
                 with key {DOCKER_CONFIG_JSON_KEY}, or {DOCKERCFG_TYPE} with key {DOCKERCFG_KEY})"
            ),
            SecretIgnored::MissingKey {
                type_, expected, ..
            } => write!(f, "type {type_:?} but no data key {expected}"),
            SecretIgnored::EmptyKey { type_, key } => {
                write!(f, "type {type_:?} but data key {key} is empty")
            }
        }
    }
}

/// An `auths` key the kubelet skips because it does not parse as a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidKey {
    /// The key as written.
    pub key: String,
    /// Go's `url.Parse` error.
    pub error: String,
}

impl InvalidKey {
    /// The kubelet's log line for it.
    pub fn log_message(&self) -> String {
        format!(
            "Entry {:?} in dockercfg invalid ({}), ignoring",
            self.key, self.error
        )
    }
}

/// What became of one secret or file given to a keyring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceStatus {
    /// Read.
    Used {
        /// The layout it was read as.
        format: ConfigFormat,
        /// How many entries it added to the keyring.
        entries: usize,
        /// Whether an `auths` field was present (layout `DockerConfigJson` only; `false` there
        /// means flat `.dockercfg` content under the wrong key, so nothing was added).
        has_auths: bool,
        /// Top-level fields the kubelet does not read (`credsStore`, `credHelpers`, or the
        /// registries of a flat map under `.dockerconfigjson`).
        ignored_fields: Vec<String>,
        /// `auths` keys skipped because they do not parse.
        invalid_keys: Vec<InvalidKey>,
    },
    /// A secret whose type/key pair the kubelet does not read.
    Ignored(SecretIgnored),
}

/// The status of one source, in the order the sources were added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceReport {
    /// The secret or file.
    pub origin: ConfigOrigin,
    /// What was read from it.
    pub status: SourceStatus,
}

/// One `auths` entry of a keyring, for diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyringEntry {
    /// The key as written in the secret or file.
    pub written: String,
    /// The key the kubelet indexes it under (§2.6).
    pub normalized: String,
    /// The credential it holds.
    pub credential: Credential,
    /// Which layer of a union it belongs to (0 = first tried).
    pub layer: usize,
}

impl KeyringEntry {
    /// Whether this entry's key matches `repo_to_pull` by URL (the Docker Hub fallback is a
    /// property of the whole keyring, see [`Keyring::lookup_detailed`]).
    pub fn matches(&self, repo_to_pull: &str) -> bool {
        self.explain(repo_to_pull).is_match()
    }

    /// Why this entry's key does or does not match `repo_to_pull`.
    pub fn explain(&self, repo_to_pull: &str) -> MatchResult {
        match_explanation(&self.normalized, repo_to_pull)
    }
}

/// The outcome of matching a normalized key against a repository, with the first failed
/// check in the kubelet's order (port, label count, path, labels).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchResult {
    /// The key applies.
    Match,
    /// Ports differ (`"443"` is not `""`).
    PortDiffers {
        /// The key's port (`""` when none).
        key_port: String,
        /// The repository's port.
        repo_port: String,
    },
    /// Host names have different numbers of dot-separated labels.
    LabelCount {
        /// Labels in the key's host.
        key_labels: usize,
        /// Labels in the repository's host.
        repo_labels: usize,
    },
    /// The key's path is not a string prefix of the repository's path.
    Path {
        /// The key's path.
        key_path: String,
        /// The repository's path.
        repo_path: String,
    },
    /// A host label does not match (case-sensitive glob).
    Label {
        /// 0-based label position.
        index: usize,
        /// The key's label (a glob).
        pattern: String,
        /// The repository's label.
        label: String,
    },
    /// A host label of the key is a malformed glob (`filepath.ErrBadPattern`).
    BadPattern {
        /// 0-based label position.
        index: usize,
        /// The key's label.
        pattern: String,
    },
    /// The key does not parse as a URL.
    KeyUnparseable(String),
    /// The repository does not parse as a URL.
    RepoUnparseable(String),
}

impl MatchResult {
    /// Whether the key applies.
    pub fn is_match(&self) -> bool {
        matches!(self, MatchResult::Match)
    }
}

impl fmt::Display for MatchResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MatchResult::Match => write!(f, "matches"),
            MatchResult::PortDiffers {
                key_port,
                repo_port,
            } => write!(
                f,
                "does not match (port differs: key {key_port:?}, image {repo_port:?})"
            ),
            MatchResult::LabelCount {
                key_labels,
                repo_labels,
            } => write!(
                f,
                "does not match (label count: key host has {key_labels}, image host has {repo_labels})"
            ),
            MatchResult::Path {
                key_path,
                repo_path,
            } => write!(
                f,
                "does not match (path: {key_path:?} is not a prefix of {repo_path:?})"
            ),
            MatchResult::Label {
                index,
                pattern,
                label,
            } => write!(
                f,
                "does not match (label {}: {pattern:?} vs {label:?})",
                index + 1
            ),
            MatchResult::BadPattern { index, pattern } => write!(
                f,
                "does not match (label {}: {pattern:?} is a malformed glob)",
                index + 1
            ),
            MatchResult::KeyUnparseable(e) => write!(f, "does not match (key unparseable: {e})"),
            MatchResult::RepoUnparseable(e) => {
                write!(f, "does not match (image unparseable: {e})")
            }
        }
    }
}

/// One credential a lookup returned, with the key that selected it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupHit<'a> {
    /// The credential.
    pub credential: &'a Credential,
    /// The normalized key it is indexed under.
    pub key: &'a str,
    /// Whether it came from the Docker Hub fallback rather than a URL match.
    pub docker_hub_fallback: bool,
    /// The layer of the union it came from.
    pub layer: usize,
}

/// A `BasicDockerKeyring`: credentials by normalized key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Layer {
    /// Normalized key → credentials in the order added.
    creds: BTreeMap<String, Vec<Credential>>,
    /// Every entry in the order added.
    entries: Vec<KeyringEntry>,
}

impl Layer {
    fn lookup<'a>(&'a self, repo: &str, layer: usize, out: &mut Vec<LookupHit<'a>>) {
        let before = out.len();
        // The index: distinct keys, reverse lexicographic (byte) order.
        for (key, creds) in self.creds.iter().rev() {
            if urls_match_str(key, repo) {
                out.extend(creds.iter().map(|credential| LookupHit {
                    credential,
                    key,
                    docker_hub_fallback: false,
                    layer,
                }));
            }
        }
        if out.len() == before
            && is_default_registry_match(repo)
            && let Some((key, creds)) = self.creds.get_key_value(DEFAULT_REGISTRY_HOST)
        {
            out.extend(creds.iter().map(|credential| LookupHit {
                credential,
                key,
                docker_hub_fallback: true,
                layer,
            }));
        }
    }
}

/// The kubelet's credential keyring: a union of layers, each a set of credentials indexed by
/// normalized registry key. Lookups concatenate the layers' results in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyring {
    layers: Vec<Layer>,
    reports: Vec<SourceReport>,
}

impl Keyring {
    /// A keyring without credentials (a node without docker config).
    pub fn empty() -> Keyring {
        Keyring::default()
    }

    /// The keyring of one pull secret (§2.5). A secret of another type/key pair gives an empty
    /// keyring whose report says why.
    pub fn from_secret(secret: &SecretObject) -> Result<Keyring, KeyringError> {
        Keyring::from_secrets([secret])
    }

    /// The keyring of several pull secrets, in `imagePullSecrets` order, as the kubelet builds
    /// it: one index over all of them (so a more specific key of a later secret is tried before
    /// a less specific key of an earlier one), secret order within a key. The first JSON error
    /// aborts, as in the kubelet.
    pub fn from_secrets<'a>(
        secrets: impl IntoIterator<Item = &'a SecretObject>,
    ) -> Result<Keyring, KeyringError> {
        let mut layer = Layer::default();
        let mut reports = Vec::new();
        for secret in secrets {
            let origin = ConfigOrigin::Secret {
                namespace: secret.namespace.clone(),
                name: secret.name.clone(),
            };
            let source = |key: &str| CredentialSource::Secret {
                namespace: secret.namespace.clone(),
                name: secret.name.clone(),
                key: key.to_owned(),
            };
            let status = match secret_format(secret) {
                Err(ignored) => SourceStatus::Ignored(ignored),
                Ok((format, bytes)) => {
                    let parsed = parse_config(bytes, format).map_err(|e| e.at(&origin))?;
                    add_parsed(&mut layer, 0, parsed, source)
                }
            };
            reports.push(SourceReport { origin, status });
        }
        Ok(Keyring {
            layers: vec![layer],
            reports,
        })
    }

    /// The keyring of a docker config file (the node's credentials). The layout is
    /// `{"auths": {...}}` when an `auths` field is present; the legacy flat map when the file is
    /// named `.dockercfg`, or when every top-level field looks like a registry (contains `.`,
    /// `:` or `/`, or is `localhost`) and holds an object. Otherwise the document is read as a
    /// `config.json` without `auths` (no credentials; `credsStore`/`credHelpers` are invisible
    /// to the kubelet and reported as ignored fields).
    pub fn from_docker_config(
        path: impl Into<PathBuf>,
        bytes: &[u8],
    ) -> Result<Keyring, KeyringError> {
        let path = path.into();
        let origin = ConfigOrigin::DockerConfig { path: path.clone() };
        let json = parse_json(bytes).map_err(|message| KeyringError::Json {
            origin: origin.clone(),
            message,
        })?;
        let format = docker_config_format(&path, &json);
        let parsed = decode_config(&json, format).map_err(|e| e.at(&origin))?;
        let mut layer = Layer::default();
        let source = |key: &str| CredentialSource::DockerConfig {
            path: path.clone(),
            key: key.to_owned(),
        };
        let status = add_parsed(&mut layer, 0, parsed, source);
        Ok(Keyring {
            layers: vec![layer],
            reports: vec![SourceReport { origin, status }],
        })
    }

    /// The kubelet's keyring for a pod (§2.8): the pod's pull secrets (as fetched, in
    /// `imagePullSecrets` order) first, then the node's keyring.
    pub fn pod(
        secrets_in_order: &[&SecretObject],
        node: &Keyring,
    ) -> Result<Keyring, KeyringError> {
        Ok(Keyring::from_secrets(secrets_in_order.iter().copied())?.union(node.clone()))
    }

    /// `UnionDockerKeyring{self, other}`: lookups return `self`'s credentials, then `other`'s
    /// (each side with its own index order and Docker Hub fallback).
    pub fn union(mut self, other: Keyring) -> Keyring {
        let offset = self.layers.len();
        self.layers
            .extend(other.layers.into_iter().map(|mut layer| {
                for entry in &mut layer.entries {
                    entry.layer += offset;
                }
                layer
            }));
        self.reports.extend(other.reports);
        self
    }

    /// Whether the keyring holds no credential at all.
    pub fn is_empty(&self) -> bool {
        self.layers.iter().all(|l| l.entries.is_empty())
    }

    /// What became of each secret or file, in the order added.
    pub fn reports(&self) -> &[SourceReport] {
        &self.reports
    }

    /// Every entry, layer by layer in the order added, for "key X normalizes to Y" reports.
    pub fn entries(&self) -> impl Iterator<Item = &KeyringEntry> {
        self.layers.iter().flat_map(|l| l.entries.iter())
    }

    /// The distinct normalized keys of each layer, in the order they are tried.
    pub fn index(&self) -> Vec<Vec<&str>> {
        self.layers
            .iter()
            .map(|l| l.creds.keys().rev().map(String::as_str).collect())
            .collect()
    }

    /// The credentials the kubelet tries for `repo_to_pull` (the normalized repository,
    /// [`ImageReference::repository`]), in order. Empty means an anonymous pull.
    pub fn lookup(&self, repo_to_pull: &str) -> Vec<Credential> {
        self.lookup_detailed(repo_to_pull)
            .into_iter()
            .map(|hit| hit.credential.clone())
            .collect()
    }

    /// [`Keyring::lookup`] with the key that selected each credential.
    pub fn lookup_detailed(&self, repo_to_pull: &str) -> Vec<LookupHit<'_>> {
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            layer.lookup(repo_to_pull, i, &mut out);
        }
        out
    }

    /// [`Keyring::lookup`] for an image as written in a pod spec.
    pub fn lookup_image(&self, image: &str) -> Result<Vec<Credential>, ReferenceError> {
        Ok(self.lookup(&ImageReference::parse(image)?.repository()))
    }
}

/// The kubelet's message when every attempt failed (`utilerrors.NewAggregate`): the only
/// error as is, else the distinct messages as `[e1, e2]`; `None` for no error.
pub fn pull_error_message<S: AsRef<str>>(errors: &[S]) -> Option<String> {
    match errors {
        [] => None,
        [one] => Some(one.as_ref().to_owned()),
        _ => {
            let mut seen: Vec<&str> = Vec::new();
            for e in errors {
                if !seen.contains(&e.as_ref()) {
                    seen.push(e.as_ref());
                }
            }
            if seen.len() == 1 {
                Some(seen[0].to_owned())
            } else {
                Some(format!("[{}]", seen.join(", ")))
            }
        }
    }
}

/// The key an `auths` entry is indexed under (§2.6), or Go's `url.Parse` error, for which the
/// kubelet skips the entry.
pub fn normalize_key(written: &str) -> Result<String, String> {
    let value = if written.starts_with("https://") || written.starts_with("http://") {
        written.to_owned()
    } else {
        format!("https://{written}")
    };
    let parsed = go_url_parse(&value)?;
    let path = parsed.path.as_str();
    let effective = if path.starts_with("/v2/") || path.starts_with("/v1/") {
        &path[3..]
    } else {
        path
    };
    if !effective.is_empty() && effective != "/" {
        Ok(format!("{}{effective}", parsed.host))
    } else {
        Ok(parsed.host)
    }
}

/// `URLsMatchStr(key, repo)` with the reason for the outcome (§2.7). `key` is a normalized
/// key ([`normalize_key`]), `repo` a repository without tag or digest.
pub fn match_explanation(key: &str, repo: &str) -> MatchResult {
    let glob = match go_url_parse(&format!("https://{key}")) {
        Ok(u) => u,
        Err(e) => return MatchResult::KeyUnparseable(e),
    };
    let target = match go_url_parse(&format!("https://{repo}")) {
        Ok(u) => u,
        Err(e) => return MatchResult::RepoUnparseable(e),
    };
    let (glob_labels, glob_port) = split_url(&glob.host);
    let (target_labels, target_port) = split_url(&target.host);
    if glob_port != target_port {
        return MatchResult::PortDiffers {
            key_port: glob_port.to_owned(),
            repo_port: target_port.to_owned(),
        };
    }
    if glob_labels.len() != target_labels.len() {
        return MatchResult::LabelCount {
            key_labels: glob_labels.len(),
            repo_labels: target_labels.len(),
        };
    }
    if !target.path.starts_with(&glob.path) {
        return MatchResult::Path {
            key_path: glob.path,
            repo_path: target.path,
        };
    }
    for (index, (pattern, label)) in glob_labels.iter().zip(&target_labels).enumerate() {
        match go_filepath_match(pattern, label) {
            Ok(true) => {}
            Ok(false) => {
                return MatchResult::Label {
                    index,
                    pattern: (*pattern).to_owned(),
                    label: (*label).to_owned(),
                };
            }
            Err(()) => {
                return MatchResult::BadPattern {
                    index,
                    pattern: (*pattern).to_owned(),
                };
            }
        }
    }
    MatchResult::Match
}

/// `URLsMatchStr` as a yes/no (errors count as no, as in `Lookup`).
fn urls_match_str(key: &str, repo: &str) -> bool {
    match_explanation(key, repo).is_match()
}

/// `isDefaultRegistryMatch`: whether `repo` is pulled from Docker Hub, judged by its first
/// component.
pub fn is_default_registry_match(repo: &str) -> bool {
    let (first, rest) = match repo.split_once('/') {
        Some((first, rest)) => (first, Some(rest)),
        None => (repo, None),
    };
    if first.is_empty() {
        return false;
    }
    if rest.is_none() {
        return true;
    }
    if first == "docker.io" || first == "index.docker.io" {
        return true;
    }
    !first.contains(['.', ':'])
}

// ---------------------------------------------------------------------------------------------
// Secrets and documents
// ---------------------------------------------------------------------------------------------

/// Which layout the kubelet reads a secret as, or why it ignores it.
fn secret_format(secret: &SecretObject) -> Result<(ConfigFormat, &[u8]), SecretIgnored> {
    let keys = || secret.data.keys().cloned().collect::<Vec<_>>();
    let (format, key) = match secret.type_.as_str() {
        DOCKER_CONFIG_JSON_TYPE => (ConfigFormat::DockerConfigJson, DOCKER_CONFIG_JSON_KEY),
        DOCKERCFG_TYPE => (ConfigFormat::DockerCfg, DOCKERCFG_KEY),
        other => {
            return Err(SecretIgnored::WrongType {
                type_: other.to_owned(),
                keys: keys(),
            });
        }
    };
    match secret.data.get(key) {
        None => Err(SecretIgnored::MissingKey {
            type_: secret.type_.clone(),
            expected: key,
            keys: keys(),
        }),
        Some(bytes) if bytes.is_empty() => Err(SecretIgnored::EmptyKey {
            type_: secret.type_.clone(),
            key,
        }),
        Some(bytes) => Ok((format, bytes.as_slice())),
    }
}

fn docker_config_format(path: &Path, json: &Json) -> ConfigFormat {
    let Json::Object(fields) = json else {
        return ConfigFormat::DockerConfigJson;
    };
    if fields.iter().any(|(k, _)| go_fold_eq(k, "auths")) {
        return ConfigFormat::DockerConfigJson;
    }
    if path.file_name().is_some_and(|n| n == ".dockercfg") {
        return ConfigFormat::DockerCfg;
    }
    let looks_flat = !fields.is_empty()
        && fields.iter().all(|(k, v)| {
            (k.contains(['.', ':', '/']) || k == "localhost")
                && matches!(v, Json::Object(_) | Json::Null)
        });
    if looks_flat {
        ConfigFormat::DockerCfg
    } else {
        ConfigFormat::DockerConfigJson
    }
}

/// A decoded docker credentials document.
struct ParsedConfig {
    format: ConfigFormat,
    /// Entries in document order (a repeated key keeps its first position, last value).
    entries: Vec<(String, Entry)>,
    has_auths: bool,
    ignored_fields: Vec<String>,
}

/// A `DockerConfigEntry` after `auth` decoding.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Entry {
    username: String,
    password: String,
}

/// An error while decoding, before the origin is known.
enum DecodeError {
    Json(String),
    Auth { key: String, message: String },
}

impl DecodeError {
    fn at(self, origin: &ConfigOrigin) -> KeyringError {
        match self {
            DecodeError::Json(message) => KeyringError::Json {
                origin: origin.clone(),
                message,
            },
            DecodeError::Auth { key, message } => KeyringError::Auth {
                origin: origin.clone(),
                key,
                message,
            },
        }
    }
}

fn parse_config(bytes: &[u8], format: ConfigFormat) -> Result<ParsedConfig, DecodeError> {
    let json = parse_json(bytes).map_err(DecodeError::Json)?;
    decode_config(&json, format)
}

/// `json.Unmarshal` into `DockerConfigJSON` or `DockerConfig`.
fn decode_config(json: &Json, format: ConfigFormat) -> Result<ParsedConfig, DecodeError> {
    let mut parsed = ParsedConfig {
        format,
        entries: Vec::new(),
        has_auths: false,
        ignored_fields: Vec::new(),
    };
    // Go keeps the first type error and reports it once the document is read.
    let mut saved: Option<String> = None;
    match format {
        ConfigFormat::DockerConfigJson => match json {
            Json::Null => {}
            Json::Object(fields) => {
                for (name, value) in fields {
                    if go_fold_eq(name, "auths") {
                        parsed.has_auths = true;
                        match value {
                            Json::Null => {}
                            Json::Object(entries) => {
                                decode_entries(entries, &mut parsed.entries)?;
                            }
                            other => save(
                                &mut saved,
                                type_error(
                                    other,
                                    "Go struct field DockerConfigJSON.auths",
                                    "credentialprovider.DockerConfig",
                                ),
                            ),
                        }
                    } else if go_fold_eq(name, "httpheaders") {
                        match value {
                            Json::Null => {}
                            Json::Object(headers) => {
                                for (_, header) in headers {
                                    if !matches!(header, Json::String(_) | Json::Null) {
                                        save(
                                            &mut saved,
                                            type_error(
                                                header,
                                                "Go struct field DockerConfigJSON.HttpHeaders",
                                                "string",
                                            ),
                                        );
                                    }
                                }
                            }
                            other => save(
                                &mut saved,
                                type_error(
                                    other,
                                    "Go struct field DockerConfigJSON.HttpHeaders",
                                    "map[string]string",
                                ),
                            ),
                        }
                    } else {
                        parsed.ignored_fields.push(name.clone());
                    }
                }
            }
            other => save(
                &mut saved,
                type_error(other, "Go value", "credentialprovider.DockerConfigJSON"),
            ),
        },
        ConfigFormat::DockerCfg => match json {
            Json::Null => {}
            Json::Object(entries) => decode_entries(entries, &mut parsed.entries)?,
            other => save(
                &mut saved,
                type_error(other, "Go value", "credentialprovider.DockerConfig"),
            ),
        },
    }
    match saved {
        Some(message) => Err(DecodeError::Json(message)),
        None => Ok(parsed),
    }
}

fn save(saved: &mut Option<String>, message: String) {
    if saved.is_none() {
        *saved = Some(message);
    }
}

fn type_error(value: &Json, target: &str, type_: &str) -> String {
    format!(
        "json: cannot unmarshal {} into {target} of type {type_}",
        value.kind()
    )
}

/// Decodes a `map[string]DockerConfigEntry` into `out` (a repeated key replaces the value).
fn decode_entries(
    entries: &[(String, Json)],
    out: &mut Vec<(String, Entry)>,
) -> Result<(), DecodeError> {
    for (key, value) in entries {
        let entry = decode_entry(value).map_err(|e| match e {
            EntryError::Json(m) => DecodeError::Json(m),
            EntryError::Auth(message) => DecodeError::Auth {
                key: key.clone(),
                message,
            },
        })?;
        match out.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = entry,
            None => out.push((key.clone(), entry)),
        }
    }
    Ok(())
}

enum EntryError {
    Json(String),
    Auth(String),
}

/// `DockerConfigEntry.UnmarshalJSON`.
fn decode_entry(value: &Json) -> Result<Entry, EntryError> {
    let fields = match value {
        Json::Null => return Ok(Entry::default()),
        Json::Object(fields) => fields,
        other => {
            return Err(EntryError::Json(type_error(
                other,
                "Go value",
                "credentialprovider.dockerConfigEntryWithAuth",
            )));
        }
    };
    let (mut username, mut password, mut auth) = (String::new(), String::new(), String::new());
    let mut saved = None;
    for (name, value) in fields {
        let (slot, field) = if go_fold_eq(name, "username") {
            (&mut username, "username")
        } else if go_fold_eq(name, "password") {
            (&mut password, "password")
        } else if go_fold_eq(name, "auth") {
            (&mut auth, "auth")
        } else if go_fold_eq(name, "email") {
            // Read (and type-checked) by the kubelet, but not part of a credential here.
            match value {
                Json::String(_) | Json::Null => {}
                other => save(
                    &mut saved,
                    type_error(
                        other,
                        "Go struct field dockerConfigEntryWithAuth.email",
                        "string",
                    ),
                ),
            }
            continue;
        } else {
            continue;
        };
        match value {
            Json::String(s) => *slot = s.clone(),
            Json::Null => {}
            other => save(
                &mut saved,
                type_error(
                    other,
                    &format!("Go struct field dockerConfigEntryWithAuth.{field}"),
                    "string",
                ),
            ),
        }
    }
    if let Some(message) = saved {
        return Err(EntryError::Json(message));
    }
    if auth.is_empty() {
        return Ok(Entry { username, password });
    }
    let (username, password) = decode_auth_field(&auth).map_err(EntryError::Auth)?;
    Ok(Entry { username, password })
}

/// `decodeDockerConfigFieldAuth`: padded base64 when the trimmed value ends with `=`, else
/// unpadded; split on the first `:`.
fn decode_auth_field(field: &str) -> Result<(String, String), String> {
    let padded = field.trim().ends_with('=');
    let decoded = go_base64_decode(field, padded)?;
    let decoded = String::from_utf8_lossy(&decoded);
    match decoded.split_once(':') {
        Some((user, pass)) => Ok((user.to_owned(), pass.to_owned())),
        None => Err(AUTH_FORMAT_ERROR.to_owned()),
    }
}

/// Adds a decoded document to a layer (`BasicDockerKeyring.Add`) and reports it.
fn add_parsed(
    layer: &mut Layer,
    layer_index: usize,
    parsed: ParsedConfig,
    source: impl Fn(&str) -> CredentialSource,
) -> SourceStatus {
    let mut invalid_keys = Vec::new();
    let mut added = 0;
    for (written, entry) in parsed.entries {
        let normalized = match normalize_key(&written) {
            Ok(key) => key,
            Err(error) => {
                invalid_keys.push(InvalidKey {
                    key: written,
                    error,
                });
                continue;
            }
        };
        let credential = Credential {
            username: entry.username,
            password: entry.password,
            source: source(&written),
        };
        layer
            .creds
            .entry(normalized.clone())
            .or_default()
            .push(credential.clone());
        layer.entries.push(KeyringEntry {
            written,
            normalized,
            credential,
            layer: layer_index,
        });
        added += 1;
    }
    SourceStatus::Used {
        format: parsed.format,
        entries: added,
        has_auths: parsed.has_auths,
        ignored_fields: parsed.ignored_fields,
        invalid_keys,
    }
}

// ---------------------------------------------------------------------------------------------
// JSON with Go's decoding behaviour
// ---------------------------------------------------------------------------------------------

/// A JSON value keeping object members in document order (Go decodes in that order, which
/// decides which type error is reported and how repeated keys merge).
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool,
    Number,
    String(String),
    Array,
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Go's name for the JSON type in `UnmarshalTypeError`.
    fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool => "bool",
            Json::Number => "number",
            Json::String(_) => "string",
            Json::Array => "array",
            Json::Object(_) => "object",
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        struct JsonVisitor;
        impl<'de> Visitor<'de> for JsonVisitor {
            type Value = Json;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_none<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Json, E> {
                Ok(Json::Bool)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Json, E> {
                Ok(Json::Number)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Json, E> {
                Ok(Json::Number)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Json, E> {
                Ok(Json::Number)
            }
            fn visit_str<E>(self, v: &str) -> Result<Json, E> {
                Ok(Json::String(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Json, E> {
                Ok(Json::String(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
                while seq.next_element::<Json>()?.is_some() {}
                Ok(Json::Array)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
                // Every member is kept, repeated keys included: whether a repeat replaces or
                // merges depends on the Go type decoded into, which the decoders above apply.
                let mut fields: Vec<(String, Json)> = Vec::new();
                while let Some(member) = map.next_entry::<String, Json>()? {
                    fields.push(member);
                }
                Ok(Json::Object(fields))
            }
        }
        deserializer.deserialize_any(JsonVisitor)
    }
}

/// Parses JSON as Go does for these documents: invalid UTF-8 is replaced by U+FFFD.
fn parse_json(bytes: &[u8]) -> Result<Json, String> {
    let text = String::from_utf8_lossy(bytes);
    serde_json::from_str::<Json>(&text).map_err(|e| e.to_string())
}

/// Go's `encoding/json` field-name matching: ASCII case-insensitive, plus the two non-ASCII
/// letters whose simple case folding reaches ASCII (`ſ` ~ `s`, Kelvin sign ~ `k`).
fn go_fold_eq(name: &str, lower_ascii: &str) -> bool {
    let fold = |c: char| match c {
        '\u{17F}' => 'S',
        '\u{212A}' => 'K',
        c => c.to_ascii_uppercase(),
    };
    name.chars()
        .map(fold)
        .eq(lower_ascii.chars().map(|c| c.to_ascii_uppercase()))
}

// ---------------------------------------------------------------------------------------------
// Go's base64 (StdEncoding / RawStdEncoding), for exact error offsets
// ---------------------------------------------------------------------------------------------

fn base64_value(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Go's `base64.StdEncoding.DecodeString` (`padded`) or `RawStdEncoding.DecodeString`:
/// `\r` and `\n` are skipped anywhere, trailing bits need not be zero, and errors read
/// `illegal base64 data at input byte N` with Go's offset.
pub(crate) fn go_base64_decode(input: &str, padded: bool) -> Result<Vec<u8>, String> {
    let src = input.as_bytes();
    let corrupt = |at: usize| format!("illegal base64 data at input byte {at}");
    let mut out = Vec::with_capacity(src.len() / 4 * 3 + 3);
    let mut si = 0;
    while si < src.len() {
        // decodeQuantum
        let mut dbuf = [0u8; 4];
        let mut dlen = 4;
        let mut trailing_error = None;
        let mut j = 0;
        while j < 4 {
            if si == src.len() {
                if j == 0 {
                    return Ok(out);
                }
                if j == 1 || padded {
                    return Err(corrupt(si - j));
                }
                dlen = j;
                break;
            }
            let c = src[si];
            si += 1;
            if let Some(v) = base64_value(c) {
                dbuf[j] = v;
                j += 1;
                continue;
            }
            if c == b'\n' || c == b'\r' {
                continue;
            }
            if !padded || c != b'=' {
                return Err(corrupt(si - 1));
            }
            // Padding.
            match j {
                0 | 1 => return Err(corrupt(si - 1)),
                2 => {
                    while si < src.len() && (src[si] == b'\n' || src[si] == b'\r') {
                        si += 1;
                    }
                    if si == src.len() {
                        return Err(corrupt(src.len()));
                    }
                    if src[si] != b'=' {
                        return Err(corrupt(si - 1));
                    }
                    si += 1;
                }
                _ => {}
            }
            while si < src.len() && (src[si] == b'\n' || src[si] == b'\r') {
                si += 1;
            }
            if si < src.len() {
                trailing_error = Some(corrupt(si));
            }
            dlen = j;
            break;
        }
        let val = (u32::from(dbuf[0]) << 18)
            | (u32::from(dbuf[1]) << 12)
            | (u32::from(dbuf[2]) << 6)
            | u32::from(dbuf[3]);
        let bytes = [(val >> 16) as u8, (val >> 8) as u8, val as u8];
        out.extend_from_slice(&bytes[..dlen - 1]);
        if let Some(e) = trailing_error {
            return Err(e);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Go's net/url.Parse, the parts the keyring depends on
// ---------------------------------------------------------------------------------------------

/// The host (unescaped, case preserved, with `:port`) and the unescaped path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GoUrl {
    host: String,
    path: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Escape {
    Host,
    Path,
    Other,
}

/// `url.Parse` of a string that starts with `https://` or `http://`.
fn go_url_parse(raw: &str) -> Result<GoUrl, String> {
    let (without_fragment, fragment) = match raw.split_once('#') {
        Some((u, f)) => (u, Some(f)),
        None => (raw, None),
    };
    let url = parse_without_fragment(without_fragment)
        .map_err(|e| format!("parse {without_fragment:?}: {e}"))?;
    if let Some(fragment) = fragment {
        unescape(fragment, Escape::Other).map_err(|e| format!("parse {raw:?}: {e}"))?;
    }
    Ok(url)
}

fn parse_without_fragment(raw: &str) -> Result<GoUrl, String> {
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("net/url: invalid control character in URL".to_owned());
    }
    let rest = raw
        .strip_prefix("https:")
        .or_else(|| raw.strip_prefix("http:"))
        .ok_or_else(|| "missing protocol scheme".to_owned())?;
    let rest = if rest.ends_with('?') && rest.matches('?').count() == 1 {
        &rest[..rest.len() - 1]
    } else {
        rest.split_once('?').map_or(rest, |(before, _)| before)
    };
    let Some(after_slashes) = rest.strip_prefix("//") else {
        return Ok(GoUrl {
            host: String::new(),
            path: unescape(rest, Escape::Path)?,
        });
    };
    let (authority, path) = match after_slashes.find('/') {
        Some(i) => (&after_slashes[..i], &after_slashes[i..]),
        None => (after_slashes, ""),
    };
    let host = parse_authority(authority)?;
    Ok(GoUrl {
        host,
        path: unescape(path, Escape::Path)?,
    })
}

fn parse_authority(authority: &str) -> Result<String, String> {
    let Some(at) = authority.rfind('@') else {
        return parse_host(authority);
    };
    let host = parse_host(&authority[at + 1..])?;
    let userinfo = &authority[..at];
    let valid = userinfo.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                '-' | '.'
                    | '_'
                    | ':'
                    | '~'
                    | '!'
                    | '$'
                    | '&'
                    | '\''
                    | '('
                    | ')'
                    | '*'
                    | '+'
                    | ','
                    | ';'
                    | '='
                    | '%'
                    | '@'
            )
    });
    if !valid {
        return Err("net/url: invalid userinfo".to_owned());
    }
    match userinfo.split_once(':') {
        Some((user, pass)) => {
            unescape(user, Escape::Other)?;
            unescape(pass, Escape::Other)?;
        }
        None => {
            unescape(userinfo, Escape::Other)?;
        }
    }
    Ok(host)
}

fn valid_optional_port(port: &str) -> bool {
    port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
}

fn parse_host(host: &str) -> Result<String, String> {
    if host.starts_with('[') {
        let Some(close) = host.rfind(']') else {
            return Err("missing ']' in host".to_owned());
        };
        let colon_port = &host[close + 1..];
        if !valid_optional_port(colon_port) {
            return Err(format!("invalid port {colon_port:?} after host"));
        }
    } else if let Some(colon) = host.rfind(':') {
        let colon_port = &host[colon..];
        if !valid_optional_port(colon_port) {
            return Err(format!("invalid port {colon_port:?} after host"));
        }
    }
    unescape(host, Escape::Host)
}

/// Characters a host may hold unescaped (`shouldEscape(c, encodeHost)` is false).
fn host_char_allowed(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'-' | b'_'
                | b'.'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'['
                | b']'
                | b'<'
                | b'>'
                | b'"'
        )
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Go's `unescape`: validates `%XX` escapes (and host characters), then decodes.
fn unescape(s: &str, mode: Escape) -> Result<String, String> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut decoded = Vec::with_capacity(b.len());
    while i < b.len() {
        match b[i] {
            b'%' => {
                let valid = i + 2 < b.len()
                    && hex_value(b[i + 1]).is_some()
                    && hex_value(b[i + 2]).is_some();
                if !valid {
                    let end = (i + 3).min(b.len());
                    return Err(format!(
                        "invalid URL escape {:?}",
                        String::from_utf8_lossy(&b[i..end])
                    ));
                }
                let hi = hex_value(b[i + 1]).unwrap_or(0);
                let lo = hex_value(b[i + 2]).unwrap_or(0);
                if mode == Escape::Host && hi < 8 && &s[i..i + 3] != "%25" {
                    return Err(format!("invalid URL escape {:?}", &s[i..i + 3]));
                }
                decoded.push(hi << 4 | lo);
                i += 3;
            }
            c => {
                if mode == Escape::Host && c < 0x80 && !host_char_allowed(c) {
                    return Err(format!(
                        "invalid character {:?} in host name",
                        (c as char).to_string()
                    ));
                }
                decoded.push(c);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&decoded).into_owned())
}

/// `SplitURL`: host labels and port (`net.SplitHostPort`; on its error the whole host and no
/// port).
fn split_url(host: &str) -> (Vec<&str>, &str) {
    let (name, port) = split_host_port(host).unwrap_or((host, ""));
    (name.split('.').collect(), port)
}

/// `net.SplitHostPort`.
fn split_host_port(hostport: &str) -> Option<(&str, &str)> {
    let last_colon = hostport.rfind(':')?;
    let (host, j, k);
    if hostport.starts_with('[') {
        let end = hostport.find(']')?;
        if end + 1 == hostport.len() || end + 1 != last_colon {
            return None;
        }
        host = &hostport[1..end];
        j = 1;
        k = end + 1;
    } else {
        host = &hostport[..last_colon];
        if host.contains(':') {
            return None;
        }
        j = 0;
        k = 0;
    }
    if hostport[j..].contains('[') || hostport[k..].contains(']') {
        return None;
    }
    Some((host, &hostport[last_colon + 1..]))
}

// ---------------------------------------------------------------------------------------------
// Go's path/filepath.Match (Unix separator)
// ---------------------------------------------------------------------------------------------

/// `filepath.Match(pattern, name)`; `Err(())` is `ErrBadPattern`.
fn go_filepath_match(pattern: &str, name: &str) -> Result<bool, ()> {
    let mut pattern = pattern;
    let mut name = name;
    'pattern: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            return Ok(!name.contains('/'));
        }
        let (t, ok, bad) = match_chunk(chunk, name);
        if ok && (t.is_empty() || !pattern.is_empty()) {
            name = t;
            continue;
        }
        if bad {
            return Err(());
        }
        if star {
            for (i, c) in name.char_indices() {
                if c == '/' {
                    break;
                }
                let (t, ok, bad) = match_chunk(chunk, &name[i + c.len_utf8()..]);
                if ok {
                    if pattern.is_empty() && !t.is_empty() {
                        continue;
                    }
                    name = t;
                    continue 'pattern;
                }
                if bad {
                    return Err(());
                }
            }
        }
        while !pattern.is_empty() {
            let (_, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            if match_chunk(chunk, "").2 {
                return Err(());
            }
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

fn scan_chunk(pattern: &str) -> (bool, &str, &str) {
    let mut p = pattern;
    let mut star = false;
    while let Some(rest) = p.strip_prefix('*') {
        p = rest;
        star = true;
    }
    let b = p.as_bytes();
    let mut in_range = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if i + 1 < b.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    // `i` stops at a `*` or the end, both character boundaries; an escaped multi-byte
    // character is walked over byte by byte like Go does.
    let i = (0..=i).rev().find(|&n| p.is_char_boundary(n)).unwrap_or(0);
    (star, &p[..i], &p[i..])
}

/// `matchChunk`: (rest of name, matched, bad pattern).
fn match_chunk<'n>(chunk: &str, s: &'n str) -> (&'n str, bool, bool) {
    let mut chunk = chunk;
    let mut s = s;
    let mut failed = false;
    while let Some(c0) = chunk.chars().next() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match c0 {
            '[' => {
                let mut r = None;
                if !failed && let Some(ch) = s.chars().next() {
                    r = Some(ch);
                    s = &s[ch.len_utf8()..];
                }
                chunk = &chunk[1..];
                let mut negated = false;
                if let Some(rest) = chunk.strip_prefix('^') {
                    negated = true;
                    chunk = rest;
                }
                let mut matched = false;
                let mut ranges = 0;
                loop {
                    if ranges > 0
                        && let Some(rest) = chunk.strip_prefix(']')
                    {
                        chunk = rest;
                        break;
                    }
                    let Ok((lo, rest)) = get_esc(chunk) else {
                        return ("", false, true);
                    };
                    chunk = rest;
                    let mut hi = lo;
                    if let Some(rest) = chunk.strip_prefix('-') {
                        let Ok((h, rest)) = get_esc(rest) else {
                            return ("", false, true);
                        };
                        hi = h;
                        chunk = rest;
                    }
                    if r.is_some_and(|r| lo <= r && r <= hi) {
                        matched = true;
                    }
                    ranges += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            '?' => {
                if !failed && let Some(ch) = s.chars().next() {
                    if ch == '/' {
                        failed = true;
                    }
                    s = &s[ch.len_utf8()..];
                }
                chunk = &chunk[1..];
            }
            _ => {
                let literal = if c0 == '\\' {
                    chunk = &chunk[1..];
                    match chunk.chars().next() {
                        Some(c) => c,
                        None => return ("", false, true),
                    }
                } else {
                    c0
                };
                if !failed && let Some(ch) = s.chars().next() {
                    if ch != literal {
                        failed = true;
                    }
                    s = &s[ch.len_utf8()..];
                }
                chunk = &chunk[literal.len_utf8()..];
            }
        }
    }
    if failed {
        ("", false, false)
    } else {
        (s, true, false)
    }
}

/// `getEsc`: one (possibly escaped) character of a `[...]` class.
fn get_esc(chunk: &str) -> Result<(char, &str), ()> {
    if chunk.is_empty() || chunk.starts_with('-') || chunk.starts_with(']') {
        return Err(());
    }
    let chunk = match chunk.strip_prefix('\\') {
        Some("") => return Err(()),
        Some(rest) => rest,
        None => chunk,
    };
    let c = chunk.chars().next().ok_or(())?;
    let rest = &chunk[c.len_utf8()..];
    if rest.is_empty() {
        return Err(());
    }
    Ok((c, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    const REPO: &str = "phx.ocir.io/ansh81vru1zp/project01/ngnix-lb";
    const HEX: &str = "e7a4c186eef137a75caacae308765dc2fbb2f57c36d95c0b3ccf6efe6d912ec1";

    fn secret(namespace: &str, name: &str, type_: &str, key: &str, value: &str) -> SecretObject {
        SecretObject {
            namespace: namespace.into(),
            name: name.into(),
            type_: type_.into(),
            data: BTreeMap::from([(key.to_owned(), value.as_bytes().to_vec())]),
        }
    }

    fn auths(entries: &[(&str, &str, &str)]) -> String {
        let inner: Vec<String> = entries
            .iter()
            .map(|(server, user, pass)| {
                let auth = STANDARD.encode(format!("{user}:{pass}"));
                format!(r#"{server:?}:{{"username":{user:?},"password":{pass:?},"auth":"{auth}"}}"#)
            })
            .collect();
        format!(r#"{{"auths":{{{}}}}}"#, inner.join(","))
    }

    fn pull_secret(name: &str, entries: &[(&str, &str, &str)]) -> SecretObject {
        secret(
            "default",
            name,
            DOCKER_CONFIG_JSON_TYPE,
            DOCKER_CONFIG_JSON_KEY,
            &auths(entries),
        )
    }

    fn ignored_code(secret: &SecretObject) -> &'static str {
        let keyring = Keyring::from_secret(secret).unwrap();
        match &keyring.reports()[0].status {
            SourceStatus::Ignored(why) => why.code(),
            other => panic!("not ignored: {other:?}"),
        }
    }

    fn users(creds: &[Credential]) -> Vec<&str> {
        creds.iter().map(|c| c.username.as_str()).collect()
    }

    // §2.2: the repository (lookup key) of each image reference in the table.
    #[test]
    fn spec_2_2_repo_to_pull_table() {
        let digest = format!("sha256:{HEX}");
        let table: [(String, &str, Option<&str>, Option<&str>); 6] = [
            (
                "nginx".into(),
                "docker.io/library/nginx",
                Some("latest"),
                None,
            ),
            ("jdoe/app:1".into(), "docker.io/jdoe/app", Some("1"), None),
            (
                "phx.ocir.io/ansh81vru1zp/project01/ngnix-lb:latest".into(),
                REPO,
                Some("latest"),
                None,
            ),
            (
                format!("phx.ocir.io/ns/repo@{digest}"),
                "phx.ocir.io/ns/repo",
                None,
                Some(&digest),
            ),
            (
                format!("phx.ocir.io/ns/repo:v1@{digest}"),
                "phx.ocir.io/ns/repo",
                Some("v1"),
                Some(&digest),
            ),
            (
                "localhost:5000/x".into(),
                "localhost:5000/x",
                Some("latest"),
                None,
            ),
        ];
        for (image, repo, tag, digest) in table {
            let r = ImageReference::parse(&image).unwrap();
            assert_eq!(r.repository(), repo, "{image}");
            assert_eq!(r.tag.as_deref(), tag, "{image}");
            assert_eq!(r.digest.as_deref(), digest, "{image}");
        }
        // And the keyring is consulted with that repository.
        let keyring = Keyring::from_secret(&pull_secret(
            "s",
            &[
                ("localhost:5000", "local", "p"),
                ("phx.ocir.io", "ocir", "p"),
            ],
        ))
        .unwrap();
        assert_eq!(
            users(&keyring.lookup_image("localhost:5000/x").unwrap()),
            ["local"]
        );
        assert_eq!(
            users(
                &keyring
                    .lookup_image(&format!("phx.ocir.io/ns/repo:v1@sha256:{HEX}"))
                    .unwrap()
            ),
            ["ocir"]
        );
        assert!(keyring.lookup_image("a//b").is_err());
    }

    // §2.3: imagePullPolicy defaulting table.
    #[test]
    fn spec_2_3_pull_policy_table() {
        use crate::reference::default_pull_policy;
        let table = [
            ("repo".to_owned(), "Always"),
            ("repo:latest".to_owned(), "Always"),
            ("repo:v1".to_owned(), "IfNotPresent"),
            (format!("repo@sha256:{HEX}"), "IfNotPresent"),
            (format!("repo:latest@sha256:{HEX}"), "Always"),
            ("repo:LATEST".to_owned(), "IfNotPresent"),
            ("Not//Parseable".to_owned(), "IfNotPresent"),
        ];
        for (image, policy) in table {
            assert_eq!(default_pull_policy(&image), policy, "{image}");
        }
    }

    // §2.6 and §2.7: normalized key and match result for each key of the table.
    #[test]
    fn spec_2_7_vector_table() {
        let table: [(&str, &str, bool); 11] = [
            ("phx.ocir.io", "phx.ocir.io", true),
            ("https://phx.ocir.io/v2/", "phx.ocir.io", true),
            ("https://phx.ocir.io/v1/", "phx.ocir.io", true),
            ("*.ocir.io", "*.ocir.io", true),
            ("phx.ocir.io/ansh81vru1zp", "phx.ocir.io/ansh81vru1zp", true),
            ("phx.ocir.io/ansh81", "phx.ocir.io/ansh81", true),
            ("phx.ocir.io/other", "phx.ocir.io/other", false),
            ("phx.ocir.io:443", "phx.ocir.io:443", false),
            ("PHX.ocir.io", "PHX.ocir.io", false),
            ("iad.ocir.io", "iad.ocir.io", false),
            ("us-phoenix-1.ocir.io", "us-phoenix-1.ocir.io", false),
        ];
        for (written, normalized, matches) in table {
            assert_eq!(normalize_key(written).unwrap(), normalized, "{written}");
            assert_eq!(
                match_explanation(normalized, REPO).is_match(),
                matches,
                "{written}"
            );
            // The same through a keyring built from a secret.
            let keyring = Keyring::from_secret(&pull_secret("s", &[(written, "u", "p")])).unwrap();
            let entry = keyring.entries().next().unwrap();
            assert_eq!(entry.written, written);
            assert_eq!(entry.normalized, normalized);
            assert_eq!(entry.matches(REPO), matches, "{written}");
            assert_eq!(
                keyring.lookup(REPO).len(),
                usize::from(matches),
                "{written}"
            );
        }

        // The reasons.
        assert_eq!(
            match_explanation("phx.ocir.io/other", REPO),
            MatchResult::Path {
                key_path: "/other".into(),
                repo_path: "/ansh81vru1zp/project01/ngnix-lb".into()
            }
        );
        assert_eq!(
            match_explanation("phx.ocir.io:443", REPO),
            MatchResult::PortDiffers {
                key_port: "443".into(),
                repo_port: String::new()
            }
        );
        assert_eq!(
            match_explanation("PHX.ocir.io", REPO),
            MatchResult::Label {
                index: 0,
                pattern: "PHX".into(),
                label: "phx".into()
            }
        );
        assert_eq!(
            match_explanation("PHX.ocir.io", REPO).to_string(),
            "does not match (label 1: \"PHX\" vs \"phx\")"
        );
        assert_eq!(
            match_explanation("iad.ocir.io", REPO),
            MatchResult::Label {
                index: 0,
                pattern: "iad".into(),
                label: "phx".into()
            }
        );
        assert_eq!(
            match_explanation("us-phoenix-1.ocir.io", REPO),
            MatchResult::Label {
                index: 0,
                pattern: "us-phoenix-1".into(),
                label: "phx".into()
            }
        );

        // The long host form.
        let long = "ocir.us-phoenix-1.oci.oraclecloud.com/ns/repo";
        assert_eq!(
            match_explanation("*.ocir.io", long),
            MatchResult::LabelCount {
                key_labels: 3,
                repo_labels: 5
            }
        );
        assert_eq!(
            match_explanation("*.ocir.io", long).to_string(),
            "does not match (label count: key host has 3, image host has 5)"
        );
        assert!(match_explanation("*.*.*.oraclecloud.com", long).is_match());

        // The Docker Hub default key: no URL match, but the fallback.
        assert_eq!(
            normalize_key("https://index.docker.io/v1/").unwrap(),
            "index.docker.io"
        );
        assert!(!match_explanation("index.docker.io", "docker.io/library/nginx").is_match());
        let hub = Keyring::from_secret(&pull_secret(
            "hub",
            &[("https://index.docker.io/v1/", "hubuser", "p")],
        ))
        .unwrap();
        let hits = hub.lookup_detailed("docker.io/library/nginx");
        assert_eq!(hits.len(), 1);
        assert!(hits[0].docker_hub_fallback);
        assert_eq!(hits[0].key, "index.docker.io");
        assert_eq!(hits[0].credential.username, "hubuser");
        assert!(hub.lookup(REPO).is_empty());
    }

    // §2.6: normalization rules.
    #[test]
    fn spec_2_6_normalization() {
        let cases = [
            ("https://phx.ocir.io/v2/x", "phx.ocir.io/x"),
            ("https://phx.ocir.io/v2/", "phx.ocir.io"),
            ("https://phx.ocir.io/v1/", "phx.ocir.io"),
            ("phx.ocir.io/v2", "phx.ocir.io/v2"),
            ("http://phx.ocir.io/ns/", "phx.ocir.io/ns/"),
            ("phx.ocir.io/", "phx.ocir.io"),
            ("localhost:5000", "localhost:5000"),
            ("MiXeD.Example.COM", "MiXeD.Example.COM"),
            ("user:pw@reg.io/ns", "reg.io/ns"),
            ("reg.io/a%20b", "reg.io/a b"),
            ("reg.io/ns?x=1", "reg.io/ns"),
            ("reg.io#frag", "reg.io"),
            ("[::1]:5000/x", "[::1]:5000/x"),
            ("reg.io:", "reg.io:"),
            // Only a lowercase scheme is recognised; anything else gets one prepended.
            ("HTTPS://reg.io", "HTTPS://reg.io"),
        ];
        for (written, key) in cases {
            assert_eq!(normalize_key(written).as_deref(), Ok(key), "{written}");
        }
        let errors = [
            (
                "reg.io:abc",
                "parse \"https://reg.io:abc\": invalid port \":abc\" after host",
            ),
            (
                "reg io",
                "parse \"https://reg io\": invalid character \" \" in host name",
            ),
            (
                "reg.io/%zz",
                "parse \"https://reg.io/%zz\": invalid URL escape \"%zz\"",
            ),
            (
                "reg.io/%4",
                "parse \"https://reg.io/%4\": invalid URL escape \"%4\"",
            ),
            (
                "re%41g.io",
                "parse \"https://re%41g.io\": invalid URL escape \"%41\"",
            ),
            ("[::1", "parse \"https://[::1\": missing ']' in host"),
            (
                "reg.io\n",
                "parse \"https://reg.io\\n\": net/url: invalid control character in URL",
            ),
            (
                "a b@reg.io",
                "parse \"https://a b@reg.io\": net/url: invalid userinfo",
            ),
        ];
        for (written, error) in errors {
            assert_eq!(normalize_key(written), Err(error.to_owned()), "{written}");
        }
    }

    // §2.6 step 5: distinct keys, reverse lexicographic.
    #[test]
    fn spec_2_6_index_order() {
        let s = pull_secret(
            "s",
            &[
                ("*.ocir.io", "glob", "p"),
                ("phx.ocir.io", "host", "p"),
                ("phx.ocir.io/ns", "ns", "p"),
                ("https://phx.ocir.io/v2/", "host-v2", "p"),
            ],
        );
        let keyring = Keyring::from_secret(&s).unwrap();
        assert_eq!(
            keyring.index(),
            vec![vec!["phx.ocir.io/ns", "phx.ocir.io", "*.ocir.io"]]
        );
        // All three keys match phx.ocir.io/ns/app; within a key, entries keep their order.
        assert_eq!(
            users(&keyring.lookup("phx.ocir.io/ns/app")),
            ["ns", "host", "host-v2", "glob"]
        );
        assert_eq!(
            users(&keyring.lookup("phx.ocir.io/other/app")),
            ["host", "host-v2", "glob"]
        );
        assert_eq!(users(&keyring.lookup("fra.ocir.io/ns/app")), ["glob"]);
    }

    // §2.8: several secrets share one index; secret order within a key; node config after.
    #[test]
    fn spec_2_8_composition_and_order() {
        let first = pull_secret("first", &[("phx.ocir.io", "a1", "p")]);
        let second = pull_secret(
            "second",
            &[("phx.ocir.io", "b1", "p"), ("phx.ocir.io/ns", "b2", "p")],
        );
        let node = Keyring::from_docker_config(
            "/var/lib/kubelet/config.json",
            auths(&[
                ("phx.ocir.io", "node", "p"),
                ("https://index.docker.io/v1/", "nodehub", "p"),
            ])
            .as_bytes(),
        )
        .unwrap();
        let pod = Keyring::pod(&[&first, &second], &node).unwrap();
        let hits = pod.lookup_detailed("phx.ocir.io/ns/app");
        let got: Vec<(&str, usize)> = hits
            .iter()
            .map(|h| (h.credential.username.as_str(), h.layer))
            .collect();
        assert_eq!(got, [("b2", 0), ("a1", 0), ("b1", 0), ("node", 1)]);
        assert_eq!(
            hits[0].credential.source,
            CredentialSource::Secret {
                namespace: "default".into(),
                name: "second".into(),
                key: "phx.ocir.io/ns".into()
            }
        );
        assert_eq!(
            hits[3].credential.source,
            CredentialSource::DockerConfig {
                path: "/var/lib/kubelet/config.json".into(),
                key: "phx.ocir.io".into()
            }
        );
        // Each layer applies its own Docker Hub fallback.
        assert_eq!(users(&pod.lookup("docker.io/library/nginx")), ["nodehub"]);
        // No pod secrets: just the node.
        let bare = Keyring::pod(&[], &node).unwrap();
        assert_eq!(users(&bare.lookup("phx.ocir.io/x/y")), ["node"]);
        // Entries list every layer with its number.
        let layers: Vec<(String, usize)> = pod
            .entries()
            .map(|e| (e.written.clone(), e.layer))
            .collect();
        assert_eq!(layers.len(), 5);
        assert_eq!(layers[3], ("phx.ocir.io".into(), 1));
        // Union of two unions keeps numbering.
        let both = pod.clone().union(node.clone());
        assert_eq!(both.entries().last().unwrap().layer, 2);
        assert_eq!(both.reports().len(), 4);
        // Empty username/password pairs are legal credentials.
        let empty = secret(
            "default",
            "e",
            DOCKER_CONFIG_JSON_TYPE,
            DOCKER_CONFIG_JSON_KEY,
            r#"{"auths":{"phx.ocir.io":{}}}"#,
        );
        let creds = Keyring::from_secret(&empty).unwrap().lookup(REPO);
        assert_eq!(creds.len(), 1);
        assert_eq!(
            (creds[0].username.as_str(), creds[0].password.as_str()),
            ("", "")
        );
    }

    // §2.5: which secrets are read.
    #[test]
    fn spec_2_5_secret_types() {
        let body = auths(&[("phx.ocir.io", "u", "p")]);
        let ok = Keyring::from_secret(&pull_secret("ok", &[("phx.ocir.io", "u", "p")])).unwrap();
        assert!(matches!(
            &ok.reports()[0].status,
            SourceStatus::Used {
                format: ConfigFormat::DockerConfigJson,
                entries: 1,
                has_auths: true,
                ..
            }
        ));

        // Legacy type with a flat map.
        let legacy = secret(
            "default",
            "legacy",
            DOCKERCFG_TYPE,
            DOCKERCFG_KEY,
            r#"{"phx.ocir.io":{"username":"u","password":"p"}}"#,
        );
        let keyring = Keyring::from_secret(&legacy).unwrap();
        assert_eq!(users(&keyring.lookup(REPO)), ["u"]);

        // Opaque with a .dockerconfigjson key: silently ignored.
        let opaque = secret("default", "opaque", "Opaque", DOCKER_CONFIG_JSON_KEY, &body);
        let keyring = Keyring::from_secret(&opaque).unwrap();
        assert!(keyring.is_empty());
        let SourceStatus::Ignored(why) = &keyring.reports()[0].status else {
            panic!("not ignored")
        };
        assert_eq!(why.code(), "secret-wrong-type");
        assert_eq!(
            why,
            &SecretIgnored::WrongType {
                type_: "Opaque".into(),
                keys: vec![DOCKER_CONFIG_JSON_KEY.into()]
            }
        );
        assert!(
            why.to_string()
                .starts_with("type \"Opaque\" is ignored by the kubelet")
        );

        // Right type, wrong key (dockerconfigjson type with a .dockercfg key and vice versa).
        let mixed = secret(
            "default",
            "m",
            DOCKER_CONFIG_JSON_TYPE,
            DOCKERCFG_KEY,
            &body,
        );
        let keyring = Keyring::from_secret(&mixed).unwrap();
        let SourceStatus::Ignored(why) = &keyring.reports()[0].status else {
            panic!("not ignored")
        };
        assert_eq!(why.code(), "secret-missing-key");
        let mixed = secret(
            "default",
            "m",
            DOCKERCFG_TYPE,
            DOCKER_CONFIG_JSON_KEY,
            &body,
        );
        assert_eq!(ignored_code(&mixed), "secret-missing-key");

        // Empty key.
        let empty = secret(
            "default",
            "e",
            DOCKER_CONFIG_JSON_TYPE,
            DOCKER_CONFIG_JSON_KEY,
            "",
        );
        assert_eq!(ignored_code(&empty), "secret-empty-key");

        // Flat .dockercfg content under .dockerconfigjson: read, but nothing in it.
        let flat = secret(
            "default",
            "flat",
            DOCKER_CONFIG_JSON_TYPE,
            DOCKER_CONFIG_JSON_KEY,
            r#"{"phx.ocir.io":{"username":"u","password":"p"}}"#,
        );
        let keyring = Keyring::from_secret(&flat).unwrap();
        assert!(keyring.is_empty());
        assert_eq!(
            keyring.reports()[0].status,
            SourceStatus::Used {
                format: ConfigFormat::DockerConfigJson,
                entries: 0,
                has_auths: false,
                ignored_fields: vec!["phx.ocir.io".into()],
                invalid_keys: vec![],
            }
        );

        // An ignored secret does not stop the next one.
        let keyring = Keyring::from_secrets([&opaque, &legacy]).unwrap();
        assert_eq!(users(&keyring.lookup(REPO)), ["u"]);
        assert_eq!(keyring.reports().len(), 2);
    }

    // §2.5: entry decoding.
    #[test]
    fn spec_2_5_entry_decoding() {
        let one = |entry: &str| -> Result<Credential, KeyringError> {
            let s = secret(
                "ns",
                "s",
                DOCKER_CONFIG_JSON_TYPE,
                DOCKER_CONFIG_JSON_KEY,
                &format!(r#"{{"auths":{{"phx.ocir.io":{entry}}}}}"#),
            );
            Ok(Keyring::from_secret(&s)?.lookup(REPO).remove(0))
        };
        let pair = |entry: &str| {
            let c = one(entry).unwrap();
            (c.username, c.password)
        };
        let p = |u: &str, w: &str| (u.to_owned(), w.to_owned());
        // auth overrides username/password.
        let auth = STANDARD.encode("ns/user:tok:en");
        assert_eq!(
            pair(&format!(
                r#"{{"username":"x","password":"y","auth":"{auth}"}}"#
            )),
            p("ns/user", "tok:en")
        );
        // Without auth, username/password are used.
        assert_eq!(pair(r#"{"username":"x","password":"y"}"#), p("x", "y"));
        // Unpadded base64 ("u:pw" is 4 bytes, padded "dTpwdw==").
        assert_eq!(pair(r#"{"auth":"dTpwdw"}"#), p("u", "pw"));
        assert_eq!(pair(r#"{"auth":"dTpwdw=="}"#), p("u", "pw"));
        // Newlines are ignored by Go's decoder; trailing whitespace decides padding mode.
        assert_eq!(pair(r#"{"auth":"dTpw\ndw==\n"}"#), p("u", "pw"));
        // Case-insensitive field names (and Go's fold of the long s).
        assert_eq!(pair(r#"{"USERNAME":"x","Password":"y"}"#), p("x", "y"));
        assert_eq!(pair(r#"{"uſername":"x"}"#), p("x", ""));
        let s = secret(
            "ns",
            "s",
            DOCKER_CONFIG_JSON_TYPE,
            DOCKER_CONFIG_JSON_KEY,
            r#"{"AUTHS":{"phx.ocir.io":{"username":"x"}}}"#,
        );
        assert_eq!(
            users(&Keyring::from_secret(&s).unwrap().lookup(REPO)),
            ["x"]
        );
        // A later duplicate wins; null is ignored.
        assert_eq!(
            pair(r#"{"username":"a","username":"b","password":null}"#),
            p("b", "")
        );
        // A repeated server key replaces the whole entry (no field merge).
        let s = secret(
            "ns",
            "s",
            DOCKER_CONFIG_JSON_TYPE,
            DOCKER_CONFIG_JSON_KEY,
            r#"{"auths":{"phx.ocir.io":{"username":"a","password":"p"},"phx.ocir.io":{"username":"b"}}}"#,
        );
        let creds = Keyring::from_secret(&s).unwrap().lookup(REPO);
        assert_eq!(creds.len(), 1);
        assert_eq!(
            (creds[0].username.as_str(), creds[0].password.as_str()),
            ("b", "")
        );
        // A repeated `auths` merges into the same map.
        let s = secret(
            "ns",
            "s",
            DOCKER_CONFIG_JSON_TYPE,
            DOCKER_CONFIG_JSON_KEY,
            r#"{"auths":{"phx.ocir.io":{"username":"a"}},"Auths":{"iad.ocir.io":{"username":"b"}}}"#,
        );
        assert_eq!(Keyring::from_secret(&s).unwrap().entries().count(), 2);
        // A null entry is an empty credential.
        assert_eq!(pair("null"), p("", ""));
        // Empty auth: username/password kept.
        assert_eq!(pair(r#"{"username":"x","auth":""}"#), p("x", ""));

        // No colon.
        let err = one(&format!(r#"{{"auth":"{}"}}"#, STANDARD.encode("nocolon"))).unwrap_err();
        assert_eq!(err.kubelet_message(), AUTH_FORMAT_ERROR);
        assert_eq!(
            err,
            KeyringError::Auth {
                origin: ConfigOrigin::Secret {
                    namespace: "ns".into(),
                    name: "s".into()
                },
                key: "phx.ocir.io".into(),
                message: AUTH_FORMAT_ERROR.into()
            }
        );
        assert_eq!(
            err.to_string(),
            format!("secret ns/s: auths key \"phx.ocir.io\": {AUTH_FORMAT_ERROR}")
        );
        // Bad base64: Go's offsets.
        let msg = |auth: &str| {
            one(&format!(r#"{{"auth":"{auth}"}}"#))
                .unwrap_err()
                .kubelet_message()
                .to_owned()
        };
        assert_eq!(msg("dTp*dw"), "illegal base64 data at input byte 3");
        assert_eq!(msg("dTpwdw="), "illegal base64 data at input byte 7");
        assert_eq!(msg("dTpwd"), "illegal base64 data at input byte 4");
        // A padded value with trailing space: padded mode, the space is illegal.
        assert_eq!(msg("dTpwdw== "), "illegal base64 data at input byte 8");
        // An unpadded value with '=' inside is raw mode: '=' is illegal.
        assert_eq!(msg("dT=wdw"), "illegal base64 data at input byte 2");

        // Type errors.
        assert_eq!(
            one(r#"{"username":5}"#).unwrap_err().kubelet_message(),
            "json: cannot unmarshal number into Go struct field dockerConfigEntryWithAuth.username of type string"
        );
        assert_eq!(
            one(r#""text""#).unwrap_err().kubelet_message(),
            "json: cannot unmarshal string into Go value of type credentialprovider.dockerConfigEntryWithAuth"
        );
    }

    #[test]
    fn json_errors_abort_keyring_construction() {
        let bad = |body: &str| {
            let s = secret(
                "default",
                "bad",
                DOCKER_CONFIG_JSON_TYPE,
                DOCKER_CONFIG_JSON_KEY,
                body,
            );
            let good = pull_secret("good", &[("phx.ocir.io", "u", "p")]);
            Keyring::from_secrets([&good, &s]).unwrap_err()
        };
        let e = bad("{not json");
        assert!(matches!(&e, KeyringError::Json { .. }));
        assert_eq!(
            e.origin(),
            &ConfigOrigin::Secret {
                namespace: "default".into(),
                name: "bad".into()
            }
        );
        assert_eq!(
            bad(r#"{"auths":"x"}"#).kubelet_message(),
            "json: cannot unmarshal string into Go struct field DockerConfigJSON.auths of type credentialprovider.DockerConfig"
        );
        assert_eq!(
            bad("[]").kubelet_message(),
            "json: cannot unmarshal array into Go value of type credentialprovider.DockerConfigJSON"
        );
        assert_eq!(
            bad(r#"{"HttpHeaders":[1]}"#).kubelet_message(),
            "json: cannot unmarshal array into Go struct field DockerConfigJSON.HttpHeaders of type map[string]string"
        );
        // A type error is reported after the document is read; an auth error aborts at once.
        let nocolon = STANDARD.encode("x");
        assert_eq!(
            bad(&format!(
                r#"{{"HttpHeaders":1,"auths":{{"a.io":{{"auth":"{nocolon}"}}}}}}"#
            ))
            .kubelet_message(),
            AUTH_FORMAT_ERROR
        );
        // Valid JSON of no interest is fine (null, no auths).
        for body in ["null", "{}", r#"{"auths":null}"#] {
            let s = secret(
                "default",
                "n",
                DOCKER_CONFIG_JSON_TYPE,
                DOCKER_CONFIG_JSON_KEY,
                body,
            );
            assert!(Keyring::from_secret(&s).unwrap().is_empty(), "{body}");
        }
        // Invalid UTF-8 inside a string is replaced, not an error.
        let mut s = pull_secret("u", &[]);
        s.data.insert(
            DOCKER_CONFIG_JSON_KEY.into(),
            b"{\"auths\":{\"phx.ocir.io\":{\"username\":\"a\xffb\"}}}".to_vec(),
        );
        assert_eq!(
            users(&Keyring::from_secret(&s).unwrap().lookup(REPO)),
            ["a\u{FFFD}b"]
        );
    }

    #[test]
    fn invalid_keys_are_skipped_and_reported() {
        let s = pull_secret("s", &[("reg io", "bad", "p"), ("phx.ocir.io", "good", "p")]);
        let keyring = Keyring::from_secret(&s).unwrap();
        assert_eq!(users(&keyring.lookup(REPO)), ["good"]);
        let SourceStatus::Used {
            invalid_keys,
            entries,
            ..
        } = &keyring.reports()[0].status
        else {
            panic!()
        };
        assert_eq!(*entries, 1);
        assert_eq!(
            invalid_keys[0].log_message(),
            "Entry \"reg io\" in dockercfg invalid (parse \"https://reg io\": invalid character \" \" in host name), ignoring"
        );
    }

    #[test]
    fn docker_config_files() {
        let path = "/root/.docker/config.json";
        // auths wrapper; credsStore is invisible to the kubelet.
        let k = Keyring::from_docker_config(
            path,
            br#"{"auths":{"phx.ocir.io":{"auth":"dTpwdw=="}},"credsStore":"desktop"}"#,
        )
        .unwrap();
        assert_eq!(users(&k.lookup(REPO)), ["u"]);
        let SourceStatus::Used {
            format,
            ignored_fields,
            ..
        } = &k.reports()[0].status
        else {
            panic!()
        };
        assert_eq!(*format, ConfigFormat::DockerConfigJson);
        assert_eq!(ignored_fields, &["credsStore"]);
        // Helpers only: no credentials, not misread as a flat map.
        let k =
            Keyring::from_docker_config(path, br#"{"credHelpers":{"phx.ocir.io":"oci"}}"#).unwrap();
        assert!(k.is_empty());
        // Legacy flat content.
        let k = Keyring::from_docker_config(
            path,
            br#"{"https://phx.ocir.io/v1/":{"auth":"dTpwdw=="}}"#,
        )
        .unwrap();
        assert_eq!(users(&k.lookup(REPO)), ["u"]);
        assert!(matches!(
            k.reports()[0].status,
            SourceStatus::Used {
                format: ConfigFormat::DockerCfg,
                ..
            }
        ));
        // A file named .dockercfg is always flat.
        let k =
            Keyring::from_docker_config("/root/.dockercfg", br#"{"localhost":{"username":"l"}}"#)
                .unwrap();
        assert_eq!(users(&k.lookup("localhost/x")), ["l"]);
        // Errors name the file.
        let e = Keyring::from_docker_config(path, b"{").unwrap_err();
        assert!(
            e.to_string().starts_with("/root/.docker/config.json: "),
            "{e}"
        );
        let e = Keyring::from_docker_config(path, b"").unwrap_err();
        assert!(matches!(e, KeyringError::Json { .. }));
    }

    #[test]
    fn docker_hub_fallback_rules() {
        for repo in [
            "docker.io/library/nginx",
            "index.docker.io/library/nginx",
            "library/ubuntu",
            "ubuntu",
            "jdoe/app",
        ] {
            assert!(is_default_registry_match(repo), "{repo}");
        }
        for repo in ["phx.ocir.io/ns/r", "localhost:5000/x", "/x", ""] {
            assert!(!is_default_registry_match(repo), "{repo}");
        }
        // The fallback is used only when nothing matched.
        let s = pull_secret(
            "s",
            &[
                ("https://index.docker.io/v1/", "hub", "p"),
                ("docker.io", "dio", "p"),
            ],
        );
        let k = Keyring::from_secret(&s).unwrap();
        assert_eq!(users(&k.lookup("docker.io/library/nginx")), ["dio"]);
        // Not for other registries.
        let k = Keyring::from_secret(&pull_secret(
            "s",
            &[("https://index.docker.io/v1/", "hub", "p")],
        ))
        .unwrap();
        assert!(k.lookup("quay.io/x/y").is_empty());
        // The old docker.io/v1/ spelling is NOT the fallback key.
        let k = Keyring::from_secret(&pull_secret("s", &[("https://docker.io/v1/", "hub", "p")]))
            .unwrap();
        assert_eq!(users(&k.lookup("docker.io/library/nginx")), ["hub"]);
        let k = Keyring::from_secret(&pull_secret("s", &[("registry-1.docker.io", "r1", "p")]))
            .unwrap();
        assert!(k.lookup("docker.io/library/nginx").is_empty());
    }

    #[test]
    fn matching_details() {
        // Path prefix is a plain string prefix.
        assert!(match_explanation("reg.io/ns", "reg.io/ns/app").is_match());
        assert!(match_explanation("reg.io/ns", "reg.io/nsother/app").is_match());
        assert!(match_explanation("reg.io/ns/", "reg.io/ns/app").is_match());
        assert!(!match_explanation("reg.io/ns/app/x", "reg.io/ns/app").is_match());
        // Ports.
        assert!(match_explanation("localhost:5000", "localhost:5000/x").is_match());
        assert_eq!(
            match_explanation("localhost", "localhost:5000/x"),
            MatchResult::PortDiffers {
                key_port: String::new(),
                repo_port: "5000".into()
            }
        );
        // An empty port is no port.
        assert!(match_explanation("reg.io:", "reg.io/x").is_match());
        // IPv6 literal.
        assert!(match_explanation("[::1]:5000", "[::1]:5000/x").is_match());
        // Globs: '*' within one label only, '[...]' classes, case-sensitive.
        assert!(match_explanation("*.ocir.io", "phx.ocir.io/x").is_match());
        assert!(match_explanation("p*.ocir.io", "phx.ocir.io/x").is_match());
        assert!(match_explanation("p[a-z]x.ocir.io", "phx.ocir.io/x").is_match());
        assert!(!match_explanation("p[^a-z]x.ocir.io", "phx.ocir.io/x").is_match());
        assert!(!match_explanation("*.io", "phx.ocir.io/x").is_match());
        assert_eq!(
            match_explanation("p[.ocir.io", "phx.ocir.io/x"),
            MatchResult::BadPattern {
                index: 0,
                pattern: "p[".into()
            }
        );
        // A key that no longer parses (a decoded escape) never matches.
        assert!(matches!(
            match_explanation("re g.io", "reg.io/x"),
            MatchResult::KeyUnparseable(_)
        ));
        assert!(matches!(
            match_explanation("reg.io", "re g/x"),
            MatchResult::RepoUnparseable(_)
        ));
        // A bracket in the host hides the port from SplitHostPort.
        assert_eq!(
            match_explanation("p[h]x.io:5000", "phx.io:5000/x"),
            MatchResult::PortDiffers {
                key_port: String::new(),
                repo_port: "5000".into()
            }
        );
    }

    #[test]
    fn go_filepath_match_vectors() {
        // From Go's path/filepath match_test.go (Unix).
        let cases: &[(&str, &str, Result<bool, ()>)] = &[
            ("abc", "abc", Ok(true)),
            ("*", "abc", Ok(true)),
            ("*c", "abc", Ok(true)),
            ("a*", "a", Ok(true)),
            ("a*", "abc", Ok(true)),
            ("a*", "ab/c", Ok(false)),
            ("a*/b", "abc/b", Ok(true)),
            ("a*/b", "a/c/b", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Ok(false)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Ok(false)),
            ("ab[c]", "abc", Ok(true)),
            ("ab[b-d]", "abc", Ok(true)),
            ("ab[e-g]", "abc", Ok(false)),
            ("ab[^c]", "abc", Ok(false)),
            ("ab[^b-d]", "abc", Ok(false)),
            ("ab[^e-g]", "abc", Ok(true)),
            ("a\\*b", "a*b", Ok(true)),
            ("a\\*b", "ab", Ok(false)),
            ("a?b", "a☺b", Ok(true)),
            ("a[^a]b", "a☺b", Ok(true)),
            ("a???b", "a☺b", Ok(false)),
            ("a[^a][^a][^a]b", "a☺b", Ok(false)),
            ("[a-ζ]*", "α", Ok(true)),
            ("*[a-ζ]", "A", Ok(false)),
            ("a?b", "a/b", Ok(false)),
            ("a*b", "a/b", Ok(false)),
            ("[\\]a]", "]", Ok(true)),
            ("[\\-]", "-", Ok(true)),
            ("[x\\-]", "x", Ok(true)),
            ("[x\\-]", "-", Ok(true)),
            ("[x\\-]", "z", Ok(false)),
            ("[\\-x]", "x", Ok(true)),
            ("[\\-x]", "-", Ok(true)),
            ("[\\-x]", "a", Ok(false)),
            ("[]a]", "]", Err(())),
            ("[-]", "-", Err(())),
            ("[x-]", "x", Err(())),
            ("[x-]", "-", Err(())),
            ("[x-]", "z", Err(())),
            ("[-x]", "x", Err(())),
            ("[-x]", "-", Err(())),
            ("[-x]", "a", Err(())),
            ("\\", "a", Err(())),
            ("[a-b-c]", "a", Err(())),
            ("[", "a", Err(())),
            ("[^", "a", Err(())),
            ("[^bc", "a", Err(())),
            ("a[", "a", Err(())),
            ("a[", "ab", Err(())),
            ("a[", "x", Err(())),
            ("a/b[", "x", Err(())),
            ("*x", "xxx", Ok(true)),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(
                go_filepath_match(pattern, name),
                *want,
                "Match({pattern:?}, {name:?})"
            );
        }
    }

    #[test]
    fn go_base64_vectors() {
        assert_eq!(go_base64_decode("", true).unwrap(), b"");
        assert_eq!(go_base64_decode("Zm9vYmFy", true).unwrap(), b"foobar");
        assert_eq!(go_base64_decode("Zm9vYg==", true).unwrap(), b"foob");
        assert_eq!(go_base64_decode("Zm9vYmE=", true).unwrap(), b"fooba");
        assert_eq!(go_base64_decode("Zm9vYg", false).unwrap(), b"foob");
        assert_eq!(go_base64_decode("Zm9vYmE", false).unwrap(), b"fooba");
        assert_eq!(go_base64_decode("Zm9v\r\nYmFy\n", true).unwrap(), b"foobar");
        // Non-zero trailing bits are accepted (not strict).
        assert_eq!(go_base64_decode("Zm9vYh==", true).unwrap(), b"foob");
        let err = |s: &str, padded| go_base64_decode(s, padded).unwrap_err();
        assert_eq!(err("Zm9vYg", true), "illegal base64 data at input byte 4");
        assert_eq!(err("Zm9vY", false), "illegal base64 data at input byte 4");
        assert_eq!(err("Zm9vYg=", true), "illegal base64 data at input byte 7");
        assert_eq!(
            err("Zm9vYg==x", true),
            "illegal base64 data at input byte 8"
        );
        assert_eq!(err("Z===", true), "illegal base64 data at input byte 1");
        assert_eq!(
            err("Zm9vYg==", false),
            "illegal base64 data at input byte 6"
        );
        assert_eq!(err("Zm!v", true), "illegal base64 data at input byte 2");
    }

    #[test]
    fn aggregate_pull_errors() {
        assert_eq!(pull_error_message::<&str>(&[]), None);
        assert_eq!(pull_error_message(&["e1"]).as_deref(), Some("e1"));
        assert_eq!(
            pull_error_message(&["e1", "e2"]).as_deref(),
            Some("[e1, e2]")
        );
        assert_eq!(pull_error_message(&["e1", "e1"]).as_deref(), Some("e1"));
        assert_eq!(
            pull_error_message(&["e1", "e2", "e1"]).as_deref(),
            Some("[e1, e2]")
        );
    }

    #[test]
    fn debug_hides_the_password() {
        let c = Credential {
            username: "ns/user".into(),
            password: "s3cr3t-token".into(),
            source: CredentialSource::Secret {
                namespace: "default".into(),
                name: "regcred".into(),
                key: "phx.ocir.io".into(),
            },
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("<12 bytes>"), "{shown}");
        assert!(shown.contains("ns/user"), "{shown}");
        let k = Keyring::from_secret(&pull_secret("s", &[("phx.ocir.io", "u", "s3cr3t-token")]))
            .unwrap();
        assert!(!format!("{k:?}").contains("s3cr3t"));
        assert_eq!(
            c.source.to_string(),
            "secret default/regcred, auths key \"phx.ocir.io\""
        );
    }
}
