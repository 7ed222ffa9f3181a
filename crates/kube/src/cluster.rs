//! What a cluster shows the kubelet, read from `kubectl get ... -o yaml|json` output or from
//! manifests: the pods and pod templates (with their images and pull secrets), the Secrets and
//! ServiceAccounts they refer to, and the nodes' platforms.
//!
//! Documents are traversed as untyped JSON values rather than typed API structs, so that partial
//! objects (no `status`, no `apiVersion` of interest, unknown fields) are accepted and a
//! malformed field is reported with the source, the document number and the field path
//! ([`ManifestError`]). Only the fields read here are checked; unknown kinds are skipped.
//!
//! The pull-secret rules follow the pull-path spec §2.1: the ServiceAccount's
//! `imagePullSecrets` apply only when the pod lists none, secrets are looked up in the pod's
//! namespace only, and secrets that cannot be found produce the kubelet's
//! `FailedToRetrieveImagePullSecret` warning.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::keyring::go_base64_decode;
use crate::reference::{ImageReference, default_pull_policy};

/// The reason of the kubelet's warning event for pull secrets it could not fetch.
pub const FAILED_TO_RETRIEVE_REASON: &str = "FailedToRetrieveImagePullSecret";
/// The namespace of a namespaced object that names none.
pub const DEFAULT_NAMESPACE: &str = "default";
/// The ServiceAccount of a pod that names none (set by ServiceAccount admission).
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// The well-known node label (and nodeSelector key) for the CPU architecture.
pub const ARCH_LABEL: &str = "kubernetes.io/arch";
/// The well-known node label for the operating system.
pub const OS_LABEL: &str = "kubernetes.io/os";

/// What is wrong with a field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// Not a mapping (object).
    #[error("expected a mapping")]
    ExpectedMapping,
    /// Not a sequence (list).
    #[error("expected a list")]
    ExpectedList,
    /// Not a string.
    #[error("expected a string")]
    ExpectedString,
    /// A required field is absent or null.
    #[error("required field missing")]
    Missing,
    /// A Secret's `data` value is not base64 (Go's message).
    #[error("invalid base64: {0}")]
    InvalidBase64(String),
}

/// Where in a source an object is: the document (1-based), the list item path when it came
/// from a `List`, and the object's kind and name once known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The source (file name, or a label such as `kubectl get pods -A`).
    pub source: String,
    /// 1-based document number within the source.
    pub document: usize,
    /// `items[3]` (or `items[3].items[0]`, `[2]` for a top-level sequence) inside a list.
    pub item: Option<String>,
    /// `Deployment web`, or just the kind when the object has no name.
    pub object: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: document {}", self.source, self.document)?;
        if let Some(item) = &self.item {
            write!(f, ", {item}")?;
        }
        if let Some(object) = &self.object {
            write!(f, " ({object})")?;
        }
        Ok(())
    }
}

/// Why a source could not be read. Displayed as
/// `pods.yaml: document 2 (Deployment web): spec.template.spec.containers[0].image: expected a string`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The text is not YAML or JSON.
    #[error("{source_name}: document {document}: {message}")]
    Syntax {
        /// The source.
        source_name: String,
        /// 1-based document number where parsing failed.
        document: usize,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A document, list item or field does not have the expected shape.
    #[error("{}", field_message(location, path, problem))]
    Field {
        /// Where the object is (boxed: keeps `Result`s small).
        location: Box<Location>,
        /// The field path inside the object (`spec.containers[0].image`); empty for the object
        /// itself.
        path: String,
        /// What is wrong.
        problem: Problem,
    },
}

fn field_message(location: &Location, path: &str, problem: &Problem) -> String {
    if path.is_empty() {
        format!("{location}: {problem}")
    } else {
        format!("{location}: {path}: {problem}")
    }
}

/// The object kinds whose pods we analyse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkloadKind {
    /// `Pod` (`spec`).
    Pod,
    /// `Deployment` (`spec.template.spec`).
    Deployment,
    /// `ReplicaSet` (`spec.template.spec`).
    ReplicaSet,
    /// `StatefulSet` (`spec.template.spec`).
    StatefulSet,
    /// `DaemonSet` (`spec.template.spec`).
    DaemonSet,
    /// `Job` (`spec.template.spec`).
    Job,
    /// `CronJob` (`spec.jobTemplate.spec.template.spec`).
    CronJob,
    /// `ReplicationController` (`spec.template.spec`).
    ReplicationController,
}

impl WorkloadKind {
    /// The kind for an object's `kind`, if it is one we read.
    pub fn from_kind(kind: &str) -> Option<WorkloadKind> {
        Some(match kind {
            "Pod" => WorkloadKind::Pod,
            "Deployment" => WorkloadKind::Deployment,
            "ReplicaSet" => WorkloadKind::ReplicaSet,
            "StatefulSet" => WorkloadKind::StatefulSet,
            "DaemonSet" => WorkloadKind::DaemonSet,
            "Job" => WorkloadKind::Job,
            "CronJob" => WorkloadKind::CronJob,
            "ReplicationController" => WorkloadKind::ReplicationController,
            _ => return None,
        })
    }

    /// The `kind` as written in objects.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Pod => "Pod",
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::ReplicaSet => "ReplicaSet",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::Job => "Job",
            WorkloadKind::CronJob => "CronJob",
            WorkloadKind::ReplicationController => "ReplicationController",
        }
    }

    /// The path of the pod spec within such an object.
    pub fn pod_spec_path(self) -> &'static [&'static str] {
        match self {
            WorkloadKind::Pod => &["spec"],
            WorkloadKind::CronJob => &["spec", "jobTemplate", "spec", "template", "spec"],
            _ => &["spec", "template", "spec"],
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A pod or pod template: what the kubelet will be asked to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// The object's kind.
    pub kind: WorkloadKind,
    /// The namespace (`default` when none is written).
    pub namespace: String,
    /// The object's name (`metadata.name`, else `metadata.generateName`).
    pub name: String,
    /// Whether the object was read from a live cluster (`metadata.uid` or a
    /// `metadata.creationTimestamp` is set): for a live Pod, admission has already run.
    pub live: bool,
    /// The annotations admission sees for its pods: the object's own, overlaid by those of
    /// its pod template (as the image verification webhook reads them, for break-glass).
    pub annotations: BTreeMap<String, String>,
    /// The pod spec.
    pub pod: PodSpecView,
    /// Where it was read.
    pub origin: Location,
}

/// The parts of a pod spec that decide image pulls.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodSpecView {
    /// Init containers, then containers, then ephemeral containers, each in written order.
    pub containers: Vec<ContainerView>,
    /// `imagePullSecrets[].name` in order, empty names skipped (as the kubelet does).
    pub image_pull_secrets: Vec<String>,
    /// `serviceAccountName` (or the deprecated `serviceAccount`), `default` when empty.
    pub service_account_name: String,
    /// `nodeSelector["kubernetes.io/arch"]`, when set.
    pub node_selector_arch: Option<String>,
    /// `nodeName`, when the pod is bound (or pinned) to a node.
    pub node_name: Option<String>,
}

/// Which list of the pod spec a container is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContainerKind {
    /// `containers`.
    Container,
    /// `initContainers`.
    InitContainer,
    /// `ephemeralContainers`.
    EphemeralContainer,
}

