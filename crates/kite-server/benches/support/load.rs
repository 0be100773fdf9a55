//! Load over a real listener, for the benches that measure what a client sees: `kite serve` on a
//! one-worker runtime (one core), requests from a client runtime on another thread over HTTPS
//! (rustls, keep-alive), closed loop (N in flight) or open loop (a fixed rate).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Runs `kite serve` with `config` on a runtime with one worker thread.
pub fn serve_on_one_core(config: kite_server::Config) {
    std::thread::spawn(move || {
        let served = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().map(|rt| rt.block_on(kite_server::serve(config)));
        if let Ok(Err(e)) | Err(e) = served.map_err(anyhow::Error::from) {
            eprintln!("kite serve failed: {e:#}");
        }
    });
}

pub async fn wait_for_file(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
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

/// One kind of request: POSTed to `url` with this body; answers other than 2xx fail the run
/// unless `refused_ok` (the floor's unrouted request).
#[derive(Clone)]
pub struct Call {
    pub url: String,
    pub content_type: &'static str,
    pub body: Arc<Vec<u8>>,
    pub refused_ok: bool,
}

/// Sends `call` for `length`: at `rate` per second on a fixed schedule, or `in_flight` at a time.
/// Returns every request's latency and the time taken.
pub async fn run(http: &reqwest::Client, call: &Call, length: Duration, rate: Option<f64>, in_flight: usize) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    let lanes = if rate.is_some() { 1 } else { in_flight };
    for _ in 0..lanes {
        let (http, call) = (http.clone(), call.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut pending = tokio::task::JoinSet::new();
            for k in 0u64.. {
                if start.elapsed() >= length {
                    break;
                }
                let (http, call) = (http.clone(), call.clone());
                let one = async move {
                    let sent = Instant::now();
                    let answer = http.post(&call.url).header("content-type", call.content_type).body(call.body.to_vec()).send().await?;
                    let status = answer.status();
                    answer.bytes().await?;
                    if !(status.is_success() || call.refused_ok) {
                        bail!("{} answered {status}", call.url);
                    }
                    anyhow::Ok(sent.elapsed())
                };
                match rate {
                    Some(rate) => {
                        tokio::time::sleep_until(start + Duration::from_secs_f64(k as f64 / rate)).await;
                        pending.spawn(one);
                    }
                    None => latencies.push(one.await?),
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

/// Prints the percentiles under `label`; returns requests per second.
pub fn report(label: &str, latencies: &mut [Duration], elapsed: Duration) -> f64 {
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let rate = latencies.len() as f64 / elapsed.as_secs_f64();
    println!(
        "{label}: {rate:>7.0} req/s, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} requests)",
        ms(at(0.50)),
        ms(at(0.99)),
        ms(at(0.999)),
        ms(latencies[latencies.len() - 1]),
        latencies.len()
    );
    rate
}
