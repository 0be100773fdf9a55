//! Noticing that watched files changed, so periodic reloads parse only what changed and a broken
//! file is reported once, not on every tick.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

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
