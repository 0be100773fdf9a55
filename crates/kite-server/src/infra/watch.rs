//! Noticing that watched files changed: the file system tells us (inotify and its peers, through
//! `notify`), so an edit takes effect within a moment; a slow periodic check covers file systems
//! that send no events. [`Watched`] then says whether anything really changed, so a reload parses
//! only what changed and a broken file is reported once, not on every event.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use notify::Watcher;

/// Checked this often even without events (network mounts and some volume types send none).
const FALLBACK: Duration = Duration::from_secs(30);
/// Events arrive in bursts (an editor's write, rename and chmod): one reload after the burst.
const SETTLE: Duration = Duration::from_millis(50);

type Stamp = Vec<(PathBuf, Option<SystemTime>, u64)>;

/// Remembers what the watched paths looked like at the last reload.
#[derive(Default)]
pub struct Watched {
    last: Mutex<Option<Stamp>>,
}

fn stamp(path: &Path, out: &mut Stamp) {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path).map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
            entries.sort();
            for e in entries {
                stamp(&e, out);
            }
        }
        Ok(m) => out.push((path.to_path_buf(), m.modified().ok(), m.len())),
        Err(_) => out.push((path.to_path_buf(), None, 0)),
    }
}

impl Watched {
    /// True the first time, and whenever a file under `paths` was added, removed or modified since.
    pub fn changed(&self, paths: &[PathBuf]) -> bool {
        let mut now = Vec::new();
        for p in paths {
            stamp(p, &mut now);
        }
        let Ok(mut last) = self.last.lock() else { return true };
        if last.as_ref() == Some(&now) {
            return false;
        }
        *last = Some(now);
        true
    }
}

/// Calls `reload` soon after anything under `paths` changes, and every [`FALLBACK`] anyway.
/// Files are watched through their directory, so a file replaced by rename (editors, `kubectl`'s
/// ConfigMap volumes, kite's own writers) is still followed.
pub fn spawn(paths: Vec<PathBuf>, reload: impl Fn() + Send + 'static) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            // A full channel already holds a pending reload.
            let _ = tx.try_send(());
        }
    });
    let watcher = match watcher {
        Ok(mut w) => {
            for path in &paths {
                let (target, mode) = match path.is_dir() {
                    true => (path.as_path(), notify::RecursiveMode::Recursive),
                    false => (path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")), notify::RecursiveMode::NonRecursive),
                };
                if let Err(e) = w.watch(target, mode) {
                    tracing::warn!("not notified of changes to {}: {e}; checking it every {}s instead", target.display(), FALLBACK.as_secs());
                }
            }
            Some(w)
        }
        Err(e) => {
            tracing::warn!("file change notifications unavailable: {e}; checking every {}s instead", FALLBACK.as_secs());
            None
        }
    };
    tokio::spawn(async move {
        // The watcher lives as long as the task; dropping it would stop the events.
        let _watcher = watcher;
        let mut tick = tokio::time::interval(FALLBACK);
        loop {
            tokio::select! {
                Some(()) = rx.recv() => {
                    tokio::time::sleep(SETTLE).await;
                    while rx.try_recv().is_ok() {}
                }
                _ = tick.tick() => {}
            }
            reload();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_seen_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.yaml");
        std::fs::write(&file, "a").unwrap();
        let w = Watched::default();
        let paths = vec![dir.path().to_path_buf()];
        assert!(w.changed(&paths));
        assert!(!w.changed(&paths));
        std::fs::write(&file, "longer").unwrap();
        assert!(w.changed(&paths));
        assert!(!w.changed(&paths));
        std::fs::write(dir.path().join("b.yaml"), "b").unwrap();
        assert!(w.changed(&paths));
    }
}
