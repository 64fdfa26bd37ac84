//! The single integration-test binary (one link on 2 cores); each area is a module.

mod common;

mod cli_basics;
mod crash;
mod damage;
// Database dumps through a pipe, against a real PostgreSQL server.
mod database;
mod engine;
mod fixture;
mod hostile;
mod prune;
mod restore_batches;
mod restore_one_chunk;
mod retention;

// Snapshot filesystem view and mount (issue 5).
#[cfg(all(feature = "fuse", target_os = "linux"))]
mod mount;
mod vfs;

// Backends (S3 backend work, issue 3).
mod backend_conformance;
#[cfg(feature = "s3")]
mod s3_backend;
#[cfg(feature = "s3")]
mod s3_cli;
#[cfg(feature = "s3")]
mod s3_faults;
#[cfg(feature = "s3")]
mod s3_server;

// Format: spec vectors and property tests.
mod format_props;
mod vectors;
// Reliability and security (issue 7).
mod concurrent;
mod faults;
mod hostile_repo;
mod local_faults;
mod relutil;
mod security;
mod torture;
