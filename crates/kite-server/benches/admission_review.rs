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
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

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
    config.listen = format!("127.0.0.1:{port}").parse()?;
    config.pod_identity = vec![cluster];
    config.webhook_ca_config_map = Some("kite-root-ca.crt".into());
    std::thread::spawn(move || {
        let served = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().map(|rt| rt.block_on(kite_server::serve(config)));
        if let Ok(Err(e)) | Err(e) = served.map_err(anyhow::Error::from) {
            eprintln!("kite serve failed: {e:#}");
        }
    });

    let client = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    client.block_on(async {
        let ca = wait_for_file(&home.join("tls").join("ca.pem")).await?;
        let http = reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(&ca)?).build()?;
        let url = format!("https://127.0.0.1:{port}/mutate-v1-pod");
        let body = Arc::new(serde_json::to_vec(&review())?);
        wait_until_served(&http, &url, &body).await?;
        run(&http, &url, &body, Duration::from_secs(1), Some(RATE)).await?; // warm-up
        let (mut open, elapsed) = run(&http, &url, &body, OPEN_LOOP, Some(RATE)).await?;
        report(&format!("open loop, target {RATE:.0} reviews/s"), &mut open, elapsed);
        let (mut closed, elapsed) = run(&http, &url, &body, CLOSED_LOOP, None).await?;
        let reviews = report("closed loop, 8 in flight", &mut closed, elapsed);
        let floor_url = format!("https://127.0.0.1:{port}/no-such-route");
        let (mut floor, elapsed) = run(&http, &floor_url, &body, CLOSED_LOOP, None).await?;
        let floor = report("HTTPS floor (same listener, refused unrouted), 8 in flight", &mut floor, elapsed);
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

async fn wait_for_file(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    for _ in 0..600 {
        if let Ok(bytes) = std::fs::read(path) {
            if !bytes.is_empty() {
                return Ok(bytes);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("kite serve wrote no {} within 30 s", path.display())
}

/// Waits for the listener, and for the directory source to have read the service account.
async fn wait_until_served(http: &reqwest::Client, url: &str, body: &Arc<Vec<u8>>) -> anyhow::Result<()> {
    for _ in 0..600 {
        if let Ok(answer) = http.post(url).header("content-type", "application/json").body(body.to_vec()).send().await {
            let answer: Value = answer.json().await?;
            if answer["response"]["patch"].is_string() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("kite never answered {url} with a patch")
}

/// Sends requests for `length`: at `rate` per second on a fixed schedule, or IN_FLIGHT at a time.
/// Returns every request's latency and the time taken.
async fn run(http: &reqwest::Client, url: &str, body: &Arc<Vec<u8>>, length: Duration, rate: Option<f64>) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    let lanes = if rate.is_some() { 1 } else { IN_FLIGHT };
    for _ in 0..lanes {
        let (http, url, body) = (http.clone(), url.to_string(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut pending = tokio::task::JoinSet::new();
            for k in 0u64.. {
                if start.elapsed() >= length {
                    break;
                }
                let (http, url, body) = (http.clone(), url.clone(), body.clone());
                let call = async move {
                    let sent = Instant::now();
                    let answer = http.post(&url).header("content-type", "application/json").body(body.to_vec()).send().await?;
                    let status = answer.status();
                    answer.bytes().await?;
                    if !(status.is_success() || url.ends_with("no-such-route")) {
                        bail!("{url} answered {status}");
                    }
                    anyhow::Ok(sent.elapsed())
                };
                match rate {
                    Some(rate) => {
                        tokio::time::sleep_until(start + Duration::from_secs_f64(k as f64 / rate)).await;
                        pending.spawn(call);
                    }
                    None => latencies.push(call.await?),
                }
            }
            while let Some(done) = pending.join_next().await {
                latencies.push(done.context("request task")??);
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok((all, start.elapsed()))
}

/// Prints the percentiles; returns requests per second.
fn report(what: &str, latencies: &mut [Duration], elapsed: Duration) -> f64 {
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let rate = latencies.len() as f64 / elapsed.as_secs_f64();
    println!(
        "AdmissionReview over HTTPS, {what}: {rate:>7.0} req/s, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} requests)",
        ms(at(0.50)),
        ms(at(0.99)),
        ms(at(0.999)),
        ms(latencies[latencies.len() - 1]),
        latencies.len()
    );
    rate
}
