//! Restore: plan from the snapshot's trees, then fetch by pack (merged ranges, in parallel),
//! verify every chunk against its id and write it to every place it belongs; links, special
//! files and metadata come last. Nothing is ever written outside the target: names are checked,
//! files are opened without following symlinks, and symlinks are created only after all content.

mod apply;
mod fetch;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::backend::RequestStats;
use crate::error::{Error, Result};
use crate::format::tree::{Node, NodeKind, Tree, MAX_TREE_DEPTH};
use crate::format::MAX_DATA_BLOB;
use crate::id::{BlobKind, Id};
use crate::ops::filter::PatternSet;
use crate::progress::Progress;
use crate::repo::Repository;

#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    pub includes: Vec<String>,
    pub excludes: Vec<String>,
    /// Restore ownership (effective only as root).
    pub owners: bool,
    /// Parallel pack fetches.
    pub connections: usize,
    pub dry_run: bool,
    /// Entries planned and restored per batch (0: `BATCH_ENTRIES`); fewer hold less memory.
    pub batch_entries: usize,
    /// Never write with `O_DIRECT` (by default, files of several chunks are written past the
    /// page cache where the file system allows it).
    pub buffered: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct RestoreSummary {
    pub message_type: &'static str,
    pub snapshot_id: String,
    pub files_restored: u64,
    pub dirs_restored: u64,
    pub links_restored: u64,
    pub special_restored: u64,
    pub bytes_restored: u64,
    pub chunks_fetched: u64,
    pub packs_read: u64,
    pub duration_s: f64,
    pub requests: RequestStats,
    pub bytes_down: u64,
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// One entry to create, in tree order.
pub(crate) struct Planned {
    pub path: PathBuf,
    pub node: Node,
    /// For hard links: the snapshot path of the same inode's first entry (already restored or
    /// in the same batch).
    pub link_to: Option<PathBuf>,
}

/// Where each chunk goes: (entry index, byte offset in the file).
pub(crate) type Placements = HashMap<Id, Vec<(usize, u64)>>;
pub(crate) type Locations = HashMap<Id, crate::index::BlobLocation>;

/// Restore plans and restores a snapshot in batches of entries in tree order, so its memory
/// stays flat however many files the snapshot holds (planned whole, 50k files took ~60 MiB).
const BATCH_ENTRIES: usize = 8192;
/// A batch also ends at this many chunk placements (one huge file can fill a batch alone).
const BATCH_CHUNKS: usize = 65_536;

pub fn restore(
    repo: &Repository,
    snapshot: &Id,
    target: &Path,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreSummary> {
    let start = Instant::now();
    let before = repo.request_stats();
    let snap = repo.load_snapshot(snapshot)?;
    let includes = PatternSet::new(&opts.includes)?;
    let excludes = PatternSet::new(&opts.excludes)?;
    let target = if opts.dry_run {
        target.to_path_buf()
    } else {
        std::fs::create_dir_all(target).map_err(|e| Error::io(target, e))?;
        target.canonicalize().map_err(|e| Error::io(target, e))?
    };
    // Known ahead only for a whole restore; otherwise the total grows batch by batch.
    let expected_bytes = match &snap.summary {
        Some(s) if includes.is_empty() && excludes.is_empty() => s.bytes_total,
        _ => 0,
    };
    let mut sink = Sink {
        repo,
        target: &target,
        opts,
        progress,
        summary: RestoreSummary {
            message_type: "summary",
            snapshot_id: snapshot.to_hex(),
            ..Default::default()
        },
        // SAFETY: geteuid has no preconditions. Ownership is restored only as root.
        chown: opts.owners && unsafe { libc::geteuid() } == 0,
        dirs: Vec::new(),
        packs: HashSet::new(),
        planned: (0, 0),
        expected_bytes,
    };
    let mut planner = Planner {
        repo,
        includes: &includes,
        excludes: &excludes,
        pending_dirs: Vec::new(),
        inodes: HashMap::new(),
        batch: Vec::new(),
        batch_chunks: 0,
        sink: &mut sink,
    };
    planner.walk(&snap.tree, Path::new("/"), includes.is_empty(), 0)?;
    planner.flush()?;
    let mut summary = sink.finish();
    let req = repo.request_stats().since(&before);
    summary.bytes_down = req.bytes_down;
    summary.requests = req;
    summary.duration_s = start.elapsed().as_secs_f64();
    Ok(summary)
}

/// Restores planned batches and keeps what must wait for the end: folder metadata (set
/// deepest-first once nothing more is written into them).
struct Sink<'a> {
    repo: &'a Repository,
    target: &'a Path,
    opts: &'a RestoreOptions,
    progress: &'a dyn Progress,
    summary: RestoreSummary,
    /// Whether ownership is restored (asked for, and running as root).
    chown: bool,
    dirs: Vec<(PathBuf, Node)>,
    /// Packs read so far (a pack read for two batches counts once).
    packs: HashSet<Id>,
    /// Entries and content bytes planned so far.
    planned: (u64, u64),
    expected_bytes: u64,
}

impl Sink<'_> {
    fn restore_batch(&mut self, batch: Vec<Planned>) -> Result<()> {
        let (placements, locations, batch_bytes, lengths) = place_chunks(self.repo, &batch)?;
        for (e, len) in batch.iter().zip(&lengths) {
            if e.node.kind == NodeKind::File && e.link_to.is_none() && *len != e.node.size {
                self.summary.warnings.push(format!(
                    "{}: recorded size {} differs from its content ({len} bytes); restoring the content",
                    e.path.display(),
                    e.node.size
                ));
            }
        }
        self.planned.0 += batch.len() as u64;
        self.planned.1 += batch_bytes;
        self.progress
            .set_total(self.planned.0, self.planned.1.max(self.expected_bytes));
        if self.opts.dry_run {
            self.summary.files_restored += batch
                .iter()
                .filter(|e| e.node.kind == NodeKind::File)
                .count() as u64;
            self.summary.bytes_restored += batch_bytes;
            return Ok(());
        }
        let threads = self.opts.connections.max(1);
        apply::create_entries(self.target, &batch, &lengths, threads, &mut self.summary)?;
        self.packs.extend(locations.values().map(|l| l.pack));
        let fetch_batch = fetch::Batch {
            target: self.target,
            entries: &batch,
            placements: &placements,
            locations: &locations,
            chown: self.chown,
            direct: !self.opts.buffered,
        };
        let fetched = fetch::fetch_all(self.repo, &fetch_batch, threads, self.progress)?;
        self.summary.chunks_fetched += fetched.chunks;
        self.summary.bytes_restored += fetched.bytes;
        self.summary.warnings.extend(fetched.warnings);
        apply::finish_entries(self.target, &batch, self.chown, threads, &mut self.summary)?;
        self.dirs.extend(
            batch
                .into_iter()
                .filter(|e| e.node.kind == NodeKind::Dir)
                .map(|e| (e.path, e.node)),
        );
        Ok(())
    }

    fn finish(mut self) -> RestoreSummary {
        if !self.opts.dry_run {
            apply::finish_dirs(self.target, &self.dirs, self.chown, &mut self.summary);
        }
        self.summary.packs_read = self.packs.len() as u64;
        self.summary
    }
}

