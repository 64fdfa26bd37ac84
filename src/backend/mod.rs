//! Storage backends: a small synchronous trait that moves opaque bytes by (kind, name).
//! Backends never see plaintext or the format; behaviour such as counting, retries or
//! fault injection is layered on as decorators (format-spec §1 gives the layout).

pub mod counting;
pub mod faulty;
pub mod local;
pub mod mem;
pub mod retry;
#[cfg(feature = "s3")]
pub mod s3;
pub mod staged;

use std::fmt;
use std::time::Duration;

pub use counting::{Counting, RequestStats};
pub use faulty::{FaultPlan, Faulty};
pub use retry::{Retry, RetryPolicy};
pub use staged::{Staged, StagedSink};

/// The kinds of object a repository stores. Each maps to a folder (prefix) of the layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Config,
    Key,
    Pack,
    Index,
    Snapshot,
    /// Session markers of running backups (format-spec §9).
    Session,
    /// Prune plans of condemned packs (format-spec §9).
    Plan,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Config,
        Kind::Key,
        Kind::Pack,
        Kind::Index,
        Kind::Snapshot,
        Kind::Session,
        Kind::Plan,
    ];

    /// The folder of this kind in the repository layout.
    pub fn dir(self) -> &'static str {
        match self {
            Kind::Config => "",
            Kind::Key => "keys",
            Kind::Pack => "data",
            Kind::Index => "index",
            Kind::Snapshot => "snapshots",
            Kind::Session => "sessions",
            Kind::Plan => "plans",
        }
    }

    /// Packs are spread over 256 sub-folders by their first two hex digits.
    pub fn is_fanned_out(self) -> bool {
        self == Kind::Pack
    }

    /// The object path relative to the repository root, e.g. `data/ab/ab12…`.
    pub fn path(self, name: &str) -> String {
        match self {
            Kind::Config => "config".to_string(),
            k if k.is_fanned_out() => {
                let fan = name.get(..2).unwrap_or("00");
                format!("{}/{}/{}", k.dir(), fan, name)
            }
            k => format!("{}/{}", k.dir(), name),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Config => "config",
            Kind::Key => "key",
            Kind::Pack => "pack",
            Kind::Index => "index",
            Kind::Snapshot => "snapshot",
            Kind::Session => "session",
            Kind::Plan => "plan",
        })
    }
}

/// A hint on how an object will be used, so a backend can choose a storage class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Temperature {
    /// Read often (metadata, tree packs): always the standard class.
    #[default]
    Hot,
    /// Read rarely (data packs): may go to a cheaper class.
    Cold,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{kind}/{name} not found")]
    NotFound { kind: Kind, name: String },
    #[error("{kind}/{name} already exists")]
    AlreadyExists { kind: Kind, name: String },
    /// The message carries the I/O error, which is therefore not also a `source` (printed
    /// error chains would say it twice).
    #[error("{kind}/{name}: {error}")]
    Io {
        kind: Kind,
        name: String,
        error: std::io::Error,
    },
    #[error("{kind}/{name}: {message}")]
    Remote {
        kind: Kind,
        name: String,
        message: String,
        transient: bool,
    },
    #[error("backend: {0}")]
    Other(String),
}

impl BackendError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, BackendError::NotFound { .. })
    }
    pub fn is_already_exists(&self) -> bool {
        matches!(self, BackendError::AlreadyExists { .. })
    }
    /// Whether a retry may succeed (throttling, timeouts, dropped connections).
    pub fn is_transient(&self) -> bool {
        match self {
            BackendError::Remote { transient, .. } => *transient,
            BackendError::Io { error, .. } => matches!(
                error.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::WouldBlock
            ),
            _ => false,
        }
    }
}

pub type BResult<T> = std::result::Result<T, BackendError>;

/// Object names are hex ids or short words; anything else could escape a kind's folder or
/// prefix. Every backend checks names with this before touching storage.
pub(crate) fn check_name(kind: Kind, name: &str) -> BResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(BackendError::Other(format!(
            "invalid {kind} object name {name:?}"
        )))
    }
}

/// Temporary files found by [`Backend::remove_stale_temp`]: removed, or on a dry run, to remove.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StaleTemp {
    pub files: u64,
    pub bytes: u64,
}