impl ContainerKind {
    /// The pod spec field holding this kind of container.
    pub fn field(self) -> &'static str {
        match self {
            ContainerKind::Container => "containers",
            ContainerKind::InitContainer => "initContainers",
            ContainerKind::EphemeralContainer => "ephemeralContainers",
        }
    }
}

/// One container's image settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerView {
    /// The container name.
    pub name: String,
    /// The image as written (the kubelet hands this string, plus `:latest` if untagged, to the
    /// runtime).
    pub image: String,
    /// `imagePullPolicy` as written (`None` when absent or empty).
    pub image_pull_policy: Option<String>,
    /// Which list it is in.
    pub kind: ContainerKind,
}

impl ContainerView {
    /// The pull policy in effect: the written one, else the API server's default (§2.3:
    /// `Always` for `latest` or no tag, else `IfNotPresent`). For objects read from a live
    /// cluster the default has already been filled in.
    pub fn pull_policy(&self) -> &str {
        self.image_pull_policy
            .as_deref()
            .unwrap_or_else(|| default_pull_policy(&self.image))
    }

    /// The event field path the kubelet uses for it, e.g. `spec.containers{web}`.
    pub fn field_path(&self) -> String {
        format!("spec.{}{{{}}}", self.kind.field(), self.name)
    }
}

/// A Secret, with `data` decoded (and `stringData` applied on top, as the API server does).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretObject {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// `type` (`Opaque` when absent).
    pub type_: String,
    /// The decoded values by key; never printed by `Debug`.
    pub data: BTreeMap<String, Vec<u8>>,
}

impl fmt::Debug for SecretObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let data: BTreeMap<&str, String> = self
            .data
            .iter()
            .map(|(k, v)| (k.as_str(), format!("<{} bytes>", v.len())))
            .collect();
        f.debug_struct("SecretObject")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("type_", &self.type_)
            .field("data", &data)
            .finish()
    }
}

/// A ServiceAccount's pull secrets (copied into pods that list none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountObject {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// `imagePullSecrets[].name` in order, empty names skipped.
    pub image_pull_secrets: Vec<String>,
}

/// A node's platform facts, for architecture mismatches (failure 13), and the images it holds,
/// for `imagePullPolicy: Never`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeObject {
    /// The node name.
    pub name: String,
    /// `status.nodeInfo.architecture`.
    pub architecture: Option<String>,
    /// `status.nodeInfo.operatingSystem`.
    pub operating_system: Option<String>,
    /// The `kubernetes.io/arch` label.
    pub arch_label: Option<String>,
    /// The `kubernetes.io/os` label.
    pub os_label: Option<String>,
    /// Every `status.images[].names[]` in order (`docker.io/library/nginx:1.25`,
    /// `docker.io/library/nginx@sha256:...`): the images present on the node. The kubelet
    /// reports at most `nodeStatusMaxImages` (50 by default) images, largest first.
    pub images: Vec<String>,
}

impl NodeObject {
    /// The node's platform: status first, labels as fallback; `None` without an architecture.
    pub fn platform(&self) -> Option<NodePlatform> {
        let architecture = self.architecture.clone().or(self.arch_label.clone())?;
        let os = self
            .operating_system
            .clone()
            .or(self.os_label.clone())
            .unwrap_or_default();
        Some(NodePlatform { os, architecture })
    }

    /// Whether the node lists `image` among its images (what the kubelet's `ImageStatus`
    /// lookup finds before a pull): a listed name with the same normalized repository and the
    /// same digest when `image` is pinned by digest, else the same tag. Names that do not parse
    /// (image ids, `<none>`) never match.
    pub fn has_image(&self, image: &ImageReference) -> bool {
        let repository = image.repository();
        self.images.iter().any(|name| {
            let Ok(listed) = ImageReference::parse(name) else {
                return false;
            };
            if listed.repository() != repository {
                return false;
            }
            match &image.digest {
                Some(digest) => listed.digest.as_deref() == Some(digest.as_str()),
                None => listed.tag.is_some() && listed.tag == image.tag,
            }
        })
    }
}

/// An OS/architecture pair an image index must provide.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodePlatform {
    /// `linux`, `windows` (empty when unknown).
    pub os: String,
    /// `amd64`, `arm64`, ...
    pub architecture: String,
}

impl fmt::Display for NodePlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.os.is_empty() {
            f.write_str(&self.architecture)
        } else {
            write!(f, "{}/{}", self.os, self.architecture)
        }
    }
}

/// The pull secrets the kubelet will fetch for a workload's pods, and which of them exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectivePullSecrets<'a> {
    /// The names, in the order the kubelet fetches them.
    pub names: Vec<String>,
    /// Whether they come from the ServiceAccount (the pod lists none).
    pub from_service_account: bool,
    /// The secrets found in the workload's namespace, in `names` order.
    pub found: Vec<&'a SecretObject>,
    /// The names not found there (the `FailedToRetrieveImagePullSecret` warning).
    pub missing: Vec<String>,
    /// The workload's ServiceAccount, when it was among the objects read.
    pub service_account: Option<&'a ServiceAccountObject>,
    /// For a live Pod that lists no secrets: the secrets its ServiceAccount has now but the pod
    /// did not get (the account was changed after the pod was created; admission copies them
    /// only at creation).
    pub service_account_not_applied: Vec<String>,
}

impl EffectivePullSecrets<'_> {
    /// The kubelet's warning for the missing secrets, if any.
    pub fn warning(&self) -> Option<String> {
        failed_to_retrieve_message(&self.missing)
    }
}

/// The message of the kubelet's `FailedToRetrieveImagePullSecret` event for these names;
/// `None` when none is missing.
pub fn failed_to_retrieve_message<S: AsRef<str>>(missing: &[S]) -> Option<String> {
    if missing.is_empty() {
        return None;
    }
    let names: Vec<&str> = missing.iter().map(AsRef::as_ref).collect();
    Some(format!(
        "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
        names.join(", ")
    ))
}

/// Everything read from one or more sources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cluster {
    /// Pods and pod templates.
    pub workloads: Vec<Workload>,
    /// Secrets (of every type).
    pub secrets: Vec<SecretObject>,
    /// ServiceAccounts.
    pub service_accounts: Vec<ServiceAccountObject>,
    /// Nodes.
    pub nodes: Vec<NodeObject>,
}

impl Cluster {
    /// Adds another source's objects. An object already present (same kind, namespace and
    /// name) is replaced in place: a later source wins, as a later `kubectl apply` would.
    pub fn merge(&mut self, other: Cluster) {
        for w in other.workloads {
            self.add_workload(w);
        }
        for s in other.secrets {
            self.add_secret(s);
        }
        for sa in other.service_accounts {
            self.add_service_account(sa);
        }
        for n in other.nodes {
            self.add_node(n);
        }
    }

    fn add_workload(&mut self, w: Workload) {
        let same = |o: &Workload| {
            !w.name.is_empty() && o.kind == w.kind && o.namespace == w.namespace && o.name == w.name
        };
        match self.workloads.iter_mut().find(|o| same(o)) {
            Some(slot) => *slot = w,
            None => self.workloads.push(w),
        }
    }

    fn add_secret(&mut self, s: SecretObject) {
        match self
            .secrets
            .iter_mut()
            .find(|o| o.namespace == s.namespace && o.name == s.name)
        {
            Some(slot) => *slot = s,
            None => self.secrets.push(s),
        }
    }

