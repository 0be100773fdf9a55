//! Where the key-encryption key comes from: `--kek-file PATH`, else `KITE_KEK` (base64 of 32
//! bytes), else, on the embedded default (SQLite in KITE_HOME), the file `KITE_HOME/kek`, generated
//! (mode 0600) on the first start. Every message names the source, never the key.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use kite_store::Kek;

use crate::infra::tls::write_private;

/// The file the embedded default keeps its generated KEK in.
pub const DEFAULT_FILE: &str = "kek";

/// What the operator gave: a file, the environment's value, or neither.
pub struct KekInput {
    pub file: Option<PathBuf>,
    /// `KITE_KEK`'s value, read at the edge.
    pub env: Option<String>,
}

impl std::fmt::Debug for KekInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KekInput").field("file", &self.file).field("env", &self.env.as_ref().map(|_| "<set>")).finish()
    }
}

/// Where a KEK was read from, so `kite keys rewrap` knows whether to replace the default file.
#[derive(Debug)]
pub enum KekOrigin {
    Given,
    DefaultFile(PathBuf),
}

pub fn read_file(path: &Path, flag: &str) -> Result<Kek> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the key-encryption key file {flag} {}", path.display()))?;
    Ok(Kek::from_base64(&text, format!("{flag} {}", path.display()))?)
}

/// Resolves the KEK for a database; `embedded` when it is the default SQLite file in `home`.
pub fn resolve(input: &KekInput, home: &Path, embedded: bool) -> Result<(Kek, KekOrigin)> {
    match (&input.file, &input.env) {
        (Some(_), Some(_)) => bail!("both --kek-file and KITE_KEK are set: give the key-encryption key one way"),
        (Some(path), None) => return Ok((read_file(path, "--kek-file")?, KekOrigin::Given)),
        (None, Some(value)) => return Ok((Kek::from_base64(value, "KITE_KEK")?, KekOrigin::Given)),
        (None, None) => {}
    }
    if !embedded {
        bail!(
            "a database outside KITE_HOME needs the key-encryption key its secrets are sealed with: give --kek-file PATH or KITE_KEK \
             (base64 of 32 random bytes, e.g. from 'head -c 32 /dev/urandom | base64'), the same on every replica"
        );
    }
    let path = home.join(DEFAULT_FILE);
    if path.exists() {
        return Ok((read_file(&path, "KITE_HOME's")?, KekOrigin::DefaultFile(path)));
    }
    // Written before the database is opened: a data key must never be wrapped by a KEK that is not on disk.
    let kek = Kek::generate(format!("KITE_HOME's {} (generated on this start)", path.display()))?;
    std::fs::create_dir_all(home).with_context(|| format!("creating KITE_HOME {}", home.display()))?;
    write_private(&path, &kek.to_base64())?;
    tracing::info!(path = %path.display(), "generated the key-encryption key (owner-only); back it up: the database's secrets cannot be read without it");
    Ok((kek, KekOrigin::DefaultFile(path)))
}

/// The database URL, and whether it is the embedded default.
pub fn database_url(given: Option<&str>, home: &Path) -> (String, bool) {
    match given {
        Some(url) => (url.to_string(), false),
        None => (format!("sqlite://{}", home.join("kite.db").display()), true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_generates_an_owner_only_key_once_and_reads_it_after() {
        let home = tempfile::tempdir().unwrap();
        let none = KekInput { file: None, env: None };
        let (first, _) = resolve(&none, home.path(), true).unwrap();
        let path = home.path().join(DEFAULT_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let (second, origin) = resolve(&none, home.path(), true).unwrap();
        assert_eq!(first.to_base64(), second.to_base64());
        assert!(matches!(origin, KekOrigin::DefaultFile(p) if p == path));
        let err = resolve(&none, home.path(), false).unwrap_err().to_string();
        assert!(err.contains("--kek-file") && err.contains("KITE_KEK"), "{err}");
        let both = KekInput { file: Some(path), env: Some(first.to_base64()) };
        assert!(resolve(&both, home.path(), true).unwrap_err().to_string().contains("one way"));
    }
}
