//! Include/exclude patterns shared by backup and restore. A pattern with a `/` matches the whole
//! path (`*` stays within one component, `**` crosses them); one without matches the file name.

use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};

#[derive(Clone, Debug, Default)]
pub struct PatternSet {
    by_path: Option<GlobSet>,
    by_name: Option<GlobSet>,
}

impl PatternSet {
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<PatternSet> {
        let mut by_path = GlobSetBuilder::new();
        let mut by_name = GlobSetBuilder::new();
        let (mut n_path, mut n_name) = (0, 0);
        for p in patterns {
            let p = p.as_ref().trim();
            if p.is_empty() || p.starts_with('#') {
                continue;
            }
            let glob = GlobBuilder::new(p.trim_end_matches('/'))
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| Error::Invalid(format!("bad pattern {p:?}: {e}")))?;
            if p.trim_end_matches('/').contains('/') {
                by_path.add(glob);
                n_path += 1;
            } else {
                by_name.add(glob);
                n_name += 1;
            }
        }
        let build = |b: GlobSetBuilder, n: usize| -> Result<Option<GlobSet>> {
            if n == 0 {
                return Ok(None);
            }
            b.build()
                .map(Some)
                .map_err(|e| Error::Invalid(e.to_string()))
        };
        Ok(PatternSet {
            by_path: build(by_path, n_path)?,
            by_name: build(by_name, n_name)?,
        })
    }

    /// Read patterns from a file, one per line (`#` comments and blank lines ignored).
    pub fn read_file(path: &Path) -> Result<Vec<String>> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Ok(text.lines().map(str::to_string).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.by_path.is_none() && self.by_name.is_none()
    }

    /// Whether `path` (absolute, or rooted at the snapshot) matches any pattern.
    pub fn matches(&self, path: &Path) -> bool {
        if let Some(set) = &self.by_path {
            if set.is_match(path) {
                return true;
            }
        }
        match (&self.by_name, path.file_name()) {
            (Some(set), Some(name)) => set.is_match(Path::new(name)),
            _ => false,
        }
    }
}
