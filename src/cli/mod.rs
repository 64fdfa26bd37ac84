//! The command-line edge: arguments, passwords, backend selection, output and exit codes.

pub mod args;
mod command_source;
mod commands;
#[cfg(all(feature = "fuse", target_os = "linux"))]
mod mount;
mod progress;
mod prune_args;
mod prune_cmds;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use zeroize::Zeroizing;

use backup_to_s3::backend::local::LocalBackend;
use backup_to_s3::error::{CryptoError, Error};
use backup_to_s3::repo::{DynBackend, OpenOptions, Repository};

pub use args::Cli;

/// Exit codes (README "Exit codes").
pub mod exit {
    pub const OK: i32 = 0;
    pub const ERROR: i32 = 1;
    pub const PARTIAL: i32 = 3;
    pub const NO_REPOSITORY: i32 = 10;
    pub const WRONG_PASSWORD: i32 = 12;
    pub const INTERRUPTED: i32 = 130;
}

/// The exit code for an error that ended a command.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<Error>() {
            return match e {
                Error::NoRepository(_) => exit::NO_REPOSITORY,
                Error::Crypto(CryptoError::WrongPassword) => exit::WRONG_PASSWORD,
                Error::Interrupted => exit::INTERRUPTED,
                _ => exit::ERROR,
            };
        }
    }
    exit::ERROR
}

pub fn run(cli: Cli) -> Result<i32> {
    commands::dispatch(cli)
}

/// The default repository location: `<data dir>/backup-to-s3/repository`.
pub fn default_repo() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("backup-to-s3")
        .join("repository")
}

pub(crate) fn location(g: &args::Global) -> String {
    g.repo
        .clone()
        .unwrap_or_else(|| default_repo().display().to_string())
}

/// Parallel transfers: the --connections the user gave, or 4 for S3 (latency-bound), or
/// `local` for a local repository.
fn connections_or(g: &args::Global, local: usize) -> usize {
    match g.connections {
        Some(n) => n.max(1),
        None if location(g).starts_with("s3://") => 4,
        None => local,
    }
}

/// Restore, check and the S3 client: locally one worker per core (the work is CPU-bound there,
/// and each worker holds a pack).
pub(crate) fn connections(g: &args::Global) -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8));
    connections_or(g, cores)
}

/// Pack uploads of a backup: on S3 each holds a finished pack in memory; a local repository
/// streams packs to disk and its uploaders only fsync and link them, and a local disk gains
/// nothing from more than two writers.
pub(crate) fn upload_connections(g: &args::Global) -> usize {
    connections_or(g, 2)
}

pub(crate) fn open_backend(g: &args::Global) -> Result<DynBackend> {
    let loc = location(g);
    if let Some(rest) = loc.strip_prefix("s3://") {
        return s3_backend(g, rest);
    }
    let path = loc.strip_prefix("local:").unwrap_or(&loc);
    Ok(Arc::new(LocalBackend::new(path)))
}

#[cfg(not(feature = "s3"))]
fn s3_backend(_g: &args::Global, _rest: &str) -> Result<DynBackend> {
    bail!("this build has no S3 support (built without the `s3` feature)")
}

#[cfg(feature = "s3")]
fn s3_backend(g: &args::Global, rest: &str) -> Result<DynBackend> {
    crate::cli::s3::open(g, rest)
}

#[cfg(feature = "s3")]
mod s3 {
    use super::*;
    use backup_to_s3::backend::retry::Retry;
    use backup_to_s3::backend::s3::{S3Backend, S3Options};

    /// `s3://BUCKET/PREFIX` with the global S3 flags; transient faults are retried.
    pub fn open(g: &args::Global, rest: &str) -> Result<DynBackend> {
        let mut opts = S3Options::from_url(&format!("s3://{rest}"))?;
        if let Some(e) = &g.s3_endpoint {
            opts.endpoint = Some(e.clone());
        }
        if let Some(r) = &g.s3_region {
            opts.region = Some(r.clone());
        }
        opts.path_style |= g.s3_path_style;
        opts.storage_class_cold = g.pack_storage_class.clone();
        opts.connections = connections(g);
        opts.checksum_when_required |= g.s3_checksum_when_required;
        let backend = S3Backend::new(opts).with_context(|| format!("opening s3://{rest}"))?;
        Ok(Arc::new(Retry::new(backend)))
    }
}

/// The password: environment, file, command, or a prompt on the terminal.
pub(crate) fn password(g: &args::Global) -> Result<Zeroizing<String>> {
    if let Ok(p) = std::env::var("BACKUP_TO_S3_PASSWORD") {
        return Ok(Zeroizing::new(p));
    }
    if let Some(f) = &g.password_file {
        let text = Zeroizing::new(
            std::fs::read_to_string(f)
                .with_context(|| format!("reading password file {}", f.display()))?,
        );
        return Ok(Zeroizing::new(
            text.lines().next().unwrap_or("").to_string(),
        ));
    }
    if let Some(cmd) = &g.password_command {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .output()
            .context("running --password-command")?;
        if !out.status.success() {
            bail!("--password-command failed with {}", out.status);
        }
        let text = Zeroizing::new(String::from_utf8_lossy(&out.stdout).into_owned());
        return Ok(Zeroizing::new(
            text.lines().next().unwrap_or("").to_string(),
        ));
    }
    if !std::io::stdin().is_terminal() {
        bail!("no password: set BACKUP_TO_S3_PASSWORD, --password-file or --password-command");
    }
    Ok(Zeroizing::new(
        rpassword::prompt_password("password: ").context("reading the password")?,
    ))
}

/// A new password (init, key add/passwd): from a file, BACKUP_TO_S3_NEW_PASSWORD, or asked twice.
pub(crate) fn new_password(
    file: Option<&PathBuf>,
    fallback: Option<&args::Global>,
) -> Result<Zeroizing<String>> {
    if let Some(f) = file {
        let text = Zeroizing::new(
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
        );
        return Ok(Zeroizing::new(
            text.lines().next().unwrap_or("").to_string(),
        ));
    }
    if let Ok(p) = std::env::var("BACKUP_TO_S3_NEW_PASSWORD") {
        return Ok(Zeroizing::new(p));
    }
    if let Some(g) = fallback {
        if std::env::var("BACKUP_TO_S3_PASSWORD").is_ok()
            || g.password_file.is_some()
            || g.password_command.is_some()
        {
            return password(g);
        }
    }
    if !std::io::stdin().is_terminal() {
        bail!("no new password: set BACKUP_TO_S3_NEW_PASSWORD or pass a password file");
    }
    let a = Zeroizing::new(rpassword::prompt_password("new password: ")?);
    let b = Zeroizing::new(rpassword::prompt_password("repeat new password: ")?);
    if a != b {
        bail!("the passwords do not match");
    }
    if a.is_empty() {
        bail!("an empty password is not allowed");
    }
    Ok(a)
}

pub(crate) fn open_repo(g: &args::Global) -> Result<Repository> {
    let backend = open_backend(g)?;
    let pw = password(g)?;
    let repo = Repository::open(
        backend,
        pw.as_bytes(),
        &OpenOptions {
            cache_dir: g.cache_dir.clone(),
        },
    )?;
    Ok(repo)
}
