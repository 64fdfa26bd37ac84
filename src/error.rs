//! The library's error umbrella: one enum per layer, gathered here so callers can match on kind.

use crate::backend::BackendError;
use crate::id::Id;

/// Errors from decoding persisted structures (format-spec §2 limits apply everywhere).
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{what}: truncated (need {need} bytes, have {have})")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    #[error("{what}: bad magic")]
    BadMagic { what: &'static str },
    #[error("{what}: unsupported format version {version}")]
    UnsupportedVersion { what: &'static str, version: u32 },
    #[error("{what}: {count} exceeds the limit of {limit}")]
    TooLarge {
        what: &'static str,
        count: u64,
        limit: u64,
    },
    #[error("{what}: malformed: {detail}")]
    Malformed { what: &'static str, detail: String },
}

impl FormatError {
    pub fn malformed(what: &'static str, detail: impl Into<String>) -> Self {
        FormatError::Malformed {
            what,
            detail: detail.into(),
        }
    }
}

/// Errors from the crypto layer. Deliberately vague: an attacker learns nothing from them.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error(
        "authentication failed: the data was modified, belongs elsewhere, or the key is wrong"
    )]
    Authentication,
    #[error("key derivation failed: {0}")]
    Kdf(String),
    #[error("wrong password: no key slot of this repository opens with it")]
    WrongPassword,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("no repository at {0} (run `init` first)")]
    NoRepository(String),
    #[error("a repository already exists at {0}")]
    RepositoryExists(String),
    #[error("object {kind}/{name} is damaged: {detail}")]
    Damaged {
        kind: &'static str,
        name: String,
        detail: String,
    },
    #[error("blob {0} is not in the index")]
    BlobMissing(Id),
    #[error("local index: {0}")]
    Index(String),
    #[error("snapshot {0:?} not found")]
    SnapshotNotFound(String),
    #[error("snapshot prefix {0:?} is ambiguous")]
    AmbiguousSnapshot(String),
    /// As `BackendError::Io`: the message carries the I/O error, so it is not a `source`.
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("interrupted")]
    Interrupted,
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            error: source,
        }
    }
    pub fn damaged(
        kind: &'static str,
        name: impl Into<String>,
        detail: impl std::fmt::Display,
    ) -> Self {
        Error::Damaged {
            kind,
            name: name.into(),
            detail: detail.to_string(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