/// Every chunk's places (entry, offset), the total bytes and each entry's content length (the
/// sum of its chunks' lengths, from the index; a file is sized by that, never by the size its
/// node declares, which a hostile tree could set to 2^60).
fn place_chunks(
    repo: &Repository,
    entries: &[Planned],
) -> Result<(Placements, Locations, u64, Vec<u64>)> {
    let mut placements: Placements = HashMap::new();
    let mut locations: Locations = HashMap::new();
    let mut total = 0;
    let mut lengths = vec![0u64; entries.len()];
    for (i, e) in entries.iter().enumerate() {
        if e.node.kind != NodeKind::File || e.link_to.is_some() {
            continue;
        }
        let mut offset = 0u64;
        for id in &e.node.content {
            let loc = match locations.get(id) {
                Some(l) => *l,
                None => {
                    let l = repo.lookup_kind(BlobKind::Data, id)?.ok_or_else(|| {
                        Error::damaged(
                            "blob",
                            id.to_hex(),
                            format!("needed by {} but missing from the index", e.path.display()),
                        )
                    })?;
                    if l.raw_length as usize > MAX_DATA_BLOB {
                        return Err(Error::damaged(
                            "index",
                            id.to_hex(),
                            format!("blob length {} exceeds the limit", l.raw_length),
                        ));
                    }
                    locations.insert(*id, l);
                    l
                }
            };
            placements.entry(*id).or_default().push((i, offset));
            offset += u64::from(loc.raw_length);
        }
        lengths[i] = offset;
        total += offset;
    }
    Ok((placements, locations, total, lengths))
}

