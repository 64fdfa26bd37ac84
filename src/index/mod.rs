//! The local index cache (a redb database): blob id → location, which repository index objects
//! it mirrors, and packs uploaded but not yet listed in an index object (pending). It is only a
//! cache of the repository's index objects (format-spec §6, §9.2) and can always be rebuilt.
//! Ids do not encode the kind (a data chunk and a tree with equal plaintext share an id), so tree
//! blobs are kept in a table of their own and lookups name the kind they need.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::error::{Error, Result};
use crate::format::index::{IndexObject, IndexPack};
use crate::format::pack::PackEntry;
use crate::id::{BlobKind, Id};

const BLOBS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("blobs");
/// Tree blobs. Caches written before this table existed hold trees in BLOBS; lookups fall back.
const TREES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("tree_blobs");
const INDEX_OBJECTS: TableDefinition<&str, u8> = TableDefinition::new("index_objects");
/// `INDEX_OBJECTS` value of an object superseded by another (prune): known, not ingested.
const SUPERSEDED: u8 = 2;
const PENDING: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("pending_packs");

/// Where a blob is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobLocation {
    pub pack: Id,
    pub kind: BlobKind,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
}

impl BlobLocation {
    pub fn new(pack: Id, e: &PackEntry) -> Self {
        BlobLocation {
            pack,
            kind: e.kind,
            offset: e.offset,
            length: e.length,
            raw_length: e.raw_length,
        }
    }

    fn encode(&self) -> [u8; 45] {
        let mut b = [0u8; 45];
        b[..32].copy_from_slice(&self.pack.0);
        b[32] = self.kind as u8;
        b[33..37].copy_from_slice(&self.offset.to_le_bytes());
        b[37..41].copy_from_slice(&self.length.to_le_bytes());
        b[41..45].copy_from_slice(&self.raw_length.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != 45 {
            return None;
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Some(BlobLocation {
            pack: Id::from_slice(&b[..32])?,
            kind: BlobKind::from_u8(b[32])?,
            offset: u32_at(33),
            length: u32_at(37),
            raw_length: u32_at(41),
        })
    }
}

/// redb's page cache for the index. redb's default (1 GiB) would let a long walk over a large
/// index (prune, check) grow the process by the size of the index file; a bounded cache keeps
/// memory flat as the repository grows, and the OS page cache still holds the hot pages. A
/// larger cache does not pay: lookups are random. On a 10 M-blob index, 64 MiB looked up no
/// faster than 16 MiB (8–13 µs), and 4 MiB no slower than 16 MiB (5.7–7.5 against 6.9–7.6 µs,
/// alternating), for 13 MB less peak RSS; the first backup of /usr peaked 7 MB lower
/// (benches/RESULTS.md, "Scale" and session 10).
const CACHE_BYTES: usize = 4 << 20;

fn create_db(path: &Path) -> Result<Database, redb::DatabaseError> {
    redb::Builder::new()
        .set_cache_size(CACHE_BYTES)
        .create(path)
}

fn db_err(e: impl std::fmt::Display) -> Error {
    Error::Index(e.to_string())
}

pub struct LocalIndex {
    db: Database,
    /// Folder of the cache file: temporary files of a batch ingest go here.
    dir: PathBuf,
}

impl LocalIndex {
    /// Open (or create) the cache at `path`. When another process holds it, a private copy is
    /// built beside it instead, so two backups on one host never wait for each other.
    pub fn open(path: &Path) -> Result<LocalIndex> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let db = match create_db(path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => Self::private_db(path)?,
            Err(redb::DatabaseError::Storage(redb::StorageError::Io(e)))
                if e.kind() == std::io::ErrorKind::WouldBlock =>
            {
                Self::private_db(path)?
            }
            // A damaged cache is only a cache: start over.
            Err(e) => {
                tracing::warn!("local index {} unusable ({e}); rebuilding", path.display());
                let _ = std::fs::remove_file(path);
                create_db(path).map_err(db_err)?
            }
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let index = LocalIndex { db, dir };
        index.ensure_tables()?;
        Ok(index)
    }

    fn private_db(path: &Path) -> Result<Database> {
        let mut rnd = [0u8; 8];
        crate::crypto::fill_random(&mut rnd);
        let private = path.with_extension(format!(
            "private-{}-{}",
            std::process::id(),
            hex::encode(rnd)
        ));
        tracing::debug!("local index busy; using private copy {}", private.display());
        let db = create_db(&private).map_err(db_err);
        // Unlinked while open: the private copy disappears when the process ends.
        let _ = std::fs::remove_file(&private);
        db
    }

    fn ensure_tables(&self) -> Result<()> {
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.open_table(BLOBS).map_err(db_err)?;
        txn.open_table(TREES).map_err(db_err)?;
        txn.open_table(INDEX_OBJECTS).map_err(db_err)?;
        txn.open_table(PENDING).map_err(db_err)?;
        txn.commit().map_err(db_err)
    }

    /// Where a blob of any kind is stored (data first).
    pub fn lookup(&self, id: &Id) -> Result<Option<BlobLocation>> {
        match self.lookup_kind(BlobKind::Data, id)? {
            Some(l) => Ok(Some(l)),
            None => self.lookup_kind(BlobKind::Tree, id),
        }
    }

    /// Where a blob of this kind is stored.
    pub fn lookup_kind(&self, kind: BlobKind, id: &Id) -> Result<Option<BlobLocation>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let get = |def| -> Result<Option<BlobLocation>> {
            let table = txn.open_table(def).map_err(db_err)?;
            let v = table.get(&id.0).map_err(db_err)?;
            Ok(v.and_then(|g| BlobLocation::decode(g.value()))
                .filter(|l| l.kind == kind))
        };
        match kind {
            BlobKind::Data => get(BLOBS),
            BlobKind::Tree => match get(TREES)? {
                Some(l) => Ok(Some(l)),
                None => get(BLOBS),
            },
        }
    }

    /// Visit every indexed blob id in ascending byte order (prune builds its live bitmap).
    pub fn for_each_id(&self, f: &mut dyn FnMut(Id) -> Result<()>) -> Result<()> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(BLOBS).map_err(db_err)?;
        for item in table.iter().map_err(db_err)? {
            let (k, _) = item.map_err(db_err)?;
            f(Id(*k.value()))?;
        }
        Ok(())
    }

