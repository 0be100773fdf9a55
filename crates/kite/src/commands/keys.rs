//! `kite keys`: the server's token-signing keys, and `rewrap`, which moves the database's data keys
//! to a new key-encryption key.
//!
//! `rewrap` opens the database itself instead of asking the server: the key-encryption keys never
//! cross the network, and no endpoint exists that could hand a caller a KEK. Servers keep running
//! (they hold the unwrapped data keys), and the re-wrap is one transaction; every later start needs
//! the new key.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use kite_server::infra::kek::{self, KekInput, KekOrigin};
use kite_store::{SqlStore, Store};
use reqwest::Method;
use serde_json::json;

use crate::client::Client;
use crate::output::{print, Format};
use crate::view::list_of;

#[derive(Subcommand)]
pub enum KeysCmd {
    /// The published signing keys, which one signs, and when superseded ones retire.
    List,
    /// Add a key that signs from now on; older keys stay published until their tokens have expired.
    Rotate,
    /// Re-wrap every data key under a new key-encryption key (the database is opened directly;
    /// running servers go on). Start servers with the new key afterwards.
    Rewrap(RewrapArgs),
}

#[derive(Args)]
pub struct RewrapArgs {
    /// The new key-encryption key (base64 of 32 bytes, e.g. 'head -c 32 /dev/urandom | base64 > FILE').
    #[arg(long)]
    new_kek_file: PathBuf,
    /// The current key-encryption key's file (or KITE_KEK; default KITE_HOME/kek).
    #[arg(long)]
    kek_file: Option<PathBuf>,
    /// The database, as `kite serve` is given it (default: KITE_HOME's SQLite file).
    #[arg(long, env = "KITE_DATABASE_URL")]
    database_url: Option<String>,
}

pub async fn run(cmd: KeysCmd, home: &Path, format: Format, query: Option<&str>) -> Result<ExitCode> {
    let v = match cmd {
        KeysCmd::List => list_of(Client::load(home)?.call(Method::GET, "/kite/signingKeys", None).await?, |k| k),
        KeysCmd::Rotate => list_of(Client::load(home)?.call(Method::POST, "/kite/signingKeys/rotate", None).await?, |k| k),
        KeysCmd::Rewrap(args) => rewrap(args, home).await?,
    };
    print(v, format, query)
}

async fn rewrap(args: RewrapArgs, home: &Path) -> Result<serde_json::Value> {
    let new = kek::read_file(&args.new_kek_file, "--new-kek-file")?;
    let (url, embedded) = kek::database_url(args.database_url.as_deref(), home);
    if embedded && !home.join("kite.db").exists() {
        anyhow::bail!("there is no database at {}: give --database-url, or the KITE_HOME 'kite serve' uses", home.join("kite.db").display());
    }
    let (current, origin) = kek::resolve(&KekInput { file: args.kek_file, env: std::env::var("KITE_KEK").ok() }, home, embedded)?;
    let store = SqlStore::connect(&url, &current).await?;
    let count = store.rewrap_data_keys(&new).await?;
    // A server on the embedded default reads KITE_HOME/kek: it must find the new key there.
    let replaced = match origin {
        KekOrigin::DefaultFile(path) => {
            kite_server::infra::tls::write_private(&path, &new.to_base64())?;
            Some(path)
        }
        KekOrigin::Given => None,
    };
    Ok(json!({"dataKeys": count, "newKeyEncryptionKey": new.source(), "replacedDefaultKekFile": replaced}))
}
