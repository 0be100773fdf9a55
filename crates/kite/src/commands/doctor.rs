//! `kite doctor`: what will break next (expiring credentials, missing role assignments, pod
//! identity objects that do not meet, aws-auth entries that never match), each finding with the
//! command that fixes it. Exits 0 when clean, 1 with warnings, 2 with errors, for CI.

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
}

const TABLE: &str = "[].{Severity: severity, Rule: rule, Object: object, Problem: problem, Fix: fix}";

pub async fn run(args: DoctorArgs, client: &mut Client, format: Format, query: Option<&str>) -> Result<ExitCode> {
    let answer = client.call_with(Method::GET, "/kite/doctor", &[("days", args.days.to_string())], None).await?;
    let code = answer["exitCode"].as_u64().and_then(|c| u8::try_from(c).ok()).unwrap_or(2);
    print_as(answer["findings"].clone(), format, query, Some(TABLE))?;
    Ok(ExitCode::from(code))
}
