//! Writing new blobs (format-spec §5, §9.1): blobs are packed by kind, a full pack is handed to
//! uploader threads, each uploaded pack is recorded as pending in the local index, and index
//! objects are written every few packs and at the end. Nothing is referenced before it is stored.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Sender};

use super::cache::ObjectCache;
use super::index_sync::write_index_object;
use super::{DynBackend, Repository};
use crate::backend::{Backend, Counting, Kind, Temperature};
use crate::codec::SealedBlob;
use crate::crypto::SealKey;
use crate::error::{Error, Result};
use crate::format::index::IndexPack;
use crate::format::pack::PackBuilder;
use crate::id::{BlobKind, Id};
use crate::index::LocalIndex;

#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// Seal and count, but store nothing.
    pub dry_run: bool,
    /// Parallel pack uploads.
    pub connections: usize,
    /// Write an index object after this many packs (bounds what a crash can orphan).
    pub index_every_packs: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            dry_run: false,
            connections: 2,
            index_every_packs: 32,
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct WriterStats {
    pub packs: u64,
    pub blobs: u64,
    /// Sealed bytes stored (after compression and encryption), pack headers included.
    pub bytes: u64,
}

struct Upload {
    bytes: Vec<u8>,
    pack: IndexPack,
    temp: Temperature,
}

/// State shared with the uploader threads.
struct Shared {
    backend: Arc<Counting<DynBackend>>,
    index: Arc<LocalIndex>,
    cache: ObjectCache,
    meta: SealKey,
    uploaded: Mutex<Vec<IndexPack>>,
    error: Mutex<Option<Error>>,
    index_every: usize,
    /// Buffers of uploaded packs, for the next packs to be built in.
    spare: Mutex<Vec<Vec<u8>>>,
    spare_max: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn upload(&self, up: Upload) -> Result<()> {
        let name = up.pack.pack.to_hex();
        match self.backend.put(Kind::Pack, &name, &up.bytes, up.temp) {
            Err(e) if e.is_already_exists() => {}
            other => other?,
        }
        if up.temp == Temperature::Hot {
            // Tree packs are read by every later backup, ls and restore: keep a local copy.
            self.cache.put(Kind::Pack, &name, &up.bytes);
        }
        self.index.add_pending(&up.pack)?;
        let batch = {
            let mut done = lock(&self.uploaded);
            done.push(up.pack);
            if done.len() >= self.index_every {
                std::mem::take(&mut *done)
            } else {
                Vec::new()
            }
        };
        if !batch.is_empty() {
            write_index_object(&*self.backend, &self.meta, &self.index, batch, vec![])?;
        }
        let mut spare = lock(&self.spare);
        if spare.len() < self.spare_max {
            spare.push(up.bytes);
        }
        Ok(())
    }

    /// A buffer for the next pack: a spare one, or a new one of a full pack's capacity.
    fn pack_buffer(&self, capacity: usize) -> Vec<u8> {
        lock(&self.spare)
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(capacity))
    }

    fn fail(&self, e: Error) {
        let mut slot = lock(&self.error);
        if slot.is_none() {
            *slot = Some(e);
        }
    }
}

pub struct PackWriter<'r> {
    repo: &'r Repository,
    opts: WriterOptions,
    data: Mutex<PackBuilder>,
    tree: Mutex<PackBuilder>,
    seen: Mutex<HashSet<(BlobKind, Id)>>,
    stats: Mutex<WriterStats>,
    shared: Arc<Shared>,
    tx: Option<Sender<Upload>>,
    threads: Vec<JoinHandle<()>>,
}

impl<'r> PackWriter<'r> {
    pub(super) fn new(repo: &'r Repository, opts: WriterOptions) -> Self {
        let (backend, index, cache) = repo.shared_parts();
        let shared = Arc::new(Shared {
            backend,
            index,
            cache,
            meta: repo.codec().keys().meta.clone(),
            uploaded: Mutex::new(Vec::new()),
            error: Mutex::new(None),
            index_every: opts.index_every_packs.max(1),
            spare: Mutex::new(Vec::new()),
            spare_max: opts.connections.max(1) + 1,
        });
        let connections = opts.connections.max(1);
        // A rendezvous channel: a finished pack waits in the hand of the thread that built it
        // until an uploader is free, so at most `connections` + 1 packs are held at once.
        let (tx, rx) = bounded::<Upload>(0);
        let threads = (0..connections)
            .map(|_| {
                let rx = rx.clone();
                let shared = shared.clone();
                std::thread::spawn(move || {
                    for up in rx {
                        if let Err(e) = shared.upload(up) {
                            shared.fail(e);
                        }
                    }
                })
            })
            .collect();
        PackWriter {
            repo,
            opts,
            data: Mutex::new(PackBuilder::new()),
            tree: Mutex::new(PackBuilder::new()),
            seen: Mutex::new(HashSet::new()),
            stats: Mutex::new(WriterStats::default()),
            shared,
            tx: Some(tx),
            threads,
        }
    }

