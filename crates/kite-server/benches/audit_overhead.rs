//! What the audit trail costs the token endpoint: `client_credentials` token rate with the trail on
//! and off, in the same run, through real sockets (plain HTTP on loopback, keep-alive, 8 requests in
//! flight). Short rounds alternate between the two servers (which goes first alternates too) so
//! both see the same machine load; each pair of rounds gives a ratio, and the median of those is
//! the figure (the machine is shared, so single rounds are noisy). The target is at least 95 %.
//!
//! Run: `cargo bench -p kite-server --bench audit_overhead`

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kite_server::{app, audit::AuditSettings, prepare};
use kite_store::{SqlStore, Store};

mod support;

const ROUND: Duration = Duration::from_secs(1);
const ROUNDS: usize = 12;
const IN_FLIGHT: usize = 8;

/// Serves `app(state)` on a loopback port; returns its address.
async fn listen(state: kite_server::infra::state::AppState) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let service = app(state).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await });
    Ok(addr)
}

/// Tokens per second from `url` for one round.
async fn round(http: &reqwest::Client, url: &str, form: &[(&'static str, String)]) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (http, url, form, done) = (http.clone(), url.to_string(), form.to_vec(), done.clone());
            tokio::spawn(async move {
                while start.elapsed() < ROUND {
                    let ok = http.post(&url).form(&form).send().await.map(|r| r.status().is_success()).unwrap_or(false);
                    assert!(ok, "the token endpoint answers");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("kite.db").display());
        let store: Arc<dyn Store> = Arc::new(SqlStore::connect(&url, &kite_store::Kek::generate("bench")?).await?);
        let on_config = support::config(dir.path(), &url, None, None);
        let off_config = kite_server::Config { audit: AuditSettings { enabled: false, ..Default::default() }, ..support::config(dir.path(), &url, None, None) };
        let (on, creds) = prepare(store.clone(), &on_config, "http://127.0.0.1", None).await?;
        let (off, _) = prepare(store, &off_config, "http://127.0.0.1", None).await?;
        let creds: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(creds.expect("fresh store bootstraps"))?)?;
        let tenant = creds["tenant"].as_str().unwrap_or_default().to_string();
        let form = vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_id", creds["appId"].as_str().unwrap_or_default().to_string()),
            ("client_secret", creds["password"].as_str().unwrap_or_default().to_string()),
            ("scope", "https://management.azure.com/.default".to_string()),
        ];
        let (on_addr, off_addr) = (listen(on.clone()).await?, listen(off).await?);
        let http = reqwest::Client::builder().pool_max_idle_per_host(IN_FLIGHT).build()?;
        let (on_url, off_url) = (format!("http://{on_addr}/{tenant}/oauth2/v2.0/token"), format!("http://{off_addr}/{tenant}/oauth2/v2.0/token"));
        round(&http, &on_url, &form).await; // warm-up
        round(&http, &off_url, &form).await;
        let (mut with, mut without, mut ratios) = (0.0, 0.0, Vec::new());
        for i in 0..ROUNDS {
            let (on_rate, off_rate) = if i % 2 == 0 {
                let on_rate = round(&http, &on_url, &form).await;
                (on_rate, round(&http, &off_url, &form).await)
            } else {
                let off_rate = round(&http, &off_url, &form).await;
                (round(&http, &on_url, &form).await, off_rate)
            };
            with += on_rate;
            without += off_rate;
            ratios.push(on_rate / off_rate);
        }
        ratios.sort_by(f64::total_cmp);
        let median = (ratios[ROUNDS / 2 - 1] + ratios[ROUNDS / 2]) / 2.0;
        on.audit.flush().await;
        println!("token endpoint, audit trail off:   {:>8.0} tokens/s", without / ROUNDS as f64);
        println!("token endpoint, audit trail on:    {:>8.0} tokens/s", with / ROUNDS as f64);
        println!("trail on / off, all rounds:        {:>8.1} %", 100.0 * with / without);
        println!(
            "trail on / off, median of pairs:   {:>8.1} %  (pairs {:.1} … {:.1} %; target >= 95 %)",
            100.0 * median,
            100.0 * ratios[0],
            100.0 * ratios[ROUNDS - 1]
        );
        Ok(())
    })
}