    pub fn blob_count(&self) -> Result<u64> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let data = txn
            .open_table(BLOBS)
            .map_err(db_err)?
            .len()
            .map_err(db_err)?;
        let trees = txn
            .open_table(TREES)
            .map_err(db_err)?
            .len()
            .map_err(db_err)?;
        Ok(data + trees)
    }

    /// Names of the repository index objects this cache holds.
    pub fn known_index_objects(&self) -> Result<HashSet<String>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(INDEX_OBJECTS).map_err(db_err)?;
        let mut out = HashSet::new();
        for item in table.iter().map_err(db_err)? {
            let (k, _) = item.map_err(db_err)?;
            out.insert(k.value().to_string());
        }
        Ok(out)
    }

    /// Names recorded as superseded (known, but their entries deliberately not ingested).
    pub fn superseded_index_objects(&self) -> Result<HashSet<String>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(INDEX_OBJECTS).map_err(db_err)?;
        let mut out = HashSet::new();
        for item in table.iter().map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            if v.value() == SUPERSEDED {
                out.insert(k.value().to_string());
            }
        }
        Ok(out)
    }

    /// Remember index objects as superseded: known, so a later sync does not ingest them.
    pub fn mark_superseded(&self, names: &[&String]) -> Result<()> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = txn.open_table(INDEX_OBJECTS).map_err(db_err)?;
            for n in names {
                t.insert(n.as_str(), SUPERSEDED).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)
    }

    /// Forget the names of index objects that are gone.
    pub fn forget_index_objects(&self, names: &[&String]) -> Result<()> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = txn.open_table(INDEX_OBJECTS).map_err(db_err)?;
            for n in names {
                t.remove(n.as_str()).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)
    }

    /// Add the entries of one repository index object and remember its name.
    pub fn ingest(&self, name: &str, obj: &IndexObject) -> Result<()> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut blobs = txn.open_table(BLOBS).map_err(db_err)?;
            let mut trees = txn.open_table(TREES).map_err(db_err)?;
            for p in &obj.packs {
                for e in &p.entries {
                    let table = match e.kind {
                        BlobKind::Data => &mut blobs,
                        BlobKind::Tree => &mut trees,
                    };
                    table
                        .insert(&e.id.0, BlobLocation::new(p.pack, e).encode().as_slice())
                        .map_err(db_err)?;
                }
            }
            txn.open_table(INDEX_OBJECTS)
                .map_err(db_err)?
                .insert(name, 1)
                .map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    /// Ingest many index objects together (a sync or a rebuild): see [`IngestBatch`].
    pub fn batch(&self) -> IngestBatch<'_> {
        IngestBatch::new(self, BATCH_RUN_ENTRIES)
    }

    /// Record an uploaded pack that no index object lists yet; its blobs become usable at once.
    pub fn add_pending(&self, pack: &IndexPack) -> Result<()> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut blobs = txn.open_table(BLOBS).map_err(db_err)?;
            let mut trees = txn.open_table(TREES).map_err(db_err)?;
            for e in &pack.entries {
                let table = match e.kind {
                    BlobKind::Data => &mut blobs,
                    BlobKind::Tree => &mut trees,
                };
                table
                    .insert(&e.id.0, BlobLocation::new(pack.pack, e).encode().as_slice())
                    .map_err(db_err)?;
            }
            let encoded = IndexObject {
                supersedes: vec![],
                packs: vec![pack.clone()],
            }
            .encode_plain();
            txn.open_table(PENDING)
                .map_err(db_err)?
                .insert(&pack.pack.0, encoded.as_slice())
                .map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    /// Packs recorded as pending (by this run or one that died).
    pub fn pending(&self) -> Result<Vec<IndexPack>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(PENDING).map_err(db_err)?;
        let mut out = Vec::new();
        for item in table.iter().map_err(db_err)? {
            let (_, v) = item.map_err(db_err)?;
            match IndexObject::decode_plain(v.value()) {
                Ok(obj) => out.extend(obj.packs),
                Err(e) => tracing::warn!("dropping unreadable pending pack record: {e}"),
            }
        }
        Ok(out)
    }

    /// Mark packs as indexed: the index object `name` now lists them.
    pub fn commit_pending(&self, name: &str, obj: &IndexObject) -> Result<()> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut pending = txn.open_table(PENDING).map_err(db_err)?;
            for p in &obj.packs {
                pending.remove(&p.pack.0).map_err(db_err)?;
            }
            txn.open_table(INDEX_OBJECTS)
                .map_err(db_err)?
                .insert(name, 1)
                .map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    /// Mark packs as listed by an index object not ingested yet (its writer died before
    /// `commit_pending`): drops their pending records, keeps their blob entries.
    pub fn mark_listed(&self, packs: &[IndexPack]) -> Result<()> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut pending = txn.open_table(PENDING).map_err(db_err)?;
            for p in packs {
                pending.remove(&p.pack.0).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)
    }

    /// Drop pending records (and their blob entries) for packs that turned out not to exist.
    pub fn drop_pending(&self, packs: &[IndexPack]) -> Result<()> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut pending = txn.open_table(PENDING).map_err(db_err)?;
            let mut blobs = txn.open_table(BLOBS).map_err(db_err)?;
            let mut trees = txn.open_table(TREES).map_err(db_err)?;
            for p in packs {
                pending.remove(&p.pack.0).map_err(db_err)?;
                for e in &p.entries {
                    match e.kind {
                        BlobKind::Data => blobs.remove(&e.id.0).map_err(db_err)?,
                        BlobKind::Tree => trees.remove(&e.id.0).map_err(db_err)?,
                    };
                }
            }
        }
        txn.commit().map_err(db_err)
    }
}

