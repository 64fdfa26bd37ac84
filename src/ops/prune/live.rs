//! The live-blob set of a prune's mark phase (gc.md §5 "Memory"): ids live in a temporary redb
//! table on disk with a small page cache, fronted by a bounded in-memory batch, so marking a
//! repository of any size needs a few tens of MiB of RAM instead of ~100 bytes per blob.

use std::collections::HashSet;
use std::path::Path;

use redb::{
    Builder, Database, Durability, ReadableDatabase, ReadableTableMetadata, TableDefinition,
};

use crate::error::{Error, Result};
use crate::id::Id;

const LIVE: TableDefinition<&[u8; 32], ()> = TableDefinition::new("live");
/// Ids buffered before they are written to the table (32 B each, plus hash-set overhead).
const BATCH: usize = 1 << 16;
/// redb page cache.
const CACHE_BYTES: usize = 16 << 20;

fn db_err(e: impl std::fmt::Display) -> Error {
    Error::Index(format!("live set: {e}"))
}

pub struct LiveSet {
    db: Database,
    batch: HashSet<Id>,
    stored: u64,
}

impl LiveSet {
    /// A new, empty set in a temporary file under `dir`, unlinked at once so that nothing is
    /// left behind even when the process is killed.
    pub fn new(dir: &Path) -> Result<LiveSet> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut rnd = [0u8; 8];
        crate::crypto::fill_random(&mut rnd);
        let path = dir.join(format!("prune-live-{}.redb", hex::encode(rnd)));
        let db = Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(db_err)?;
        let _ = std::fs::remove_file(&path);
        Ok(LiveSet {
            db,
            batch: HashSet::with_capacity(BATCH),
            stored: 0,
        })
    }

    /// Add an id; true when it was not in the set yet.
    pub fn insert(&mut self, id: &Id) -> Result<bool> {
        if self.batch.contains(id) || self.stored_contains(id)? {
            return Ok(false);
        }
        self.batch.insert(*id);
        if self.batch.len() >= BATCH {
            self.flush()?;
        }
        Ok(true)
    }

    pub fn contains(&self, id: &Id) -> Result<bool> {
        Ok(self.batch.contains(id) || self.stored_contains(id)?)
    }

    /// Number of ids in the set.
    pub fn len(&self) -> u64 {
        self.stored + self.batch.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn stored_contains(&self, id: &Id) -> Result<bool> {
        if self.stored == 0 {
            return Ok(false);
        }
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(LIVE).map_err(db_err)?;
        Ok(table.get(&id.0).map_err(db_err)?.is_some())
    }

    /// Move the batch into the table (sorted, one transaction, no fsync: the file is scratch).
    pub fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let mut ids: Vec<Id> = self.batch.drain().collect();
        ids.sort_unstable();
        let mut txn = self.db.begin_write().map_err(db_err)?;
        txn.set_durability(Durability::None).map_err(db_err)?;
        {
            let mut table = txn.open_table(LIVE).map_err(db_err)?;
            for id in &ids {
                table.insert(&id.0, ()).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)?;
        let txn = self.db.begin_read().map_err(db_err)?;
        self.stored = txn
            .open_table(LIVE)
            .map_err(db_err)?
            .len()
            .map_err(db_err)?;
        Ok(())
    }
}
