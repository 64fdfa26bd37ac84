//! A repository in a local directory: objects are files, written atomically
//! (temp file, fsync, hard link into place so an existing object is never replaced).
//!
//! `stage` streams an object into a temporary file `<kind folder>/.tmp-<random>` as its bytes
//! arrive (packs never sit whole in memory) and `commit` links it into place with the same steps
//! as `put`. Names starting with '.' are not objects (`list` skips them). A process killed
//! mid-write leaves its temporary files behind; `prune` removes them once they are older than
//! a backup session may go without a heartbeat (`remove_stale_temp`).

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{
    check_name, BResult, Backend, BackendError, Kind, Staged, StagedSink, StaleTemp, Temperature,
};

pub struct LocalBackend {
    root: PathBuf,
}

impl LocalBackend {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalBackend { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, kind: Kind, name: &str) -> PathBuf {
        self.root.join(kind.path(name))
    }

    /// Create the temporary file `dir/<prefix>-<random>` for a new object of `kind`. Errors name
    /// the object `name` when it is known, the temporary file otherwise.
    fn temp_file(
        &self,
        kind: Kind,
        dir: &Path,
        prefix: &str,
        name: Option<&str>,
    ) -> BResult<TempObject> {
        let mut rnd = [0u8; 8];
        crate::crypto::fill_random(&mut rnd);
        let file_name = format!("{prefix}-{}", hex::encode(rnd));
        let label = name.unwrap_or(&file_name).to_string();
        fs::create_dir_all(dir).map_err(|e| io_err_at(kind, &label, dir, e))?;
        let path = dir.join(&file_name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io_err_at(kind, &label, &path, e))?;
        Ok(TempObject {
            root: self.root.clone(),
            kind,
            label,
            path,
            file: BufWriter::with_capacity(TEMP_BUFFER, file),
        })
    }
}

/// Temporary files start with this (`put`: `.tmp-<name>-<random>`, `stage`: `.tmp-<random>`).
const TEMP_PREFIX: &str = ".tmp";