/// Object storage as the repository sees it. Every object is written once: `put` of an
/// existing name fails with `AlreadyExists` (content-addressed callers treat that as success).
pub trait Backend: Send + Sync {
    /// A human-readable location, e.g. `/srv/repo` or `s3://bucket/prefix`.
    fn location(&self) -> String;
    /// Prepare empty storage (create folders or the bucket). Idempotent.
    fn create(&self) -> BResult<()>;
    /// Store an object; never overwrites.
    fn put(&self, kind: Kind, name: &str, data: &[u8], temp: Temperature) -> BResult<()>;
    /// Start an object whose bytes are appended as they come and whose name is given at
    /// `commit` (packs are named by the hash of their bytes). `size_hint` is the expected size.
    /// The default buffers in memory and stores with `put` at `commit`, so decorators that
    /// keep it (retries, fault injection) act on the whole object as they do for `put`.
    fn stage(&self, kind: Kind, temp: Temperature, size_hint: usize) -> BResult<Staged> {
        Ok(Staged::in_memory(kind, temp, size_hint))
    }
    /// Store a staged object under `name`, with the semantics of `put` (never overwrites:
    /// `AlreadyExists`). Commit through the backend that staged it.
    fn commit(&self, staged: Staged, name: &str) -> BResult<()> {
        let (kind, temp) = (staged.kind(), staged.temperature());
        match staged.body {
            staged::StagedBody::Memory(bytes) => self.put(kind, name, &bytes, temp),
            staged::StagedBody::Sink(sink) => sink.commit(name),
        }
    }
    /// Read a whole object.
    fn get(&self, kind: Kind, name: &str) -> BResult<Vec<u8>>;
    /// Read `len` bytes at `offset`; a short object is an error.
    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> BResult<Vec<u8>>;
    /// The size of an object, or None when it does not exist.
    fn stat(&self, kind: Kind, name: &str) -> BResult<Option<u64>>;
    /// All objects of a kind with their sizes, in no particular order.
    fn list(&self, kind: Kind) -> BResult<Vec<(String, u64)>>;
    /// Delete an object; deleting a missing object is not an error.
    fn delete(&self, kind: Kind, name: &str) -> BResult<()>;
    /// Delete many objects (S3 batches these); the default deletes one by one.
    fn delete_many(&self, kind: Kind, names: &[String]) -> BResult<()> {
        names.iter().try_for_each(|n| self.delete(kind, n))
    }
    /// Requests actually sent over the network (retries and multipart parts included), for
    /// backends where that differs from the calls made; None elsewhere.
    fn wire_stats(&self) -> Option<RequestStats> {
        None
    }
    /// Whether a ranged read costs about what it returns (a local disk). Readers then read in
    /// small pieces to bound their memory; where every request is billed (S3) they read large
    /// ranges instead.
    fn cheap_ranges(&self) -> bool {
        false
    }
    /// Remove the temporary files of objects whose writer died mid-write (a killed backup) once
    /// they are older than `older_than`; with `dry_run` only count them. The default has none:
    /// an S3 object appears whole or not at all.
    fn remove_stale_temp(&self, older_than: Duration, dry_run: bool) -> BResult<StaleTemp> {
        let _ = (older_than, dry_run);
        Ok(StaleTemp::default())
    }
}

impl<B: Backend + ?Sized> Backend for std::sync::Arc<B> {
    fn location(&self) -> String {
        (**self).location()
    }
    fn create(&self) -> BResult<()> {
        (**self).create()
    }
    fn put(&self, kind: Kind, name: &str, data: &[u8], temp: Temperature) -> BResult<()> {
        (**self).put(kind, name, data, temp)
    }
    fn stage(&self, kind: Kind, temp: Temperature, size_hint: usize) -> BResult<Staged> {
        (**self).stage(kind, temp, size_hint)
    }
    fn commit(&self, staged: Staged, name: &str) -> BResult<()> {
        (**self).commit(staged, name)
    }
    fn get(&self, kind: Kind, name: &str) -> BResult<Vec<u8>> {
        (**self).get(kind, name)
    }
    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> BResult<Vec<u8>> {
        (**self).get_range(kind, name, offset, len)
    }
    fn stat(&self, kind: Kind, name: &str) -> BResult<Option<u64>> {
        (**self).stat(kind, name)
    }
    fn list(&self, kind: Kind) -> BResult<Vec<(String, u64)>> {
        (**self).list(kind)
    }
    fn delete(&self, kind: Kind, name: &str) -> BResult<()> {
        (**self).delete(kind, name)
    }
    fn delete_many(&self, kind: Kind, names: &[String]) -> BResult<()> {
        (**self).delete_many(kind, names)
    }
    fn wire_stats(&self) -> Option<RequestStats> {
        (**self).wire_stats()
    }
    fn cheap_ranges(&self) -> bool {
        (**self).cheap_ranges()
    }
    fn remove_stale_temp(&self, older_than: Duration, dry_run: bool) -> BResult<StaleTemp> {
        (**self).remove_stale_temp(older_than, dry_run)
    }
}
