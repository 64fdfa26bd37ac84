//! The local index cache (a redb database): blob id → location, which repository index objects
//! it mirrors, and packs uploaded but not yet listed in an index object (pending). It is only a
//! cache of the repository's index objects (format-spec §6, §9.2) and can always be rebuilt.
//! Ids do not encode the kind (a data chunk and a tree with equal plaintext share an id), so tree
//! blobs are kept in a table of their own and lookups name the kind they need.

use std::collections::HashSet;
use std::path::Path;

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

fn db_err(e: impl std::fmt::Display) -> Error {
    Error::Index(e.to_string())
}

pub struct LocalIndex {
    db: Database,
}

impl LocalIndex {
    /// Open (or create) the cache at `path`. When another process holds it, a private copy is
    /// built beside it instead, so two backups on one host never wait for each other.
    pub fn open(path: &Path) -> Result<LocalIndex> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let db = match Database::create(path) {
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
                Database::create(path).map_err(db_err)?
            }
        };
        let index = LocalIndex { db };
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
        let db = Database::create(&private).map_err(db_err);
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

    /// Forget everything except pending packs (before a rebuild).
    pub fn clear(&self) -> Result<()> {
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.delete_table(BLOBS).map_err(db_err)?;
        txn.delete_table(TREES).map_err(db_err)?;
        txn.delete_table(INDEX_OBJECTS).map_err(db_err)?;
        txn.open_table(BLOBS).map_err(db_err)?;
        txn.open_table(TREES).map_err(db_err)?;
        txn.open_table(INDEX_OBJECTS).map_err(db_err)?;
        txn.commit().map_err(db_err)
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