    fn add_service_account(&mut self, sa: ServiceAccountObject) {
        match self
            .service_accounts
            .iter_mut()
            .find(|o| o.namespace == sa.namespace && o.name == sa.name)
        {
            Some(slot) => *slot = sa,
            None => self.service_accounts.push(sa),
        }
    }

    fn add_node(&mut self, n: NodeObject) {
        match self.nodes.iter_mut().find(|o| o.name == n.name) {
            Some(slot) => *slot = n,
            None => self.nodes.push(n),
        }
    }

    /// The secret `name` in `namespace`.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<&SecretObject> {
        self.secrets
            .iter()
            .find(|s| s.namespace == namespace && s.name == name)
    }

    /// Secrets called `name` in any namespace (to say "it exists, but in namespace X").
    pub fn secrets_named(&self, name: &str) -> Vec<&SecretObject> {
        self.secrets.iter().filter(|s| s.name == name).collect()
    }

    /// The ServiceAccount `name` in `namespace`.
    pub fn service_account(&self, namespace: &str, name: &str) -> Option<&ServiceAccountObject> {
        self.service_accounts
            .iter()
            .find(|s| s.namespace == namespace && s.name == name)
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&NodeObject> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The pull secrets the kubelet uses for the workload's pods (§2.1):
    ///
    /// * the pod's own `imagePullSecrets` when it lists any (the ServiceAccount's are then not
    ///   merged);
    /// * otherwise the ServiceAccount's — for templates (Deployment, Job, ...) and Pod
    ///   manifests, because ServiceAccount admission copies them when each pod is created;
    ///   but not for a live Pod (read from a cluster), whose admission has already run: its
    ///   list is final, and what the account has now is reported in
    ///   `service_account_not_applied`;
    /// * each name is looked up in the workload's namespace only (secrets are
    ///   namespace-scoped); the names not found are `missing`.
    pub fn effective_pull_secrets(&self, workload: &Workload) -> EffectivePullSecrets<'_> {
        let service_account =
            self.service_account(&workload.namespace, &workload.pod.service_account_name);
        let account_secrets = || {
            service_account
                .map(|sa| sa.image_pull_secrets.clone())
                .unwrap_or_default()
        };
        let mut not_applied = Vec::new();
        let (names, from_service_account) = if !workload.pod.image_pull_secrets.is_empty() {
            (workload.pod.image_pull_secrets.clone(), false)
        } else if workload.kind == WorkloadKind::Pod && workload.live {
            not_applied = account_secrets();
            (Vec::new(), false)
        } else {
            let names = account_secrets();
            let from = !names.is_empty();
            (names, from)
        };
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for name in &names {
            match self.secret(&workload.namespace, name) {
                Some(secret) => found.push(secret),
                None => missing.push(name.clone()),
            }
        }
        EffectivePullSecrets {
            names,
            from_service_account,
            found,
            missing,
            service_account,
            service_account_not_applied: not_applied,
        }
    }

    /// The distinct platforms of the nodes (nodes without a known architecture are left out).
    pub fn node_platforms(&self) -> Vec<NodePlatform> {
        self.nodes
            .iter()
            .filter_map(NodeObject::platform)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }
}

/// Reads every object of a source: multi-document YAML (`---`) or JSON (one value, several
/// concatenated, or an array), `List` objects (`kubectl get a,b,c -o yaml`) and `*List` kinds,
/// nested or not. Unknown kinds and empty documents are skipped. An object read twice keeps
/// the later version.
pub fn read_documents(source_name: &str, text: &str) -> Result<Cluster, ManifestError> {
    let documents = parse_documents(text).map_err(|(document, message)| ManifestError::Syntax {
        source_name: source_name.to_owned(),
        document,
        message,
    })?;
    let mut cluster = Cluster::default();
    for (i, document) in documents.iter().enumerate() {
        let reader = Reader {
            source: source_name,
            document: i + 1,
        };
        match document {
            Value::Null => {}
            Value::Array(items) => {
                for (n, item) in items.iter().enumerate() {
                    reader.object(item, Some(format!("[{n}]")), &mut cluster)?;
                }
            }
            other => reader.object(other, None, &mut cluster)?,
        }
    }
    Ok(cluster)
}

/// Splits the text into documents; on failure, the 1-based document number and the message.
fn parse_documents(text: &str) -> Result<Vec<Value>, (usize, String)> {
    // A byte-order mark (editors on Windows) is not part of the document.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let body = text.trim_start();
    if body.starts_with('{') || body.starts_with('[') {
        match parse_json_stream(body) {
            Ok(documents) => return Ok(documents),
            // Flow-style YAML also starts with a bracket.
            Err(json_error) => return parse_yaml(text).map_err(|_| json_error),
        }
    }
    parse_yaml(text)
}

fn parse_json_stream(text: &str) -> Result<Vec<Value>, (usize, String)> {
    let mut documents = Vec::new();
    for (i, value) in serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .enumerate()
    {
        documents.push(value.map_err(|e| (i + 1, e.to_string()))?);
    }
    Ok(documents)
}

fn parse_yaml(text: &str) -> Result<Vec<Value>, (usize, String)> {
    let mut documents = Vec::new();
    // After an error the iterator keeps yielding it: stop at the first.
    for (i, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        documents.push(Value::deserialize(document).map_err(|e| (i + 1, e.to_string()))?);
    }
    Ok(documents)
}

/// A field error before the object's location is attached.
struct FieldError {
    path: String,
    problem: Problem,
}

type FieldResult<T> = Result<T, FieldError>;

/// A mapping with its path from the object's root.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

fn child_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{key:?}]"),
    }
}

impl<'a> Obj<'a> {
    fn fail<T>(&self, key: &str, problem: Problem) -> FieldResult<T> {
        Err(FieldError {
            path: child_path(&self.path, key),
            problem,
        })
    }

    /// A present, non-null field.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn str(&self, key: &str) -> FieldResult<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => self.fail(key, Problem::ExpectedString),
        }
    }

    /// A string field, `None` also when empty.
    fn non_empty_str(&self, key: &str) -> FieldResult<Option<&'a str>> {
        Ok(self.str(key)?.filter(|s| !s.is_empty()))
    }

    fn map(&self, key: &str) -> FieldResult<Option<Obj<'a>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Obj {
                map,
                path: child_path(&self.path, key),
            })),
            Some(_) => self.fail(key, Problem::ExpectedMapping),
        }
    }

    fn list(&self, key: &str) -> FieldResult<&'a [Value]> {
        match self.get(key) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(_) => self.fail(key, Problem::ExpectedList),
        }
    }
}

/// Reads one source's documents into a cluster.
struct Reader<'s> {
    source: &'s str,
    document: usize,
}

