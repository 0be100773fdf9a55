//! `kite doctor`: what will break next (expiring credentials, missing role assignments, pod
//! identity objects that do not meet, aws-auth entries that never match), each finding with the
//! command that fixes it. Exits 0 when clean, 1 with warnings, 2 with errors, for CI.
//! `--watch SECS` runs it again every SECS seconds, printing the findings that appear and go, and
//! with `--metrics-file` keeps them as Prometheus metrics in a file for node_exporter's textfile
//! collector (`kite serve --doctor-interval` serves the same series on /metrics).

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use reqwest::Method;

use crate::client::Client;
use crate::output::{print_as, Format};

#[derive(Args)]
pub struct DoctorArgs {
    /// Warn about secrets and certificates ending within this many days (1 to 730).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(i64).range(1..=730))]
    days: i64,
    /// Run again every SECS seconds (1 to 86400) until interrupted, printing findings as they appear (+) and go (-).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    watch: Option<u64>,
    /// With --watch: keep kite_doctor_findings{rule,severity} and kite_doctor_up in this file
    /// (Prometheus text format, replaced atomically after each run), for node_exporter's textfile collector.
    #[arg(long, requires = "watch")]
    metrics_file: Option<std::path::PathBuf>,
}

const TABLE: &str = "[].{Severity: severity, Rule: rule, Object: object, Problem: problem, Fix: fix}";

pub async fn run(args: DoctorArgs, client: &mut Client, format: Format, query: Option<&str>) -> Result<ExitCode> {
    if let Some(every) = args.watch {
        return watch(&args, client, std::time::Duration::from_secs(every)).await;
    }
    let answer = client.call_with(Method::GET, "/kite/doctor", &[("days", args.days.to_string())], None).await?;
    let code = answer["exitCode"].as_u64().and_then(|c| u8::try_from(c).ok()).unwrap_or(2);
    print_as(answer["findings"].clone(), format, query, Some(TABLE))?;
    Ok(ExitCode::from(code))
}

/// A finding as the watch compares runs: rule, severity, object, and the line it prints.
type Seen = std::collections::BTreeMap<(String, String, String), String>;

async fn watch(args: &DoctorArgs, client: &mut Client, every: std::time::Duration) -> Result<ExitCode> {
    let mut before = Seen::new();
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        let findings = client.call_with(Method::GET, "/kite/doctor", &[("days", args.days.to_string())], None).await.map(|a| a["findings"].clone());
        let seen: Option<Seen> = match &findings {
            Ok(serde_json::Value::Array(list)) => Some(
                list.iter()
                    .map(|f| {
                        let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
                        ((s("rule"), s("severity"), s("object")), format!("{} {}: {} (fix: {})", s("severity"), s("object"), s("problem"), s("fix")))
                    })
                    .collect(),
            ),
            Ok(_) => None,
            Err(e) => {
                eprintln!("{now} kite doctor could not run: {e:#}");
                None
            }
        };
        if let Some(seen) = &seen {
            for (key, line) in seen.iter().filter(|(k, _)| !before.contains_key(*k)) {
                println!("{now} + [{}] {line}", key.0);
            }
            for (key, line) in before.iter().filter(|(k, _)| !seen.contains_key(*k)) {
                println!("{now} - [{}] {line}", key.0);
            }
            before = seen.clone();
        }
        if let Some(path) = &args.metrics_file {
            write_metrics(path, seen.as_ref())?;
        }
    }
}

/// The findings by rule and severity in Prometheus's text format, written beside `path` and renamed
/// over it so a scrape never reads half a file; `kite_doctor_up 0` when the run failed.
fn write_metrics(path: &std::path::Path, seen: Option<&Seen>) -> Result<()> {
    let escape = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    let mut counts = std::collections::BTreeMap::<(&str, &str), u64>::new();
    for (rule, severity, _) in seen.into_iter().flat_map(|s| s.keys()) {
        *counts.entry((rule.as_str(), severity.as_str())).or_default() += 1;
    }
    let mut text = String::from("# HELP kite_doctor_up Whether kite doctor's last run reached the server.\n# TYPE kite_doctor_up gauge\n");
    text.push_str(&format!("kite_doctor_up {}\n", u8::from(seen.is_some())));
    text.push_str("# HELP kite_doctor_findings kite doctor's findings at its last run, by rule and severity.\n# TYPE kite_doctor_findings gauge\n");
    for ((rule, severity), n) in counts {
        text.push_str(&format!("kite_doctor_findings{{rule=\"{}\",severity=\"{}\"}} {n}\n", escape(rule), escape(severity)));
    }
    let tmp = path.with_extension("prom.tmp");
    std::fs::write(&tmp, text).map_err(|e| anyhow::anyhow!("--metrics-file {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| anyhow::anyhow!("--metrics-file {}: {e}", path.display()))?;
    Ok(())
}
