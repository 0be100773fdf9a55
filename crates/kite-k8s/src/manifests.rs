//! What a cluster needs to call kite, as Kubernetes objects: built from k8s-openapi's types, so
//! every field has the API server's name and shape.

use k8s_openapi::api::admissionregistration::v1::{MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ServiceReference, WebhookClientConfig};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta};
use k8s_openapi::ByteString;

use crate::workload_identity::{CA_KEY, USE_LABEL};

/// The ConfigMap holding kite's CA in one namespace, for the webhook's `--webhook-ca-configmap`
/// (ConfigMap volumes are read from the pod's own namespace, so each one needs a copy).
pub fn ca_config_map(name: &str, namespace: &str, ca_pem: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta { name: Some(name.into()), namespace: Some(namespace.into()), ..Default::default() },
        data: Some([(CA_KEY.to_string(), ca_pem.to_string())].into_iter().collect()),
        ..Default::default()
    }
}

/// Where the API server reaches kite's webhook.
#[derive(Clone, Debug)]
pub enum WebhookTarget {
    /// kite runs in the cluster behind this Service.
    Service { namespace: String, name: String, port: i32 },
    /// kite runs elsewhere, at this HTTPS base URL.
    Url(String),
}

#[derive(Clone, Debug)]
pub struct WebhookOptions {
    pub target: WebhookTarget,
    /// The CA that signed kite's serving certificate, PEM; `None` when the API server trusts it already.
    pub ca_bundle: Option<Vec<u8>>,
    /// kite's own namespace: never mutated, so kite can always start.
    pub kite_namespace: String,
    /// Only pods labelled `azure.workload.identity/use: "true"` (Azure Workload Identity's
    /// selector); otherwise every pod, as IRSA and EKS Pod Identity need.
    pub azure_only: bool,
    /// `Fail` or `Ignore` when kite cannot be reached.
    pub failure_policy: String,
    pub timeout_seconds: i32,
}

pub const WEBHOOK_PATH: &str = "/mutate-v1-pod";

/// The MutatingWebhookConfiguration that makes the API server send new pods to kite.
pub fn webhook(options: &WebhookOptions) -> Result<MutatingWebhookConfiguration, String> {
    if !matches!(options.failure_policy.as_str(), "Fail" | "Ignore") {
        return Err(format!("failure policy '{}' is neither Fail nor Ignore", options.failure_policy));
    }
    // The API server's own bounds for timeoutSeconds.
    if !(1..=30).contains(&options.timeout_seconds) {
        return Err(format!("timeout {}s is outside the API server's range of 1 to 30 seconds", options.timeout_seconds));
    }
    let client_config = match &options.target {
        WebhookTarget::Service { namespace, name, port } => WebhookClientConfig {
            service: Some(ServiceReference { namespace: namespace.clone(), name: name.clone(), path: Some(WEBHOOK_PATH.into()), port: Some(*port) }),
            ca_bundle: options.ca_bundle.clone().map(ByteString),
            url: None,
        },
        WebhookTarget::Url(base) => {
            if !base.starts_with("https://") {
                return Err(format!("webhook URL '{base}' must be https:// (the API server calls webhooks over TLS only)"));
            }
            WebhookClientConfig {
                url: Some(format!("{}{WEBHOOK_PATH}", base.trim_end_matches('/'))),
                ca_bundle: options.ca_bundle.clone().map(ByteString),
                service: None,
            }
        }
    };
    let namespaces = LabelSelectorRequirement {
        key: "kubernetes.io/metadata.name".into(),
        operator: "NotIn".into(),
        values: Some(vec!["kube-system".into(), options.kite_namespace.clone()]),
    };
    let pods = options
        .azure_only
        .then(|| LabelSelector { match_labels: Some([(USE_LABEL.to_string(), "true".to_string())].into_iter().collect()), ..Default::default() });
    let hook = MutatingWebhook {
        name: "workload-identity.kite.io".into(),
        admission_review_versions: vec!["v1".into()],
        client_config,
        failure_policy: Some(options.failure_policy.clone()),
        match_policy: Some("Equivalent".into()),
        namespace_selector: Some(LabelSelector { match_expressions: Some(vec![namespaces]), ..Default::default() }),
        object_selector: pods,
        // A later webhook may add containers; kite's patch is idempotent, so a second call is safe.
        reinvocation_policy: Some("IfNeeded".into()),
        rules: Some(vec![RuleWithOperations {
            api_groups: Some(vec![String::new()]),
            api_versions: Some(vec!["v1".into()]),
            operations: Some(vec!["CREATE".into()]),
            resources: Some(vec!["pods".into()]),
            scope: Some("Namespaced".into()),
        }]),
        side_effects: "None".into(),
        timeout_seconds: Some(options.timeout_seconds),
        match_conditions: None,
    };
    Ok(MutatingWebhookConfiguration { metadata: ObjectMeta { name: Some("kite-workload-identity".into()), ..Default::default() }, webhooks: Some(vec![hook]) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> WebhookOptions {
        WebhookOptions {
            target: WebhookTarget::Service { namespace: "kite-system".into(), name: "kite".into(), port: 443 },
            ca_bundle: Some(b"-----BEGIN CERTIFICATE-----\n".to_vec()),
            kite_namespace: "kite-system".into(),
            azure_only: false,
            failure_policy: "Ignore".into(),
            timeout_seconds: 10,
        }
    }

    #[test]
    fn the_configuration_names_kites_path_excludes_its_namespace_and_carries_the_ca() {
        let v = serde_json::to_value(webhook(&options()).unwrap()).unwrap();
        let hook = &v["webhooks"][0];
        assert_eq!(v["kind"], "MutatingWebhookConfiguration");
        assert_eq!(hook["clientConfig"]["service"]["path"], WEBHOOK_PATH);
        assert_eq!(hook["clientConfig"]["caBundle"], "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==");
        assert_eq!(hook["namespaceSelector"]["matchExpressions"][0]["values"], serde_json::json!(["kube-system", "kite-system"]));
        assert_eq!(hook["sideEffects"], "None");
        assert!(hook.get("objectSelector").is_none(), "IRSA needs every pod: {hook}");
    }

    #[test]
    fn azure_only_selects_labelled_pods_and_a_url_must_be_https() {
        let mut o = options();
        o.azure_only = true;
        o.target = WebhookTarget::Url("https://kite.example.com/".into());
        let v = serde_json::to_value(webhook(&o).unwrap()).unwrap();
        assert_eq!(v["webhooks"][0]["objectSelector"]["matchLabels"][USE_LABEL], "true");
        assert_eq!(v["webhooks"][0]["clientConfig"]["url"], "https://kite.example.com/mutate-v1-pod");
        o.target = WebhookTarget::Url("http://kite.example.com".into());
        assert!(webhook(&o).unwrap_err().contains("https://"));
    }

    #[test]
    fn out_of_range_timeouts_and_unknown_policies_are_refused() {
        let mut o = options();
        o.timeout_seconds = 31;
        assert!(webhook(&o).unwrap_err().contains("1 to 30"));
        o.timeout_seconds = 10;
        o.failure_policy = "Retry".into();
        assert!(webhook(&o).unwrap_err().contains("Retry"));
    }
}