impl Reader<'_> {
    fn location(&self, item: &Option<String>, object: Option<String>) -> Location {
        Location {
            source: self.source.to_owned(),
            document: self.document,
            item: item.clone(),
            object,
        }
    }

    fn object(
        &self,
        value: &Value,
        item: Option<String>,
        cluster: &mut Cluster,
    ) -> Result<(), ManifestError> {
        let field_error = |object: Option<String>, e: FieldError| ManifestError::Field {
            location: Box::new(self.location(&item, object)),
            path: e.path,
            problem: e.problem,
        };
        let map = match value {
            Value::Object(map) => map,
            // A null list item is nothing.
            Value::Null => return Ok(()),
            _ => {
                return Err(field_error(
                    None,
                    FieldError {
                        path: String::new(),
                        problem: Problem::ExpectedMapping,
                    },
                ));
            }
        };
        let root = Obj {
            map,
            path: String::new(),
        };
        let kind = match root.str("kind") {
            Ok(Some(kind)) if !kind.is_empty() => kind,
            Ok(_) => {
                return Err(field_error(
                    None,
                    FieldError {
                        path: "kind".into(),
                        problem: Problem::Missing,
                    },
                ));
            }
            Err(e) => return Err(field_error(None, e)),
        };
        // Name the object in errors about its metadata too, when the name itself is readable.
        let early_label = match map.get("metadata").and_then(|m| m.get("name")) {
            Some(Value::String(name)) if !name.is_empty() => format!("{kind} {name}"),
            _ => kind.to_owned(),
        };
        let meta = read_metadata(&root).map_err(|e| field_error(Some(early_label), e))?;
        let label = if meta.name.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind} {}", meta.name)
        };
        let field_error = |e: FieldError| field_error(Some(label.clone()), e);

        if kind == "List" || (kind.ends_with("List") && map.contains_key("items")) {
            let items = root.list("items").map_err(field_error)?;
            for (i, element) in items.iter().enumerate() {
                let path = match &item {
                    Some(parent) => format!("{parent}.items[{i}]"),
                    None => format!("items[{i}]"),
                };
                self.object(element, Some(path), cluster)?;
            }
            return Ok(());
        }

        if let Some(workload_kind) = WorkloadKind::from_kind(kind) {
            let pod = read_workload_spec(&root, workload_kind).map_err(field_error)?;
            cluster.add_workload(Workload {
                kind: workload_kind,
                namespace: meta.namespace,
                name: meta.name,
                live: meta.live,
                annotations: crate::admission::pod_images(kind, value)
                    .map(|(annotations, _)| annotations)
                    .unwrap_or_default(),
                pod,
                origin: self.location(&item, Some(label.clone())),
            });
            return Ok(());
        }
        match kind {
            "Secret" => {
                let (type_, data) = read_secret(&root).map_err(field_error)?;
                cluster.add_secret(SecretObject {
                    namespace: meta.namespace,
                    name: meta.name,
                    type_,
                    data,
                });
            }
            "ServiceAccount" => {
                let image_pull_secrets =
                    read_secret_refs(&root, "imagePullSecrets").map_err(field_error)?;
                cluster.add_service_account(ServiceAccountObject {
                    namespace: meta.namespace,
                    name: meta.name,
                    image_pull_secrets,
                });
            }
            "Node" => {
                let node = read_node(&root, meta.name, &meta.labels).map_err(field_error)?;
                cluster.add_node(node);
            }
            _ => {}
        }
        Ok(())
    }
}

struct Metadata {
    namespace: String,
    name: String,
    live: bool,
    labels: BTreeMap<String, String>,
}

fn read_metadata(root: &Obj<'_>) -> FieldResult<Metadata> {
    let Some(meta) = root.map("metadata")? else {
        return Ok(Metadata {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            name: String::new(),
            live: false,
            labels: BTreeMap::new(),
        });
    };
    let name = match meta.non_empty_str("name")? {
        Some(name) => name.to_owned(),
        None => meta.str("generateName")?.unwrap_or_default().to_owned(),
    };
    let namespace = meta
        .non_empty_str("namespace")?
        .unwrap_or(DEFAULT_NAMESPACE)
        .to_owned();
    let live = meta.non_empty_str("uid")?.is_some() || meta.get("creationTimestamp").is_some();
    let mut labels = BTreeMap::new();
    if let Some(map) = meta.map("labels")? {
        for key in [ARCH_LABEL, OS_LABEL] {
            if let Some(value) = map.str(key)? {
                labels.insert(key.to_owned(), value.to_owned());
            }
        }
    }
    Ok(Metadata {
        namespace,
        name,
        live,
        labels,
    })
}

fn read_workload_spec(root: &Obj<'_>, kind: WorkloadKind) -> FieldResult<PodSpecView> {
    let mut current = Obj {
        map: root.map,
        path: root.path.clone(),
    };
    for step in kind.pod_spec_path() {
        match current.map(step)? {
            Some(next) => current = next,
            None => return Ok(empty_pod_spec()),
        }
    }
    read_pod_spec(&current)
}

fn empty_pod_spec() -> PodSpecView {
    PodSpecView {
        service_account_name: DEFAULT_SERVICE_ACCOUNT.to_owned(),
        ..PodSpecView::default()
    }
}

fn read_pod_spec(spec: &Obj<'_>) -> FieldResult<PodSpecView> {
    let mut containers = Vec::new();
    for kind in [
        ContainerKind::InitContainer,
        ContainerKind::Container,
        ContainerKind::EphemeralContainer,
    ] {
        let field = kind.field();
        for (i, value) in spec.list(field)?.iter().enumerate() {
            let path = format!("{}[{i}]", child_path(&spec.path, field));
            if value.is_null() {
                continue;
            }
            let Value::Object(map) = value else {
                return Err(FieldError {
                    path,
                    problem: Problem::ExpectedMapping,
                });
            };
            let container = Obj { map, path };
            let Some(image) = container.str("image")? else {
                return container.fail("image", Problem::Missing);
            };
            containers.push(ContainerView {
                name: container.str("name")?.unwrap_or_default().to_owned(),
                image: image.to_owned(),
                image_pull_policy: container
                    .non_empty_str("imagePullPolicy")?
                    .map(str::to_owned),
                kind,
            });
        }
    }
    let image_pull_secrets = read_secret_refs(spec, "imagePullSecrets")?;
    let service_account_name = match spec.non_empty_str("serviceAccountName")? {
        Some(name) => name,
        None => spec
            .non_empty_str("serviceAccount")?
            .unwrap_or(DEFAULT_SERVICE_ACCOUNT),
    }
    .to_owned();
    let node_selector_arch = match spec.map("nodeSelector")? {
        Some(selector) => selector.str(ARCH_LABEL)?.map(str::to_owned),
        None => None,
    };
    let node_name = spec.non_empty_str("nodeName")?.map(str::to_owned);
    Ok(PodSpecView {
        containers,
        image_pull_secrets,
        service_account_name,
        node_selector_arch,
        node_name,
    })
}

/// A `[]LocalObjectReference` field: the names in order, empty or absent names skipped.
fn read_secret_refs(obj: &Obj<'_>, field: &str) -> FieldResult<Vec<String>> {
    let mut names = Vec::new();
    for (i, value) in obj.list(field)?.iter().enumerate() {
        let path = format!("{}[{i}]", child_path(&obj.path, field));
        match value {
            Value::Null => {}
            Value::Object(map) => {
                let reference = Obj { map, path };
                if let Some(name) = reference.non_empty_str("name")? {
                    names.push(name.to_owned());
                }
            }
            _ => {
                return Err(FieldError {
                    path,
                    problem: Problem::ExpectedMapping,
                });
            }
        }
    }
    Ok(names)
}

