//! The admission API shapes (pull-path spec §4): `AdmissionReview` v1 requests and responses,
//! the images of a pod or pod template with their JSON pointers, JSON patches pinning images to
//! digests, and the legacy `imagepolicy.k8s.io/v1alpha1` `ImageReview`. Requests are read
//! with serde structs (only the fields used); responses are serde structs too.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cluster::WorkloadKind;
use crate::policy::{Engine, ImageVerdict};

/// `admission.k8s.io/v1`.
pub const ADMISSION_API_VERSION: &str = "admission.k8s.io/v1";
/// `imagepolicy.k8s.io/v1alpha1`.
pub const IMAGE_POLICY_API_VERSION: &str = "imagepolicy.k8s.io/v1alpha1";

/// An `AdmissionReview` as POSTed by the API server.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReview {
    /// Must be `admission.k8s.io/v1`.
    pub api_version: String,
    /// `AdmissionReview`.
    pub kind: String,
    /// The request.
    pub request: Option<AdmissionRequest>,
}

/// `request` of an [`AdmissionReview`].
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    /// Echoed in the response.
    pub uid: String,
    /// Kind of the object.
    pub kind: GroupVersionKind,
    /// Namespace of the object.
    #[serde(default)]
    pub namespace: String,
    /// Name (may be empty on CREATE with `generateName`).
    #[serde(default)]
    pub name: String,
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    #[serde(default)]
    pub operation: String,
    /// The object (null on DELETE).
    #[serde(default)]
    pub object: Option<Value>,
}

/// A group/version/kind.
#[derive(Debug, Clone, Deserialize)]
pub struct GroupVersionKind {
    /// API group (`""` for core).
    #[serde(default)]
    pub group: String,
    /// Version.
    #[serde(default)]
    pub version: String,
    /// Kind.
    pub kind: String,
}

/// The response review.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReviewResponse {
    /// `admission.k8s.io/v1`.
    pub api_version: &'static str,
    /// `AdmissionReview`.
    pub kind: &'static str,
    /// The response.
    pub response: AdmissionResponse,
}

/// `response` of an [`AdmissionReviewResponse`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    /// The request's uid.
    pub uid: String,
    /// Whether the object is admitted.
    pub allowed: bool,
    /// Denial status (code 403 and message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// `JSONPatch` when a patch follows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<&'static str>,
    /// base64 of an RFC 6902 patch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// Audit annotations (break-glass).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub audit_annotations: BTreeMap<String, String>,
}

/// A `metav1.Status` with code and message.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// HTTP-like code (403 for denials).
    pub code: u16,
    /// Message shown to the user.
    pub message: String,
}

/// One image of a pod spec and the JSON pointer of its `image` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageField {
    /// The image as written.
    pub image: String,
    /// e.g. `/spec/template/spec/containers/0/image`.
    pub pointer: String,
}

/// The pod annotations and images of an object of a workload kind (`None` for other kinds).
pub fn pod_images(
    kind: &str,
    object: &Value,
) -> Option<(BTreeMap<String, String>, Vec<ImageField>)> {
    let workload = WorkloadKind::from_kind(kind)?;
    let path = workload.pod_spec_path();
    let mut spec = object;
    for part in path {
        spec = spec.get(part)?;
    }
    let metadata_path = &path[..path.len() - 1];
    let mut annotations = string_map(object.pointer("/metadata/annotations"));
    let mut metadata = object;
    for part in metadata_path {
        metadata = metadata.get(part).unwrap_or(&Value::Null);
    }
    annotations.extend(string_map(metadata.pointer("/metadata/annotations")));
    let prefix: String = path.iter().map(|p| format!("/{p}")).collect();
    let mut images = Vec::new();
    for field in ["initContainers", "containers", "ephemeralContainers"] {
        let Some(list) = spec.get(field).and_then(Value::as_array) else {
            continue;
        };
        for (index, container) in list.iter().enumerate() {
            if let Some(image) = container.get("image").and_then(Value::as_str) {
                images.push(ImageField {
                    image: image.to_owned(),
                    pointer: format!("{prefix}/{field}/{index}/image"),
                });
            }
        }
    }
    Some((annotations, images))
}

fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn response(uid: String, allowed: bool, message: String) -> AdmissionResponse {
    AdmissionResponse {
        uid,
        allowed,
        status: (!allowed).then_some(Status { code: 403, message }),
        patch_type: None,
        patch: None,
        audit_annotations: BTreeMap::new(),
    }
}