struct Planner<'a, 's> {
    repo: &'a Repository,
    includes: &'a PatternSet,
    excludes: &'a PatternSet,
    /// Folders on the current path not planned yet: they are planned (outermost first) as soon
    /// as anything below them is, and dropped when nothing is.
    pending_dirs: Vec<(PathBuf, Node)>,
    /// (device, inode) of multiply-linked files → the path of their first entry.
    inodes: HashMap<(u64, u64), PathBuf>,
    batch: Vec<Planned>,
    batch_chunks: usize,
    sink: &'s mut Sink<'a>,
}

impl Planner<'_, '_> {
    /// Plan an entry, after the folders it lies in; restore the batch once it is full.
    fn plan(&mut self, path: PathBuf, node: Node, link_to: Option<PathBuf>) -> Result<()> {
        for (path, node) in self.pending_dirs.drain(..) {
            self.batch.push(Planned {
                path,
                node,
                link_to: None,
            });
        }
        self.batch_chunks += node.content.len();
        self.batch.push(Planned {
            path,
            node,
            link_to,
        });
        let limit = match self.sink.opts.batch_entries {
            0 => BATCH_ENTRIES,
            n => n,
        };
        if self.batch.len() >= limit || self.batch_chunks >= BATCH_CHUNKS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.batch_chunks = 0;
        let batch = std::mem::take(&mut self.batch);
        if batch.is_empty() {
            return Ok(());
        }
        self.sink.restore_batch(batch)
    }

    /// Walk a tree; `selected` is true when an include pattern (or none) already covers it.
    /// Folders on the way to a match are planned, others not.
    fn walk(&mut self, tree_id: &Id, path: &Path, selected: bool, depth: usize) -> Result<()> {
        if depth > MAX_TREE_DEPTH {
            return Err(Error::damaged(
                "tree",
                tree_id.to_hex(),
                format!(
                    "{}: folders nested deeper than {MAX_TREE_DEPTH} levels",
                    path.display()
                ),
            ));
        }
        let tree: Tree = self.repo.load_tree(tree_id)?;
        for node in tree.nodes {
            if !node.has_safe_name() {
                self.sink.summary.warnings.push(format!(
                    "{}: refusing unsafe name {:?}",
                    path.display(),
                    node.name_lossy()
                ));
                continue;
            }
            let child = path
                .join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&node.name));
            if self.excludes.matches(&child) {
                continue;
            }
            let sel = selected || self.includes.matches(&child);
            match node.kind {
                NodeKind::Dir => {
                    let subtree = node.subtree;
                    // Below `mark` are this folder's ancestors; whatever is above when the
                    // walk returns was never planned.
                    let mark = self.pending_dirs.len();
                    if sel {
                        self.plan(child.clone(), node, None)?;
                    } else {
                        self.pending_dirs.push((child.clone(), node));
                    }
                    if let Some(id) = subtree {
                        self.walk(&id, &child, sel, depth + 1)?;
                    }
                    self.pending_dirs.truncate(mark);
                }
                _ if sel => {
                    let link_to = if node.kind == NodeKind::File && node.links > 1 {
                        let key = (node.device, node.inode);
                        let first = self.inodes.get(&key).cloned();
                        if first.is_none() {
                            self.inodes.insert(key, child.clone());
                        }
                        first
                    } else {
                        None
                    };
                    self.plan(child, node, link_to)?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}
