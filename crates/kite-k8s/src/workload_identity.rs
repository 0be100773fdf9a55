//! Workload identity for pods without code changes: what a mutating admission webhook adds to a
//! pod so the unmodified SDKs find their credentials, as Azure Workload Identity, IRSA and EKS Pod
//! Identity inject them (names and defaults as those webhooks use them). Pure: the pod and its
//! service account in, a JSON Patch (RFC 6902) and warnings out.
//!
//! Rules every mutation keeps: a variable, volume or mount the pod already has is never changed;
//! a second pass over a mutated pod adds nothing; a pod the webhook does not concern, or whose
//! annotations are malformed, is admitted unchanged with a warning naming the problem.

use serde_json::{json, Value};

pub const USE_LABEL: &str = "azure.workload.identity/use";
pub const CLIENT_ID: &str = "azure.workload.identity/client-id";
pub const TENANT_ID: &str = "azure.workload.identity/tenant-id";
pub const AZURE_EXPIRATION: &str = "azure.workload.identity/service-account-token-expiration";
pub const AZURE_SKIP: &str = "azure.workload.identity/skip-containers";
pub const ROLE_ARN: &str = "eks.amazonaws.com/role-arn";
pub const AWS_AUDIENCE: &str = "eks.amazonaws.com/audience";
pub const AWS_REGIONAL: &str = "eks.amazonaws.com/sts-regional-endpoints";
pub const AWS_EXPIRATION: &str = "eks.amazonaws.com/token-expiration";
pub const AWS_SKIP: &str = "eks.amazonaws.com/skip-containers";

const AZURE_VOLUME: &str = "azure-identity-token";
const AZURE_MOUNT: &str = "/var/run/secrets/azure/tokens";
const AZURE_AUDIENCE: &str = "api://AzureADTokenExchange";
const IRSA_VOLUME: &str = "aws-iam-token";
const IRSA_MOUNT: &str = "/var/run/secrets/eks.amazonaws.com/serviceaccount";
const POD_IDENTITY_VOLUME: &str = "eks-pod-identity-token";
const POD_IDENTITY_MOUNT: &str = "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount";
const POD_IDENTITY_AUDIENCE: &str = "pods.eks.amazonaws.com";

/// What the cluster's kite tells pods; `sts_endpoint` points unmodified AWS SDKs at kite's STS.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// `AZURE_TENANT_ID` when the service account names none.
    pub tenant_id: String,
    /// `AZURE_AUTHORITY_HOST`: kite's public URL.
    pub authority_host: String,
    /// `AWS_ENDPOINT_URL_STS`, when set.
    pub sts_endpoint: Option<String>,
    /// `AWS_REGION` and `AWS_DEFAULT_REGION`, when set.
    pub region: Option<String>,
    /// `AWS_CONTAINER_CREDENTIALS_FULL_URI` for EKS Pod Identity.
    pub container_credentials_uri: String,
    /// The ConfigMap (in the pod's namespace) holding kite's CA as `ca.crt`, when kite's
    /// certificate is private: mounted into every injected container, with the variables that make
    /// the SDKs trust it. `None` when pods reach kite through a publicly trusted certificate.
    pub ca_config_map: Option<String>,
}

const CA_VOLUME: &str = "kite-ca";
const CA_MOUNT: &str = "/var/run/secrets/kite.io/ca";
/// The ConfigMap key (and file) holding kite's CA, as `kube-root-ca.crt` names its own.
pub const CA_KEY: &str = "ca.crt";

/// The webhook's answer for one pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mutation {
    /// RFC 6902 operations against the pod as sent; empty when nothing changes.
    pub patch: Vec<Value>,
    pub warnings: Vec<String>,
}

/// One volume to inject (a projected service-account token, or kite's CA), with the environment
/// that names it.
struct Injection {
    volume: &'static str,
    mount: &'static str,
    source: Value,
    env: Vec<(&'static str, String)>,
    skip: Vec<String>,
}

fn projected_token(file: &str, audience: &str, expiration: i64) -> Value {
    json!({"projected": {"sources": [{"serviceAccountToken": {"path": file, "audience": audience, "expirationSeconds": expiration}}]}})
}

/// kite's CA from `config_map`, trusted by the AWS SDKs (`AWS_CA_BUNDLE`) and by Python's requests,
/// which azure-identity uses (`REQUESTS_CA_BUNDLE`). Containers skipped by every other injection
/// are skipped here too.
fn ca_bundle(config_map: &str, skip: Vec<String>) -> Injection {
    let file = format!("{CA_MOUNT}/{CA_KEY}");
    Injection {
        volume: CA_VOLUME,
        mount: CA_MOUNT,
        source: json!({"configMap": {"name": config_map, "items": [{"key": CA_KEY, "path": CA_KEY}]}}),
        env: vec![("AWS_CA_BUNDLE", file.clone()), ("REQUESTS_CA_BUNDLE", file)],
        skip,
    }
}

fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object["metadata"]["annotations"][key].as_str()
}