/// Entries a batch sorts in memory before it spills them as one sorted run (~84 bytes each).
const BATCH_RUN_ENTRIES: usize = 200_000;
/// Bytes of one spilled entry: blob id, ordinal of its index object, encoded location.
const REC_LEN: usize = 32 + 4 + 45;
/// Read buffer per run while merging (a whole number of entries, ~32 KiB).
const MERGE_BUF: usize = REC_LEN * 400;

/// One entry of a batch. Ordered by id, then by the order its object was added, so of two
/// objects listing the same blob the later one wins, as with one `ingest` after the other.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rec {
    id: [u8; 32],
    obj: u32,
    loc: [u8; 45],
}

impl Rec {
    fn to_bytes(self) -> [u8; REC_LEN] {
        let mut b = [0u8; REC_LEN];
        b[..32].copy_from_slice(&self.id);
        b[32..36].copy_from_slice(&self.obj.to_le_bytes());
        b[36..].copy_from_slice(&self.loc);
        b
    }

    fn from_bytes(b: &[u8]) -> Rec {
        let mut r = Rec {
            id: [0; 32],
            obj: u32::from_le_bytes([b[32], b[33], b[34], b[35]]),
            loc: [0; 45],
        };
        r.id.copy_from_slice(&b[..32]);
        r.loc.copy_from_slice(&b[36..REC_LEN]);
        r
    }
}

