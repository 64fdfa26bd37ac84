//! Reading snapshots: selection (filters, point in time), tree walks for ls/find, and diff.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind, Tree, MAX_TREE_DEPTH};
use crate::id::Id;
use crate::ops::filter::PatternSet;
use crate::repo::Repository;

#[derive(Clone, Debug, Default)]
pub struct SnapshotFilter {
    pub hosts: Vec<String>,
    pub tags: Vec<String>,
    pub paths: Vec<String>,
}

impl SnapshotFilter {
    pub fn matches(&self, s: &Snapshot) -> bool {
        (self.hosts.is_empty() || self.hosts.contains(&s.hostname))
            && (self.tags.is_empty() || self.tags.iter().any(|t| s.has_tag(t)))
            && (self.paths.is_empty() || self.paths.iter().all(|p| s.paths.contains(p)))
    }
}

/// Snapshots matching a filter, oldest first.
pub fn select(repo: &Repository, filter: &SnapshotFilter) -> Result<Vec<(Id, Snapshot)>> {
    Ok(repo
        .list_snapshots()?
        .into_iter()
        .filter(|(_, s)| filter.matches(s))
        .collect())
}

/// The last snapshot taken at or before `at` (point-in-time recovery).
pub fn at_time(
    repo: &Repository,
    filter: &SnapshotFilter,
    at: jiff::Timestamp,
) -> Result<(Id, Snapshot)> {
    select(repo, filter)?
        .into_iter()
        .rev()
        .find(|(_, s)| s.time() <= at)
        .ok_or_else(|| Error::SnapshotNotFound(format!("at or before {at}")))
}

/// Visit every node below `tree` in depth-first order with its path (rooted at `/`).
pub fn walk(
    repo: &Repository,
    tree: &Id,
    visit: &mut dyn FnMut(&Path, &Node) -> Result<()>,
) -> Result<()> {
    walk_at(repo, tree, Path::new("/"), visit)
}

fn walk_at(
    repo: &Repository,
    tree: &Id,
    at: &Path,
    visit: &mut dyn FnMut(&Path, &Node) -> Result<()>,
) -> Result<()> {
    check_depth(tree, at)?;
    let t = repo.load_tree(tree)?;
    for node in &t.nodes {
        if !node.has_safe_name() {
            continue;
        }
        let p = at.join(std::ffi::OsStr::new(&node.name_lossy()));
        visit(&p, node)?;
        if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
            walk_at(repo, &sub, &p, visit)?;
        }
    }
    Ok(())
}

/// Refuse folders nested deeper than any backup writes: a hostile (or, were ids ever not
/// verified, cyclic) tree must not exhaust the stack or loop forever. `at` holds one component
/// per level below the root.
fn check_depth(tree: &Id, at: &Path) -> Result<()> {
    if at.components().count() > MAX_TREE_DEPTH {
        return Err(Error::damaged(
            "tree",
            tree.to_hex(),
            format!(
                "{}: folders nested deeper than {MAX_TREE_DEPTH} levels",
                at.display()
            ),
        ));
    }
    Ok(())
}

