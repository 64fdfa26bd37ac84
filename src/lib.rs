//! backup-to-s3: a content-addressed, deduplicating, encrypted snapshot store.
//!
//! Layers (a module imports only lower ones): `error`/`id`/`progress` → `format`, `crypto`,
//! `chunker` → `codec`, `backend`, `index` → `repo` → `ops`, `vfs`. The binary adds the CLI.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod backend;
pub mod chunker;
pub mod codec;
pub mod crypto;
pub mod error;
pub mod format;
pub mod id;
pub mod index;
pub mod ops;
pub mod progress;
pub mod repo;
pub mod vfs;

pub use error::{Error, Result};
pub use id::{BlobKind, Id};