/// Many index objects ingested in key order, in one write transaction.
///
/// Ingesting object after object (one transaction each) inserts ids that are spread over the
/// whole B-tree, so every transaction rewrites a large part of it: a first sync of 10 million
/// blobs in index objects of 100 000 had written 22 GB after 6.5 minutes and was not done, and
/// reading every object before ingesting (to honour `supersedes`) held ~55 bytes of RAM per
/// blob. A batch keeps at most `BATCH_RUN_ENTRIES` entries in memory: each time that many
/// are added they are sorted and appended to a temporary file (unlinked at once) as a run;
/// `finish` merges the runs and inserts every entry in ascending order, which writes each
/// page of the tree about once.
pub struct IngestBatch<'a> {
    index: &'a LocalIndex,
    run_entries: usize,
    names: Vec<String>,
    run: Vec<Rec>,
    spill: Option<Spill>,
}

/// A new read-write file in `dir`, unlinked at once so nothing is left behind even after a
/// kill; the path is returned only to name the file in errors.
pub(crate) fn scratch_file(dir: &Path, prefix: &str) -> Result<(File, PathBuf)> {
    let mut rnd = [0u8; 8];
    crate::crypto::fill_random(&mut rnd);
    let path = dir.join(format!("{prefix}-{}", hex::encode(rnd)));
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    let _ = std::fs::remove_file(&path);
    Ok((file, path))
}

struct Spill {
    file: File,
    path: PathBuf,
    /// Byte ranges of the sorted runs.
    runs: Vec<(u64, u64)>,
    len: u64,
}

impl Spill {
    fn create(dir: &Path) -> Result<Spill> {
        let (file, path) = scratch_file(dir, "index-batch")?;
        Ok(Spill {
            file,
            path,
            runs: Vec::new(),
            len: 0,
        })
    }

    fn append_run(&mut self, run: &[Rec]) -> Result<()> {
        let start = self.len;
        let mut out = BufWriter::with_capacity(1 << 20, &self.file);
        for r in run {
            out.write_all(&r.to_bytes())
                .map_err(|e| Error::io(&self.path, e))?;
        }
        out.flush().map_err(|e| Error::io(&self.path, e))?;
        self.len += (run.len() * REC_LEN) as u64;
        self.runs.push((start, self.len));
        Ok(())
    }
}

/// A cursor over one spilled run.
struct RunReader {
    pos: u64,
    end: u64,
    buf: Vec<u8>,
    at: usize,
}

impl RunReader {
    fn next(&mut self, spill: &Spill) -> Result<Option<Rec>> {
        if self.at >= self.buf.len() {
            let n = (self.end - self.pos).min(MERGE_BUF as u64) as usize;
            if n == 0 {
                return Ok(None);
            }
            self.buf.resize(n, 0);
            spill
                .file
                .read_exact_at(&mut self.buf, self.pos)
                .map_err(|e| Error::io(&spill.path, e))?;
            self.pos += n as u64;
            self.at = 0;
        }
        let r = Rec::from_bytes(&self.buf[self.at..self.at + REC_LEN]);
        self.at += REC_LEN;
        Ok(Some(r))
    }
}

impl<'a> IngestBatch<'a> {
    fn new(index: &'a LocalIndex, run_entries: usize) -> Self {
        IngestBatch {
            index,
            run_entries: run_entries.max(1),
            names: Vec::new(),
            run: Vec::new(),
            spill: None,
        }
    }