    /// Claim a data blob id for this run: true when it is neither stored nor claimed already, in
    /// which case the caller must `add_sealed` it.
    pub fn claim(&self, id: &Id) -> Result<bool> {
        self.claim_kind(BlobKind::Data, id)
    }

    /// Claim a blob of a kind. The kind matters: ids are keyed hashes of the plaintext only, so a
    /// chunk can share its id with a tree (an empty folder's tree is the two bytes `01 00`), and
    /// each must be stored sealed as its own kind.
    pub fn claim_kind(&self, kind: BlobKind, id: &Id) -> Result<bool> {
        if lock(&self.seen).contains(&(kind, *id)) {
            return Ok(false);
        }
        if self.repo.index().lookup_kind(kind, id)?.is_some() {
            return Ok(false);
        }
        Ok(lock(&self.seen).insert((kind, *id)))
    }

    /// Seal and store a blob unless it exists; returns true when it was new.
    pub fn add(&self, kind: BlobKind, plain: &[u8]) -> Result<(Id, bool)> {
        let id = self.repo.codec().id(plain);
        if !self.claim_kind(kind, &id)? {
            return Ok((id, false));
        }
        self.add_sealed(self.repo.codec().seal(kind, id, plain))?;
        Ok((id, true))
    }

    /// Add a blob sealed by the caller (after a successful `claim`).
    pub fn add_sealed(&self, blob: SealedBlob) -> Result<()> {
        self.check_failed()?;
        let builder = match blob.kind {
            BlobKind::Data => &self.data,
            BlobKind::Tree => &self.tree,
        };
        let full = {
            let mut b = lock(builder);
            b.add(blob.kind, blob.id, &blob.sealed, blob.raw_length);
            let config = self.repo.config();
            let target = config.pack_target_size as usize;
            if b.len() >= target || b.count() >= crate::format::MAX_PACK_ENTRIES {
                // A full pack: the target, the blob that crossed it, the header and trailer.
                let capacity = target + config.chunker.max_size as usize + (1 << 20);
                let next = PackBuilder::with_buffer(self.shared.pack_buffer(capacity));
                Some(std::mem::replace(&mut *b, next))
            } else {
                None
            }
        };
        {
            let mut s = lock(&self.stats);
            s.blobs += 1;
        }
        match full {
            Some(b) => self.ship(b, blob.kind),
            None => Ok(()),
        }
    }

    fn check_failed(&self) -> Result<()> {
        match lock(&self.shared.error).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn ship(&self, builder: PackBuilder, kind: BlobKind) -> Result<()> {
        if builder.is_empty() {
            return Ok(());
        }
        let (bytes, entries) = builder.finish(&self.shared.meta);
        let pack = IndexPack {
            pack: Id::of_object(&bytes),
            entries,
        };
        {
            let mut s = lock(&self.stats);
            s.packs += 1;
            s.bytes += bytes.len() as u64;
        }
        if self.opts.dry_run {
            return Ok(());
        }
        let temp = match kind {
            BlobKind::Data => Temperature::Cold,
            BlobKind::Tree => Temperature::Hot,
        };
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| Error::Invalid("pack writer already finished".into()))?;
        tx.send(Upload { bytes, pack, temp })
            .map_err(|_| Error::Invalid("pack uploaders stopped".into()))?;
        self.check_failed()
    }

    /// Upload what is left, wait for every upload and write the final index object.
    /// Only after this returns may a snapshot reference the blobs.
    pub fn finish(mut self) -> Result<WriterStats> {
        let data = std::mem::take(&mut *lock(&self.data));
        self.ship(data, BlobKind::Data)?;
        let tree = std::mem::take(&mut *lock(&self.tree));
        self.ship(tree, BlobKind::Tree)?;
        self.tx = None;
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                return Err(Error::Invalid("a pack uploader thread panicked".into()));
            }
        }
        self.check_failed()?;
        let rest = std::mem::take(&mut *lock(&self.shared.uploaded));
        if !rest.is_empty() {
            write_index_object(
                &*self.shared.backend,
                &self.shared.meta,
                &self.shared.index,
                rest,
                vec![],
            )?;
        }
        Ok(*lock(&self.stats))
    }
}

impl Drop for PackWriter<'_> {
    fn drop(&mut self) {
        // On an error path: stop the uploaders; what they stored stays pending for the next run.
        self.tx = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
