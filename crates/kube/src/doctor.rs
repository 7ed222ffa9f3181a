//! `minato doctor`: for every container of every workload, what the kubelet would do with
//! its image — resolved reference, pull policy, effective pull secrets, keyring matches, the
//! credential it would use, the registry's answer, platform availability — and a verdict with
//! the kubelet reason, a stable cause code and a concrete fix.
//!
//! Registry answers are fetched once per (image, credential) and concurrently, so a cluster
//! dump with many workloads sharing a few images is diagnosed quickly. Two refusals get a
//! follow-up request, so the cause is the root cause of §7 rather than the registry's wording:
//! a `MANIFEST_UNKNOWN` is checked against the repository's tag list (Distribution answers
//! `MANIFEST_UNKNOWN` for repositories it does not have), and a 401 from the registry after
//! the token endpoint accepted the credentials is checked against the token's `access` claim
//! (an empty claim means a missing policy: `denied`, not `unauthorized`).
//!
//! `imagePullPolicy: Never` is judged against the Nodes' `status.images` only: the kubelet
//! never contacts the registry then.
//!
//! With an image verification policy ([`DoctorOptions::policy`]), every container whose pull
//! would succeed is also judged by the admission webhook's own [`Engine`] in the workload's
//! namespace with its annotations (exempt namespaces, break-glass), fetching signatures with the
//! credential that worked for the pull (over the node docker config): a denial is a failure
//! with cause [`cause::SIGNATURE_INVALID`].

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::Value;

use crate::cluster::{Cluster, ContainerView, NodeObject, NodePlatform, Workload};
use crate::docker_config::DockerConfig;
use crate::keyring::{Credential as KeyringCredential, Keyring, SourceStatus};
use crate::policy::{Engine, KeySpec, PodDecision, Policy};
use crate::reference::{ImageReference, parse_error_message};
use crate::registry_client::{Credential, ErrorKind, RegistryClient, RegistryError, Transport};

/// Registry lookups run at once.
const CONCURRENCY: usize = 16;

/// Overall result for one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The kubelet would pull the image.
    Ok,
    /// It would pull, but something is off (a missing secret, a platform some nodes lack).
    Warn,
    /// The pull would fail.
    Fail,
}

/// Stable cause codes, for pipelines.
pub mod cause {
    /// Nothing wrong.
    pub const OK: &str = "ok";
    /// The reference does not parse.
    pub const INVALID_IMAGE_NAME: &str = "invalid-image-name";
    /// Neither the pod nor its service account names a pull secret.
    pub const NO_PULL_SECRETS: &str = "no-pull-secrets";
    /// A named pull secret does not exist in the namespace.
    pub const SECRET_NOT_FOUND: &str = "secret-not-found";
    /// A pull secret has a type/key pair the kubelet ignores.
    pub const SECRET_WRONG_TYPE: &str = "secret-wrong-type";
    /// A pull secret does not parse.
    pub const SECRET_MALFORMED: &str = "secret-malformed";
    /// No `auths` key of the secrets matches the image's registry.
    pub const SERVER_MISMATCH: &str = "server-mismatch";
    /// A tenancy registry refused a username without its namespace.
    pub const USERNAME_MISSING_NAMESPACE: &str = "username-missing-namespace";
    /// The password has whitespace at an end.
    pub const PASSWORD_WHITESPACE: &str = "password-whitespace";
    /// The registry refused the credentials.
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// The registry accepted the credentials but refused access.
    pub const DENIED: &str = "denied";
    /// The repository does not exist.
    pub const REPOSITORY_NOT_FOUND: &str = "repository-not-found";
    /// The tag or digest does not exist.
    pub const MANIFEST_UNKNOWN: &str = "manifest-unknown";
    /// The image has no variant for the nodes' platform.
    pub const PLATFORM_MISSING: &str = "platform-missing";
    /// `imagePullPolicy: Never` and the image is not on the nodes.
    pub const NEVER_PULL_ABSENT: &str = "never-pull-absent";
    /// The registry cannot be reached.
    pub const REGISTRY_UNREACHABLE: &str = "registry-unreachable";
    /// The image verification policy denies the image (no valid signature by a policy key, a
    /// tag where a digest is required, a registry outside the policy): the admission webhook
    /// would refuse the pod.
    pub const SIGNATURE_INVALID: &str = "signature-invalid";
}

/// Diagnosis options.
#[derive(Clone, Default)]
pub struct DoctorOptions {
    /// Node-level credentials (the kubelet's docker config), tried after pod secrets.
    pub node_keyring: Keyring,
    /// Platforms to check images against when the input has no Nodes (`--node-arch`).
    pub platforms: Vec<NodePlatform>,
    /// The image verification policy the admission webhook applies (`--policy`); `None`
    /// leaves signatures unchecked.
    pub policy: Option<Policy>,
    /// The nodes' docker config, for the policy engine's registry requests to hosts the pull
    /// credential does not cover (trusted keys of another registry).
    pub docker_config: Option<DockerConfig>,
}

