//! kite's own small PKI: on first start a CA and a server certificate signed by it are written to
//! `$KITE_HOME/tls/`. Clients trust `ca.pem` (e.g. `REQUESTS_CA_BUNDLE`, `kite login --ca-file`).
//! The server certificate is re-issued from the same CA when the names it must cover change.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use time::{Duration, OffsetDateTime};

pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

/// Writes a file only its owner can read (keys, credentials).
pub fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path).with_context(|| format!("writing {}", path.display()))?;
    // `mode` applies only when the file is created; one left wider by an older version is narrowed.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600)).with_context(|| format!("restricting {} to its owner", path.display()))?;
    }
    f.write_all(contents.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The names the server certificate covers: loopback, this host's name, and any extra given.
fn names(extra: &[String]) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        if !host.is_empty() {
            names.push(host.to_string());
        }
    }
    for n in extra {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    names
}

pub fn ensure(home: &Path, extra_names: &[String]) -> Result<TlsFiles> {
    let dir = home.join("tls");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let files = TlsFiles { ca_cert: dir.join("ca.pem"), server_cert: dir.join("server.pem"), server_key: dir.join("server-key.pem") };
    let (ca_key_path, names_path) = (dir.join("ca-key.pem"), dir.join("server-names.txt"));
    let now = OffsetDateTime::now_utc();

    if !files.ca_cert.exists() || !ca_key_path.exists() {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, "kite local CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(3650);
        let cert = params.self_signed(&key)?;
        write_private(&ca_key_path, &key.serialize_pem())?;
        std::fs::write(&files.ca_cert, cert.pem())?;
        let _ = std::fs::remove_file(&files.server_cert);
    }

    let wanted = names(extra_names);
    let current = std::fs::read_to_string(&names_path).unwrap_or_default();
    if !files.server_cert.exists() || !files.server_key.exists() || current.trim() != wanted.join("\n") {
        let ca_key = KeyPair::from_pem(&std::fs::read_to_string(&ca_key_path)?)?;
        let issuer = Issuer::from_ca_cert_pem(&std::fs::read_to_string(&files.ca_cert)?, ca_key)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(wanted.clone())?;
        params.distinguished_name.push(DnType::CommonName, "kite server");
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(397);
        let cert = params.signed_by(&key, &issuer)?;
        write_private(&files.server_key, &key.serialize_pem())?;
        std::fs::write(&files.server_cert, cert.pem())?;
        std::fs::write(&names_path, wanted.join("\n"))?;
    }
    Ok(files)
}
