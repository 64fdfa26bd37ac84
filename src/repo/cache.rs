//! Local copies of immutable repository objects that are read again and again: snapshot
//! manifests, tree packs and key files. Every object is content-addressed and authenticated
//! when used, so a damaged copy is detected, dropped and fetched again; the cache is never
//! the truth and can be deleted at any time. This is what keeps `snapshots`, `ls`, `diff` and
//! a no-op backup to a handful of requests on S3.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use crate::backend::Kind;

#[derive(Clone, Debug)]
pub struct ObjectCache {
    dir: PathBuf,
}

impl ObjectCache {
    pub fn new(dir: PathBuf) -> Self {
        ObjectCache { dir }
    }

    fn path(&self, kind: Kind, name: &str) -> Option<PathBuf> {
        // Names are hex ids; anything else is not cached (and could not escape the folder).
        let ok = !name.is_empty()
            && name.len() <= 128
            && name.bytes().all(|b| b.is_ascii_alphanumeric());
        ok.then(|| self.dir.join(kind.path(name)))
    }

    pub fn get(&self, kind: Kind, name: &str) -> Option<Vec<u8>> {
        fs::read(self.path(kind, name)?).ok()
    }

    pub fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Option<Vec<u8>> {
        let mut f = fs::File::open(self.path(kind, name)?).ok()?;
        if f.metadata().ok()?.len() < offset.checked_add(len)? {
            return None;
        }
        f.seek(SeekFrom::Start(offset)).ok()?;
        let mut buf = vec![0u8; usize::try_from(len).ok()?];
        f.read_exact(&mut buf).ok()?;
        Some(buf)
    }

    pub fn contains(&self, kind: Kind, name: &str) -> bool {
        self.path(kind, name).is_some_and(|p| p.exists())
    }

    /// Store a copy (best effort: a cache that cannot be written only costs requests).
    pub fn put(&self, kind: Kind, name: &str, bytes: &[u8]) {
        let Some(path) = self.path(kind, name) else {
            return;
        };
        let Some(dir) = path.parent() else { return };
        if fs::create_dir_all(dir).is_err() {
            return;
        }
        let mut rnd = [0u8; 6];
        crate::crypto::fill_random(&mut rnd);
        let tmp = dir.join(format!(".tmp-{}", hex::encode(rnd)));
        if fs::write(&tmp, bytes).is_ok() && fs::rename(&tmp, &path).is_ok() {
            return;
        }
        let _ = fs::remove_file(&tmp);
    }

    pub fn remove(&self, kind: Kind, name: &str) {
        if let Some(p) = self.path(kind, name) {
            let _ = fs::remove_file(p);
        }
    }

    /// Names cached for a kind (not fanned out: snapshots and keys).
    pub fn names(&self, kind: Kind) -> Vec<String> {
        let Ok(rd) = fs::read_dir(self.dir.join(kind.dir())) else {
            return Vec::new();
        };
        rd.filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect()
    }

    /// A small named value (hints such as the key slot that opened last time).
    pub fn read_hint(&self, name: &str) -> Option<String> {
        fs::read_to_string(self.dir.join("hints").join(name))
            .ok()
            .map(|s| s.trim().to_string())
    }

    pub fn write_hint(&self, name: &str, value: &str) {
        let dir = self.dir.join("hints");
        if fs::create_dir_all(&dir).is_ok() {
            let tmp = dir.join(format!(".tmp-{name}"));
            if fs::write(&tmp, value).is_ok() {
                let _ = fs::rename(&tmp, dir.join(name));
            }
        }
    }
}