/// One pull secret as the kubelet would read it.
#[derive(Debug, Clone, Serialize)]
pub struct SecretReport {
    /// Secret name.
    pub name: String,
    /// `found`, `missing`, or why it is ignored or invalid.
    pub status: String,
    /// Its type, when found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
}

/// One `auths` key and whether it covers the image.
#[derive(Debug, Clone, Serialize)]
pub struct AuthKeyReport {
    /// Where the key comes from (secret or file).
    pub source: String,
    /// The key as written.
    pub key: String,
    /// The key after the kubelet's normalization.
    pub normalized: String,
    /// Whether it matches the image's repository.
    pub matches: bool,
    /// Why not, when it does not.
    pub explanation: String,
    /// The username's shape and the password's length (never the password).
    pub credential: String,
}

/// Everything known about one container.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Namespace of the workload.
    pub namespace: String,
    /// `Kind/name` of the workload.
    pub workload: String,
    /// Container name.
    pub container: String,
    /// Image as written.
    pub image: String,
    /// Verdict.
    pub verdict: Verdict,
    /// The kubelet reason it would report (`ErrImagePull`, `InvalidImageName`, ...), empty when
    /// the pull succeeds.
    pub reason: String,
    /// Stable cause code (see [`cause`]).
    pub cause: String,
    /// What the kubelet (or the registry) would say.
    pub message: String,
    /// What to do about it.
    pub fix: String,
    /// The normalized reference.
    pub resolved_image: String,
    /// Effective `imagePullPolicy`.
    pub pull_policy: String,
    /// Effective pull secrets, in order.
    pub pull_secrets: Vec<SecretReport>,
    /// Whether the secrets came from the service account.
    pub secrets_from_service_account: bool,
    /// Every `auths` key seen, with its match result.
    pub auth_keys: Vec<AuthKeyReport>,
    /// The credential used for the successful (or last) attempt.
    pub credential: String,
    /// The registry's answer.
    pub registry_answer: String,
    /// Platforms the image offers (`os/arch[/variant]`).
    pub platforms: Vec<String>,
    /// The image verification policy's verdict (`admitted: ...` or `denied: ...`), when a
    /// policy was given and the pull would succeed.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub signature: String,
}

/// What the registry said for one (image, credential).
#[derive(Debug, Clone)]
enum Answer {
    /// The manifest exists; the platforms it offers.
    Found {
        digest: String,
        platforms: Vec<String>,
    },
    /// A refusal or failure.
    Failed {
        kind: ErrorKind,
        /// The error as the runtime reports it.
        text: String,
        /// The URL that answered with the refusal (a token endpoint or a `/v2/` URL).
        url: Option<String>,
        /// What a follow-up check found (the tag list of a repository whose manifest is
        /// unknown).
        evidence: Option<String>,
    },
}

type AnswerKey = (String, Option<(String, String)>);

/// Describes a username's shape and a password's length and whitespace, never its value.
pub fn describe_credential(username: &str, password: &str) -> String {
    let shape = match username.matches('/').count() {
        0 => "no tenancy namespace",
        1 => "<namespace>/<user>",
        _ => "<namespace>/<idp>/<user>",
    };
    let mut text = format!(
        "{username} ({shape}), password of {} characters",
        password.chars().count()
    );
    if password.trim() != password {
        text.push_str(" with whitespace at an end");
    }
    text
}

fn platform_text(value: &Value) -> Option<String> {
    let os = value["os"].as_str()?;
    let architecture = value["architecture"].as_str()?;
    Some(match value["variant"].as_str() {
        Some(variant) if !variant.is_empty() => format!("{os}/{architecture}/{variant}"),
        _ => format!("{os}/{architecture}"),
    })
}

fn failed(error: &RegistryError) -> Answer {
    let url = match error {
        RegistryError::Response { url, .. }
        | RegistryError::Protocol { url, .. }
        | RegistryError::DigestMismatch { url, .. }
        | RegistryError::Interrupted { url, .. } => Some(url.clone()),
        RegistryError::Unreachable { .. } => None,
    };
    Answer::Failed {
        kind: error.kind(),
        text: error.to_string(),
        url,
        evidence: None,
    }
}

