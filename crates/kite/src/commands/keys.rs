//! `kite keys`: the server's token-signing keys.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use reqwest::Method;

use crate::client::Client;
use crate::output::{print, Format};
use crate::view::list_of;

#[derive(Subcommand)]
pub enum KeysCmd {
    /// The published signing keys, which one signs, and when superseded ones retire.
    List,
    /// Add a key that signs from now on; older keys stay published until their tokens have expired.
    Rotate,
}

pub async fn run(cmd: KeysCmd, client: &mut Client, format: Format, query: Option<&str>) -> Result<ExitCode> {
    let v = match cmd {
        KeysCmd::List => client.call(Method::GET, "/kite/signingKeys", None).await?,
        KeysCmd::Rotate => client.call(Method::POST, "/kite/signingKeys/rotate", None).await?,
    };
    print(list_of(v, |k| k), format, query)
}
