//! Keeping the local index in step with the repository (format-spec §6, §9.2): ingest new index
//! objects, rebuild when objects disappeared or were superseded, and index packs that a run
//! uploaded but could not list before it died.

use std::collections::HashSet;

use super::Repository;
use crate::backend::{Backend, Kind, Temperature};
use crate::crypto::SealKey;
use crate::error::{Error, Result};
use crate::format::index::{IndexObject, IndexPack};
use crate::id::Id;
use crate::index::LocalIndex;

/// Write one index object listing `packs`; records it in the local index. Returns its name.
pub(crate) fn write_index_object(
    backend: &dyn Backend,
    key: &SealKey,
    local: &LocalIndex,
    packs: Vec<IndexPack>,
    supersedes: Vec<Id>,
) -> Result<String> {
    let obj = IndexObject { supersedes, packs };
    let bytes = obj.encode(key);
    let name = Id::of_object(&bytes).to_hex();
    match backend.put(Kind::Index, &name, &bytes, Temperature::Hot) {
        Err(e) if e.is_already_exists() => {}
        other => other?,
    }
    local.commit_pending(&name, &obj)?;
    local.ingest(&name, &obj)?;
    Ok(name)
}

impl Repository {
    /// Bring the local index up to date with the repository's index objects. Objects that a
    /// present object supersedes are remembered as such and never ingested (format-spec §6.2).
    pub fn sync_index(&self) -> Result<()> {
        self.recover_pending()?;
        let listed: HashSet<String> = self
            .backend()
            .list(Kind::Index)?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let known = self.index().known_index_objects()?;
        let marked = self.index().superseded_index_objects()?;
        let gone: Vec<&String> = known.difference(&listed).collect();
        if gone.iter().any(|n| !marked.contains(*n)) {
            // An object we ingested disappeared: start from scratch.
            return self.rebuild_index(&listed);
        }
        if !gone.is_empty() {
            self.index().forget_index_objects(&gone)?;
        }
        // New objects go through a batch: sorted runs on disk rather than decoded objects in
        // RAM, ingested in key order in one transaction (see `IngestBatch`).
        let mut batch = self.index().batch();
        let mut superseded = HashSet::new();
        for name in listed.difference(&known) {
            let Some(obj) = self.load_index_object_or_skip(name)? else {
                continue;
            };
            superseded.extend(obj.supersedes.iter().map(|id| id.to_hex()));
            batch.add(name, &obj)?;
        }
        if superseded
            .iter()
            .any(|s| known.contains(s) && !marked.contains(s))
        {
            // Something we mirror was replaced by prune: start from scratch.
            return self.rebuild_index(&listed);
        }
        batch.finish(&superseded)
    }

    /// Write an index object listing `packs` that replaces the objects in `supersedes` (prune).
    /// A superseding object is not recorded in the local cache, so the next `sync_index` (of
    /// this or any process sharing the cache) sees it as new and rebuilds without the old ones.
    pub fn write_index(&self, packs: Vec<IndexPack>, supersedes: Vec<Id>) -> Result<String> {
        let key = &self.codec().keys().meta;
        if supersedes.is_empty() {
            return write_index_object(self.backend(), key, self.index(), packs, supersedes);
        }
        let bytes = IndexObject { supersedes, packs }.encode(key);
        let name = Id::of_object(&bytes).to_hex();
        match self
            .backend()
            .put(Kind::Index, &name, &bytes, Temperature::Hot)
        {
            Err(e) if e.is_already_exists() => {}
            other => other?,
        }
        Ok(name)
    }

    /// Rebuild the local index from the repository's current index objects.
    pub fn rebuild_local_index(&self) -> Result<()> {
        let listed: HashSet<String> = self
            .backend()
            .list(Kind::Index)?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        self.rebuild_index(&listed)
    }

    fn rebuild_index(&self, listed: &HashSet<String>) -> Result<()> {
        let mut batch = self.index().batch();
        let mut superseded = HashSet::new();
        for name in listed {
            let Some(obj) = self.load_index_object_or_skip(name)? else {
                continue;
            };
            superseded.extend(obj.supersedes.iter().map(|id| id.to_hex()));
            batch.add(name, &obj)?;
        }
        batch.finish_replacing(&superseded)
    }

