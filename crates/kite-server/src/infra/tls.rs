//! kite's own small PKI: on first start a CA and a server certificate signed by it are written to
//! `$KITE_HOME/tls/`. Clients trust `ca.pem` (e.g. `REQUESTS_CA_BUNDLE`, `kite login --ca-file`).
//! The server certificate is re-issued from the same CA when the names it must cover change, and
//! when less than `RENEW_BEFORE` of its life is left, at start and while running.
//!
//! A new CA carries name constraints: it can only vouch for the names it was made for, so its key
//! cannot mint a certificate for anyone else's site. A CA made before that has none and is kept
//! (clients trust it); delete `ca.pem` and `ca-key.pem` to get a constrained one.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use anyhow::{bail, Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DnType, ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints,
};
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::GeneralName;

/// A server certificate with less life left than this is re-issued.
const RENEW_BEFORE: Duration = Duration::days(30);
const SERVER_LIFETIME: Duration = Duration::days(397);
/// How often a running server looks at its certificate's expiry.
const RENEW_CHECK: StdDuration = StdDuration::from_secs(3600);

pub struct TlsFiles {
    /// kite's own CA; `None` for a certificate given with `--tls-cert` (its issuer is not kite's).
    pub ca_cert: Option<PathBuf>,
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

/// This host's (in a pod: the pod's) name, which the server certificate covers when the CA allows it.
pub fn hostname() -> Option<String> {
    let host = std::fs::read_to_string("/etc/hostname").ok()?;
    Some(host.trim().to_string()).filter(|h| !h.is_empty())
}

/// The names the server certificate covers: loopback, this host's name, and any extra given.
fn names(host: Option<String>, extra: &[String]) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    for n in host.into_iter().chain(extra.iter().cloned()) {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names
}

/// The CA's permitted subtrees for `names`: each DNS name (and its subdomains), each IP exactly.
fn constraints(names: &[String]) -> NameConstraints {
    let permitted_subtrees = names
        .iter()
        .map(|n| match n.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => GeneralSubtree::IpAddress(CidrSubnet::from_v4_prefix(ip.octets(), 32)),
            Ok(IpAddr::V6(ip)) => GeneralSubtree::IpAddress(CidrSubnet::from_v6_prefix(ip.octets(), 128)),
            Err(_) => GeneralSubtree::DnsName(n.trim_start_matches("*.").to_string()),
        })
        .collect();
    NameConstraints { permitted_subtrees, excluded_subtrees: Vec::new() }
}

/// Whether the CA (PEM) may vouch for `name`: always without name constraints, otherwise only
/// inside a permitted subtree.
fn ca_permits(ca_pem: &[u8], name: &str) -> Result<bool> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(ca_pem).map_err(|e| anyhow::anyhow!("ca.pem is not PEM: {e}"))?;
    let cert = pem.parse_x509().map_err(|e| anyhow::anyhow!("ca.pem is not a certificate: {e}"))?;
    let Some(nc) = cert.name_constraints().map_err(|e| anyhow::anyhow!("ca.pem: {e}"))? else {
        return Ok(true);
    };
    let Some(permitted) = &nc.value.permitted_subtrees else {
        return Ok(true);
    };
    let ip = name.parse::<IpAddr>().ok();
    let name = name.trim_start_matches("*.").to_ascii_lowercase();
    Ok(permitted.iter().any(|subtree| match (&subtree.base, ip) {
        (GeneralName::DNSName(base), None) => {
            let base = base.to_ascii_lowercase();
            name == base || name.ends_with(&format!(".{base}"))
        }
        (GeneralName::IPAddress(bytes), Some(ip)) => {
            let octets = match ip {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            let (addr, mask) = bytes.split_at(bytes.len() / 2);
            addr.len() == octets.len() && octets.iter().zip(addr).zip(mask).all(|((o, a), m)| o & m == a & m)
        }
        _ => false,
    }))
}

/// When the server certificate (PEM) stops being valid.
fn not_after(cert_pem: &[u8]) -> Result<OffsetDateTime> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem).map_err(|e| anyhow::anyhow!("server.pem is not PEM: {e}"))?;
    let cert = pem.parse_x509().map_err(|e| anyhow::anyhow!("server.pem is not a certificate: {e}"))?;
    Ok(cert.validity().not_after.to_datetime())
}

fn files(dir: &Path) -> TlsFiles {
    TlsFiles { ca_cert: Some(dir.join("ca.pem")), server_cert: dir.join("server.pem"), server_key: dir.join("server-key.pem") }
}

