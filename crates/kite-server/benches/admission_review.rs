//! The workload identity webhook as the API server calls it: AdmissionReviews POSTed over HTTPS
//! (rustls, keep-alive) to `kite serve`'s real listener, the server on a one-worker runtime (one
//! core), the client on another thread. The API server gives a webhook 10 s by default; the target
//! is p99 under 5 ms at 1 000 reviews/s.
//!
//! 1. open loop at a fixed 1 000 reviews/s (requests leave on schedule whether or not earlier ones
//!    were answered): latency percentiles and the rate achieved;
//! 2. closed loop, 8 requests in flight: the most reviews/s, beside the same listener's floor (a
//!    request refused before any work: TLS, HTTP and routing only), and the ratio of the two.
//!
//! Run: `cargo bench -p kite-server --bench admission_review`

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use serde_json::{json, Value};

#[path = "support/load.rs"]
mod load;
mod support;

const RATE: f64 = 1_000.0;
const OPEN_LOOP: Duration = Duration::from_secs(5);
const CLOSED_LOOP: Duration = Duration::from_secs(3);
const IN_FLIGHT: usize = 8;

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let home = dir.path().to_path_buf();
    let cluster = home.join("cluster");
    std::fs::create_dir_all(&cluster)?;
    std::fs::write(
        cluster.join("sa.yaml"),
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: api\n  namespace: payments\n  annotations:\n    \
         azure.workload.identity/client-id: 5e3a4c3f-8d2e-4a8e-9f5c-0b1d2c3e4f50\n    eks.amazonaws.com/role-arn: arn:aws:iam::111122223333:role/api\n",
    )?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut config = support::config(&home, &format!("sqlite://{}", home.join("kite.db").display()), None, None);
    config.insecure_http = false;
    // The embedded default (SQLite in KITE_HOME), which makes its own key-encryption key.
    config.database_url = None;
    config.listen = format!("127.0.0.1:{port}").parse()?;
    config.pod_identity = vec![cluster];
    config.webhook_ca_config_map = Some("kite-root-ca.crt".into());
    load::serve_on_one_core(config);

    let client = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    client.block_on(async {
        let ca = load::wait_for_file(&home.join("tls").join("ca.pem")).await?;
        let http = reqwest::Client::builder().tls_certs_only([reqwest::Certificate::from_pem(&ca)?]).build()?;
        let review = load::Call {
            url: format!("https://127.0.0.1:{port}/mutate-v1-pod"),
            content_type: "application/json",
            body: Arc::new(serde_json::to_vec(&review())?),
            refused_ok: false,
        };
        wait_until_served(&http, &review).await?;
        load::run(&http, &review, Duration::from_secs(1), Some(RATE), 1).await?; // warm-up
        let (mut open, elapsed) = load::run(&http, &review, OPEN_LOOP, Some(RATE), 1).await?;
        load::report(&format!("AdmissionReview over HTTPS, open loop, target {RATE:.0} reviews/s"), &mut open, elapsed);
        let (mut closed, elapsed) = load::run(&http, &review, CLOSED_LOOP, None, IN_FLIGHT).await?;
        let reviews = load::report("AdmissionReview over HTTPS, closed loop, 8 in flight", &mut closed, elapsed);
        let floor_call = load::Call { url: format!("https://127.0.0.1:{port}/no-such-route"), refused_ok: true, ..review.clone() };
        let (mut floor, elapsed) = load::run(&http, &floor_call, CLOSED_LOOP, None, IN_FLIGHT).await?;
        let floor = load::report("HTTPS floor (same listener, refused unrouted), 8 in flight", &mut floor, elapsed);
        println!("AdmissionReview throughput is {:.1} % of the listener's HTTPS floor", 100.0 * reviews / floor);
        anyhow::Ok(())
    })?;
    Ok(())
}

/// A pod CREATE as kube-apiserver sends it, for a service account with both Azure and AWS annotations.
fn review() -> Value {
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "api-7d9f8b6c5-", "namespace": "payments", "labels": {"app": "api", "azure.workload.identity/use": "true"}},
        "spec": {"serviceAccountName": "api", "containers": [
            {"name": "app", "image": "registry.example/api:1.4.2", "env": [{"name": "PORT", "value": "8080"}],
             "volumeMounts": [{"name": "kube-api-access-x", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}]},
            {"name": "proxy", "image": "envoy:1.30"}],
            "volumes": [{"name": "kube-api-access-x", "projected": {"sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}]}}]}});
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "0df28fbd-5f5f-11e8-bc74-36e6bb280816", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "resource": {"group": "", "version": "v1", "resource": "pods"}, "namespace": "payments", "operation": "CREATE",
                    "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"}, "object": pod, "dryRun": false}})
}

/// Waits for the listener, and for the directory source to have read the service account.
async fn wait_until_served(http: &reqwest::Client, call: &load::Call) -> anyhow::Result<()> {
    for _ in 0..600 {
        if let Ok(answer) = http.post(&call.url).header("content-type", call.content_type).body(call.body.to_vec()).send().await {
            let answer: Value = answer.json().await?;
            if answer["response"]["patch"].is_string() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("kite never answered {} with a patch", call.url)
}
