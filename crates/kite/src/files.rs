//! Files the CLI rewrites for `kite serve` to read.

use std::path::Path;

use anyhow::{Context, Result};

/// Replaces a file in one step (write aside, then rename), so a reader never sees half of it.
pub fn replace_file(path: &Path, contents: &str) -> Result<()> {
    let tmp = path.with_extension("kite-tmp");
    std::fs::write(&tmp, contents).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}