    /// Add the entries of the index object `name`.
    pub fn add(&mut self, name: &str, obj: &IndexObject) -> Result<()> {
        let ord = u32::try_from(self.names.len())
            .map_err(|_| Error::Index("too many index objects in one batch".into()))?;
        self.names.push(name.to_string());
        // Grown by what comes, not doubled: a doubled run held up to twice its entries, and
        // both buffers while it moved (prune's rebuild of a /usr repository: 11 MiB for 5.6).
        let coming: usize = obj.packs.iter().map(|p| p.entries.len()).sum();
        let room = self.run_entries - self.run.len().min(self.run_entries);
        self.run.reserve_exact(coming.min(room));
        for p in &obj.packs {
            for e in &p.entries {
                self.run.push(Rec {
                    id: e.id.0,
                    obj: ord,
                    loc: BlobLocation::new(p.pack, e).encode(),
                });
                if self.run.len() >= self.run_entries {
                    self.spill_run()?;
                }
            }
        }
        Ok(())
    }

    fn spill_run(&mut self) -> Result<()> {
        if self.run.is_empty() {
            return Ok(());
        }
        self.run.sort_unstable();
        let spill = match &mut self.spill {
            Some(s) => s,
            None => self.spill.insert(Spill::create(&self.index.dir)?),
        };
        spill.append_run(&self.run)?;
        self.run.clear();
        Ok(())
    }

    /// Write the entries of every added object except those named in `skip` into the index
    /// and record the names (those in `skip` as superseded), in one transaction.
    pub fn finish(self, skip: &HashSet<String>) -> Result<()> {
        self.write(skip, false)
    }

    /// Like `finish`, but the index first forgets everything except pending packs (a
    /// rebuild): in the same transaction, so it is never seen half rebuilt.
    pub fn finish_replacing(self, skip: &HashSet<String>) -> Result<()> {
        self.write(skip, true)
    }