/// `optional` names (the vaults' `*.vault.<domain>`) are left out, with a warning, where the CA may
/// not vouch for them, instead of stopping the start as an asked-for `--tls-name` does.
pub fn ensure(home: &Path, extra_names: &[String], optional: &[String]) -> Result<TlsFiles> {
    ensure_with_host(home, hostname(), extra_names, optional)
}

fn ensure_with_host(home: &Path, host: Option<String>, extra_names: &[String], optional: &[String]) -> Result<TlsFiles> {
    let dir = home.join("tls");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let files = files(&dir);
    let (ca_path, ca_key_path, names_path) = (dir.join("ca.pem"), dir.join("ca-key.pem"), dir.join("server-names.txt"));
    let now = OffsetDateTime::now_utc();

    if !ca_path.exists() || !ca_key_path.exists() {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, "kite local CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let all: Vec<String> = extra_names.iter().chain(optional).cloned().collect();
        params.name_constraints = Some(constraints(&names(host.clone(), &all)));
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(3650);
        let cert = params.self_signed(&key)?;
        write_private(&ca_key_path, &key.serialize_pem())?;
        std::fs::write(&ca_path, cert.pem())?;
        let _ = std::fs::remove_file(&files.server_cert);
    }

    // A name the CA may not vouch for would make clients refuse the whole certificate: one asked
    // for with --tls-name stops the start, a changed host name is left out.
    let ca_pem = std::fs::read(&ca_path).with_context(|| format!("reading {}", ca_path.display()))?;
    if let Some(name) = extra_names.iter().find(|n| !ca_permits(&ca_pem, n).unwrap_or(false)) {
        bail!(
            "--tls-name {name}: kite's CA ({}) is constrained to the names it was made for and cannot vouch for it. Move ca.pem and ca-key.pem aside and start with every --tls-name to make a new CA (clients must then trust the new ca.pem)",
            ca_path.display()
        );
    }
    let host = host.filter(|h| {
        let permitted = ca_permits(&ca_pem, h).unwrap_or(false);
        if !permitted {
            tracing::warn!(host = %h, "the server certificate leaves out this host's name: kite's CA is constrained to the names it was made for (give it with --tls-name to a new CA)");
        }
        permitted
    });
    let optional = optional.iter().filter(|n| {
        let permitted = ca_permits(&ca_pem, n).unwrap_or(false);
        if !permitted {
            tracing::warn!(name = %n, "the server certificate leaves out this name: kite's CA is constrained to the names it was made for (move ca.pem and ca-key.pem aside to make a new CA)");
        }
        permitted
    });
    let all: Vec<String> = extra_names.iter().cloned().chain(optional.cloned()).collect();
    let wanted = names(host, &all);
    let current = std::fs::read_to_string(&names_path).unwrap_or_default();
    let due = std::fs::read(&files.server_cert).ok().and_then(|pem| not_after(&pem).ok()).is_none_or(|end| end - now < RENEW_BEFORE);
    if due || !files.server_key.exists() || current.trim() != wanted.join("\n") {
        issue_server(&dir, &wanted, now)?;
    }
    Ok(files)
}

fn issue_server(dir: &Path, names: &[String], now: OffsetDateTime) -> Result<()> {
    let files = files(dir);
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(dir.join("ca-key.pem"))?)?;
    let issuer = Issuer::from_ca_cert_pem(&std::fs::read_to_string(dir.join("ca.pem"))?, ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.to_vec())?;
    params.distinguished_name.push(DnType::CommonName, "kite server");
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = now - Duration::hours(1);
    params.not_after = now + SERVER_LIFETIME;
    let cert = params.signed_by(&key, &issuer)?;
    write_private(&files.server_key, &key.serialize_pem())?;
    std::fs::write(&files.server_cert, cert.pem())?;
    std::fs::write(dir.join("server-names.txt"), names.join("\n"))?;
    tracing::info!(not_after = %params.not_after, "issued the server certificate");
    Ok(())
}

/// Re-issues the server certificate for the names it covers when less than `RENEW_BEFORE` is left;
/// whether it did.
fn renew_if_due(home: &Path, now: OffsetDateTime) -> Result<bool> {
    let dir = home.join("tls");
    let end = not_after(&std::fs::read(files(&dir).server_cert)?)?;
    if end - now >= RENEW_BEFORE {
        return Ok(false);
    }
    let names: Vec<String> = std::fs::read_to_string(dir.join("server-names.txt"))?.lines().map(str::to_string).collect();
    issue_server(&dir, &names, now)?;
    Ok(true)
}