/// The tree of the folder at `path` in a snapshot (`/` for the root).
pub fn tree_at(repo: &Repository, root: &Id, path: &Path) -> Result<(Id, Tree)> {
    let mut id = *root;
    let mut tree = repo.load_tree(&id)?;
    for comp in path.components() {
        let std::path::Component::Normal(name) = comp else {
            continue;
        };
        let node = tree.find(name.as_encoded_bytes()).ok_or_else(|| {
            Error::Invalid(format!("{}: no such path in the snapshot", path.display()))
        })?;
        id = node
            .subtree
            .ok_or_else(|| Error::Invalid(format!("{}: not a directory", path.display())))?;
        tree = repo.load_tree(&id)?;
    }
    Ok((id, tree))
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DiffEntry {
    /// "+" added, "-" removed, "M" content changed, "U" metadata changed, "T" type changed.
    pub change: &'static str,
    pub path: PathBuf,
}

/// What changed between two snapshot trees.
pub fn diff(repo: &Repository, a: &Id, b: &Id) -> Result<Vec<DiffEntry>> {
    let mut out = Vec::new();
    diff_at(repo, Some(*a), Some(*b), Path::new("/"), &mut out)?;
    Ok(out)
}

fn diff_at(
    repo: &Repository,
    a: Option<Id>,
    b: Option<Id>,
    at: &Path,
    out: &mut Vec<DiffEntry>,
) -> Result<()> {
    if a == b {
        return Ok(());
    }
    if let Some(id) = a.or(b) {
        check_depth(&id, at)?;
    }
    let ta = a
        .map(|id| repo.load_tree(&id))
        .transpose()?
        .unwrap_or_default();
    let tb = b
        .map(|id| repo.load_tree(&id))
        .transpose()?
        .unwrap_or_default();
    let (mut i, mut j) = (0, 0);
    while i < ta.nodes.len() || j < tb.nodes.len() {
        let (na, nb) = (ta.nodes.get(i), tb.nodes.get(j));
        let order = match (na, nb) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match (order, na, nb) {
            (std::cmp::Ordering::Less, Some(x), _) => {
                removed_or_added(repo, x, at, "-", out)?;
                i += 1;
            }
            (std::cmp::Ordering::Greater, _, Some(y)) => {
                removed_or_added(repo, y, at, "+", out)?;
                j += 1;
            }
            (_, Some(x), Some(y)) => {
                let p = at.join(x.name_lossy());
                if x.kind != y.kind {
                    out.push(DiffEntry {
                        change: "T",
                        path: p.clone(),
                    });
                } else if x.kind == NodeKind::Dir {
                    diff_at(repo, x.subtree, y.subtree, &p, out)?;
                } else if x.content != y.content || x.link_target != y.link_target {
                    out.push(DiffEntry {
                        change: "M",
                        path: p,
                    });
                } else if x.mode != y.mode || x.mtime != y.mtime || x.uid != y.uid || x.gid != y.gid
                {
                    out.push(DiffEntry {
                        change: "U",
                        path: p,
                    });
                }
                i += 1;
                j += 1;
            }
            _ => break,
        }
    }
    Ok(())
}

fn removed_or_added(
    repo: &Repository,
    n: &Node,
    at: &Path,
    change: &'static str,
    out: &mut Vec<DiffEntry>,
) -> Result<()> {
    let p = at.join(n.name_lossy());
    out.push(DiffEntry {
        change,
        path: p.clone(),
    });
    if let (NodeKind::Dir, Some(sub)) = (n.kind, n.subtree) {
        walk_at(repo, &sub, &p, &mut |path, _| {
            out.push(DiffEntry {
                change,
                path: path.to_path_buf(),
            });
            Ok(())
        })?;
    }
    Ok(())
}

#[derive(Clone, Debug, Serialize)]
pub struct FindMatch {
    pub snapshot: String,
    pub path: PathBuf,
    pub kind: String,
    pub size: u64,
    pub mtime: String,
}

/// Files whose path or name matches `pattern`, in every selected snapshot.
pub fn find(repo: &Repository, filter: &SnapshotFilter, pattern: &str) -> Result<Vec<FindMatch>> {
    let set = PatternSet::new(&[pattern])?;
    let mut out = Vec::new();
    for (id, snap) in select(repo, filter)? {
        walk(repo, &snap.tree, &mut |p, n| {
            if set.matches(p) {
                out.push(FindMatch {
                    snapshot: id.short(),
                    path: p.to_path_buf(),
                    kind: format!("{:?}", n.kind).to_lowercase(),
                    size: n.size,
                    mtime: crate::ops::snapshots::format_ts(n.mtime),
                });
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// RFC 3339 with nanoseconds in UTC.
pub fn format_ts(t: crate::format::tree::Timestamp) -> String {
    jiff::Timestamp::new(t.secs, t.nanos as i32)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| format!("{}s", t.secs))
}
