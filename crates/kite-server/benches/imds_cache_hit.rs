//! The node agent's hot path at the HTTP level: a pod asking again for a token the agent has
//! cached. The real agent listener (plain HTTP, pod found by source IP, decision, cache, metrics,
//! access log) runs on a one-worker runtime (one core); a load generator on the other core keeps
//! 32 keep-alive connections busy:
//!
//! 1. open loop at a fixed 10 000 requests/s (each connection sends on its own schedule, whether
//!    or not earlier answers were slow): latency percentiles, and the rate actually achieved;
//! 2. closed loop, as fast as the connections go: the most requests/s;
//! 3. the floor: a bare axum route on the same runtime answering the same JSON, closed loop. With
//!    the server's one core saturated, the ratio of the two rates is the ratio of their CPU per
//!    request; the target is a cache hit within 1.5× the bare route.
//!
//! Run: `cargo bench -p kite-server --bench imds_cache_hit`

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use kite_core::directory::{ManagedIdentity, ResourceGroup};
use kite_server::prepare;
use kite_store::{SqlStore, Store};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

mod support;

const CONNECTIONS: usize = 32;
const RATE: f64 = 10_000.0;
const OPEN_LOOP: Duration = Duration::from_secs(5);
const CLOSED_LOOP: Duration = Duration::from_secs(3);
const REQUEST: &[u8] = b"GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net HTTP/1.1\r\nHost: 169.254.169.254\r\nMetadata: true\r\n\r\n";

fn main() -> anyhow::Result<()> {
    let server = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let dir = tempfile::tempdir()?;
    let addr = server.block_on(start_agent(dir.path()))?;

    let client = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let hits = client.block_on(async {
        // Warm-up: the first request mints and caches the token.
        run(addr, Duration::from_secs(1), Some(RATE)).await?;
        let (mut open, elapsed) = run(addr, OPEN_LOOP, Some(RATE)).await?;
        report(&format!("open loop, target {RATE:.0} req/s"), &mut open, elapsed);
        let (mut closed, elapsed) = run(addr, CLOSED_LOOP, None).await?;
        let hits = report("closed loop, as fast as it goes", &mut closed, elapsed);
        anyhow::Ok(hits)
    })?;
    // The same answer from a bare axum route on the same one-worker runtime.
    let answer = client.block_on(async {
        let mut conn = BufReader::new(TcpStream::connect(addr).await?);
        let (mut head, mut body) = (Vec::new(), Vec::new());
        roundtrip(&mut conn, &mut head, &mut body).await?;
        anyhow::Ok(body)
    })?;
    let floor_addr = server.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let answer = axum::body::Bytes::from(answer);
        let route = axum::routing::get(move || async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], answer.clone()) });
        let app = axum::Router::new().route("/metadata/identity/oauth2/token", route);
        tokio::spawn(async move { axum::serve(listener, app).await });
        anyhow::Ok(addr)
    })?;
    let floor = client.block_on(async {
        run(floor_addr, Duration::from_secs(1), None).await?;
        let (mut bare, elapsed) = run(floor_addr, CLOSED_LOOP, None).await?;
        anyhow::Ok(report("bare axum route, same JSON, closed loop (the floor)", &mut bare, elapsed))
    })?;
    println!("a cache hit costs {:.2}x the bare route's CPU per request (target <= 1.5x)", floor / hits);
    drop(server);
    Ok(())
}

