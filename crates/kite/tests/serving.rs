//! End to end: how the HTTPS listener holds up: against idle connections and oversized bodies,
//! and over time (its certificate is renewed before it runs out, and its CA can vouch only for
//! kite's own names).
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

/// Whether `GET /healthz` answers "ok" within 5 s.
fn healthz(server: &Server) -> bool {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert", server.ca().to_str().unwrap()])
        .arg(format!("{}/healthz", server.url))
        .output()
        .unwrap();
    out.status.success() && out.stdout == b"ok"
}

/// A TLS connection that completes its handshake and then sends nothing (stdin stays open).
fn idle_connection(server: &Server) -> Child {
    let addr = server.url.trim_start_matches("https://");
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", addr, "-servername", "localhost", "-brief"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    assert!(lines.any(|l| l.is_ok_and(|l| l.contains("CONNECTION ESTABLISHED"))), "the TLS handshake did not complete");
    child
}

#[test]
fn idle_connections_are_capped_and_closed_and_healthz_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("srv"), &["--max-connections", "6", "--idle-timeout", "3"]);
    assert!(healthz(&server));
    let mut held: Vec<Child> = (0..6).map(|_| idle_connection(&server)).collect();
    // Every place is held by a connection that says nothing: the next one is closed at once, and
    // the operator is told.
    assert!(!healthz(&server), "a connection past --max-connections was served");
    let log = server.log_text();
    assert!(log.lines().any(|l| l.contains("WARN") && l.contains("connection refused: --max-connections reached")), "{log}");
    // The idle connections are closed by the server, and then the service answers again.
    let deadline = Instant::now() + Duration::from_secs(10);
    for child in &mut held {
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "an idle connection was still open after 10 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert!(healthz(&server), "healthz does not answer once the idle connections are gone");
    assert!(Command::new(support::BIN).args(["serve", "--max-connections", "0"]).output().unwrap().stderr.starts_with(b"error: invalid value '0'"));
}

#[test]
fn an_oversized_body_is_answered_413_over_http1_and_http2() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("srv"), &[]);
    let big = dir.path().join("big.json");
    std::fs::write(&big, format!("{{\"location\": \"x\", \"tags\": {{\"a\": \"{}\"}}}}", "b".repeat(3 << 20))).unwrap();
    let url = format!("{}/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg?api-version=2021-04-01", server.url);
    for (protocol, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        // With a declared length, and streamed without one.
        for framing in [&[][..], &["-H", "Transfer-Encoding: chunked"][..]] {
            let out = Command::new("curl")
                .args(["-sS", protocol, "--cacert", server.ca().to_str().unwrap(), "-X", "PUT", "-H", "content-type: application/json"])
                .args(framing)
                .args(["--data-binary", &format!("@{}", big.display()), "-w", "\n%{http_code} %{http_version}", &url])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let (body, status) = text.rsplit_once('\n').unwrap_or_else(|| panic!("{protocol} {framing:?}: {}", String::from_utf8_lossy(&out.stderr)));
            assert_eq!(status, format!("413 {version}"), "{protocol} {framing:?}: {body} {}", String::from_utf8_lossy(&out.stderr));
            assert!(body.contains("RequestEntityTooLarge"), "{body}");
        }
    }
}

#[test]
fn headers_trickled_a_line_a_second_are_cut_off_after_the_header_read_timeout() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("srv"), &[]);
    let mut slow = idle_connection(&server);
    let mut stdin = slow.stdin.take().unwrap();
    let started = Instant::now();
    // Never idle (a line every second), never done: only the header-read timeout (10 s) ends it.
    let _ = stdin.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n");
    while slow.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < Duration::from_secs(20), "a request whose headers never end held its connection for 20 s");
        let _ = stdin.write_all(b"X-Trickle: 1\r\n").and_then(|_| stdin.flush());
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(started.elapsed() >= Duration::from_secs(9), "closed after {:?}, before the timeout", started.elapsed());
    assert!(healthz(&server));
}