/// Answers an `AdmissionReview`; with `mutate`, verified images referenced by tag are pinned
/// to `<image>@<digest>` with a JSON patch.
pub async fn review(
    engine: &Engine,
    review: AdmissionReview,
    mutate: bool,
) -> AdmissionReviewResponse {
    let wrap = |response| AdmissionReviewResponse {
        api_version: ADMISSION_API_VERSION,
        kind: "AdmissionReview",
        response,
    };
    let Some(request) = review.request else {
        return wrap(response(
            String::new(),
            false,
            "AdmissionReview without a request".into(),
        ));
    };
    let uid = request.uid.clone();
    let Some((annotations, fields)) = request
        .object
        .as_ref()
        .and_then(|object| pod_images(&request.kind.kind, object))
    else {
        // Not a workload (or a DELETE): nothing to check.
        return wrap(response(uid, true, String::new()));
    };
    let images: Vec<String> = fields.iter().map(|f| f.image.clone()).collect();
    let decision = engine
        .check_pod(&request.namespace, &annotations, &images)
        .await;
    let mut answer = response(uid, decision.allowed, decision.message.clone());
    answer.audit_annotations = decision.audit_annotations.clone();
    if mutate && decision.allowed {
        let patch = pin_patch(&fields, &decision.images);
        if !patch.is_empty() {
            answer.patch_type = Some("JSONPatch");
            answer.patch = Some(STANDARD.encode(Value::Array(patch).to_string()));
        }
    }
    wrap(answer)
}

/// `replace` operations pinning every image that was verified at a digest but is written
/// without one.
pub fn pin_patch(fields: &[ImageField], verdicts: &[ImageVerdict]) -> Vec<Value> {
    fields
        .iter()
        .zip(verdicts)
        .filter_map(|(field, verdict)| {
            let digest = verdict.digest.as_ref()?;
            if field.image.contains('@') {
                return None;
            }
            Some(serde_json::json!({
                "op": "replace",
                "path": field.pointer,
                "value": format!("{}@{digest}", field.image),
            }))
        })
        .collect()
}

/// An `ImageReview` (imagepolicy.k8s.io/v1alpha1) as sent by the ImagePolicyWebhook plugin.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageReview {
    /// The spec.
    pub spec: ImageReviewSpec,
}

/// `spec` of an [`ImageReview`].
#[derive(Debug, Clone, Deserialize)]
pub struct ImageReviewSpec {
    /// The pod's containers.
    #[serde(default)]
    pub containers: Vec<ImageReviewContainer>,
    /// Pod annotations matching `*.image-policy.k8s.io/*`.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The pod's namespace.
    #[serde(default)]
    pub namespace: String,
}

/// One container of an [`ImageReviewSpec`].
#[derive(Debug, Clone, Deserialize)]
pub struct ImageReviewContainer {
    /// Its image.
    #[serde(default)]
    pub image: String,
}

/// Answers an `ImageReview`: `{"apiVersion","kind","status":{"allowed","reason"}}`.
pub async fn image_review(engine: &Engine, review: ImageReview) -> Value {
    let images: Vec<String> = review
        .spec
        .containers
        .into_iter()
        .map(|c| c.image)
        .collect();
    let decision = engine
        .check_pod(&review.spec.namespace, &review.spec.annotations, &images)
        .await;
    let mut status = serde_json::json!({ "allowed": decision.allowed });
    if !decision.allowed {
        status["reason"] = Value::String(decision.message);
    }
    if !decision.audit_annotations.is_empty() {
        status["auditAnnotations"] = serde_json::json!(decision.audit_annotations);
    }
    serde_json::json!({
        "apiVersion": IMAGE_POLICY_API_VERSION,
        "kind": "ImageReview",
        "status": status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_images_of_every_workload_kind() {
        let pod = serde_json::json!({"metadata":{"annotations":{"a":"1"}},"spec":{
            "initContainers":[{"name":"i","image":"r/i:1"}],
            "containers":[{"name":"c","image":"r/c:1"},{"name":"d","image":"r/d@sha256:00"}],
            "ephemeralContainers":[{"name":"e","image":"r/e"}]}});
        let (annotations, images) = pod_images("Pod", &pod).expect("a pod");
        assert_eq!(annotations["a"], "1");
        let pointers: Vec<&str> = images.iter().map(|i| i.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/spec/initContainers/0/image",
                "/spec/containers/0/image",
                "/spec/containers/1/image",
                "/spec/ephemeralContainers/0/image"
            ]
        );
        let cronjob = serde_json::json!({"spec":{"jobTemplate":{"spec":{"template":{
            "metadata":{"annotations":{"b":"2"}},"spec":{"containers":[{"image":"x"}]}}}}}});
        let (annotations, images) = pod_images("CronJob", &cronjob).expect("a cronjob");
        assert_eq!(annotations["b"], "2");
        assert_eq!(
            images[0].pointer,
            "/spec/jobTemplate/spec/template/spec/containers/0/image"
        );
        assert!(pod_images("ConfigMap", &cronjob).is_none());
    }

    #[test]
    fn pins_tags_only() {
        let fields = [
            ImageField {
                image: "r/a:1".into(),
                pointer: "/spec/containers/0/image".into(),
            },
            ImageField {
                image: "r/b@sha256:1".into(),
                pointer: "/spec/containers/1/image".into(),
            },
        ];
        let verdict = ImageVerdict {
            allowed: true,
            message: String::new(),
            digest: Some("sha256:1".into()),
        };
        let patch = pin_patch(&fields, &[verdict.clone(), verdict]);
        assert_eq!(
            Value::Array(patch).to_string(),
            r#"[{"op":"replace","path":"/spec/containers/0/image","value":"r/a:1@sha256:1"}]"#
        );
    }
}
