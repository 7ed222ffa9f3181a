//! `minato webhook manifests`: everything needed to run the webhook in a cluster — a
//! Namespace, the TLS Secret, the policy ConfigMap, a Deployment, a Service and the
//! Validating/Mutating webhook configurations — with a freshly generated CA (the `caBundle`)
//! and a serving certificate whose SANs are `<service>.<namespace>.svc` and
//! `<service>.<namespace>.svc.cluster.local` (the API server rejects CN-only certificates).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use serde_json::{Value, json};

/// A generated CA and serving certificate.
#[derive(Debug, Clone)]
pub struct WebhookCerts {
    /// The CA certificate (PEM): the `caBundle`.
    pub ca_pem: String,
    /// The serving certificate (PEM).
    pub cert_pem: String,
    /// The serving key (PKCS#8 PEM).
    pub key_pem: String,
}

/// Why certificates could not be made.
#[derive(Debug, thiserror::Error)]
#[error("generating certificates: {0}")]
pub struct CertError(#[from] rcgen::Error);

/// The DNS names the API server dials for a service reference.
pub fn service_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// Generates a CA and a serving certificate for `names` (ECDSA P-256).
pub fn generate_certs(names: &[String]) -> Result<WebhookCerts, CertError> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::default();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.distinguished_name = DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "minato webhook CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.to_vec())?;
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_default(),
    );
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer)?;
    Ok(WebhookCerts {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// What the manifests describe.
#[derive(Debug, Clone)]
pub struct ManifestOptions {
    /// Namespace of the webhook.
    pub namespace: String,
    /// Service (and Deployment) name.
    pub service: String,
    /// Container image running `minato webhook`.
    pub image: String,
    /// Registry host whose images are verified (`host[:port]`).
    pub registry: String,
    /// Trusted keys (`<namespace>/<name>`) for the generated policy.
    pub keys: Vec<String>,
}

/// The manifests as multi-document YAML, with certificates `certs`.
pub fn render(options: &ManifestOptions, certs: &WebhookCerts) -> String {
    let documents = objects(options, certs);
    documents
        .iter()
        .map(|d| serde_yaml_ng::to_string(d).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("---\n")
}

fn objects(o: &ManifestOptions, certs: &WebhookCerts) -> Vec<Value> {
    let (ns, svc) = (o.namespace.as_str(), o.service.as_str());
    let labels = json!({"app.kubernetes.io/name": svc});
    let policy = format!(
        "apiVersion: minato.dev/v1\nkind: ImageVerificationPolicy\nenabled: true\nkeys: {}\n\
         registries: [{:?}]\notherImages: allow\nrequireDigest: false\n\
         exemptNamespaces: [kube-system, {ns}]\n\
         breakGlassAnnotation: oracle.image-policy.k8s.io/break-glass\n",
        serde_json::to_string(&o.keys).unwrap_or_default(),
        o.registry
    );
    let ca_bundle = STANDARD.encode(&certs.ca_pem);
    let rules = json!([
        {"operations":["CREATE","UPDATE"],"apiGroups":[""],"apiVersions":["v1"],"resources":["pods"],"scope":"*"},
        {"operations":["CREATE","UPDATE"],"apiGroups":["apps"],"apiVersions":["v1"],
         "resources":["deployments","replicasets","statefulsets","daemonsets"],"scope":"*"},
        {"operations":["CREATE","UPDATE"],"apiGroups":["batch"],"apiVersions":["v1"],
         "resources":["jobs","cronjobs"],"scope":"*"}
    ]);
    let webhook = |name: &str, path: &str| {
        json!({
            "name": name,
            "clientConfig": {"service": {"namespace": ns, "name": svc, "path": path, "port": 443},
                             "caBundle": ca_bundle},
            "rules": rules,
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "timeoutSeconds": 10,
            "admissionReviewVersions": ["v1"],
            "namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name",
                "operator": "NotIn", "values": ["kube-system", ns]}]},
        })
    };
    let mut mutating = webhook(&format!("pin.{svc}.minato.dev"), "/mutate");
    mutating["reinvocationPolicy"] = json!("Never");
    vec![
        json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":ns}}),
        json!({"apiVersion":"v1","kind":"Secret","type":"kubernetes.io/tls",
               "metadata":{"name":format!("{svc}-tls"),"namespace":ns},
               "stringData":{"tls.crt":certs.cert_pem,"tls.key":certs.key_pem,"ca.crt":certs.ca_pem}}),
        json!({"apiVersion":"v1","kind":"ConfigMap",
               "metadata":{"name":format!("{svc}-policy"),"namespace":ns},
               "data":{"policy.yaml":policy}}),
        json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":svc,"namespace":ns,"labels":labels},
               "spec":{"replicas":2,"selector":{"matchLabels":labels},"template":{
                 "metadata":{"labels":labels},
                 "spec":{"containers":[{"name":"webhook","image":o.image,
                   "args":["webhook","--policy","/etc/minato/policy/policy.yaml",
                           "--tls-cert","/etc/minato/tls/tls.crt","--tls-key","/etc/minato/tls/tls.key",
                           "--listen","0.0.0.0:8443"],
                   "ports":[{"name":"https","containerPort":8443}],
                   "readinessProbe":{"httpGet":{"path":"/healthz","port":8443,"scheme":"HTTPS"}},
                   "volumeMounts":[{"name":"tls","mountPath":"/etc/minato/tls","readOnly":true},
                                   {"name":"policy","mountPath":"/etc/minato/policy","readOnly":true}]}],
                   "volumes":[{"name":"tls","secret":{"secretName":format!("{svc}-tls")}},
                              {"name":"policy","configMap":{"name":format!("{svc}-policy")}}]}}}}),
        json!({"apiVersion":"v1","kind":"Service","metadata":{"name":svc,"namespace":ns},
               "spec":{"selector":labels,"ports":[{"name":"https","port":443,"targetPort":8443}]}}),
        json!({"apiVersion":"admissionregistration.k8s.io/v1","kind":"ValidatingWebhookConfiguration",
               "metadata":{"name":svc},
               "webhooks":[webhook(&format!("verify.{svc}.minato.dev"), "/validate")]}),
        json!({"apiVersion":"admissionregistration.k8s.io/v1","kind":"MutatingWebhookConfiguration",
               "metadata":{"name":svc},"webhooks":[mutating]}),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_object_with_the_ca_bundle() {
        let names = service_names("image-verify", "minato-system");
        let certs = generate_certs(&names).expect("certs");
        let options = ManifestOptions {
            namespace: "minato-system".into(),
            service: "image-verify".into(),
            image: "minato:test".into(),
            registry: "registry.example:5000".into(),
            keys: vec!["acme/release".into()],
        };
        let text = render(&options, &certs);
        for kind in [
            "kind: Namespace",
            "kind: Secret",
            "kind: ConfigMap",
            "kind: Deployment",
            "kind: Service",
            "kind: ValidatingWebhookConfiguration",
            "kind: MutatingWebhookConfiguration",
        ] {
            assert!(text.contains(kind), "{kind} missing");
        }
        assert!(text.contains(&STANDARD.encode(&certs.ca_pem)));
        let docs: Vec<Value> = text
            .split("\n---\n")
            .map(|d| serde_yaml_ng::from_str(d).expect("yaml"))
            .collect();
        let policy = docs[2]["data"]["policy.yaml"].as_str().expect("policy");
        crate::policy::Policy::parse(policy).expect("the generated policy is valid");
    }
}