/// The pod as messages name it: `namespace/name`, or `generateName…` before the API server names it.
fn pod_name(namespace: &str, pod: &Value) -> String {
    let meta = &pod["metadata"];
    let name = meta["name"].as_str().map(str::to_string).or_else(|| meta["generateName"].as_str().map(|g| format!("{g}…"))).unwrap_or_default();
    format!("{namespace}/{name}")
}

/// A token lifetime from an annotation: upstream's range, the pod's annotation over the service account's.
fn expiration(pod: &Value, sa: &Value, key: &str, default: i64, range: std::ops::RangeInclusive<i64>) -> Result<i64, String> {
    let Some(raw) = annotation(pod, key).or_else(|| annotation(sa, key)) else { return Ok(default) };
    match raw.trim().parse::<i64>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(format!("{key}: '{raw}' is not a whole number of seconds from {} to {}", range.start(), range.end())),
    }
}

fn skip_list(pod: &Value, key: &str) -> Vec<String> {
    annotation(pod, key).map(|s| s.split(';').map(str::trim).filter(|c| !c.is_empty()).map(str::to_string).collect()).unwrap_or_default()
}

fn azure(pod: &Value, sa: &Value, settings: &Settings) -> Result<Option<Injection>, String> {
    if pod["metadata"]["labels"][USE_LABEL].as_str() != Some("true") {
        return Ok(None);
    }
    let client_id =
        annotation(sa, CLIENT_ID).ok_or_else(|| format!("the pod is labelled {USE_LABEL}=true but its service account has no {CLIENT_ID} annotation"))?;
    if uuid::Uuid::parse_str(client_id).is_err() {
        return Err(format!("{CLIENT_ID}: '{client_id}' is not a GUID (the identity's clientId)"));
    }
    let tenant = annotation(sa, TENANT_ID).unwrap_or(&settings.tenant_id);
    let file = "azure-identity-token";
    Ok(Some(Injection {
        volume: AZURE_VOLUME,
        mount: AZURE_MOUNT,
        source: projected_token(file, AZURE_AUDIENCE, expiration(pod, sa, AZURE_EXPIRATION, 3600, 3600..=86_400)?),
        env: vec![
            ("AZURE_CLIENT_ID", client_id.to_string()),
            ("AZURE_TENANT_ID", tenant.to_string()),
            ("AZURE_FEDERATED_TOKEN_FILE", format!("{AZURE_MOUNT}/{file}")),
            ("AZURE_AUTHORITY_HOST", settings.authority_host.clone()),
        ],
        skip: skip_list(pod, AZURE_SKIP),
    }))
}

fn irsa(pod: &Value, sa: &Value, settings: &Settings) -> Result<Option<Injection>, String> {
    let Some(arn) = annotation(sa, ROLE_ARN) else { return Ok(None) };
    kite_core::aws::arn::Arn::parse_role(arn).map_err(|e| format!("{ROLE_ARN}: '{arn}' is not a role ARN: {e}"))?;
    let file = "token";
    let mut env = vec![("AWS_ROLE_ARN", arn.to_string()), ("AWS_WEB_IDENTITY_TOKEN_FILE", format!("{IRSA_MOUNT}/{file}"))];
    if annotation(sa, AWS_REGIONAL) == Some("true") {
        env.push(("AWS_STS_REGIONAL_ENDPOINTS", "regional".into()));
    }
    let audience = annotation(sa, AWS_AUDIENCE).unwrap_or("sts.amazonaws.com");
    Ok(Some(Injection {
        volume: IRSA_VOLUME,
        mount: IRSA_MOUNT,
        source: projected_token(file, audience, expiration(pod, sa, AWS_EXPIRATION, 86_400, 3600..=86_400)?),
        env: aws_env(env, settings),
        skip: skip_list(pod, AWS_SKIP),
    }))
}

fn pod_identity(settings: &Settings, skip: Vec<String>) -> Injection {
    let file = "eks-pod-identity-token";
    Injection {
        volume: POD_IDENTITY_VOLUME,
        mount: POD_IDENTITY_MOUNT,
        source: projected_token(file, POD_IDENTITY_AUDIENCE, 86_400),
        env: aws_env(
            vec![
                ("AWS_CONTAINER_CREDENTIALS_FULL_URI", settings.container_credentials_uri.clone()),
                ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", format!("{POD_IDENTITY_MOUNT}/{file}")),
            ],
            settings,
        ),
        skip,
    }
}

