//! kube-apiserver's webhook configuration files (kubeconfig format): where it sends TokenReviews
//! (`--authentication-token-webhook-config-file`) and SubjectAccessReviews
//! (`--authorization-webhook-config-file`), and the client certificate it presents, which kite's
//! webhook listener requires (`--webhook-client-ca`).

use serde_json::{json, Value};

/// One configuration file: the kube-apiserver flag that names it, a suggested path, the content.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    pub flag: &'static str,
    pub path: &'static str,
    pub config: Value,
}

/// Where kube-apiserver keeps the files these configurations name (kubeadm's layout).
pub struct ApiServerFiles {
    pub ca: String,
    pub client_cert: String,
    pub client_key: String,
}

fn kubeconfig(server: &str, files: &ApiServerFiles) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kite", "cluster": {"server": server, "certificate-authority": files.ca}}],
        "users": [{"name": "kube-apiserver", "user": {"client-certificate": files.client_cert, "client-key": files.client_key}}],
        "contexts": [{"name": "kite", "context": {"cluster": "kite", "user": "kube-apiserver"}}],
        "current-context": "kite",
    })
}

/// The two files for a webhook listener at `base` (e.g. `https://kite-server.kite-system.svc:9443`).
pub fn webhook_configs(base: &str, files: &ApiServerFiles) -> Result<Vec<WebhookConfig>, String> {
    if !base.starts_with("https://") {
        return Err(format!("webhook URL '{base}' must be https:// (kite's webhooks require kube-apiserver's client certificate)"));
    }
    let base = base.trim_end_matches('/');
    Ok(vec![
        WebhookConfig {
            flag: "--authentication-token-webhook-config-file",
            path: "/etc/kubernetes/kite-authn-webhook.yaml",
            config: kubeconfig(&format!("{base}/authenticate"), files),
        },
        WebhookConfig {
            flag: "--authorization-webhook-config-file",
            path: "/etc/kubernetes/kite-authz-webhook.yaml",
            config: kubeconfig(&format!("{base}/authorize"), files),
        },
    ])
}
