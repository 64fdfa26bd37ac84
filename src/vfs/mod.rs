//! A read-only filesystem view of a repository's snapshots, independent of FUSE: inode numbers,
//! lookup, attributes, listings, symlinks, extended attributes and file reads through a cache of
//! decrypted chunks with read-ahead.
//!
//! Layout:
//! - `/snapshots/<YYYY-MM-DDTHH:MM:SS>_<short id>/…`: each snapshot's tree (local time of this
//!   machine, as `snapshots` prints it), with the backed-up absolute paths below it;
//! - `/latest`: symlink to the newest snapshot folder;
//! - `/hosts/<host>/<snapshot name>` and `/tags/<tag>/<snapshot name>`: symlinks to
//!   `../../snapshots/<snapshot name>`.
//!
//! The snapshot list is re-read (with the index) when a top folder is listed or searched, at most
//! once per `VfsOptions::refresh_interval`. Entries whose names are unsafe are hidden. Inode
//! numbers are allocated as entries are first seen and stay valid for the life of the view.

mod cache;
mod read;
mod table;
mod top;

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::error::Error;
use crate::format::tree::{NodeKind, Timestamp};
use crate::repo::Repository;

pub use cache::CacheStats;
use read::Prefetcher;
use table::Table;
use top::TopState;

/// The root folder's inode number.
pub const ROOT_INO: u64 = 1;

#[derive(Clone, Debug)]
pub struct VfsOptions {
    /// Bound of the decrypted chunk cache, bytes.
    pub cache_bytes: u64,
    /// How far ahead of a sequential reader chunks are fetched, bytes (0 = no read-ahead).
    pub readahead_bytes: u64,
    /// Threads fetching read-ahead chunks.
    pub readahead_threads: usize,
    /// Minimum time between two re-reads of the snapshot list.
    pub refresh_interval: Duration,
}

impl Default for VfsOptions {
    fn default() -> Self {
        VfsOptions {
            cache_bytes: 64 << 20,
            readahead_bytes: 8 << 20,
            readahead_threads: 2,
            refresh_interval: Duration::from_secs(3),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VfsError {
    #[error("no such file or folder")]
    NotFound,
    #[error("not a folder")]
    NotADirectory,
    #[error("is a folder")]
    IsADirectory,
    #[error("not a regular file or not a symbolic link")]
    InvalidKind,
    #[error("no such extended attribute")]
    NoAttribute,
    #[error("unknown inode {0}")]
    UnknownInode(u64),
    #[error(transparent)]
    Repo(#[from] Error),
}

impl VfsError {
    /// The errno a filesystem reports for this error.
    pub fn errno(&self) -> i32 {
        match self {
            VfsError::NotFound => libc::ENOENT,
            VfsError::NotADirectory => libc::ENOTDIR,
            VfsError::IsADirectory => libc::EISDIR,
            VfsError::InvalidKind => libc::EINVAL,
            VfsError::NoAttribute => libc::ENODATA,
            VfsError::UnknownInode(_) => libc::ESTALE,
            VfsError::Repo(_) => libc::EIO,
        }
    }
}

pub type VfsResult<T> = std::result::Result<T, VfsError>;

/// What stat(2) shows for an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub kind: NodeKind,
    /// Permission, set-id and sticky bits (mode & 0o7777).
    pub perm: u32,
    pub size: u64,
    /// 512-byte blocks.
    pub blocks: u64,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
}

impl Attr {
    /// st_mode: the file type bits with the permission bits.
    pub fn mode(&self) -> u32 {
        let kind = match self.kind {
            NodeKind::File => 0o100000,
            NodeKind::Dir => 0o040000,
            NodeKind::Symlink => 0o120000,
            NodeKind::CharDevice => 0o020000,
            NodeKind::BlockDevice => 0o060000,
            NodeKind::Fifo => 0o010000,
            NodeKind::Socket => 0o140000,
        };
        kind | self.perm
    }
}

/// One folder entry (without `.` and `..`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub ino: u64,
    pub name: Vec<u8>,
    pub kind: NodeKind,
}

/// The view. All methods take `&self` and may be called from several threads.
pub struct Vfs {
    repo: Arc<Repository>,
    opts: VfsOptions,
    table: RwLock<Table>,
    top: Mutex<TopState>,
    prefetch: Prefetcher,
}

impl Vfs {
    /// A view of `repo`; reads the snapshot list once.
    pub fn new(repo: Arc<Repository>, opts: VfsOptions) -> VfsResult<Vfs> {
        let prefetch = Prefetcher::start(repo.clone(), &opts)?;
        let vfs = Vfs {
            table: RwLock::new(Table::new(top::owner(), now())),
            top: Mutex::new(TopState::default()),
            repo,
            opts,
            prefetch,
        };
        vfs.refresh()?;
        Ok(vfs)
    }

    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    /// The entry `name` in folder `parent`.
    pub fn lookup(&self, parent: u64, name: &[u8]) -> VfsResult<Attr> {
        let list = self.readdir(parent)?;
        let i = list
            .binary_search_by(|e| e.name.as_slice().cmp(name))
            .map_err(|_| VfsError::NotFound)?;
        let ino = list.get(i).map(|e| e.ino).ok_or(VfsError::NotFound)?;
        self.getattr(ino)
    }

    /// Follow a path from the root (no symlinks followed); for tests and tools.
    pub fn resolve(&self, path: &Path) -> VfsResult<Attr> {
        let mut attr = self.getattr(ROOT_INO)?;
        for comp in path.components() {
            if let std::path::Component::Normal(name) = comp {
                attr = self.lookup(attr.ino, name.as_encoded_bytes())?;
            }
        }
        Ok(attr)
    }

    pub fn getattr(&self, ino: u64) -> VfsResult<Attr> {
        self.read_table().attr(ino)
    }

    /// The folder that holds `ino` (the root for the root).
    pub fn parent(&self, ino: u64) -> VfsResult<u64> {
        self.read_table().parent(ino)
    }

    /// All entries of a folder, sorted by name.
    pub fn readdir(&self, ino: u64) -> VfsResult<Arc<Vec<DirEntry>>> {
        if self.read_table().is_top(ino)? {
            self.maybe_refresh()?;
        }
        self.children(ino)
    }

    pub fn readlink(&self, ino: u64) -> VfsResult<Vec<u8>> {
        self.read_table().link_target(ino)
    }

    /// Names of the extended attributes of an entry.
    pub fn listxattr(&self, ino: u64) -> VfsResult<Vec<Vec<u8>>> {
        Ok(self
            .read_table()
            .xattrs(ino)?
            .iter()
            .map(|x| x.name.clone())
            .collect())
    }

    pub fn getxattr(&self, ino: u64, name: &[u8]) -> VfsResult<Vec<u8>> {
        self.read_table()
            .xattrs(ino)?
            .iter()
            .find(|x| x.name == name)
            .map(|x| x.value.clone())
            .ok_or(VfsError::NoAttribute)
    }

    pub fn cache_stats(&self) -> CacheStats {
        self.prefetch.cache().stats()
    }

    fn read_table(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_table(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(|e| e.into_inner())
    }
}

fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: d.subsec_nanos(),
    }
}