fn aws_env(mut env: Vec<(&'static str, String)>, settings: &Settings) -> Vec<(&'static str, String)> {
    if let Some(region) = &settings.region {
        env.push(("AWS_REGION", region.clone()));
        env.push(("AWS_DEFAULT_REGION", region.clone()));
    }
    if let Some(sts) = &settings.sts_endpoint {
        env.push(("AWS_ENDPOINT_URL_STS", sts.clone()));
    }
    env
}

/// What the webhook adds to `pod` (named `who` in warnings), whose service account is `sa` (`None`:
/// not known to kite) and which an EKS pod identity association names when `associated`.
pub fn mutate(pod: &Value, who: &str, sa: Option<&Value>, associated: bool, settings: &Settings) -> Mutation {
    let mut out = Mutation::default();
    let concerned = pod["metadata"]["labels"][USE_LABEL].as_str() == Some("true") || associated;
    let Some(sa) = sa else {
        if concerned {
            out.warnings.push(format!("pod {}: its service account is not known to kite; admitted unchanged", who));
        }
        return out;
    };
    let mut injections = Vec::new();
    for found in [azure(pod, sa, settings), irsa(pod, sa, settings)] {
        match found {
            Ok(Some(i)) => injections.push(i),
            Ok(None) => {}
            Err(problem) => out.warnings.push(format!("pod {}: {problem}; admitted without it", who)),
        }
    }
    if associated {
        injections.push(pod_identity(settings, skip_list(pod, AWS_SKIP)));
    }
    if injections.is_empty() {
        return out;
    }
    if let Some(config_map) = &settings.ca_config_map {
        let skip = injections.iter().map(|i| i.skip.clone()).reduce(|a, b| a.into_iter().filter(|c| b.contains(c)).collect()).unwrap_or_default();
        injections.push(ca_bundle(config_map, skip));
    }
    let mut mutated = pod.clone();
    for injection in &injections {
        inject(&mut mutated, injection);
    }
    out.patch = patch_ops(pod, &mutated);
    out
}

/// The operations turning `before` into `after` (which only adds), as RFC 6902 JSON.
fn patch_ops(before: &Value, after: &Value) -> Vec<Value> {
    match serde_json::to_value(json_patch::diff(before, after)) {
        Ok(Value::Array(ops)) => ops,
        _ => Vec::new(),
    }
}

fn array<'a>(object: &'a mut Value, key: &str) -> Option<&'a mut Vec<Value>> {
    let map = object.as_object_mut()?;
    map.entry(key).or_insert_with(|| Value::Array(Vec::new())).as_array_mut()
}

fn has_named(items: &[Value], name: &str) -> bool {
    items.iter().any(|i| i["name"].as_str() == Some(name))
}

fn inject(pod: &mut Value, injection: &Injection) {
    let Some(spec) = pod.get_mut("spec") else { return };
    if let Some(volumes) = array(spec, "volumes") {
        if !has_named(volumes, injection.volume) {
            let mut volume = injection.source.clone();
            volume["name"] = json!(injection.volume);
            volumes.push(volume);
        }
    }
    for kind in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(kind).and_then(Value::as_array_mut) else { continue };
        for container in containers.iter_mut().filter(|c| !injection.skip.iter().any(|s| c["name"].as_str() == Some(s.as_str()))) {
            inject_container(container, injection);
        }
    }
}

fn inject_container(container: &mut Value, injection: &Injection) {
    if let Some(vars) = array(container, "env") {
        for (name, value) in &injection.env {
            // `valueFrom` or a value the pod set wins: never overwritten.
            if !has_named(vars, name) {
                vars.push(json!({"name": name, "value": value}));
            }
        }
    }
    if let Some(mounts) = array(container, "volumeMounts") {
        let taken = mounts.iter().any(|m| m["name"].as_str() == Some(injection.volume) || m["mountPath"].as_str() == Some(injection.mount));
        if !taken {
            mounts.push(json!({"name": injection.volume, "mountPath": injection.mount, "readOnly": true}));
        }
    }
}

/// The pod an `admission.k8s.io/v1` AdmissionReview asks about, as the API server sends it.
#[derive(Clone, Debug, PartialEq)]
pub struct PodRequest {
    pub uid: String,
    /// `namespace/name` (or `generateName…`), with the request's namespace, which a pod's own
    /// metadata often lacks at creation.
    pub name: String,
    pub namespace: String,
    pub service_account: String,
    pub pod: Value,
}

/// Reads an AdmissionReview for a pod CREATE; the error names what is missing or wrong.
pub fn pod_request(review: &Value) -> Result<PodRequest, String> {
    if review["apiVersion"].as_str() != Some("admission.k8s.io/v1") || review["kind"].as_str() != Some("AdmissionReview") {
        return Err(format!(
            "expected an admission.k8s.io/v1 AdmissionReview, got apiVersion {} kind {} (set admissionReviewVersions: [v1] in the webhook configuration)",
            review["apiVersion"], review["kind"]
        ));
    }
    let request = review.get("request").filter(|r| r.is_object()).ok_or("the AdmissionReview has no request")?;
    let uid = request["uid"].as_str().filter(|u| !u.is_empty()).ok_or("request.uid is missing: the response must echo it")?;
    let pod = request.get("object").filter(|o| o.is_object()).ok_or("request.object (the pod) is missing")?;
    if pod["kind"].as_str().is_some_and(|k| k != "Pod") {
        return Err(format!("request.object is a {}, not a Pod: scope the webhook's rules to pods", pod["kind"]));
    }
    let namespace = request["namespace"].as_str().or(pod["metadata"]["namespace"].as_str()).unwrap_or("default").to_string();
    let service_account = pod["spec"]["serviceAccountName"].as_str().filter(|s| !s.is_empty()).unwrap_or("default").to_string();
    Ok(PodRequest { uid: uid.to_string(), name: pod_name(&namespace, pod), namespace, service_account, pod: pod.clone() })
}
