//! The repository: opening and initialising it, keys, reading blobs, trees and snapshots
//! (format-spec §1–§8). Writing goes through `writer::PackWriter`; the local index is synced
//! with the repository's index objects by `index_sync`.

pub mod cache;
mod index_sync;
pub mod keys;
pub(crate) mod pieces;
pub mod session;
pub mod writer;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::backend::{Backend, BackendError, Counting, Kind, RequestStats, Temperature};
use crate::chunker::Chunker;
use crate::codec::Codec;
use crate::crypto::MasterKey;
use crate::error::{CryptoError, Error, Result};
use crate::format::config::{ChunkerParams, Config};
use crate::format::keyfile::KdfParams;
use crate::format::snapshot::Snapshot;
use crate::format::tree::Tree;
use crate::id::{BlobKind, Id};
use crate::index::{BlobLocation, LocalIndex};
use cache::ObjectCache;

pub type DynBackend = Arc<dyn Backend>;

#[derive(Clone, Debug)]
pub struct InitOptions {
    pub kdf: KdfParams,
    pub chunker: ChunkerParams,
    pub compression_level: i32,
    pub pack_target_size: u32,
    /// Cache root to remember the first key slot in (saves a LIST on the next open).
    pub cache_dir: Option<PathBuf>,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            kdf: KdfParams::default(),
            chunker: ChunkerParams::default(),
            compression_level: 3,
            pack_target_size: 16 << 20,
            cache_dir: None,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// Folder for the local index cache; the user's cache folder when None.
    pub cache_dir: Option<PathBuf>,
}

pub struct Repository {
    backend: Arc<Counting<DynBackend>>,
    config: Config,
    master: MasterKey,
    codec: Codec,
    chunker: Chunker,
    index: Arc<LocalIndex>,
    cache_dir: PathBuf,
    cache: ObjectCache,
    /// A backup session opened with the repository (`open_for_backup`).
    session: std::sync::Mutex<Option<session::SessionGuard>>,
}

/// The user's cache folder for backup-to-s3.
pub fn default_cache_root() -> PathBuf {
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("backup-to-s3")
}

/// Small hints kept per repository location (which key slot opened it last).
fn location_hints(cache_root: &Path, backend: &dyn Backend) -> ObjectCache {
    let location_id = Id::of_object(backend.location().as_bytes()).to_hex();
    ObjectCache::new(cache_root.join("locations").join(location_id))
}

/// This host's name and the current user's name.
pub fn whoami() -> (String, String) {
    let host = hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default();
    (host, user)
}

impl Repository {
    /// Create a new repository: storage, a first key slot, and the config (written last, so a
    /// half-initialised repository is not mistaken for a usable one).
    pub fn init(backend: DynBackend, password: &[u8], opts: &InitOptions) -> Result<Id> {
        let config = Config::new(
            opts.chunker.clone(),
            opts.compression_level,
            opts.pack_target_size,
        );
        config.validate()?;
        if backend.stat(Kind::Config, "config")?.is_some() {
            return Err(Error::RepositoryExists(backend.location()));
        }
        backend.create()?;
        let master = MasterKey::generate();
        let key = keys::write_key(&backend, &master, password, opts.kdf)?;
        let cache_root = opts.cache_dir.clone().unwrap_or_else(default_cache_root);
        location_hints(&cache_root, &*backend).write_hint("key", &key.to_hex());
        let bytes = config.encode(&master.subkeys().meta);
        match backend.put(Kind::Config, "config", &bytes, Temperature::Hot) {
            Err(e) if e.is_already_exists() => Err(Error::RepositoryExists(backend.location())),
            other => Ok(other?),
        }?;
        Ok(config.repo_id)
    }

    /// Open a repository with a password; syncs the local index with the repository.
    pub fn open(backend: DynBackend, password: &[u8], opts: &OpenOptions) -> Result<Repository> {
        let repo = Self::open_unsynced(backend, password, opts)?;
        repo.sync_index()?;
        Ok(repo)
    }

    /// Open for a backup: announce the backup session *before* the index is read, so the one
    /// LIST of the index is also the one that prune safety needs (gc.md §2). `backup` takes the
    /// session over with `take_session`.
    pub fn open_for_backup(
        backend: DynBackend,
        password: &[u8],
        opts: &OpenOptions,
    ) -> Result<Repository> {
        let repo = Self::open_unsynced(backend, password, opts)?;
        let session = repo.start_session()?;
        if let Ok(mut slot) = repo.session.lock() {
            *slot = Some(session);
        }
        repo.sync_index()?;
        Ok(repo)
    }