async fn fetch(
    transport: &Transport,
    reference: &ImageReference,
    credential: Option<Credential>,
) -> Answer {
    let client = match transport
        .connect(reference.registry_host(), credential.clone())
        .await
    {
        Ok(client) => client,
        Err(e) => return failed(&e),
    };
    let manifest = match client
        .manifest(&reference.path, reference.manifest_reference())
        .await
    {
        Ok(manifest) => manifest,
        Err(e) if e.kind() == ErrorKind::ManifestUnknown => {
            let mut answer = failed(&e);
            // Distribution answers MANIFEST_UNKNOWN also for a repository it does not have;
            // its tag list tells the two apart (§7.12's check).
            if let Some(said) = unknown_repository(&client, &reference.path).await
                && let Answer::Failed { kind, evidence, .. } = &mut answer
            {
                *kind = ErrorKind::NameUnknown;
                *evidence = Some(said);
            }
            return answer;
        }
        Err(e) => {
            let mut answer = failed(&e);
            let from_registry =
                matches!(&answer, Answer::Failed { url: Some(url), .. } if url.contains("/v2/"));
            if e.kind() == ErrorKind::Unauthorized
                && from_registry
                && let Some(credential) = &credential
                && let Some(said) = token_without_access(&client, &reference.path, credential).await
                && let Answer::Failed { kind, evidence, .. } = &mut answer
            {
                *kind = ErrorKind::Denied;
                *evidence = Some(said);
            }
            return answer;
        }
    };
    let document: Value = serde_json::from_slice(&manifest.bytes).unwrap_or(Value::Null);
    let platforms = match document["manifests"].as_array() {
        Some(children) => children
            .iter()
            .filter_map(|c| platform_text(&c["platform"]))
            .collect(),
        None => config_platform(&client, reference, &document)
            .await
            .into_iter()
            .collect(),
    };
    Answer::Found {
        digest: manifest.digest.to_string(),
        platforms,
    }
}

/// The registry's answer when `GET /v2/<path>/tags/list` says the repository is unknown
/// (`NAME_UNKNOWN`); `None` for any other answer.
async fn unknown_repository(client: &RegistryClient, path: &str) -> Option<String> {
    match client.tags(path, 1).await {
        Err(e) if e.kind() == ErrorKind::NameUnknown => Some(e.to_string()),
        _ => None,
    }
}

/// After a 401 from the registry itself (not from its token endpoint) for `credential`: asks the
/// token endpoint again and reads the `access` claim of the token it issues. When the
/// credentials are accepted but the token grants no pull on `path`, the refusal is an access
/// decision (§7.11: the policy is missing), not a credential problem; returns what was found.
/// `None` for a Basic-auth registry (there a 401 does mean wrong credentials) or any failure.
async fn token_without_access(
    client: &RegistryClient,
    path: &str,
    credential: &Credential,
) -> Option<String> {
    let token = client.pull_token(path).await.ok()??;
    let scope = format!("repository:{path}:pull");
    match jwt_access(&token) {
        Some(access) => {
            let grants_pull = access.as_array().is_some_and(|entries| {
                entries.iter().any(|e| {
                    e["type"] == "repository"
                        && e["name"] == path
                        && e["actions"]
                            .as_array()
                            .is_some_and(|a| a.iter().any(|x| x == "pull" || x == "*"))
                })
            });
            (!grants_pull).then(|| {
                format!(
                    "the token endpoint accepted {} for {scope}, but the token's access claim is {access}",
                    credential.username
                )
            })
        }
        None => Some(format!(
            "the token endpoint accepted {} for {scope}, but the registry refused the token it issued",
            credential.username
        )),
    }
}

/// The `access` claim of a JWT, without verifying it (only to explain a refusal).
fn jwt_access(token: &str) -> Option<Value> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("access").cloned()
}

/// Whether the registry is a tenancy registry, whose usernames are
/// `<tenancy-namespace>/<user>`: an OCIR host, or a registry whose token endpoint is the
/// tenancy one (`/20180419/docker/token`, OCIR's and minato's).
fn tenancy_registry(domain: &str, refused_by: Option<&str>) -> bool {
    domain.ends_with(".ocir.io")
        || (domain.starts_with("ocir.") && domain.ends_with(".oraclecloud.com"))
        || refused_by.is_some_and(|url| url.contains("/20180419/docker/token"))
}

/// The platform of a single-platform image, from its config blob.
async fn config_platform(
    client: &crate::registry_client::RegistryClient,
    reference: &ImageReference,
    manifest: &Value,
) -> Option<String> {
    let digest: minato_oci::Digest = manifest["config"]["digest"].as_str()?.parse().ok()?;
    let mut stream = client.blob(&reference.path, &digest, 0).await.ok()?;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.chunk().await.ok()? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > 1024 * 1024 {
            return None;
        }
    }
    platform_text(&serde_json::from_slice(&bytes).ok()?)
}