    fn write(mut self, skip: &HashSet<String>, replace: bool) -> Result<()> {
        let skipped: Vec<bool> = self.names.iter().map(|n| skip.contains(n)).collect();
        if self.spill.is_some() {
            self.spill_run()?;
        } else {
            self.run.sort_unstable();
        }
        let txn = self.index.db.begin_write().map_err(db_err)?;
        if replace {
            txn.delete_table(BLOBS).map_err(db_err)?;
            txn.delete_table(TREES).map_err(db_err)?;
            txn.delete_table(INDEX_OBJECTS).map_err(db_err)?;
        }
        {
            let mut blobs = txn.open_table(BLOBS).map_err(db_err)?;
            let mut trees = txn.open_table(TREES).map_err(db_err)?;
            let mut put = |r: Rec| -> Result<()> {
                if skipped[r.obj as usize] {
                    return Ok(());
                }
                let table = match BlobKind::from_u8(r.loc[32]) {
                    Some(BlobKind::Tree) => &mut trees,
                    _ => &mut blobs,
                };
                table.insert(&r.id, r.loc.as_slice()).map_err(db_err)?;
                Ok(())
            };
            match &self.spill {
                None => {
                    for r in self.run.drain(..) {
                        put(r)?;
                    }
                }
                Some(spill) => {
                    let mut readers: Vec<RunReader> = spill
                        .runs
                        .iter()
                        .map(|&(pos, end)| RunReader {
                            pos,
                            end,
                            buf: Vec::new(),
                            at: 0,
                        })
                        .collect();
                    let mut heap = BinaryHeap::with_capacity(readers.len());
                    for (i, r) in readers.iter_mut().enumerate() {
                        if let Some(rec) = r.next(spill)? {
                            heap.push(Reverse((rec, i)));
                        }
                    }
                    while let Some(Reverse((rec, i))) = heap.pop() {
                        put(rec)?;
                        if let Some(next) = readers[i].next(spill)? {
                            heap.push(Reverse((next, i)));
                        }
                    }
                }
            }
            let mut objects = txn.open_table(INDEX_OBJECTS).map_err(db_err)?;
            for (name, skipped) in self.names.iter().zip(&skipped) {
                let v = if *skipped { SUPERSEDED } else { 1 };
                objects.insert(name.as_str(), v).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: u64) -> Id {
        Id(*blake3::hash(&i.to_le_bytes()).as_bytes())
    }

    /// Object `o`: 60 blobs drawn from 200 ids (so objects overlap), every 7th a tree.
    fn object(o: u64) -> IndexObject {
        let packs = (0..3)
            .map(|p| IndexPack {
                pack: id(1_000_000 + o * 10 + p),
                entries: (0..20)
                    .map(|k| {
                        let i = (o * 37 + p * 20 + k) * 13 % 200;
                        PackEntry {
                            kind: if i.is_multiple_of(7) {
                                BlobKind::Tree
                            } else {
                                BlobKind::Data
                            },
                            id: id(i),
                            offset: k as u32 * 10,
                            length: 10,
                            raw_length: 10 + o as u32,
                        }
                    })
                    .collect(),
            })
            .collect();
        IndexObject {
            supersedes: vec![],
            packs,
        }
    }

    fn assert_same(a: &LocalIndex, b: &LocalIndex) {
        for i in 0..200 {
            for kind in [BlobKind::Data, BlobKind::Tree] {
                assert_eq!(
                    a.lookup_kind(kind, &id(i)).unwrap(),
                    b.lookup_kind(kind, &id(i)).unwrap(),
                    "blob {i} {kind:?}"
                );
            }
        }
        assert_eq!(a.blob_count().unwrap(), b.blob_count().unwrap());
        assert_eq!(
            a.known_index_objects().unwrap(),
            b.known_index_objects().unwrap()
        );
        assert_eq!(
            a.superseded_index_objects().unwrap(),
            b.superseded_index_objects().unwrap()
        );
    }

    /// Sorted runs, spilled or not, give the index that ingesting object after object gives
    /// (the later of two objects listing a blob wins), skip superseded objects and leave no
    /// temporary file behind.
    #[test]
    fn batch_matches_ingesting_object_by_object() {
        let objects: Vec<(String, IndexObject)> =
            (0..6).map(|o| (format!("obj{o}"), object(o))).collect();
        let skip: HashSet<String> = ["obj2".to_string()].into();
        for run in [1, 7, 64, 1 << 20] {
            let dir = tempfile::tempdir().unwrap();
            let one = LocalIndex::open(&dir.path().join("one.redb")).unwrap();
            for (name, obj) in objects.iter().filter(|(n, _)| !skip.contains(n)) {
                one.ingest(name, obj).unwrap();
            }
            one.mark_superseded(&skip.iter().collect::<Vec<_>>())
                .unwrap();
            let batched = LocalIndex::open(&dir.path().join("batch.redb")).unwrap();
            let mut batch = IngestBatch::new(&batched, run);
            for (name, obj) in &objects {
                batch.add(name, obj).unwrap();
            }
            batch.finish(&skip).unwrap();
            assert_same(&one, &batched);
            let files = std::fs::read_dir(dir.path()).unwrap().count();
            assert_eq!(files, 2, "only the two databases are left (run {run})");
        }
    }

    /// A rebuild's batch replaces what the index held, except pending packs.
    #[test]
    fn finish_replacing_keeps_only_the_batch_and_pending_packs() {
        let dir = tempfile::tempdir().unwrap();
        let index = LocalIndex::open(&dir.path().join("index.redb")).unwrap();
        index.ingest("old", &object(0)).unwrap();
        let pending = IndexPack {
            pack: id(5_000_000),
            entries: vec![PackEntry {
                kind: BlobKind::Data,
                id: id(4_000_000),
                offset: 0,
                length: 10,
                raw_length: 10,
            }],
        };
        index.add_pending(&pending).unwrap();
        let mut batch = IngestBatch::new(&index, 16);
        batch.add("new", &object(1)).unwrap();
        batch.finish_replacing(&HashSet::new()).unwrap();
        let fresh = LocalIndex::open(&dir.path().join("fresh.redb")).unwrap();
        fresh.ingest("new", &object(1)).unwrap();
        assert_same(&index, &fresh);
        assert_eq!(index.pending().unwrap(), vec![pending]);
    }
}
