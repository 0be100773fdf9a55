//! Sealing at rest, as an operator meets it: the real `kite serve` on its embedded SQLite file, a
//! KEK from a file, the environment or KITE_HOME, `kite keys rewrap`, and restarts.
mod support;

use std::path::Path;
use std::process::Command;

use support::{Cli, Server, BIN};

fn raw_database(home: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(home.join("kite.db")).unwrap();
    if let Ok(wal) = std::fs::read(home.join("kite.db-wal")) {
        bytes.extend(wal);
    }
    bytes
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn write_kek(path: &Path) -> String {
    let key = kite_store::Kek::generate("test").unwrap().to_base64();
    std::fs::write(path, format!("{key}\n")).unwrap();
    key
}

/// `kite serve` that is expected to refuse to start: its exit code and what it printed.
fn refused_start(home: &Path, extra: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(BIN).args(["serve", "--listen", "127.0.0.1:0"]).args(extra).env("KITE_HOME", home).envs(env.iter().copied()).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_embedded_default_generates_its_kek_and_the_database_shows_no_private_key_or_sts_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("server");
    let server = Server::start(&home, &[]);
    let admin = Cli::admin(&dir.path().join("admin"), &server);
    // An access key's secret is derived from the STS master key, which the server creates for it.
    let ok = |args: &[&str]| {
        let run = admin.run(args);
        assert_eq!(run.code, 0, "{args:?} failed: {}\nserver log:\n{}", run.stderr, server.log_text());
        run.json()
    };
    ok(&["iam", "user", "create", "--user-name", "ci"]);
    let key = ok(&["iam", "access-key", "create", "--user-name", "ci"]);
    let secret = key["AccessKey"]["SecretAccessKey"].as_str().unwrap().to_string();
    ok(&["keys", "rotate"]);
    let keys = ok(&["keys", "list"]);
    assert!(keys.as_array().is_some_and(|k| k.len() == 2), "{keys}");
    drop(server);
    #[cfg(unix)]
    for file in ["kek", "kite.db", "admin-credentials.json"] {
        assert_eq!(mode(&home.join(file)), 0o600, "{file} is owner-only");
    }
    let bytes = raw_database(&home);
    assert!(contains(&bytes, b"kite-sealed:v1:"));
    for clear in [&b"PRIVATE KEY"[..], b"private_key_pem", secret.as_bytes()] {
        assert!(!contains(&bytes, clear), "the raw database shows {}", String::from_utf8_lossy(clear));
    }
    // The same home starts again with the key it generated.
    let again = Server::start(&home, &[]);
    assert!(!again.log_text().contains("generated the key-encryption key"));
}

#[test]
fn a_wrong_kek_is_refused_at_start_naming_its_source_and_a_rewrap_moves_the_database_to_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("server");
    let (old_file, new_file, wrong_file) = (dir.path().join("old.kek"), dir.path().join("new.kek"), dir.path().join("wrong.kek"));
    write_kek(&old_file);
    write_kek(&new_file);
    let wrong = write_kek(&wrong_file);
    let old_flag = ["--kek-file", old_file.to_str().unwrap()];
    let server = Server::start(&home, &old_flag);
    let admin = Cli::admin(&dir.path().join("admin"), &server);
    let before = admin.run(&["keys", "list"]).ok();

    // The wrong key, from a file or the environment: refused, naming where it came from, never the key.
    let (code, stderr) = refused_start(&home, &["--kek-file", wrong_file.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(stderr.contains(&format!("--kek-file {}", wrong_file.display())) && stderr.contains("not the key the database was sealed with"), "{stderr}");
    assert!(!stderr.contains(&wrong), "the key itself is never printed");
    let (code, stderr) = refused_start(&home, &[], &[("KITE_KEK", &wrong)]);
    assert!(code != 0 && stderr.contains("KITE_KEK"), "{stderr}");
    let (code, stderr) = refused_start(&home, &[], &[("KITE_KEK", "c2hvcnQ=")]);
    assert!(code != 0 && stderr.contains("KITE_KEK is 5 bytes long; it must be 32"), "{stderr}");

    // Re-wrap while the server runs: it goes on serving with the data keys it holds.
    let ops = Cli::new(&home);
    let wrong_rewrap = ops.run(&["keys", "rewrap", "--new-kek-file", new_file.to_str().unwrap(), "--kek-file", wrong_file.to_str().unwrap()]);
    wrong_rewrap.fails_with(&["not the key the database was sealed with"]);
    let done = ops.run(&["keys", "rewrap", "--new-kek-file", new_file.to_str().unwrap(), "--kek-file", old_file.to_str().unwrap()]).ok();
    assert_eq!(done["dataKeys"], 1, "{done}");
    assert_eq!(admin.run(&["keys", "list"]).ok(), before, "the running server is not disturbed");
    drop(server);

    let (code, stderr) = refused_start(&home, &old_flag, &[]);
    assert!(code != 0 && stderr.contains(&format!("--kek-file {}", old_file.display())), "the old key is refused after the rewrap: {stderr}");
    let restarted = Server::start(&home, &["--kek-file", new_file.to_str().unwrap()]);
    let admin = Cli::admin(&dir.path().join("admin2"), &restarted);
    assert_eq!(admin.run(&["keys", "list"]).ok(), before, "every signing key is still there after the rewrap");
}