    /// A damaged index object (torn, flipped bits, wrong name) must not make the repository
    /// unopenable — `check` could not even report it then. It is skipped with a warning and
    /// not remembered, so every later open retries it; its packs stay unknown until then (new
    /// backups store their blobs again). Backend errors still fail.
    fn load_index_object_or_skip(&self, name: &str) -> Result<Option<IndexObject>> {
        match self.load_index_object(name) {
            Ok(obj) => Ok(Some(obj)),
            Err(e @ Error::Damaged { .. }) => {
                tracing::warn!("skipping index object: {e} (run `check`)");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    pub fn load_index_object(&self, name: &str) -> Result<IndexObject> {
        let bytes = self.backend().get(Kind::Index, name)?;
        if Id::of_object(&bytes).to_hex() != name {
            return Err(Error::damaged(
                "index",
                name,
                "content does not match its name",
            ));
        }
        IndexObject::decode(&bytes, &self.codec().keys().meta)
            .map_err(|e| Error::damaged("index", name, e))
    }

    /// Packs recorded as uploaded by a run that did not get to write their index object: list
    /// the ones that really exist in a new index object, forget the others.
    fn recover_pending(&self) -> Result<()> {
        let pending = self.index().pending()?;
        if pending.is_empty() {
            return Ok(());
        }
        // A run killed between writing an index object and recording it left packs pending that
        // the object lists: they must not be listed again. Only objects not ingested yet can.
        let known = self.index().known_index_objects()?;
        let mut listed = HashSet::new();
        for (name, _) in self.backend().list(Kind::Index)? {
            if !known.contains(&name) {
                if let Some(obj) = self.load_index_object_or_skip(&name)? {
                    listed.extend(obj.packs.iter().map(|p| p.pack));
                }
            }
        }
        let (indexed, pending): (Vec<_>, Vec<_>) =
            pending.into_iter().partition(|p| listed.contains(&p.pack));
        self.index().mark_listed(&indexed)?;
        let mut present = Vec::new();
        let mut missing = Vec::new();
        for p in pending {
            match self.backend().stat(Kind::Pack, &p.pack.to_hex())? {
                Some(_) => present.push(p),
                None => missing.push(p),
            }
        }
        self.index().drop_pending(&missing)?;
        if !present.is_empty() {
            tracing::info!(
                "indexing {} pack(s) left by an interrupted run",
                present.len()
            );
            write_index_object(
                self.backend(),
                &self.codec().keys().meta,
                self.index(),
                present,
                vec![],
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::backend::mem::MemBackend;
    use crate::format::keyfile::KdfParams;
    use crate::format::pack::PackEntry;
    use crate::id::BlobKind;
    use crate::repo::{DynBackend, InitOptions, OpenOptions};

    const PW: &[u8] = b"pw";

    fn id(tag: &str, i: u64) -> Id {
        let mut h = blake3::Hasher::new();
        h.update(tag.as_bytes()).update(&i.to_le_bytes());
        Id(*h.finalize().as_bytes())
    }

    fn pack(pack: Id, blobs: &[Id]) -> IndexPack {
        IndexPack {
            pack,
            entries: (0..)
                .zip(blobs)
                .map(|(k, id)| PackEntry {
                    kind: BlobKind::Data,
                    id: *id,
                    offset: k * 100,
                    length: 100,
                    raw_length: 100,
                })
                .collect(),
        }
    }

    fn open(backend: &DynBackend, cache: &Path) -> Repository {
        let opts = OpenOptions {
            cache_dir: Some(cache.to_path_buf()),
        };
        Repository::open(backend.clone(), PW, &opts).unwrap()
    }

    /// What prune leaves before its second phase: object A (blobs x and y in pack p1) and
    /// object B that supersedes it (x only, moved to pack p2), both still listed.
    struct Pruned {
        backend: DynBackend,
        x: Id,
        y: Id,
        p2: Id,
    }

    /// A new repository in memory, with the cheap test KDF.
    fn new_repo(tmp: &Path) -> DynBackend {
        let backend: DynBackend = Arc::new(MemBackend::new());
        let init = InitOptions {
            kdf: KdfParams {
                m_cost: 8 * 1024,
                t_cost: 1,
                p_cost: 1,
            },
            cache_dir: Some(tmp.to_path_buf()),
            ..InitOptions::default()
        };
        Repository::init(backend.clone(), PW, &init).unwrap();
        backend
    }

    fn pruned(v: u64, tmp: &Path) -> Pruned {
        let backend = new_repo(tmp);
        let writer = open(&backend, &tmp.join(format!("writer-{v}")));
        let (x, y, p2) = (id("x", v), id("y", v), id("p2", v));
        let a = writer
            .write_index(vec![pack(id("p1", v), &[x, y])], vec![])
            .unwrap();
        writer
            .write_index(vec![pack(p2, &[x])], vec![a.parse().unwrap()])
            .unwrap();
        Pruned { backend, x, y, p2 }
    }

    fn assert_pruned_view(repo: &Repository, p: &Pruned) {
        let x = repo.lookup(&p.x).unwrap().expect("x is live");
        assert_eq!(
            x.pack, p.p2,
            "x must point at the superseding object's pack"
        );
        assert_eq!(repo.lookup(&p.y).unwrap(), None, "y was dropped by prune");
        assert_eq!(repo.index().blob_count().unwrap(), 1);
    }

    /// A first sync skips the superseded object (and the dead blob only it lists), in
    /// whatever order the listing returns the two objects.
    #[test]
    fn first_sync_skips_superseded_objects() {
        let tmp = tempfile::tempdir().unwrap();
        for v in 0..8 {
            let p = pruned(v, tmp.path());
            let repo = open(&p.backend, &tmp.path().join(format!("fresh-{v}")));
            assert_pruned_view(&repo, &p);
            assert_eq!(repo.index().superseded_index_objects().unwrap().len(), 1);
            assert_eq!(repo.index().known_index_objects().unwrap().len(), 2);
            // A second sync changes nothing.
            repo.sync_index().unwrap();
            assert_pruned_view(&repo, &p);
        }
    }

    /// A run killed after writing an index object but before recording it: its packs are still
    /// pending in its cache. The next sync ingests that object and lists them nowhere else
    /// (a second listing once made `check --read-data` report their blobs as damaged).
    #[test]
    fn pending_packs_an_object_lists_are_not_listed_again() {
        let tmp = tempfile::tempdir().unwrap();
        let backend = new_repo(tmp.path());
        let cache = tmp.path().join("killed");
        let (x, y) = (id("x", 0), id("y", 0));
        let (listed, orphan) = (pack(id("p1", 0), &[x]), pack(id("p2", 0), &[y]));
        {
            let repo = open(&backend, &cache);
            repo.index().add_pending(&listed).unwrap();
            repo.index().add_pending(&orphan).unwrap();
            // The object was written; the run died before `commit_pending`.
            let obj = IndexObject {
                supersedes: vec![],
                packs: vec![listed.clone()],
            };
            let bytes = obj.encode(&repo.codec().keys().meta);
            let name = Id::of_object(&bytes).to_hex();
            backend
                .put(Kind::Index, &name, &bytes, Temperature::Hot)
                .unwrap();
            // Both packs were uploaded; no object lists p2.
            for p in [&listed, &orphan] {
                backend
                    .put(Kind::Pack, &p.pack.to_hex(), b"pack", Temperature::Hot)
                    .unwrap();
            }
        }
        let repo = open(&backend, &cache);
        assert!(repo.index().pending().unwrap().is_empty());
        let mut listings = std::collections::HashMap::new();
        for (name, _) in backend.list(Kind::Index).unwrap() {
            for p in repo.load_index_object(&name).unwrap().packs {
                *listings.entry(p.pack).or_insert(0) += 1;
            }
        }
        assert_eq!(listings.get(&listed.pack), Some(&1), "p1 listed once");
        assert_eq!(listings.get(&orphan.pack), Some(&1), "p2 recovered");
        assert_eq!(repo.lookup(&x).unwrap().map(|l| l.pack), Some(listed.pack));
        assert_eq!(repo.lookup(&y).unwrap().map(|l| l.pack), Some(orphan.pack));
    }

    /// A cache that mirrors the superseded object rebuilds: the dead blob is forgotten.
    #[test]
    fn sync_rebuilds_when_a_mirrored_object_was_superseded() {
        let tmp = tempfile::tempdir().unwrap();
        let p = pruned(0, tmp.path());
        // The writer's cache ingested A when it wrote it, and never B.
        let repo = open(&p.backend, &tmp.path().join("writer-0"));
        assert_pruned_view(&repo, &p);
        assert_eq!(repo.index().superseded_index_objects().unwrap().len(), 1);
        repo.rebuild_local_index().unwrap();
        assert_pruned_view(&repo, &p);
    }
}
