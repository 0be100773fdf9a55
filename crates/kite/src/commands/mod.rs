//! The CLI's commands, one module per command group: each builds one or two API calls (or reads
//! files), reshapes the answer as az prints it, and hands it to the output formatter. This module
//! only dispatches.

pub mod account;
pub mod ad;
pub mod aks;
pub mod audit;
pub mod doctor;
pub mod eks;
pub mod group;
pub mod iam;
pub mod identity;
pub mod k8s;
pub mod keys;
pub mod keyvault;
pub mod role;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use crate::client::Client;
use crate::output::Format;
use crate::Command;

pub async fn run(command: Command, home: &Path, explicit_format: Option<Format>, query: Option<&str>) -> Result<ExitCode> {
    let format = explicit_format.unwrap_or(Format::Json);
    match command {
        Command::Login(args) => account::login(args, home, format, query).await,
        Command::Logout => account::logout(home),
        Command::Account(cmd) => account::run(cmd, &mut Client::load(home)?, format, query).await,
        Command::Group(cmd) => group::run(cmd, &mut Client::load(home)?, format, query).await,
        Command::Identity(cmd) => identity::run(cmd, &mut Client::load(home)?, format, query).await,
        Command::Ad(cmd) => ad::run(cmd, &mut Client::load(home)?, format, query).await,
        Command::Role(cmd) => role::run(cmd, &mut Client::load(home)?, format, query).await,
        Command::Iam(cmd) => iam::run(cmd, &mut Client::load(home)?, format, query).await,
        Command::K8s(cmd) => k8s::run(cmd, home, explicit_format, query).await,
        Command::Eks(cmd) => eks::run(cmd, home, format, query).await,
        Command::Aks(cmd) => aks::run(cmd, &mut Client::load(home)?, format, query).await,
        Command::Keyvault(cmd) => keyvault::run(cmd, &mut Client::load(home)?, format, query).await,
        Command::Keys(cmd) => keys::run(cmd, home, format, query).await,
        Command::Audit(cmd) => audit::run(cmd, &mut Client::load(home)?, format, query).await,
        Command::Doctor(args) => doctor::run(args, &mut Client::load(home)?, format, query).await,
        Command::Serve(_) | Command::Agent(_) => unreachable!("serve and agent are handled in main"),
    }
}