/// Whether `name` is a fan-out folder of packs (two hex digits).
fn is_fan(name: &str) -> bool {
    name.len() == 2 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Small writes (blobs of tiny files) are gathered; larger ones go straight to the file.
const TEMP_BUFFER: usize = 64 << 10;

/// An object being written to a temporary file; removed on drop unless committed.
struct TempObject {
    root: PathBuf,
    kind: Kind,
    /// The temporary file's name, for error messages.
    label: String,
    path: PathBuf,
    file: BufWriter<File>,
}

impl StagedSink for TempObject {
    fn write(&mut self, data: &[u8]) -> BResult<()> {
        self.file
            .write_all(data)
            .map_err(|e| io_err_at(self.kind, &self.label, &self.path, e))
    }

    /// fsync the file, hard-link it to its name (which fails rather than replace an existing
    /// object), drop the temporary name and fsync the folder that gained the new name.
    fn commit(mut self: Box<Self>, name: &str) -> BResult<()> {
        let kind = self.kind;
        check_name(kind, name)?;
        let path = self.root.join(kind.path(name));
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        self.file
            .flush()
            .and_then(|()| self.file.get_ref().sync_all())
            .map_err(|e| io_err_at(kind, name, &self.path, e))?;
        fs::create_dir_all(&dir).map_err(|e| io_err_at(kind, name, &dir, e))?;
        fs::hard_link(&self.path, &path).map_err(|e| io_err_at(kind, name, &path, e))?;
        drop(self); // removes the temporary name
        sync_dir(&dir);
        Ok(())
    }
}

impl Drop for TempObject {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Map an I/O error; other than not-found and already-exists, the message names the file so
/// that "disk full" or "read-only file system" says where.
fn io_err_at(kind: Kind, name: &str, path: &Path, source: std::io::Error) -> BackendError {
    match source.kind() {
        ErrorKind::NotFound | ErrorKind::AlreadyExists => io_err(kind, name, source),
        k => BackendError::Io {
            kind,
            name: name.to_string(),
            error: std::io::Error::new(k, format!("{}: {source}", path.display())),
        },
    }
}

fn io_err(kind: Kind, name: &str, source: std::io::Error) -> BackendError {
    match source.kind() {
        ErrorKind::NotFound => BackendError::NotFound {
            kind,
            name: name.to_string(),
        },
        ErrorKind::AlreadyExists => BackendError::AlreadyExists {
            kind,
            name: name.to_string(),
        },
        _ => BackendError::Io {
            kind,
            name: name.to_string(),
            error: source,
        },
    }
}

fn sync_dir(dir: &Path) {
    // Best effort: a directory fsync makes the new name durable; some filesystems refuse it.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

impl Backend for LocalBackend {
    fn cheap_ranges(&self) -> bool {
        true
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn create(&self) -> BResult<()> {
        for kind in Kind::ALL {
            if kind != Kind::Config {
                let dir = self.root.join(kind.dir());
                fs::create_dir_all(&dir).map_err(|e| io_err_at(kind, "", &dir, e))?;
            }
        }
        Ok(())
    }

    fn put(&self, kind: Kind, name: &str, data: &[u8], _temp: Temperature) -> BResult<()> {
        check_name(kind, name)?;
        let path = self.path(kind, name);
        if path.exists() {
            return Err(BackendError::AlreadyExists {
                kind,
                name: name.to_string(),
            });
        }
        let dir = path.parent().unwrap_or(&self.root);
        let prefix = format!("{TEMP_PREFIX}-{name}");
        let mut tmp = Box::new(self.temp_file(kind, dir, &prefix, Some(name))?);
        tmp.write(data)?;
        tmp.commit(name)
    }

    fn stage(&self, kind: Kind, temp: Temperature, _size_hint: usize) -> BResult<Staged> {
        let dir = self.root.join(kind.dir());
        let tmp = self.temp_file(kind, &dir, TEMP_PREFIX, None)?;
        Ok(Staged::with_sink(kind, temp, Box::new(tmp)))
    }

    fn get(&self, kind: Kind, name: &str) -> BResult<Vec<u8>> {
        check_name(kind, name)?;
        fs::read(self.path(kind, name)).map_err(|e| io_err(kind, name, e))
    }

    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> BResult<Vec<u8>> {
        check_name(kind, name)?;
        let read = || -> std::io::Result<Vec<u8>> {
            let mut f = File::open(self.path(kind, name))?;
            let size = f.metadata()?.len();
            if offset.checked_add(len).is_none_or(|end| end > size) {
                return Err(std::io::Error::new(
                    ErrorKind::UnexpectedEof,
                    format!("range {offset}+{len} beyond object size {size}"),
                ));
            }
            f.seek(SeekFrom::Start(offset))?;
            // Read into spare capacity: zeroing megabytes first would cost as much as the copy.
            let mut buf = Vec::with_capacity(len as usize);
            f.take(len).read_to_end(&mut buf)?;
            if buf.len() as u64 != len {
                return Err(ErrorKind::UnexpectedEof.into());
            }
            Ok(buf)
        };
        read().map_err(|e| io_err(kind, name, e))
    }

    fn stat(&self, kind: Kind, name: &str) -> BResult<Option<u64>> {
        check_name(kind, name)?;
        match fs::metadata(self.path(kind, name)) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(kind, name, e)),
        }
    }

    fn list(&self, kind: Kind) -> BResult<Vec<(String, u64)>> {
        if kind == Kind::Config {
            return Ok(self
                .stat(kind, "config")?
                .map(|s| ("config".to_string(), s))
                .into_iter()
                .collect());
        }
        let dir = self.root.join(kind.dir());
        let mut out = Vec::new();
        let mut dirs = vec![dir];
        while let Some(d) = dirs.pop() {
            let entries = match fs::read_dir(&d) {
                Ok(e) => e,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(kind, "", e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| io_err(kind, "", e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                let meta = entry.metadata().map_err(|e| io_err(kind, &name, e))?;
                if meta.is_dir() {
                    if kind.is_fanned_out() {
                        dirs.push(entry.path());
                    }
                } else {
                    out.push((name, meta.len()));
                }
            }
        }
        Ok(out)
    }

    fn delete(&self, kind: Kind, name: &str) -> BResult<()> {
        check_name(kind, name)?;
        match fs::remove_file(self.path(kind, name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(kind, name, e)),
        }
    }

    /// Only regular files named `.tmp…` in the folders objects are written to (the root for
    /// the config, each kind's folder, the pack fan-out folders); symlinks are never followed
    /// nor removed. A live writer's file grows, so its modification time stays recent; were
    /// one removed anyway (a writer stalled for longer than `older_than`), its commit fails
    /// to link the file and nothing committed is lost.
    fn remove_stale_temp(&self, older_than: Duration, dry_run: bool) -> BResult<StaleTemp> {
        let now = SystemTime::now();
        let mut found = StaleTemp::default();
        // (kind, folder, whether its fan-out folders are scanned too)
        let mut dirs: Vec<(Kind, PathBuf, bool)> = Kind::ALL
            .into_iter()
            .map(|k| match k {
                Kind::Config => (k, self.root.clone(), false),
                k => (k, self.root.join(k.dir()), k.is_fanned_out()),
            })
            .collect();
        while let Some((kind, dir, fanned)) = dirs.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err_at(kind, "", &dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| io_err_at(kind, "", &dir, e))?;
                // Neither looks through a symlink.
                let (file_type, meta) = match entry
                    .file_type()
                    .and_then(|t| entry.metadata().map(|m| (t, m)))
                {
                    Ok(tm) => tm,
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_err_at(kind, "", &entry.path(), e)),
                };
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if file_type.is_dir() {
                    if fanned && is_fan(&name) {
                        dirs.push((kind, entry.path(), false));
                    }
                    continue;
                }
                if !file_type.is_file() || !name.starts_with(TEMP_PREFIX) {
                    continue;
                }
                // A modification time in the future counts as fresh.
                let old = meta
                    .modified()
                    .ok()
                    .and_then(|m| now.duration_since(m).ok())
                    .is_some_and(|age| age > older_than);
                if !old {
                    continue;
                }
                if !dry_run {
                    match fs::remove_file(entry.path()) {
                        Ok(()) => {}
                        // Its writer committed or dropped it meanwhile.
                        Err(e) if e.kind() == ErrorKind::NotFound => continue,
                        Err(e) => return Err(io_err_at(kind, &name, &entry.path(), e)),
                    }
                }
                found.files += 1;
                found.bytes += meta.len();
            }
        }
        Ok(found)
    }
}