/// Starts the agent listener on a free loopback port with one pod at 127.0.0.1 bound to an identity.
async fn start_agent(home: &std::path::Path) -> anyhow::Result<std::net::SocketAddr> {
    let url = format!("sqlite://{}", home.join("kite.db").display());
    let store: Arc<dyn Store> = Arc::new(SqlStore::connect(&url, &kite_store::Kek::generate("bench")?).await?);
    let cluster = home.join("cluster");
    std::fs::create_dir_all(&cluster)?;
    let mut config = support::config(home, &url, None, None);
    config.pod_identity = vec![cluster.clone()];
    let (probe, _) = prepare(store.clone(), &config, "https://127.0.0.1:8443", None).await?;
    let group = ResourceGroup::new(probe.default_subscription(), "bench", "westus2", Default::default())?;
    store.create_resource_group(&group).await?;
    let mi = ManagedIdentity::new(&group, "bench-identity", None, probe.tenant.tenant_id)?;
    store.create_identity(&mi).await?;
    std::fs::write(
        cluster.join("world.yaml"),
        format!(
            "apiVersion: aadpodidentity.k8s.io/v1\nkind: AzureIdentity\nmetadata: {{name: bench, namespace: default}}\nspec: {{type: 0, clientID: {}, resourceID: {}}}\n---\n\
             apiVersion: aadpodidentity.k8s.io/v1\nkind: AzureIdentityBinding\nmetadata: {{name: bench, namespace: default}}\nspec: {{azureIdentity: bench, selector: bench}}\n---\n\
             apiVersion: v1\nkind: Pod\nmetadata: {{name: bench, namespace: default, labels: {{aadpodidbinding: bench}}}}\nstatus: {{podIP: 127.0.0.1, phase: Running}}\n",
            mi.client_id,
            mi.id()
        ),
    )?;
    let (state, _) = prepare(store, &config, "https://127.0.0.1:8443", None).await?;
    let (listener, addr) = kite_server::infra::conn::bind("127.0.0.1:0".parse()?, "--agent-listen")?;
    kite_server::agent::spawn(listener, kite_server::agent::Agent::embedded(&state), axum_server::Handle::new(), Default::default());
    Ok(addr)
}

/// Drives CONNECTIONS keep-alive connections for `length`, at `rate` requests/s overall or as fast
/// as they go; returns every request's latency and the time taken.
async fn run(addr: std::net::SocketAddr, length: Duration, rate: Option<f64>) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        tasks.push(tokio::spawn(async move {
            let mut conn = BufReader::new(TcpStream::connect(addr).await?);
            conn.get_mut().set_nodelay(true)?;
            let (mut latencies, mut head, mut body) = (Vec::new(), Vec::new(), Vec::new());
            for k in 0u64.. {
                if let Some(rate) = rate {
                    // Request k of connection c has its slot on a fixed grid shared by all connections.
                    let due = start + Duration::from_secs_f64((k as f64 * CONNECTIONS as f64 + c as f64) / rate);
                    tokio::time::sleep_until(due).await;
                }
                if start.elapsed() >= length {
                    break;
                }
                let sent = Instant::now();
                roundtrip(&mut conn, &mut head, &mut body).await?;
                latencies.push(sent.elapsed());
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

async fn roundtrip(conn: &mut BufReader<TcpStream>, head: &mut Vec<u8>, body: &mut Vec<u8>) -> anyhow::Result<()> {
    conn.get_mut().write_all(REQUEST).await?;
    head.clear();
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read_until(b'\n', head).await? == 0 {
            bail!("the agent closed the connection");
        }
    }
    let head = std::str::from_utf8(head)?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("the agent did not answer 200: {head}");
    }
    let length: usize = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")).map(|(_, v)| v.trim().to_string()))
        .context("no content-length")?
        .parse()?;
    body.resize(length, 0);
    conn.read_exact(body).await?;
    Ok(())
}

/// Prints the percentiles; returns requests per second.
fn report(what: &str, latencies: &mut [Duration], elapsed: Duration) -> f64 {
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let rate = latencies.len() as f64 / elapsed.as_secs_f64();
    println!(
        "IMDS over HTTP, {what}: {rate:>7.0} req/s achieved, p50 {:>6.0} µs, p99 {:>6.0} µs, p99.9 {:>6.0} µs, max {:>6.0} µs ({} requests, {CONNECTIONS} connections)",
        us(at(0.50)),
        us(at(0.99)),
        us(at(0.999)),
        us(latencies[latencies.len() - 1]),
        latencies.len()
    );
    rate
}