    /// The session started by `open_for_backup`, if any.
    pub fn take_session(&self) -> Option<session::SessionGuard> {
        self.session.lock().ok().and_then(|mut s| s.take())
    }

    fn open_unsynced(
        backend: DynBackend,
        password: &[u8],
        opts: &OpenOptions,
    ) -> Result<Repository> {
        let backend = Arc::new(Counting::new(backend));
        let config_bytes = match backend.get(Kind::Config, "config") {
            Err(BackendError::NotFound { .. }) => {
                return Err(Error::NoRepository(backend.location()))
            }
            other => other?,
        };
        Config::peek_version(&config_bytes)?;
        let cache_root = opts.cache_dir.clone().unwrap_or_else(default_cache_root);
        // Which key slot opened this location last time: tried first, saving a LIST.
        let hints = location_hints(&cache_root, &*backend);
        let hint = hints.read_hint("key");
        let (master, key_name) = keys::unlock(&*backend, password, hint.as_deref())?;
        hints.write_hint("key", &key_name);
        let subkeys = master.subkeys();
        let config = Config::decode(&config_bytes, &subkeys.meta)?;
        let cache_dir = cache_root.join(config.repo_id.to_hex());
        let index = Arc::new(LocalIndex::open(&cache_dir.join("index.redb"))?);
        let repo = Repository {
            codec: Codec::new(subkeys.clone(), config.compression_level),
            chunker: Chunker::new(config.chunker.clone(), subkeys.chunker_seed),
            backend,
            config,
            master,
            index,
            cache: ObjectCache::new(cache_dir.join("objects")),
            cache_dir,
            session: std::sync::Mutex::new(None),
        };
        Ok(repo)
    }

    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }
    pub fn config(&self) -> &Config {
        &self.config
    }
    pub fn codec(&self) -> &Codec {
        &self.codec
    }
    pub fn chunker(&self) -> &Chunker {
        &self.chunker
    }
    pub fn index(&self) -> &LocalIndex {
        &self.index
    }
    pub(crate) fn shared_parts(&self) -> (Arc<Counting<DynBackend>>, Arc<LocalIndex>, ObjectCache) {
        (self.backend.clone(), self.index.clone(), self.cache.clone())
    }
    pub fn cache(&self) -> &ObjectCache {
        &self.cache
    }
    pub fn master_key(&self) -> &MasterKey {
        &self.master
    }
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }
    /// Requests and bytes moved since the repository was opened.
    /// On S3 these are the HTTP requests really sent (retries and multipart parts included).
    pub fn request_stats(&self) -> RequestStats {
        self.backend
            .wire_stats()
            .unwrap_or_else(|| self.backend.stats())
    }

    /// Where a blob of any kind is stored (data first); prefer `lookup_kind`.
    pub fn lookup(&self, id: &Id) -> Result<Option<BlobLocation>> {
        self.index.lookup(id)
    }

    /// Where a blob of this kind is stored (a data chunk and a tree may share an id).
    pub fn lookup_kind(&self, kind: BlobKind, id: &Id) -> Result<Option<BlobLocation>> {
        self.index.lookup_kind(kind, id)
    }

    /// Read, decrypt and verify one blob.
    /// Tree blobs are read from a local copy of their pack (fetched whole on first use).
    pub fn read_blob(&self, kind: BlobKind, id: &Id) -> Result<Vec<u8>> {
        let loc = self.lookup_kind(kind, id)?.ok_or(Error::BlobMissing(*id))?;
        let name = loc.pack.to_hex();
        let (offset, len) = (u64::from(loc.offset), u64::from(loc.length));
        if kind == BlobKind::Tree {
            if let Some(sealed) = self.cached_tree_blob(&name, offset, len) {
                match self.codec.open(kind, id, &sealed) {
                    Ok(plain) => return Ok(plain),
                    // A damaged local copy: forget it and read the repository.
                    Err(_) => self.cache.remove(Kind::Pack, &name),
                }
            }
        }
        let sealed = self.backend.get_range(Kind::Pack, &name, offset, len)?;
        self.codec.open(kind, id, &sealed).map_err(|e| match e {
            Error::Damaged { detail, .. } => {
                Error::damaged("pack", name, format!("blob {id}: {detail}"))
            }
            other => other,
        })
    }

    fn cached_tree_blob(&self, pack: &str, offset: u64, len: u64) -> Option<Vec<u8>> {
        if !self.cache.contains(Kind::Pack, pack) {
            let bytes = self.backend.get(Kind::Pack, pack).ok()?;
            if Id::of_object(&bytes).to_hex() != pack {
                return None;
            }
            self.cache.put(Kind::Pack, pack, &bytes);
        }
        self.cache.get_range(Kind::Pack, pack, offset, len)
    }

    pub fn load_tree(&self, id: &Id) -> Result<Tree> {
        let plain = self.read_blob(BlobKind::Tree, id)?;
        Tree::decode(&plain).map_err(|e| Error::damaged("tree", id.to_hex(), e))
    }

    pub fn load_snapshot(&self, id: &Id) -> Result<Snapshot> {
        self.load_snapshot_from(id, true)
    }

    /// `check` reads the repository itself, never a local copy.
    pub fn load_snapshot_uncached(&self, id: &Id) -> Result<Snapshot> {
        self.load_snapshot_from(id, false)
    }

    fn load_snapshot_from(&self, id: &Id, use_cache: bool) -> Result<Snapshot> {
        let name = id.to_hex();
        let cached = if use_cache {
            self.cache.get(Kind::Snapshot, &name)
        } else {
            None
        };
        let bytes = match cached.filter(|b| Id::of_object(b) == *id) {
            Some(b) => b,
            None => {
                let b = self.backend.get(Kind::Snapshot, &name)?;
                if Id::of_object(&b) == *id {
                    self.cache.put(Kind::Snapshot, &name, &b);
                }
                b
            }
        };
        if Id::of_object(&bytes) != *id {
            return Err(Error::damaged(
                "snapshot",
                id.to_hex(),
                "content does not match its name",
            ));
        }
        Snapshot::decode(&bytes, &self.codec.keys().meta).map_err(|e| match e {
            Error::Crypto(CryptoError::Authentication) => {
                Error::damaged("snapshot", id.to_hex(), "authentication failed")
            }
            other => other,
        })
    }

    /// All snapshots, oldest first. Unreadable ones are reported and skipped.
    pub fn list_snapshots(&self) -> Result<Vec<(Id, Snapshot)>> {
        let mut out = Vec::new();
        let listed = self.backend.list(Kind::Snapshot)?;
        // Forget local copies of snapshots that are gone (forgotten elsewhere).
        let names: HashSet<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
        for cached in self.cache.names(Kind::Snapshot) {
            if !names.contains(cached.as_str()) {
                self.cache.remove(Kind::Snapshot, &cached);
            }
        }
        for (name, _) in &listed {
            let Ok(id) = name.parse::<Id>() else { continue };
            match self.load_snapshot(&id) {
                Ok(s) => out.push((id, s)),
                Err(e) => tracing::warn!("skipping snapshot {name}: {e}"),
            }
        }
        out.sort_by_key(|(id, s)| (s.time_ns, *id));
        Ok(out)
    }

    /// Store a snapshot manifest (the last write of a backup); returns its id.
    pub fn save_snapshot(&self, snap: &Snapshot) -> Result<Id> {
        let bytes = snap.encode(&self.codec.keys().meta);
        let id = Id::of_object(&bytes);
        self.backend
            .put(Kind::Snapshot, &id.to_hex(), &bytes, Temperature::Hot)?;
        self.cache.put(Kind::Snapshot, &id.to_hex(), &bytes);
        Ok(id)
    }

    /// Resolve `latest`, a full id or a unique prefix.
    pub fn find_snapshot(&self, spec: &str) -> Result<(Id, Snapshot)> {
        let all = self.list_snapshots()?;
        if spec == "latest" {
            return all
                .into_iter()
                .last()
                .ok_or_else(|| Error::SnapshotNotFound(spec.to_string()));
        }
        let mut matches = all
            .into_iter()
            .filter(|(id, _)| id.to_hex().starts_with(&spec.to_ascii_lowercase()));
        match (matches.next(), matches.next()) {
            (Some(one), None) => Ok(one),
            (Some(_), Some(_)) => Err(Error::AmbiguousSnapshot(spec.to_string())),
            _ => Err(Error::SnapshotNotFound(spec.to_string())),
        }
    }

    /// A pack writer for new blobs (see `writer`).
    pub fn writer(&self, opts: writer::WriterOptions) -> writer::PackWriter<'_> {
        writer::PackWriter::new(self, opts)
    }
}
