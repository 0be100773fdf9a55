//! End to end: how the HTTPS listener holds up over time: its certificate is renewed before it
//! runs out, and its CA can vouch only for kite's own names.
mod support;

use std::process::Command;

use support::Server;

fn sh(script: &str) -> (bool, String) {
    let out = Command::new("sh").args(["-c", script]).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Whether the certificate `server` presents is still valid `secs` from now (openssl -checkend).
fn served_valid_for(server: &Server, secs: u64) -> bool {
    let addr = server.url.trim_start_matches("https://");
    let (ok, out) = sh(&format!("openssl s_client -connect {addr} -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -checkend {secs}"));
    assert!(out.contains("Certificate will"), "no certificate served: {out}");
    ok
}

#[test]
fn a_certificate_near_its_end_is_reissued_at_start_from_a_name_constrained_ca() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("srv");
    drop(Server::start(&home, &[]));
    let tls = home.join("tls");
    let (ca_text_ok, ca_text) = sh(&format!("openssl x509 -in {} -noout -ext nameConstraints", tls.join("ca.pem").display()));
    assert!(ca_text_ok && ca_text.contains("Permitted") && ca_text.contains("DNS:localhost") && ca_text.contains("IP:127.0.0.1"), "{ca_text}");

    // A certificate from the same CA with 10 days left, as one near the end of its life.
    let t = tls.display();
    let (ok, out) = sh(&format!(
        "openssl req -new -key {t}/server-key.pem -subj /CN=kite -addext subjectAltName=IP:127.0.0.1,DNS:localhost -out {t}/csr.pem && \
         openssl x509 -req -in {t}/csr.pem -CA {t}/ca.pem -CAkey {t}/ca-key.pem -set_serial 7 -days 10 -copy_extensions copy -out {t}/server.pem"
    ));
    assert!(ok, "{out}");
    assert!(!sh(&format!("openssl x509 -in {t}/server.pem -noout -checkend {}", 30 * 86400)).0, "the planted certificate has 10 days");
    let server = Server::start(&home, &[]);
    assert!(served_valid_for(&server, 300 * 86400), "the 10-day certificate is still served");
}
