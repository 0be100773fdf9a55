//! The token endpoint as a client sees it, against the physical limit, in one run.
//!
//! `kite serve`'s real HTTPS listener on a one-worker runtime (one core) is driven over rustls with
//! keep-alive and 8 requests in flight: `client_credentials` with a client secret, as msal sends it.
//! In the same run, on one core, raw RS256 signing with aws-lc-rs and a parsed 2048-bit key (the
//! library kite signs with, on a message the size of kite's tokens). Every token needs one such
//! signature; the target is the endpoint at ≥ 90 % of that rate.
//!
//! Run: `cargo bench -p kite-server --bench token_endpoint`

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256};

#[path = "support/load.rs"]
mod load;
mod support;

const WARMUP: Duration = Duration::from_secs(1);
const MEASURE: Duration = Duration::from_secs(5);
const IN_FLIGHT: usize = 8;

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let home = dir.path().to_path_buf();
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut config = support::config(&home, &format!("sqlite://{}", home.join("kite.db").display()), None, None);
    config.insecure_http = false;
    // The embedded default (SQLite in KITE_HOME), which makes its own key-encryption key.
    config.database_url = None;
    config.listen = format!("127.0.0.1:{port}").parse()?;
    load::serve_on_one_core(config);

    let client = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let endpoint = client.block_on(async {
        let ca = load::wait_for_file(&home.join("tls").join("ca.pem")).await?;
        let creds: serde_json::Value = serde_json::from_slice(&load::wait_for_file(&home.join("admin-credentials.json")).await?)?;
        let field = |k: &str| creds[k].as_str().unwrap_or_default().to_string();
        let http = reqwest::Client::builder().tls_certs_only([reqwest::Certificate::from_pem(&ca)?]).build()?;
        let form = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&scope=https%3A%2F%2Fmanagement.azure.com%2F.default&client_info=1",
            field("appId"),
            field("password")
        );
        let call = load::Call {
            url: format!("https://127.0.0.1:{port}/{}/oauth2/v2.0/token", field("tenant")),
            content_type: "application/x-www-form-urlencoded",
            body: Arc::new(form.into_bytes()),
            refused_ok: false,
        };
        load::run(&http, &call, WARMUP, None, IN_FLIGHT).await?;
        let (mut latencies, elapsed) = load::run(&http, &call, MEASURE, None, IN_FLIGHT).await?;
        anyhow::Ok(load::report("token endpoint over HTTPS (server on 1 core, keep-alive, 8 in flight)", &mut latencies, elapsed))
    })?;

    // The physical limit, measured while the server idles: one core signing kite-sized tokens.
    let key = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|e| anyhow::anyhow!("generating an RSA key: {e}"))?;
    let message = vec![b'e'; 1_100];
    let mut signature = vec![0; key.public_modulus_len()];
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let sign = |signature: &mut Vec<u8>| key.sign(&RSA_PKCS1_SHA256, &rng, &message, signature).map_err(|e| anyhow::anyhow!("signing: {e}"));
    let warm = Instant::now();
    while warm.elapsed() < WARMUP {
        sign(&mut signature)?;
    }
    let (start, mut n) = (Instant::now(), 0u64);
    while start.elapsed() < MEASURE {
        sign(&mut signature)?;
        n += 1;
    }
    let raw = n as f64 / start.elapsed().as_secs_f64();

    println!("raw RS256 signing (aws-lc-rs, parsed 2048-bit key, 1 core): {raw:>8.0} signatures/s");
    println!("token endpoint over HTTPS (1 core):                         {endpoint:>8.0} tokens/s");
    println!("endpoint / raw signing:                                     {:>8.1} %  (target >= 90 %)", 100.0 * endpoint / raw);
    Ok(())
}