fn read_secret(root: &Obj<'_>) -> FieldResult<(String, BTreeMap<String, Vec<u8>>)> {
    let type_ = root.non_empty_str("type")?.unwrap_or("Opaque").to_owned();
    let mut data = BTreeMap::new();
    if let Some(map) = root.map("data")? {
        for (key, value) in map.map {
            let bytes = match value {
                Value::Null => Vec::new(),
                Value::String(s) => go_base64_decode(s, true)
                    .or_else(|message| map.fail(key, Problem::InvalidBase64(message)))?,
                _ => return map.fail(key, Problem::ExpectedString),
            };
            data.insert(key.clone(), bytes);
        }
    }
    if let Some(map) = root.map("stringData")? {
        for (key, value) in map.map {
            let bytes = match value {
                Value::Null => Vec::new(),
                Value::String(s) => s.as_bytes().to_vec(),
                _ => return map.fail(key, Problem::ExpectedString),
            };
            data.insert(key.clone(), bytes);
        }
    }
    Ok((type_, data))
}

fn read_node(
    root: &Obj<'_>,
    name: String,
    labels: &BTreeMap<String, String>,
) -> FieldResult<NodeObject> {
    let (architecture, operating_system) = match root.map("status")? {
        Some(status) => match status.map("nodeInfo")? {
            Some(info) => (
                info.non_empty_str("architecture")?.map(str::to_owned),
                info.non_empty_str("operatingSystem")?.map(str::to_owned),
            ),
            None => (None, None),
        },
        None => (None, None),
    };
    let mut images = Vec::new();
    if let Some(status) = root.map("status")? {
        for (i, value) in status.list("images")?.iter().enumerate() {
            let path = format!("{}[{i}]", child_path(&status.path, "images"));
            let map = match value {
                Value::Null => continue,
                Value::Object(map) => map,
                _ => {
                    return Err(FieldError {
                        path,
                        problem: Problem::ExpectedMapping,
                    });
                }
            };
            let image = Obj { map, path };
            for (n, name) in image.list("names")?.iter().enumerate() {
                match name {
                    Value::Null => {}
                    Value::String(name) => images.push(name.clone()),
                    _ => {
                        return Err(FieldError {
                            path: format!("{}[{n}]", child_path(&image.path, "names")),
                            problem: Problem::ExpectedString,
                        });
                    }
                }
            }
        }
    }
    Ok(NodeObject {
        name,
        architecture,
        operating_system,
        arch_label: labels.get(ARCH_LABEL).cloned(),
        os_label: labels.get(OS_LABEL).cloned(),
        images,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Cluster {
        read_documents("test.yaml", text).unwrap()
    }

    fn error(text: &str) -> String {
        read_documents("pods.yaml", text).unwrap_err().to_string()
    }

    const MIXED: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: ngnix-image
spec:
  containers:
  - name: ngnix
    image: phx.ocir.io/ansh81vru1zp/project01/ngnix-lb:latest
    imagePullPolicy: Always
    ports:
    - containerPort: 80
  imagePullSecrets:
  - name: ocirsecret
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2
  template:
    spec:
      serviceAccountName: builder
      nodeSelector:
        kubernetes.io/arch: arm64
      initContainers:
      - name: init
        image: busybox
      containers:
      - name: app
        image: phx.ocir.io/ns/app:1.2
      - name: sidecar
        image: phx.ocir.io/ns/side@sha256:e7a4c186eef137a75caacae308765dc2fbb2f57c36d95c0b3ccf6efe6d912ec1
---
# only a comment
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: ops}
spec:
  schedule: "0 0 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          imagePullSecrets: [{name: ""}, {name: a}, {}, {name: b}]
          containers: [{name: job, image: "reg.io/job"}]
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
spec: {containers: 5}
"#;

    #[test]
    fn reads_pods_and_templates() {
        let c = read(MIXED);
        assert_eq!(c.workloads.len(), 3);
        let pod = &c.workloads[0];
        assert_eq!(
            (
                pod.kind,
                pod.namespace.as_str(),
                pod.name.as_str(),
                pod.live
            ),
            (WorkloadKind::Pod, "default", "ngnix-image", false)
        );
        assert_eq!(pod.pod.image_pull_secrets, ["ocirsecret"]);
        assert_eq!(pod.pod.service_account_name, "default");
        assert_eq!(
            pod.pod.containers,
            [ContainerView {
                name: "ngnix".into(),
                image: "phx.ocir.io/ansh81vru1zp/project01/ngnix-lb:latest".into(),
                image_pull_policy: Some("Always".into()),
                kind: ContainerKind::Container,
            }]
        );
        assert_eq!(pod.pod.containers[0].field_path(), "spec.containers{ngnix}");
        assert_eq!(pod.origin.document, 1);

        let deploy = &c.workloads[1];
        assert_eq!(deploy.kind, WorkloadKind::Deployment);
        assert_eq!(deploy.namespace, "shop");
        assert_eq!(deploy.pod.service_account_name, "builder");
        assert_eq!(deploy.pod.node_selector_arch.as_deref(), Some("arm64"));
        let kinds: Vec<(&str, ContainerKind)> = deploy
            .pod
            .containers
            .iter()
            .map(|c| (c.name.as_str(), c.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("init", ContainerKind::InitContainer),
                ("app", ContainerKind::Container),
                ("sidecar", ContainerKind::Container)
            ]
        );
        // §2.3 defaulting applies to templates as written.
        let policies: Vec<&str> = deploy
            .pod
            .containers
            .iter()
            .map(|c| c.pull_policy())
            .collect();
        assert_eq!(policies, ["Always", "IfNotPresent", "IfNotPresent"]);
        assert_eq!(
            deploy.origin.to_string(),
            "test.yaml: document 2 (Deployment web)"
        );

        let cron = &c.workloads[2];
        assert_eq!(cron.kind, WorkloadKind::CronJob);
        assert_eq!(cron.pod.image_pull_secrets, ["a", "b"]);
        assert_eq!(cron.pod.containers[0].image, "reg.io/job");
        // The comment-only document still counts.
        assert_eq!(cron.origin.document, 4);
    }

    #[test]
    fn every_template_kind() {
        for kind in [
            "Deployment",
            "ReplicaSet",
            "StatefulSet",
            "DaemonSet",
            "Job",
            "ReplicationController",
        ] {
            let text = format!(
                "kind: {kind}\nmetadata: {{name: x}}\nspec:\n  template:\n    spec:\n      containers: [{{name: c, image: img}}]\n"
            );
            let c = read(&text);
            assert_eq!(c.workloads.len(), 1, "{kind}");
            assert_eq!(c.workloads[0].kind.as_str(), kind);
            assert_eq!(c.workloads[0].pod.containers[0].image, "img");
        }
        // Partial objects: no spec or no template is an empty pod spec, not an error.
        let c = read(
            "kind: Deployment\nmetadata: {name: d}\n---\nkind: CronJob\nmetadata: {name: c}\nspec: {jobTemplate: {}}\n",
        );
        assert_eq!(c.workloads.len(), 2);
        assert!(
            c.workloads
                .iter()
                .all(|w| w.pod.containers.is_empty() && w.pod.service_account_name == "default")
        );
    }

    #[test]
    fn ephemeral_containers_and_pod_details() {
        let c = read(
            r#"{"kind":"Pod","metadata":{"name":"p","namespace":"n","uid":"123"},
               "spec":{"serviceAccount":"legacy","nodeName":"node-1",
                       "containers":[{"name":"c","image":"i","imagePullPolicy":""}],
                       "ephemeralContainers":[{"name":"debug","image":"busybox:1"}]}}"#,
        );
        let w = &c.workloads[0];
        assert!(w.live);
        assert_eq!(w.pod.service_account_name, "legacy");
        assert_eq!(w.pod.node_name.as_deref(), Some("node-1"));
        assert_eq!(w.pod.containers[0].image_pull_policy, None);
        assert_eq!(w.pod.containers[0].pull_policy(), "Always");
        assert_eq!(w.pod.containers[1].kind, ContainerKind::EphemeralContainer);
        assert_eq!(
            w.pod.containers[1].field_path(),
            "spec.ephemeralContainers{debug}"
        );
    }

    // §2.3 table, through ContainerView::pull_policy.
    #[test]
    fn spec_2_3_pull_policy_defaults() {
        let hex = "e7a4c186eef137a75caacae308765dc2fbb2f57c36d95c0b3ccf6efe6d912ec1";
        let table = [
            ("repo".to_owned(), "Always"),
            ("repo:latest".to_owned(), "Always"),
            ("repo:v1".to_owned(), "IfNotPresent"),
            (format!("repo@sha256:{hex}"), "IfNotPresent"),
            (format!("repo:latest@sha256:{hex}"), "Always"),
            ("repo:LATEST".to_owned(), "IfNotPresent"),
            ("UN//parseable".to_owned(), "IfNotPresent"),
        ];
        for (image, policy) in table {
            let c = ContainerView {
                name: "c".into(),
                image: image.clone(),
                image_pull_policy: None,
                kind: ContainerKind::Container,
            };
            assert_eq!(c.pull_policy(), policy, "{image}");
        }
        let explicit = ContainerView {
            name: "c".into(),
            image: "repo".into(),
            image_pull_policy: Some("Never".into()),
            kind: ContainerKind::Container,
        };
        assert_eq!(explicit.pull_policy(), "Never");
    }

    const LIST: &str = r#"
apiVersion: v1
kind: List
metadata:
  resourceVersion: ""
items:
- apiVersion: v1
  kind: Pod
  metadata:
    name: web-1
    namespace: shop
    uid: 6f1c
    creationTimestamp: "2025-01-01T00:00:00Z"
  spec:
    containers:
    - name: app
      image: phx.ocir.io/ns/app:1.2
      imagePullPolicy: IfNotPresent
  status:
    phase: Pending
- apiVersion: v1
  kind: Secret
  metadata: {name: regcred, namespace: shop}
  type: kubernetes.io/dockerconfigjson
  data:
    .dockerconfigjson: eyJhdXRocyI6e319
  stringData:
    extra: plain text
- apiVersion: v1
  kind: ServiceAccount
  metadata: {name: default, namespace: shop}
  imagePullSecrets:
  - name: regcred
  - name: gone
- apiVersion: v1
  kind: NodeList
  items:
  - kind: Node
    metadata:
      name: a1
      labels: {kubernetes.io/arch: arm64, kubernetes.io/os: linux}
    status:
      nodeInfo: {architecture: arm64, operatingSystem: linux}
  - kind: Node
    metadata:
      name: x1
      labels: {kubernetes.io/arch: amd64}
  - kind: Node
    metadata: {name: bare}
  - kind: Node
    metadata: {name: a2}
    status:
      nodeInfo: {architecture: arm64, operatingSystem: linux}
      images:
      - names:
        - docker.io/library/nginx@sha256:e7a4c186eef137a75caacae308765dc2fbb2f57c36d95c0b3ccf6efe6d912ec1
        - docker.io/library/nginx:1.25
        sizeBytes: 71000000
      - {names: null, sizeBytes: 1}
      - names: [registry.k8s.io/pause:3.9]
"#;

    #[test]
    fn reads_lists_secrets_accounts_nodes() {
        let c = read(LIST);
        assert_eq!(c.workloads.len(), 1);
        assert!(c.workloads[0].live);
        assert_eq!(c.workloads[0].origin.item.as_deref(), Some("items[0]"));
        let secret = c.secret("shop", "regcred").unwrap();
        assert_eq!(secret.type_, "kubernetes.io/dockerconfigjson");
        assert_eq!(secret.data[".dockerconfigjson"], br#"{"auths":{}}"#);
        assert_eq!(secret.data["extra"], b"plain text");
        assert!(c.secret("default", "regcred").is_none());
        assert_eq!(c.secrets_named("regcred").len(), 1);
        assert_eq!(
            c.service_account("shop", "default")
                .unwrap()
                .image_pull_secrets,
            ["regcred", "gone"]
        );
        assert_eq!(c.nodes.len(), 4);
        assert_eq!(c.node("x1").unwrap().arch_label.as_deref(), Some("amd64"));
        assert!(c.node("x1").unwrap().images.is_empty());
        assert_eq!(
            c.node("a2").unwrap().images,
            [
                "docker.io/library/nginx@sha256:e7a4c186eef137a75caacae308765dc2fbb2f57c36d95c0b3ccf6efe6d912ec1",
                "docker.io/library/nginx:1.25",
                "registry.k8s.io/pause:3.9"
            ]
        );
        let platforms: Vec<String> = c.node_platforms().iter().map(ToString::to_string).collect();
        assert_eq!(platforms, ["amd64", "linux/arm64"]);
    }

    #[test]
    fn json_lists_and_streams() {
        let json = r#"{"apiVersion":"v1","kind":"PodList","items":[
            {"kind":"Pod","metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"i"}]}},
            {"kind":"Pod","metadata":{"name":"b"},"spec":{"containers":[{"name":"c","image":"j"}]}}]}
            {"kind":"Secret","metadata":{"name":"s"},"data":{"k":"dg=="}}"#;
        let c = read(json);
        assert_eq!(c.workloads.len(), 2);
        assert_eq!(c.secret("default", "s").unwrap().type_, "Opaque");
        assert_eq!(c.secret("default", "s").unwrap().data["k"], b"v");
        // A top-level array of objects.
        let c = read(r#"[{"kind":"ServiceAccount","metadata":{"name":"x"}}, null]"#);
        assert_eq!(c.service_accounts.len(), 1);
        // Flow-style YAML starting with a brace is YAML, not broken JSON.
        let c = read("{kind: ServiceAccount, metadata: {name: y}}");
        assert_eq!(c.service_accounts[0].name, "y");
        // Nested lists name their item paths.
        let e = error(
            r#"{"kind":"List","items":[{"kind":"List","items":[{"kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"image":7}]}}]}]}"#,
        );
        assert_eq!(
            e,
            "pods.yaml: document 1, items[0].items[0] (Pod p): spec.containers[0].image: expected a string"
        );
    }

    #[test]
    fn merge_replaces_same_objects() {
        let mut c = read(LIST);
        let newer = read(
            "kind: Secret\nmetadata: {name: regcred, namespace: shop}\ntype: Opaque\n---\nkind: Secret\nmetadata: {name: other, namespace: shop}\n",
        );
        c.merge(newer);
        assert_eq!(c.secrets.len(), 2);
        assert_eq!(c.secret("shop", "regcred").unwrap().type_, "Opaque");
        let mut again = c.clone();
        again.merge(c.clone());
        assert_eq!(again, c);
        // Within one source, the later document wins too.
        let c = read(
            "kind: Pod\nmetadata: {name: p}\nspec: {containers: [{image: a}]}\n---\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{image: b}]}\n",
        );
        assert_eq!(c.workloads.len(), 1);
        assert_eq!(c.workloads[0].pod.containers[0].image, "b");
    }

    #[test]
    fn effective_pull_secrets_follow_the_service_account_rule() {
        let c = read(&format!(
            "{LIST}\n---\n{}",
            r#"
kind: Deployment
metadata: {name: uses-sa, namespace: shop}
spec: {template: {spec: {containers: [{image: i}]}}}
---
kind: Deployment
metadata: {name: own, namespace: shop}
spec: {template: {spec: {imagePullSecrets: [{name: mine}, {name: regcred}], containers: [{image: i}]}}}
---
kind: Pod
metadata: {name: manifest, namespace: shop}
spec: {containers: [{image: i}]}
---
kind: Pod
metadata: {name: no-sa, namespace: elsewhere}
spec: {containers: [{image: i}]}
"#
        ));
        let get = |name: &str| c.workloads.iter().find(|w| w.name == name).unwrap();

        // Template without its own list: the ServiceAccount's, in order; missing ones listed.
        let eff = c.effective_pull_secrets(get("uses-sa"));
        assert_eq!(eff.names, ["regcred", "gone"]);
        assert!(eff.from_service_account);
        assert_eq!(eff.found.len(), 1);
        assert_eq!(eff.found[0].name, "regcred");
        assert_eq!(eff.missing, ["gone"]);
        assert_eq!(
            eff.warning().unwrap(),
            "Unable to retrieve some image pull secrets (gone); attempting to pull the image may not succeed."
        );
        assert!(eff.service_account.is_some());

        // The pod's own list wins; no merge with the account's.
        let eff = c.effective_pull_secrets(get("own"));
        assert_eq!(eff.names, ["mine", "regcred"]);
        assert!(!eff.from_service_account);
        assert_eq!(eff.missing, ["mine"]);

        // A Pod manifest gets the account's list at creation.
        let eff = c.effective_pull_secrets(get("manifest"));
        assert!(eff.from_service_account);
        assert_eq!(eff.names, ["regcred", "gone"]);

        // A live Pod without a list keeps none: admission already ran.
        let eff = c.effective_pull_secrets(get("web-1"));
        assert!(eff.names.is_empty());
        assert!(!eff.from_service_account);
        assert_eq!(eff.service_account_not_applied, ["regcred", "gone"]);
        assert_eq!(eff.warning(), None);

        // No ServiceAccount known: nothing.
        let eff = c.effective_pull_secrets(get("no-sa"));
        assert!(eff.names.is_empty() && eff.service_account.is_none());
    }

    #[test]
    fn secrets_are_namespace_scoped() {
        let c = read(
            "kind: Secret\nmetadata: {name: ocirsecret, namespace: default}\n---\nkind: Pod\nmetadata: {name: p, namespace: app}\nspec:\n  imagePullSecrets: [{name: ocirsecret}]\n  containers: [{image: i}]\n",
        );
        let eff = c.effective_pull_secrets(&c.workloads[0]);
        assert!(eff.found.is_empty());
        assert_eq!(eff.missing, ["ocirsecret"]);
        assert_eq!(c.secrets_named("ocirsecret")[0].namespace, "default");
    }

    #[test]
    fn failed_to_retrieve_text() {
        assert_eq!(failed_to_retrieve_message::<&str>(&[]), None);
        assert_eq!(
            failed_to_retrieve_message(&["regcred"]).unwrap(),
            "Unable to retrieve some image pull secrets (regcred); attempting to pull the image may not succeed."
        );
        assert_eq!(
            failed_to_retrieve_message(&["a", "b"]).unwrap(),
            "Unable to retrieve some image pull secrets (a, b); attempting to pull the image may not succeed."
        );
    }

    #[test]
    fn errors_name_source_document_and_path() {
        assert_eq!(
            error(
                "kind: Pod\nmetadata: {name: ok}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers:\n      - name: c\n        image: [oops]\n"
            ),
            "pods.yaml: document 2 (Deployment web): spec.template.spec.containers[0].image: expected a string"
        );
        assert_eq!(
            error("kind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}]}\n"),
            "pods.yaml: document 1 (Pod p): spec.containers[0].image: required field missing"
        );
        assert_eq!(
            error("kind: Pod\nmetadata: {name: p}\nspec: {containers: {name: c}}\n"),
            "pods.yaml: document 1 (Pod p): spec.containers: expected a list"
        );
        assert_eq!(
            error("kind: Pod\nmetadata: {name: p}\nspec: {imagePullSecrets: [regcred]}\n"),
            "pods.yaml: document 1 (Pod p): spec.imagePullSecrets[0]: expected a mapping"
        );
        assert_eq!(
            error("kind: Pod\nmetadata: {name: p}\nspec: {imagePullSecrets: [{name: 5}]}\n"),
            "pods.yaml: document 1 (Pod p): spec.imagePullSecrets[0].name: expected a string"
        );
        assert_eq!(
            error(
                "kind: Pod\nmetadata: {name: p}\nspec: {nodeSelector: {kubernetes.io/arch: [a]}}\n"
            ),
            "pods.yaml: document 1 (Pod p): spec.nodeSelector[\"kubernetes.io/arch\"]: expected a string"
        );
        assert_eq!(
            error("kind: Pod\nmetadata: [x]\n"),
            "pods.yaml: document 1 (Pod): metadata: expected a mapping"
        );
        assert_eq!(
            error("kind: Pod\nmetadata: {name: {a: b}}\n"),
            "pods.yaml: document 1 (Pod): metadata.name: expected a string"
        );
        assert_eq!(
            error("metadata: {name: x}\n"),
            "pods.yaml: document 1: kind: required field missing"
        );
        assert_eq!(
            error("kind: 5\n"),
            "pods.yaml: document 1: kind: expected a string"
        );
        assert_eq!(
            error("just a string\n"),
            "pods.yaml: document 1: expected a mapping"
        );
        assert_eq!(
            error(
                "kind: Secret\nmetadata: {name: s}\ndata: {.dockerconfigjson: \"not base64!\"}\n"
            ),
            "pods.yaml: document 1 (Secret s): data[\".dockerconfigjson\"]: invalid base64: illegal base64 data at input byte 3"
        );
        assert_eq!(
            error("kind: Secret\nmetadata: {name: s}\ndata: {k: 12}\n"),
            "pods.yaml: document 1 (Secret s): data.k: expected a string"
        );
        assert_eq!(
            error("kind: Secret\nmetadata: {name: s}\nstringData: {k: [1]}\n"),
            "pods.yaml: document 1 (Secret s): stringData.k: expected a string"
        );
        assert_eq!(
            error("kind: Node\nmetadata: {name: n}\nstatus: {nodeInfo: {architecture: 64}}\n"),
            "pods.yaml: document 1 (Node n): status.nodeInfo.architecture: expected a string"
        );
        assert_eq!(
            error("kind: Node\nmetadata: {name: n}\nstatus: {images: [{names: [a, 5]}]}\n"),
            "pods.yaml: document 1 (Node n): status.images[0].names[1]: expected a string"
        );
        assert_eq!(
            error("kind: Node\nmetadata: {name: n}\nstatus: {images: [x]}\n"),
            "pods.yaml: document 1 (Node n): status.images[0]: expected a mapping"
        );
        assert_eq!(
            error("kind: Node\nmetadata: {name: n, labels: {kubernetes.io/os: {}}}\n"),
            "pods.yaml: document 1 (Node n): metadata.labels[\"kubernetes.io/os\"]: expected a string"
        );
        assert_eq!(
            error("kind: ServiceAccount\nmetadata: {name: sa}\nimagePullSecrets: {name: x}\n"),
            "pods.yaml: document 1 (ServiceAccount sa): imagePullSecrets: expected a list"
        );
        assert_eq!(
            error(
                "kind: List\nitems: [{kind: Pod, metadata: {name: p}, spec: {initContainers: [7]}}]\n"
            ),
            "pods.yaml: document 1, items[0] (Pod p): spec.initContainers[0]: expected a mapping"
        );
        assert_eq!(
            error("kind: List\nitems: {a: b}\n"),
            "pods.yaml: document 1 (List): items: expected a list"
        );
        // Syntax errors name the document.
        let e = read_documents("pods.yaml", "kind: Pod\n---\nkind: [unclosed\n").unwrap_err();
        assert!(
            matches!(e, ManifestError::Syntax { document: 2, .. }),
            "{e}"
        );
        assert!(e.to_string().starts_with("pods.yaml: document 2: "), "{e}");
        let e = read_documents("x.json", "{\"kind\": \"Pod\"} {\"kind\": ").unwrap_err();
        assert!(
            matches!(e, ManifestError::Syntax { document: 2, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("EOF while parsing"), "{e}");
        // A trailing comma is still valid flow YAML.
        assert_eq!(read(r#"{"kind": "Pod",}"#).workloads.len(), 1);
        // Unknown fields of the wrong type are not our business.
        let c = read(
            "kind: Pod\nmetadata: {name: p, annotations: 5}\nspec: {containers: [{image: i, ports: 7}], hostNetwork: maybe}\n",
        );
        assert_eq!(c.workloads.len(), 1);
    }

    #[test]
    fn garbage_never_panics() {
        let deep_json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let deep_yaml_flow = "{a: ".repeat(5_000);
        let deep_yaml_block: String = (0..2_000)
            .map(|i| format!("{}k:\n", " ".repeat(i)))
            .collect();
        let anchors = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nkind: [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n".to_owned();
        let inputs: Vec<String> = vec![
            String::new(),
            "\n\n   \n".into(),
            "---\n---\n...\n".into(),
            "\u{feff}kind: ServiceAccount\nmetadata: {name: bom}\n".into(),
            "\u{0}\u{1}\u{2}\u{7f}".into(),
            "\u{fffd}\u{fffd}: \u{fffd}".into(),
            "\"\\ud800\"".into(),
            r#"{"kind":"Pod","metadata":{"name":"\ud800"}}"#.into(),
            "kind: Pod\nspec: !!binary aGVsbG8=\n".into(),
            "kind: !custom Pod\n".into(),
            "? [complex, key]\n: value\n".into(),
            "1: 2\n".into(),
            "kind: Pod\nspec: {containers: [{image: .inf}]}\n".into(),
            "kind: Secret\nmetadata: {name: s}\ndata: {k: \"====\"}\n".into(),
            "kind: Secret\nmetadata: {name: s}\ndata: {k: \"\u{e9}\u{e9}\u{e9}\u{e9}\"}\n".into(),
            "kind: List\nitems: [1, \"two\", [3]]\n".into(),
            "kind: Pod\nspec: {containers: [null, {image: ok}], imagePullSecrets: [null]}\n".into(),
            "kind: Deployment\nspec: {template: [1]}\n".into(),
            "kind: CronJob\nspec: {jobTemplate: {spec: {template: {spec: 7}}}}\n".into(),
            "\t\tkind:\tPod".into(),
            "kind: Pod\n  bad indent: [\n".into(),
            "%YAML 9.9\n---\nkind: Pod\n".into(),
            "*undefined\n".into(),
            "{\"kind\": \"Pod\"} trailing garbage".into(),
            "[".into(),
            "{".into(),
            deep_json,
            deep_yaml_flow,
            deep_yaml_block,
            anchors,
        ];
        for (i, input) in inputs.iter().enumerate() {
            let result = std::panic::catch_unwind(|| read_documents("junk", input));
            let Ok(result) = result else {
                panic!("input {i} panicked");
            };
            if let Err(e) = result {
                assert!(
                    e.to_string().starts_with("junk: document "),
                    "input {i}: {e}"
                );
            }
        }
        // Some of those are specific errors.
        assert!(
            read_documents("junk", &inputs[13])
                .unwrap_err()
                .to_string()
                .contains("invalid base64")
        );
        assert_eq!(
            read_documents("junk", &inputs[15]).unwrap_err().to_string(),
            "junk: document 1, items[0]: expected a mapping"
        );
        assert_eq!(
            read_documents("junk", &inputs[16]).unwrap().workloads[0]
                .pod
                .containers
                .len(),
            1
        );
        assert_eq!(
            read_documents("junk", &inputs[3]).unwrap().service_accounts[0].name,
            "bom"
        );
    }

    #[test]
    fn secret_debug_hides_data() {
        let c = read("kind: Secret\nmetadata: {name: s}\nstringData: {token: hunter2}\n");
        let shown = format!("{:?}", c.secrets[0]);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<7 bytes>"), "{shown}");
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    // End to end: manifests → effective secrets → keyring → credentials for each container.
    #[test]
    fn node_images_match_by_repository_and_tag_or_digest() {
        let c = read(LIST);
        let node = c.node("a2").unwrap();
        let has = |image: &str| node.has_image(&ImageReference::parse(image).unwrap());
        assert!(has("nginx:1.25"));
        assert!(has("docker.io/library/nginx:1.25"));
        assert!(has("index.docker.io/library/nginx:1.25"));
        assert!(has(
            "nginx@sha256:e7a4c186eef137a75caacae308765dc2fbb2f57c36d95c0b3ccf6efe6d912ec1"
        ));
        assert!(has(
            "nginx:9@sha256:e7a4c186eef137a75caacae308765dc2fbb2f57c36d95c0b3ccf6efe6d912ec1"
        ));
        assert!(has("registry.k8s.io/pause:3.9"));
        assert!(!has("nginx"), "latest is not listed");
        assert!(!has("nginx:1.26"));
        assert!(!has("other/nginx:1.25"));
        assert!(!has(
            "nginx@sha256:0000000000000000000000000000000000000000000000000000000000000000"
        ));
        assert!(!has("registry.k8s.io/pause:3.9-x"));
    }

    #[test]
    fn cluster_to_keyring() {
        use crate::keyring::Keyring;
        use base64::Engine;
        let config = r#"{"auths":{"phx.ocir.io":{"username":"ns/user","password":"tok"}}}"#;
        let text = format!(
            "kind: Secret\nmetadata: {{name: ocirsecret}}\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {}\n---\n{}",
            base64::engine::general_purpose::STANDARD.encode(config),
            "kind: Pod\nmetadata: {name: ngnix-image}\nspec:\n  containers: [{name: ngnix, image: 'phx.ocir.io/ansh81vru1zp/project01/ngnix-lb:latest'}]\n  imagePullSecrets: [{name: ocirsecret}, {name: missing}]\n"
        );
        let c = read(&text);
        let w = &c.workloads[0];
        let eff = c.effective_pull_secrets(w);
        assert_eq!(eff.missing, ["missing"]);
        let keyring = Keyring::pod(&eff.found, &Keyring::empty()).unwrap();
        let creds = keyring.lookup_image(&w.pod.containers[0].image).unwrap();
        assert_eq!(creds.len(), 1);
        assert_eq!(creds[0].username, "ns/user");
        assert_eq!(creds[0].password, "tok");
    }
}
