//! Backup: walk paths, chunk changed files, store new blobs, write trees, then the snapshot last
//! (format-spec §9.1). Reading, hashing and deduplication run on the walking thread; compression
//! and sealing run on a pool of workers fed by a bounded channel, so memory is bounded.

mod meta;
mod walk;

use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::backend::{Kind, RequestStats};
use crate::error::Result;
use crate::format::snapshot::{Snapshot, SnapshotSummary};
use crate::id::Id;
use crate::ops::filter::PatternSet;
use crate::progress::Progress;
use crate::repo::writer::WriterOptions;
use crate::repo::Repository;

pub use meta::unchanged;

#[derive(Clone, Debug, Default)]
pub struct BackupOptions {
    pub excludes: Vec<String>,
    pub exclude_if_present: Vec<String>,
    pub one_file_system: bool,
    pub tags: Vec<String>,
    /// Hostname recorded in the snapshot (default: this host).
    pub host: Option<String>,
    pub dry_run: bool,
    /// Re-read every file instead of trusting the parent snapshot's metadata.
    pub force: bool,
    /// Use this snapshot as parent instead of the latest one of the same host and paths.
    pub parent: Option<Id>,
    /// Read the content from standard input and store it under this file name.
    pub stdin_filename: Option<String>,
    pub connections: usize,
    /// Seal workers; 0 = one per core.
    pub threads: usize,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct BackupSummary {
    pub message_type: &'static str,
    pub snapshot_id: Option<String>,
    pub parent: Option<String>,
    pub dry_run: bool,
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unmodified: u64,
    pub files_unreadable: u64,
    pub dirs_new: u64,
    pub dirs_changed: u64,
    pub dirs_unmodified: u64,
    /// File content bytes read from disk.
    pub bytes_read: u64,
    /// Total size of the files in the snapshot.
    pub bytes_total: u64,
    /// New bytes stored (after compression and encryption).
    pub data_added: u64,
    pub chunks_new: u64,
    pub chunks_deduplicated: u64,
    pub packs_written: u64,
    pub duration_s: f64,
    pub requests: RequestStats,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Warnings about unreadable files (exit code 3 when not empty).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// What to back up.
pub enum Source<'a> {
    Paths(&'a [PathBuf]),
    Stdin(&'a mut (dyn Read + Send)),
}

pub fn backup(
    repo: &Repository,
    source: Source<'_>,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupSummary> {
    let start = Instant::now();
    let requests_before = repo.request_stats();
    let (default_host, username) = crate::repo::whoami();
    let hostname = opts.host.clone().unwrap_or(default_host);
    let paths: Vec<PathBuf> = match &source {
        Source::Paths(p) => p.iter().map(|p| walk::absolute(p)).collect::<Result<_>>()?,
        Source::Stdin(_) => vec![PathBuf::from(format!(
            "/{}",
            opts.stdin_filename.as_deref().unwrap_or("stdin")
        ))],
    };
    let path_strings: Vec<String> = {
        let mut v: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        v.sort();
        v.dedup();
        v
    };
    // Announce this backup before reading the index (gc.md §2): a prune that does not see the
    // session has already published its new index, which the sync then picks up. The CLI opens
    // with `open_for_backup`, which did both already.
    let session = match (opts.dry_run, repo.take_session()) {
        (true, _) => None,
        (false, Some(s)) => Some(s),
        (false, None) => {
            let s = repo.start_session()?;
            repo.sync_index()?;
            Some(s)
        }
    };
    let parent = match opts.parent {
        Some(id) => Some((id, repo.load_snapshot(&id)?)),
        None => find_parent(repo, &hostname, &path_strings)?,
    };
    let writer = repo.writer(WriterOptions {
        dry_run: opts.dry_run,
        connections: opts.connections.max(1),
        ..Default::default()
    });
    let excludes = PatternSet::new(&opts.excludes)?;
    let parent_tree = parent.as_ref().map(|(_, s)| s.tree);
    let mut summary = BackupSummary {
        message_type: "summary",
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let tree = walk::run(
        repo,
        &writer,
        source,
        &paths,
        parent_tree,
        opts,
        &excludes,
        progress,
        &mut summary,
    )?;
    let stats = writer.finish()?;
    summary.data_added = stats.bytes;
    summary.packs_written = stats.packs;
    summary.parent = parent.as_ref().map(|(id, _)| id.to_hex());
    summary.duration_s = start.elapsed().as_secs_f64();
    let now = jiff::Zoned::now();
    let snapshot = Snapshot {
        time_ns: i64::try_from(now.timestamp().as_nanosecond()).unwrap_or(i64::MAX),
        tz_offset_s: now.offset().seconds(),
        hostname,
        username,
        paths: path_strings,
        tags: opts.tags.clone(),
        parent: parent.map(|(id, _)| id),
        tree,
        original: None,
        program_version: env!("CARGO_PKG_VERSION").to_string(),
        summary: Some(SnapshotSummary {
            files_new: summary.files_new,
            files_changed: summary.files_changed,
            files_unmodified: summary.files_unmodified,
            dirs_new: summary.dirs_new,
            dirs_changed: summary.dirs_changed,
            dirs_unmodified: summary.dirs_unmodified,
            bytes_read: summary.bytes_read,
            bytes_total: summary.bytes_total,
            data_added: summary.data_added,
            chunks_new: summary.chunks_new,
            chunks_deduplicated: summary.chunks_deduplicated,
            files_unreadable: summary.files_unreadable,
            duration_ms: (summary.duration_s * 1000.0) as u64,
        }),
        signature: Vec::new(),
    };
    if let Some(session) = session {
        session.ensure_fresh()?;
        let id = repo.save_snapshot(&snapshot)?;
        // The snapshot is committed: a session object that cannot be removed only delays a
        // prune until it goes stale, so it is a warning, not a failed backup.
        if let Err(e) = session.end() {
            summary
                .warnings
                .push(format!("could not remove the backup's session object: {e}"));
        }
        repo.cache().write_hint(
            &parent_hint_name(&snapshot.hostname, &snapshot.paths),
            &id.to_hex(),
        );
        summary.snapshot_id = Some(id.to_hex());
    }
    let requests = repo.request_stats().since(&requests_before);
    summary.bytes_up = requests.bytes_up;
    summary.bytes_down = requests.bytes_down;
    summary.requests = requests;
    summary.duration_s = start.elapsed().as_secs_f64();
    Ok(summary)
}

/// The latest snapshot of the same host and the same set of paths.
/// The local hint naming the last snapshot this cache saw for a host and set of paths.
fn parent_hint_name(host: &str, paths: &[String]) -> String {
    let key = format!("{host}\0{}", paths.join("\0"));
    format!("parent-{}", Id::of_object(key.as_bytes()).to_hex())
}

/// The latest snapshot of the same host and the same set of paths. The local hint avoids a
/// LIST of all snapshots: one HEAD confirms the hinted snapshot still exists.
fn find_parent(repo: &Repository, host: &str, paths: &[String]) -> Result<Option<(Id, Snapshot)>> {
    let hint = repo.cache().read_hint(&parent_hint_name(host, paths));
    if let Some(id) = hint.and_then(|h| h.parse::<Id>().ok()) {
        if repo.backend().stat(Kind::Snapshot, &id.to_hex())?.is_some() {
            if let Ok(s) = repo.load_snapshot(&id) {
                if s.hostname == host && s.paths == paths {
                    return Ok(Some((id, s)));
                }
            }
        }
    }
    Ok(repo
        .list_snapshots()?
        .into_iter()
        .rev()
        .find(|(_, s)| s.hostname == host && s.paths == paths))
}