/// Diagnoses every container of every workload of `cluster`.
pub async fn diagnose(cluster: &Cluster, options: &DoctorOptions) -> Vec<Finding> {
    let transport = match Transport::new(&Default::default()) {
        Ok(transport) => transport,
        Err(e) => {
            return cluster
                .workloads
                .iter()
                .flat_map(|w| w.pod.containers.iter().map(move |c| (w, c)))
                .map(|(w, c)| unreachable_finding(w, c, &e.to_string()))
                .collect();
        }
    };
    let plans: Vec<Plan> = cluster
        .workloads
        .iter()
        .flat_map(|w| w.pod.containers.iter().map(move |c| (w, c)))
        .map(|(w, c)| plan(cluster, options, w, c))
        .collect();
    let mut wanted: BTreeSet<AnswerKey> = BTreeSet::new();
    for plan in &plans {
        if let Some(reference) = &plan.reference {
            for attempt in &plan.attempts {
                wanted.insert((reference.to_string(), attempt.clone()));
            }
        }
    }
    let transport = Arc::new(transport);
    let answers: HashMap<AnswerKey, Answer> = stream::iter(wanted)
        .map(|key| {
            let transport = transport.clone();
            async move {
                let reference = ImageReference::parse(&key.0).expect("planned references parse");
                let credential = key.1.clone().map(|(u, p)| Credential::new(u, p));
                let answer = fetch(&transport, &reference, credential).await;
                (key, answer)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let node_platforms = if cluster.nodes.is_empty() {
        options.platforms.clone()
    } else {
        cluster.node_platforms()
    };
    let concluded: Vec<(Finding, Option<Attempt>)> = plans
        .into_iter()
        .map(|plan| conclude(plan, &answers, &node_platforms))
        .collect();
    match &options.policy {
        Some(policy) => check_signatures(cluster, options, policy, concluded).await,
        None => concluded.into_iter().map(|(finding, _)| finding).collect(),
    }
}

/// A credential tried for a pull (`None` = anonymous).
type Attempt = Option<(String, String)>;

/// Asks the policy engine about every container whose pull succeeded (`pulled` = the
/// credential that worked), in its workload's namespace with its annotations, as the admission
/// webhook would for the pod. One engine per (registry, credential), so signatures are fetched
/// with the credential that pulled the image.
async fn check_signatures(
    cluster: &Cluster,
    options: &DoctorOptions,
    policy: &Policy,
    concluded: Vec<(Finding, Option<Attempt>)>,
) -> Vec<Finding> {
    let containers = cluster
        .workloads
        .iter()
        .flat_map(|w| w.pod.containers.iter().map(move |_| w));
    let mut engines: HashMap<(String, Attempt), Result<Engine, String>> = HashMap::new();
    let mut jobs = Vec::new();
    for (index, (workload, (finding, pulled))) in containers.zip(&concluded).enumerate() {
        let Some(attempt) = pulled else { continue };
        if finding.verdict == Verdict::Fail {
            continue;
        }
        let Ok(reference) = ImageReference::parse(&finding.image) else {
            continue;
        };
        let key = (reference.domain.clone(), attempt.clone());
        engines.entry(key.clone()).or_insert_with(|| {
            let mut config = options
                .docker_config
                .clone()
                .unwrap_or_else(DockerConfig::empty);
            if let Some((username, password)) = attempt {
                config.set_credentials(&reference.domain, username, password);
            }
            Engine::new(policy.clone(), Some(config))
        });
        jobs.push((index, key, workload));
    }
    let engines = &engines;
    let decisions: HashMap<usize, Result<PodDecision, String>> = stream::iter(jobs)
        .map(|(index, key, workload)| {
            let image = concluded[index].0.image.clone();
            async move {
                let decision = match &engines[&key] {
                    Ok(engine) => Ok(engine
                        .check_pod(&workload.namespace, &workload.annotations, &[image])
                        .await),
                    Err(e) => Err(e.clone()),
                };
                (index, decision)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    concluded
        .into_iter()
        .enumerate()
        .map(|(index, (mut finding, _))| {
            match decisions.get(&index) {
                Some(Ok(decision)) => signature_verdict(&mut finding, policy, decision),
                Some(Err(e)) => {
                    let message = format!(
                        "the signature of {:?} cannot be checked: {e}",
                        finding.image
                    );
                    fail(
                        &mut finding,
                        "AdmissionDenied",
                        cause::SIGNATURE_INVALID,
                        message,
                        "check the policy file and the network".to_owned(),
                    );
                }
                None => {}
            }
            finding
        })
        .collect()
}

/// Records the engine's decision for one container; a denial fails it.
fn signature_verdict(finding: &mut Finding, policy: &Policy, decision: &PodDecision) {
    if decision.allowed {
        let why = match decision.images.first() {
            Some(verdict) => verdict.message.clone(),
            None => match decision.audit_annotations.values().next() {
                Some(note) => note.clone(),
                None if !policy.enabled => "the policy is disabled".to_owned(),
                None => format!("namespace {:?} is exempt", finding.namespace),
            },
        };
        finding.signature = format!("admitted: {why}");
        return;
    }
    finding.signature = format!("denied: {}", decision.message);
    let message = format!(
        "the admission webhook would refuse the pod: {}",
        decision.message
    );
    let key = policy
        .keys
        .iter()
        .find_map(|k| match k {
            KeySpec::Named(name) => Some(name.as_str()),
            KeySpec::Inline { .. } => None,
        })
        .unwrap_or("<namespace>/<name>");
    let fix = format!(
        "sign the image with one of the policy keys (`minato sign {} --key {key}`) or reference a signed digest",
        finding.image
    );
    fail(
        finding,
        "AdmissionDenied",
        cause::SIGNATURE_INVALID,
        message,
        fix,
    );
}

/// What is known about a container before asking the registry.
struct Plan {
    finding: Finding,
    reference: Option<ImageReference>,
    /// Credentials in try order (`None` = anonymous).
    attempts: Vec<Option<(String, String)>>,
    keyring_error: Option<String>,
    missing_secrets: Vec<String>,
    ignored_secret: Option<String>,
    matched_any: bool,
    has_keys: bool,
    wanted_arch: Option<String>,
}

fn base_finding(workload: &Workload, container: &ContainerView) -> Finding {
    Finding {
        namespace: workload.namespace.clone(),
        workload: format!("{}/{}", workload.kind.as_str(), workload.name),
        container: container.name.clone(),
        image: container.image.clone(),
        verdict: Verdict::Ok,
        reason: String::new(),
        cause: cause::OK.to_owned(),
        message: String::new(),
        fix: String::new(),
        resolved_image: String::new(),
        pull_policy: container.pull_policy().to_owned(),
        pull_secrets: Vec::new(),
        secrets_from_service_account: false,
        auth_keys: Vec::new(),
        credential: "anonymous".to_owned(),
        registry_answer: String::new(),
        platforms: Vec::new(),
        signature: String::new(),
    }
}

fn unreachable_finding(workload: &Workload, container: &ContainerView, reason: &str) -> Finding {
    let mut finding = base_finding(workload, container);
    fail(
        &mut finding,
        "ErrImagePull",
        cause::REGISTRY_UNREACHABLE,
        reason.to_owned(),
        "check the network".to_owned(),
    );
    finding
}

fn fail(finding: &mut Finding, reason: &str, cause: &str, message: String, fix: String) {
    finding.verdict = Verdict::Fail;
    finding.reason = reason.to_owned();
    finding.cause = cause.to_owned();
    finding.message = message;
    finding.fix = fix;
}

fn credential_pair(credential: &KeyringCredential) -> (String, String) {
    (credential.username.clone(), credential.password.clone())
}

fn plan(
    cluster: &Cluster,
    options: &DoctorOptions,
    workload: &Workload,
    container: &ContainerView,
) -> Plan {
    let mut finding = base_finding(workload, container);
    let effective = cluster.effective_pull_secrets(workload);
    finding.secrets_from_service_account = effective.from_service_account;
    for name in &effective.names {
        let found = effective.found.iter().find(|s| &s.name == name);
        finding.pull_secrets.push(SecretReport {
            name: name.clone(),
            status: if found.is_some() {
                "found".into()
            } else {
                "missing".into()
            },
            r#type: found.map(|s| s.type_.clone()),
        });
    }
    let mut plan = Plan {
        reference: None,
        attempts: Vec::new(),
        keyring_error: None,
        missing_secrets: effective.missing.clone(),
        ignored_secret: None,
        matched_any: false,
        has_keys: false,
        wanted_arch: workload.pod.node_selector_arch.clone(),
        finding,
    };
    let reference = match ImageReference::parse(&container.image) {
        Ok(reference) => reference,
        Err(e) => {
            fail(
                &mut plan.finding,
                "InvalidImageName",
                cause::INVALID_IMAGE_NAME,
                parse_error_message(&container.image, &e),
                "write the image as [registry/]repository[:tag][@digest] in lower case".into(),
            );
            return plan;
        }
    };
    plan.finding.resolved_image = reference.to_string();
    if plan.finding.pull_policy == "Never" {
        // The kubelet only looks for the image on the node: no credentials, no registry.
        never_pull(&mut plan.finding, cluster, workload, &reference);
        return plan;
    }
    let repository = reference.repository();
    let keyring = match Keyring::pod(&effective.found, &options.node_keyring) {
        Ok(keyring) => keyring,
        Err(e) => {
            plan.keyring_error = Some(e.kubelet_message().to_owned());
            plan.reference = Some(reference);
            return plan;
        }
    };
    for (report, secret) in keyring.reports().iter().zip(effective.found.iter()) {
        if let SourceStatus::Ignored(ignored) = &report.status {
            plan.ignored_secret = Some(format!("secret {:?}: {ignored}", secret.name));
            if let Some(entry) = plan
                .finding
                .pull_secrets
                .iter_mut()
                .find(|s| s.name == secret.name)
            {
                entry.status = format!("ignored: {ignored}");
            }
        }
    }
    for entry in keyring.entries() {
        plan.has_keys = true;
        let explanation = entry.explain(&repository);
        plan.matched_any |= explanation.is_match();
        plan.finding.auth_keys.push(AuthKeyReport {
            source: entry.credential.source.to_string(),
            key: entry.written.clone(),
            normalized: entry.normalized.clone(),
            matches: explanation.is_match(),
            explanation: explanation.to_string(),
            credential: describe_credential(&entry.credential.username, &entry.credential.password),
        });
    }
    plan.attempts = keyring
        .lookup(&repository)
        .iter()
        .map(|c| Some(credential_pair(c)))
        .collect();
    if plan.attempts.is_empty() {
        plan.attempts.push(None);
    }
    plan.reference = Some(reference);
    plan
}

/// `imagePullPolicy: Never` (§2.1 step 4.2): the image must already be on the node the pod
/// runs on. Judged against the nodes' `status.images` — the node the pod is bound to when it is
/// among them, else the nodes its `kubernetes.io/arch` selector allows, else every node.
fn never_pull(
    finding: &mut Finding,
    cluster: &Cluster,
    workload: &Workload,
    reference: &ImageReference,
) {
    let image = crate::pull::with_default_tag(&finding.image);
    let not_present = format!("Container image {image:?} is not present with pull policy of Never");
    let preload = format!(
        "preload {image} on every node (e.g. `ctr -n k8s.io images import` or a pre-pull DaemonSet), or set imagePullPolicy to IfNotPresent"
    );
    let bound = workload
        .pod
        .node_name
        .as_deref()
        .and_then(|name| cluster.node(name));
    let candidates: Vec<&NodeObject> = match (bound, &workload.pod.node_selector_arch) {
        (Some(node), _) => vec![node],
        (None, Some(arch)) => {
            let selected: Vec<&NodeObject> = cluster
                .nodes
                .iter()
                .filter(|n| n.platform().is_some_and(|p| &p.architecture == arch))
                .collect();
            if selected.is_empty() {
                cluster.nodes.iter().collect()
            } else {
                selected
            }
        }
        (None, None) => cluster.nodes.iter().collect(),
    };
    if candidates.is_empty() {
        finding.verdict = Verdict::Warn;
        finding.cause = cause::NEVER_PULL_ABSENT.into();
        finding.message = format!(
            "imagePullPolicy is Never: the kubelet never pulls {image}, so it must be preloaded on every node the pod may run on (no Node objects in the input to check; otherwise the pod fails with ErrImageNeverPull: {not_present})"
        );
        finding.fix = format!(
            "{preload}; give the Nodes (`kubectl get nodes -o yaml`) to check their images"
        );
        return;
    }
    let (with, without): (Vec<&NodeObject>, Vec<&NodeObject>) =
        candidates.iter().partition(|n| n.has_image(reference));
    let names = |nodes: &[&NodeObject]| {
        nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if without.is_empty() {
        finding.registry_answer = format!(
            "not contacted (imagePullPolicy Never; present on {})",
            names(&with)
        );
        return;
    }
    finding.cause = cause::NEVER_PULL_ABSENT.into();
    finding.reason = "ErrImageNeverPull".into();
    let caveat = "node status lists at most 50 images by default (kubelet nodeStatusMaxImages)";
    if with.is_empty() {
        finding.verdict = Verdict::Fail;
        finding.message = not_present;
        finding.fix = format!(
            "{preload} (not listed by node(s) {}; {caveat})",
            names(&without)
        );
    } else {
        finding.verdict = Verdict::Warn;
        finding.message = format!(
            "{not_present} on node(s) {} (present on {}): pods scheduled there fail with ErrImageNeverPull",
            names(&without),
            names(&with)
        );
        finding.fix = format!("{preload}, or pin the pod to the nodes that have it ({caveat})");
    }
}

/// The finding, and the credential that pulled the image when the registry had it.
fn conclude(
    mut plan: Plan,
    answers: &HashMap<AnswerKey, Answer>,
    nodes: &[NodePlatform],
) -> (Finding, Option<Attempt>) {
    if plan.finding.verdict == Verdict::Fail {
        return (plan.finding, None);
    }
    let Some(reference) = plan.reference.clone() else {
        return (plan.finding, None);
    };
    let image = plan.finding.image.clone();
    if let Some(error) = plan.keyring_error.take() {
        // The kubelet aborts the credential lookup and the pull with the JSON error itself,
        // which becomes the container's waiting reason (§2.5): not ErrImagePull.
        let reason = error.clone();
        fail(
            &mut plan.finding,
            &reason,
            cause::SECRET_MALFORMED,
            error,
            "recreate the secret with `minato create secret docker-registry` (or fix its JSON)"
                .into(),
        );
        return (plan.finding, None);
    }
    let mut last = None;
    for attempt in &plan.attempts {
        let answer = &answers[&(reference.to_string(), attempt.clone())];
        plan.finding.credential = match attempt {
            Some((user, password)) => describe_credential(user, password),
            None => "anonymous".to_owned(),
        };
        if let Answer::Found { digest, platforms } = answer {
            let pulled_with = attempt.clone();
            plan.finding.registry_answer = format!("manifest {digest}");
            plan.finding.platforms = platforms.clone();
            check_platforms(&mut plan, nodes);
            if plan.finding.verdict == Verdict::Ok {
                warn_missing_secrets(&mut plan);
            }
            return (plan.finding, Some(pulled_with));
        }
        last = Some((attempt.clone(), answer.clone()));
    }
    let Some((
        attempt,
        Answer::Failed {
            kind,
            text,
            url,
            evidence,
        },
    )) = last
    else {
        return (plan.finding, None);
    };
    plan.finding.registry_answer = match &evidence {
        Some(evidence) => format!("{text} ({evidence})"),
        None => text.clone(),
    };
    let message = format!("Failed to pull image {image:?}: {text}");
    let (cause, fix) = classify(&plan, attempt.as_ref(), &kind, &reference, url.as_deref());
    fail(&mut plan.finding, "ErrImagePull", cause, message, fix);
    plan.finding.fix.push_str(" (after the first failure the kubelet reports ImagePullBackOff and retries after 10s, 20s, 40s ... up to 5m)");
    (plan.finding, None)
}

fn warn_missing_secrets(plan: &mut Plan) {
    if let Some(warning) = crate::cluster::failed_to_retrieve_message(&plan.missing_secrets) {
        plan.finding.verdict = Verdict::Warn;
        plan.finding.reason = "FailedToRetrieveImagePullSecret".into();
        plan.finding.cause = cause::SECRET_NOT_FOUND.into();
        plan.finding.message = warning;
        plan.finding.fix = format!(
            "create the secret(s) in namespace {:?} or remove them from imagePullSecrets",
            plan.finding.namespace
        );
    }
}

fn check_platforms(plan: &mut Plan, nodes: &[NodePlatform]) {
    let offered: Vec<(String, String)> = plan
        .finding
        .platforms
        .iter()
        .filter_map(|p| {
            let mut parts = p.split('/');
            Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
        })
        .collect();
    if offered.is_empty() {
        return;
    }
    let mut needed: Vec<(String, String)> = nodes
        .iter()
        .map(|n| (n.os.clone(), n.architecture.clone()))
        .collect();
    if let Some(arch) = &plan.wanted_arch {
        needed.retain(|(_, a)| a == arch);
        if needed.is_empty() {
            needed.push(("linux".into(), arch.clone()));
        }
    }
    if needed.is_empty() {
        return;
    }
    let missing: Vec<String> = needed
        .iter()
        .filter(|n| !offered.contains(n))
        .map(|(os, arch)| format!("{os}/{arch}"))
        .collect();
    if missing.is_empty() {
        return;
    }
    let available = plan.finding.platforms.join(", ");
    let all_missing = missing.len() == needed.len();
    plan.finding.verdict = if all_missing {
        Verdict::Fail
    } else {
        Verdict::Warn
    };
    plan.finding.reason = if all_missing {
        "ErrImagePull".into()
    } else {
        String::new()
    };
    plan.finding.cause = cause::PLATFORM_MISSING.into();
    plan.finding.message = format!(
        "no match for platform in manifest: not found (image offers {available}; nodes need {})",
        missing.join(", ")
    );
    plan.finding.fix = format!(
        "push a multi-platform image that includes {} (e.g. build with --platform) or schedule the pod on nodes of a platform the image offers",
        missing.join(", ")
    );
}

fn classify(
    plan: &Plan,
    attempt: Option<&(String, String)>,
    kind: &ErrorKind,
    reference: &ImageReference,
    refused_by: Option<&str>,
) -> (&'static str, String) {
    let registry = &reference.domain;
    match kind {
        ErrorKind::Unreachable => (
            cause::REGISTRY_UNREACHABLE,
            format!(
                "make {registry} resolvable and reachable from the nodes (DNS, firewall, proxy, NAT)"
            ),
        ),
        ErrorKind::NameUnknown => (
            cause::REPOSITORY_NOT_FOUND,
            format!(
                "check the repository path {:?} (namespace, spelling, registry region) or push it",
                reference.path
            ),
        ),
        ErrorKind::ManifestUnknown => (
            cause::MANIFEST_UNKNOWN,
            format!(
                "push {} or reference a tag or digest that exists",
                reference.manifest_reference()
            ),
        ),
        ErrorKind::Unauthorized | ErrorKind::Denied => {
            let tenancy = tenancy_registry(registry, refused_by);
            refusal(plan, attempt, kind, registry, tenancy)
        }
        _ => (
            cause::UNAUTHORIZED,
            "inspect the registry's answer above".to_owned(),
        ),
    }
}

fn refusal(
    plan: &Plan,
    attempt: Option<&(String, String)>,
    kind: &ErrorKind,
    registry: &str,
    tenancy: bool,
) -> (&'static str, String) {
    let Some((username, password)) = attempt else {
        if !plan.missing_secrets.is_empty() {
            return (
                cause::SECRET_NOT_FOUND,
                format!(
                    "create secret(s) {} in namespace {:?} (secrets are namespace-scoped)",
                    plan.missing_secrets.join(", "),
                    plan.finding.namespace
                ),
            );
        }
        if let Some(ignored) = &plan.ignored_secret {
            return (
                cause::SECRET_WRONG_TYPE,
                format!("{ignored}; recreate it with `minato create secret docker-registry`"),
            );
        }
        if plan.has_keys && !plan.matched_any {
            return (
                cause::SERVER_MISMATCH,
                format!(
                    "no auths key of the pull secrets matches {registry}: recreate the secret with --docker-server={registry} (exactly the host written in the image)"
                ),
            );
        }
        if plan.finding.pull_secrets.is_empty() {
            return (
                cause::NO_PULL_SECRETS,
                format!(
                    "create a pull secret for {registry} and list it in the pod's imagePullSecrets (or the service account's), or use the kubelet credential provider"
                ),
            );
        }
        return (
            cause::UNAUTHORIZED,
            "the registry refused anonymous access; give the pod a pull secret".to_owned(),
        );
    };
    // Only tenancy registries (OCIR, minato) need the namespace in the username; elsewhere a
    // plain username is normal and the refusal is about the password.
    if tenancy && !username.contains('/') && username != "BEARER_TOKEN" {
        return (
            cause::USERNAME_MISSING_NAMESPACE,
            format!("use the username <tenancy-namespace>/{username} in the pull secret"),
        );
    }
    if password.trim() != password {
        return (
            cause::PASSWORD_WHITESPACE,
            "recreate the secret without the whitespace around the password (use --password-stdin)"
                .to_owned(),
        );
    }
    match kind {
        ErrorKind::Denied => (
            cause::DENIED,
            format!(
                "grant the user read access, e.g. `allow group <group> to read repos in tenancy` for {username}"
            ),
        ),
        _ => (
            cause::UNAUTHORIZED,
            format!(
                "the registry refused {username}: check the auth token (revoked, expired, mistyped) and recreate the secret"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_described_without_the_password() {
        let text = describe_credential("ns/jdoe@acme.com", "k]j64r{1sJSSF-;)K8 ");
        assert!(!text.contains("k]j64r"));
        assert!(text.contains("password of 19 characters with whitespace at an end"));
        assert!(describe_credential("jdoe", "x").contains("no tenancy namespace"));
        assert!(describe_credential("ns/idp/u", "x").contains("<namespace>/<idp>/<user>"));
    }

    #[test]
    fn tenancy_registries_are_recognized() {
        assert!(tenancy_registry("phx.ocir.io", None));
        assert!(tenancy_registry(
            "ocir.us-phoenix-1.oci.oraclecloud.com",
            None
        ));
        assert!(tenancy_registry(
            "127.0.0.1:5000",
            Some("http://127.0.0.1:5000/20180419/docker/token?service=x&scope=y")
        ));
        assert!(!tenancy_registry(
            "127.0.0.1:5000",
            Some("http://127.0.0.1:5000/v2/a/manifests/v1")
        ));
        assert!(!tenancy_registry("docker.io", None));
    }

    #[test]
    fn reads_the_access_claim_of_a_token() {
        use base64::Engine as _;
        let encode = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let token = format!(
            "{}.{}.sig",
            encode(r#"{"alg":"ES256"}"#),
            encode(r#"{"sub":"acme/u","access":[]}"#)
        );
        assert_eq!(jwt_access(&token), Some(serde_json::json!([])));
        assert_eq!(jwt_access("opaque-token"), None);
    }
}
