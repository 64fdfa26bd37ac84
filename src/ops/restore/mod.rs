//! Restore: plan from the snapshot's trees, then fetch by pack (merged ranges, in parallel),
//! verify every chunk against its id and write it to every place it belongs; links, special
//! files and metadata come last. Nothing is ever written outside the target: names are checked,
//! files are opened without following symlinks, and symlinks are created only after all content.

mod apply;
mod fetch;

use std::collections::HashMap;
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
    /// For hard links: the earlier path of the same inode.
    pub link_to: Option<usize>,
}

/// Where each chunk goes: (entry index, byte offset in the file).
pub(crate) type Placements = HashMap<Id, Vec<(usize, u64)>>;
pub(crate) type Locations = HashMap<Id, crate::index::BlobLocation>;

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
    let mut planner = Planner {
        repo,
        includes: &includes,
        excludes: &excludes,
        entries: Vec::new(),
        warnings: Vec::new(),
        inodes: HashMap::new(),
    };
    planner.walk(&snap.tree, Path::new("/"), includes.is_empty(), 0)?;
    let Planner {
        entries, warnings, ..
    } = planner;
    let mut summary = RestoreSummary {
        message_type: "summary",
        snapshot_id: snapshot.to_hex(),
        warnings,
        ..Default::default()
    };
    let (placements, locations, total_bytes, lengths) = place_chunks(repo, &entries)?;
    for (e, len) in entries.iter().zip(&lengths) {
        if e.node.kind == NodeKind::File && e.link_to.is_none() && *len != e.node.size {
            summary.warnings.push(format!(
                "{}: recorded size {} differs from its content ({len} bytes); restoring the content",
                e.path.display(),
                e.node.size
            ));
        }
    }
    progress.set_total(entries.len() as u64, total_bytes);
    if opts.dry_run {
        summary.files_restored = entries
            .iter()
            .filter(|e| e.node.kind == NodeKind::File)
            .count() as u64;
        summary.bytes_restored = total_bytes;
        return Ok(summary);
    }
    std::fs::create_dir_all(target).map_err(|e| Error::io(target, e))?;
    let target = target.canonicalize().map_err(|e| Error::io(target, e))?;
    apply::create_entries(&target, &entries, &lengths, &mut summary)?;
    let fetched = fetch::fetch_all(
        repo,
        &target,
        &entries,
        &placements,
        &locations,
        opts.connections.max(1),
        progress,
    )?;
    summary.chunks_fetched = fetched.chunks;
    summary.packs_read = fetched.packs;
    summary.bytes_restored = fetched.bytes;
    apply::finish_entries(&target, &entries, opts.owners, &mut summary)?;
    let req = repo.request_stats().since(&before);
    summary.bytes_down = req.bytes_down;
    summary.requests = req;
    summary.duration_s = start.elapsed().as_secs_f64();
    Ok(summary)
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

struct Planner<'a> {
    repo: &'a Repository,
    includes: &'a PatternSet,
    excludes: &'a PatternSet,
    entries: Vec<Planned>,
    warnings: Vec<String>,
    /// (device, inode) of multiply-linked files → their first entry.
    inodes: HashMap<(u64, u64), usize>,
}

impl Planner<'_> {
    /// Walk a tree; `selected` is true when an include pattern (or none) already covers it.
    /// Returns whether anything below was planned (folders on the way to a match are kept).
    fn walk(&mut self, tree_id: &Id, path: &Path, selected: bool, depth: usize) -> Result<bool> {
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
        let mut any = false;
        for node in tree.nodes {
            if !node.has_safe_name() {
                self.warnings.push(format!(
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
                    let idx = self.entries.len();
                    let subtree = node.subtree;
                    self.entries.push(Planned {
                        path: child.clone(),
                        node,
                        link_to: None,
                    });
                    let below = match subtree {
                        Some(id) => self.walk(&id, &child, sel, depth + 1)?,
                        None => false,
                    };
                    if !(sel || below) {
                        self.entries.truncate(idx);
                    } else {
                        any = true;
                    }
                }
                _ if sel => {
                    let link_to = if node.kind == NodeKind::File && node.links > 1 {
                        let key = (node.device, node.inode);
                        let first = self.inodes.get(&key).copied();
                        if first.is_none() {
                            self.inodes.insert(key, self.entries.len());
                        }
                        first
                    } else {
                        None
                    };
                    self.entries.push(Planned {
                        path: child,
                        node,
                        link_to,
                    });
                    any = true;
                }
                _ => {}
            }
        }
        Ok(any)
    }
}
