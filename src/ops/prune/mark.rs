//! Marking (gc.md §4): walk every snapshot's trees once (visited trees are skipped through the
//! live set) and record each referenced blob. Blobs that the current index does not list are
//! "missing"; trees among them are still read from superseded index objects so that a snapshot
//! racing a prune is walked completely and its packs can be rescued.

use std::collections::{HashMap, HashSet};

use super::live::LiveSet;
use crate::backend::Kind;
use crate::error::{Error, Result};
use crate::format::tree::{NodeKind, Tree};
use crate::id::{BlobKind, Id};
use crate::index::BlobLocation;
use crate::repo::Repository;

pub(super) struct Marker<'r> {
    repo: &'r Repository,
    pub live: LiveSet,
    /// Snapshots already walked.
    pub marked: HashSet<Id>,
    /// Referenced blobs the current index did not list when they were marked.
    pub missing: HashSet<Id>,
    /// Locations from superseded index objects, loaded on first need.
    fallback: Option<HashMap<Id, BlobLocation>>,
    pub trees: u64,
}

impl<'r> Marker<'r> {
    pub fn new(repo: &'r Repository) -> Result<Self> {
        Ok(Marker {
            repo,
            live: LiveSet::new(&repo.cache_dir().join("tmp"))?,
            marked: HashSet::new(),
            missing: HashSet::new(),
            fallback: None,
            trees: 0,
        })
    }

    /// Walk every snapshot not walked yet. Any snapshot that cannot be read stops the prune:
    /// skipping it would condemn its data.
    pub fn mark_new_snapshots(&mut self) -> Result<()> {
        for (name, _) in self.repo.backend().list(Kind::Snapshot)? {
            let Ok(id) = name.parse::<Id>() else { continue };
            if self.marked.contains(&id) {
                continue;
            }
            let snap = match self.repo.load_snapshot(&id) {
                Ok(s) => s,
                // Forgotten by someone else since the listing: nothing to keep.
                Err(Error::Backend(e)) if e.is_not_found() => continue,
                Err(e) => {
                    return Err(Error::Invalid(format!(
                        "snapshot {name} is unreadable ({e}); refusing to prune"
                    )))
                }
            };
            self.walk(snap.tree)?;
            self.marked.insert(id);
        }
        self.live.flush()
    }

    fn walk(&mut self, root: Id) -> Result<()> {
        let mut stack = vec![root];
        while let Some(tree_id) = stack.pop() {
            if !self.live.insert(&tree_id)? {
                continue;
            }
            let Some(tree) = self.load_tree(&tree_id)? else {
                continue;
            };
            self.trees += 1;
            for node in tree.nodes {
                match (node.kind, node.subtree) {
                    (NodeKind::Dir, Some(sub)) => stack.push(sub),
                    (NodeKind::File, _) => {
                        for id in &node.content {
                            if self.live.insert(id)? && self.repo.lookup(id)?.is_none() {
                                self.missing.insert(*id);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// A tree from the current index, else from a superseded index object (marking it missing);
    /// None when no index lists it at all.
    fn load_tree(&mut self, id: &Id) -> Result<Option<Tree>> {
        if self.repo.lookup(id)?.is_some() {
            return self.repo.load_tree(id).map(Some);
        }
        self.missing.insert(*id);
        let Some(loc) = self.fallback()?.get(id).copied() else {
            tracing::warn!("tree {id} is not in any index");
            return Ok(None);
        };
        let sealed = self.repo.backend().get_range(
            Kind::Pack,
            &loc.pack.to_hex(),
            u64::from(loc.offset),
            u64::from(loc.length),
        )?;
        let plain = self.repo.codec().open(BlobKind::Tree, id, &sealed)?;
        Tree::decode(&plain)
            .map(Some)
            .map_err(|e| Error::damaged("tree", id.to_hex(), e))
    }

    /// Forget the loaded fallback (after index objects were superseded).
    pub fn reset_fallback(&mut self) {
        self.fallback = None;
    }

    /// Blob locations listed only by superseded index objects still present.
    pub fn fallback(&mut self) -> Result<&HashMap<Id, BlobLocation>> {
        if self.fallback.is_none() {
            self.fallback = Some(superseded_locations(self.repo)?);
        }
        Ok(self.fallback.get_or_insert_with(HashMap::new))
    }
}

/// Every blob location listed by an index object that another one supersedes.
fn superseded_locations(repo: &Repository) -> Result<HashMap<Id, BlobLocation>> {
    let catalog = super::IndexCatalog::load(repo)?;
    let mut out = HashMap::new();
    for name in catalog.superseded_present() {
        for p in repo.load_index_object(name)?.packs {
            for e in &p.entries {
                out.insert(e.id, BlobLocation::new(p.pack, e));
            }
        }
    }
    Ok(out)
}