/// A listener's TLS: kite's server certificate, and for the webhook listener the CA whose client
/// certificates it requires (kube-apiserver's, from its webhook kubeconfig).
#[derive(Clone)]
pub struct Listener {
    pub config: axum_server::tls_rustls::RustlsConfig,
    client_ca: Option<PathBuf>,
}

impl Listener {
    pub fn new(files: &TlsFiles, client_ca: Option<&Path>) -> Result<Listener> {
        let config = axum_server::tls_rustls::RustlsConfig::from_config(server_config(files, client_ca)?);
        Ok(Listener { config, client_ca: client_ca.map(Path::to_path_buf) })
    }

    fn reload(&self, files: &TlsFiles) -> Result<()> {
        self.config.reload_from_config(server_config(files, self.client_ca.as_deref())?);
        Ok(())
    }
}

/// rustls' server configuration: the certificate chain and key, HTTP/2 and HTTP/1.1, and with
/// `client_ca` a client certificate signed by it required in the handshake.
fn server_config(files: &TlsFiles, client_ca: Option<&Path>) -> Result<std::sync::Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read_certs = |path: &Path| -> Result<Vec<CertificateDer<'static>>> {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("reading certificates from {}", path.display()))?;
        if certs.is_empty() {
            bail!("{} holds no PEM certificate", path.display());
        }
        Ok(certs)
    };
    let chain = read_certs(&files.server_cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.server_key).with_context(|| format!("reading the key in {}", files.server_key.display()))?;
    let builder = rustls::ServerConfig::builder();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots.add(cert).with_context(|| format!("--webhook-client-ca {}: not a usable CA certificate", ca.display()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder(std::sync::Arc::new(roots))
                .build()
                .with_context(|| format!("--webhook-client-ca {}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).context("the server certificate and key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(std::sync::Arc::new(config))
}

/// `--tls-cert FILE --tls-key FILE`: a certificate kite did not issue, e.g. cert-manager's Secret
/// mounted as files, so every replica presents the same one.
#[derive(Clone, Debug)]
pub struct Provided {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Provided {
    pub fn files(&self) -> TlsFiles {
        TlsFiles { ca_cert: None, server_cert: self.cert.clone(), server_key: self.key.clone() }
    }
}

/// Serves the provided files anew whenever they change (a renewal replaces them; a Secret volume
/// swaps them together). A pair that does not load (half written, key and certificate from
/// different renewals) leaves the last good one in force, and is logged; the next change is tried.
pub fn spawn_reload(provided: Provided, listeners: Vec<Listener>) {
    let watched = crate::infra::watch::Watched::default();
    let paths = vec![provided.cert.clone(), provided.key.clone()];
    // The files as served at start.
    watched.changed(&paths);
    let files = provided.files();
    crate::infra::watch::spawn(paths.clone(), move || {
        if !watched.changed(&paths) {
            return;
        }
        match listeners.iter().try_for_each(|l| l.reload(&files)) {
            Ok(()) => tracing::info!(cert = %files.server_cert.display(), "serving the replaced certificate"),
            Err(e) => tracing::error!("--tls-cert/--tls-key changed but do not load, the last good certificate stays in force: {e:#}"),
        }
    });
}

/// Keeps a running server's certificate fresh: re-issues it when due and has every listener serve
/// the new one to new connections, without a restart.
pub fn spawn_renewal(home: PathBuf, files: TlsFiles, listeners: Vec<Listener>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RENEW_CHECK);
        tick.tick().await;
        loop {
            tick.tick().await;
            match renew_and_reload(&home, &files, &listeners, OffsetDateTime::now_utc()) {
                Ok(false) => {}
                Ok(true) => tracing::info!("serving the renewed server certificate"),
                Err(e) => tracing::error!("renewing the server certificate: {e:#}"),
            }
        }
    });
}

/// One renewal check: re-issues a due certificate and has the listeners serve it; whether it did.
fn renew_and_reload(home: &Path, files: &TlsFiles, listeners: &[Listener], now: OffsetDateTime) -> Result<bool> {
    if !renew_if_due(home, now)? {
        return Ok(false);
    }
    for listener in listeners {
        listener.reload(files).context("loading the renewed server certificate")?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn end_of(home: &Path) -> OffsetDateTime {
        not_after(&std::fs::read(home.join("tls/server.pem")).unwrap()).unwrap()
    }

    #[test]
    fn a_new_ca_is_constrained_to_the_names_it_serves() {
        let home = tempfile::tempdir().unwrap();
        ensure_with_host(home.path(), Some("node-1".into()), &["kite.example.com".into(), "10.0.0.7".into()], &[]).unwrap();
        let ca = std::fs::read(home.path().join("tls/ca.pem")).unwrap();
        for ok in ["localhost", "127.0.0.1", "::1", "node-1", "kite.example.com", "api.kite.example.com", "10.0.0.7"] {
            assert!(ca_permits(&ca, ok).unwrap(), "{ok}");
        }
        for refused in ["example.com", "www.google.com", "10.0.0.8", "evilkite.example.com", "::2"] {
            assert!(!ca_permits(&ca, refused).unwrap(), "{refused}");
        }
        // A later --tls-name outside the constraints stops the start instead of serving a
        // certificate clients would refuse; a changed host name is left out.
        let err = ensure_with_host(home.path(), Some("node-1".into()), &["other.example.org".into()], &[]).err().unwrap();
        assert!(err.to_string().contains("--tls-name other.example.org"), "{err}");
        ensure_with_host(home.path(), Some("node-2".into()), &["kite.example.com".into(), "10.0.0.7".into()], &[]).unwrap();
        let names = std::fs::read_to_string(home.path().join("tls/server-names.txt")).unwrap();
        assert!(!names.contains("node-2") && names.contains("kite.example.com"), "{names}");
    }

    #[test]
    fn the_vault_wildcard_is_covered_where_the_ca_permits_it_and_never_stops_the_start() {
        let home = tempfile::tempdir().unwrap();
        let inside = ["*.vault.kite.example.com".to_string()];
        ensure_with_host(home.path(), None, &["kite.example.com".into()], &inside).unwrap();
        let names = std::fs::read_to_string(home.path().join("tls/server-names.txt")).unwrap();
        assert!(names.contains("*.vault.kite.example.com"), "{names}");
        // A domain the CA was not made for is left out of the certificate, not a failed start.
        ensure_with_host(home.path(), None, &["kite.example.com".into()], &["*.vault.other.example.org".into()]).unwrap();
        let names = std::fs::read_to_string(home.path().join("tls/server-names.txt")).unwrap();
        assert!(!names.contains("other.example.org") && names.contains("kite.example.com"), "{names}");
    }

    #[tokio::test]
    async fn a_running_server_swaps_in_the_renewed_certificate() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let home = tempfile::tempdir().unwrap();
        let files = ensure_with_host(home.path(), None, &[], &[]).unwrap();
        // The main listener, and a webhook listener requiring client certificates from kite's own CA.
        let ca = files.ca_cert.clone().unwrap();
        let listeners = vec![Listener::new(&files, None).unwrap(), Listener::new(&files, Some(&ca)).unwrap()];
        let served: Vec<_> = listeners.iter().map(|l| l.config.get_inner()).collect();
        let now = OffsetDateTime::now_utc();
        assert!(!renew_and_reload(home.path(), &files, &listeners, now).unwrap());
        for (before, listener) in served.iter().zip(&listeners) {
            assert!(Arc::ptr_eq(before, &listener.config.get_inner()), "a fresh certificate is left alone");
        }
        assert!(renew_and_reload(home.path(), &files, &listeners, now + Duration::days(380)).unwrap());
        for (before, listener) in served.iter().zip(&listeners) {
            assert!(!Arc::ptr_eq(before, &listener.config.get_inner()), "new connections get the renewed certificate");
        }
        assert!(end_of(home.path()) - now > Duration::days(700));
    }

    #[test]
    fn a_certificate_near_its_end_is_reissued_at_start_and_while_running() {
        let home = tempfile::tempdir().unwrap();
        ensure_with_host(home.path(), None, &[], &[]).unwrap();
        let now = OffsetDateTime::now_utc();
        assert!(end_of(home.path()) - now > Duration::days(390));
        // Ten days left, and already expired: both are re-issued at start.
        for left in [Duration::days(10), Duration::days(-3)] {
            issue_server(&home.path().join("tls"), &names(None, &[]), now + left - SERVER_LIFETIME).unwrap();
            assert!(end_of(home.path()) - now < RENEW_BEFORE);
            ensure_with_host(home.path(), None, &[], &[]).unwrap();
            assert!(end_of(home.path()) - now > Duration::days(390), "{left} left was not renewed");
        }
        // While running: nothing to do until the renewal window, then a new certificate.
        assert!(!renew_if_due(home.path(), now).unwrap());
        assert!(renew_if_due(home.path(), now + Duration::days(380)).unwrap());
        assert!(end_of(home.path()) - now > Duration::days(700));
    }
}
